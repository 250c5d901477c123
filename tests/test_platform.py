"""
Tests of what differs between the API profiles: requests, decoding, paging, keys.

The shared behaviour runs against both profiles elsewhere (the ``api``
parameter of ``conftest``); here are the differences themselves, at the
request seam (``FakeTransport``) and against the Platform fake server.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from sequence_async import (
    AuditLogs,
    Cards,
    CardTransactions,
    ConflictError,
    ExecutionStatus,
    ExternalTransactions,
    NotFoundError,
    PermissionDeniedError,
    ResponseValidationError,
    RuleExecutions,
    Rules,
    SequenceClient,
    Transfers,
    UnsupportedFeatureError,
    _convert,
    models,
)
from sequence_async._execution import Execution
from sequence_async._profiles import PROFILES
from sequence_async._wire import Response
from sequence_async.testing import Behavior, FakeSequence, serve

from .conftest import FakeTransport, requester, status


PLATFORM = PROFILES["platform-v1"]


def platform_ok(data: Any, code: int = 200) -> Response:
    """A Platform success answer: ``{data, requestId}``."""
    return Response(code, {}, json.dumps({"data": data, "requestId": "req-1"}).encode())


def page_of(items: list[Any], page: int, *, more: bool) -> Response:
    """A Platform list page: ``{items, pagination}``."""
    return platform_ok(
        {
            "items": items,
            "pagination": {"page": page, "pageSize": 2, "hasNextPage": more},
        }
    )


def execution(execution_id: str, status: str = "IN_PROGRESS") -> dict[str, Any]:
    """A Platform RuleExecution in camelCase."""
    return {
        "id": execution_id,
        "ruleId": "r1",
        "status": status,
        "executionMode": "LIVE",
        "createdAt": "2026-01-01T00:00:00Z",
        "transfersPending": 0,
        "transferIds": [],
        "nextAttemptAt": None,
    }


async def test_platform_trigger_sends_bearer_camel_case_and_reads_execution_id() -> (
    None
):
    """A Platform trigger: Bearer key, executeAmount and simulation, 202 executionId."""
    transport = FakeTransport(platform_ok({"executionId": "e-1"}, 202))
    rules = Rules(requester(transport, api="platform-v1", called_reason="nightly"))

    handle = await rules.trigger("r1", manual_execute_amount=5, simulation=True)

    (sent,) = transport.sent
    assert "Bearer sk_live_SUPERSECRET_0123456789" == sent.headers["Authorization"]
    assert ("POST", "/rules/r1/trigger") == (sent.method, sent.path)
    assert {"executeAmount": 5, "simulation": True} == json.loads(sent.body or b"")
    assert "nightly" == sent.headers["x-called-reason"]
    assert ("e-1", "r1", "req-1") == (handle.id, handle.rule_id, handle.request_id)


async def test_a_call_s_called_reason_wins_over_the_client_s() -> None:
    """``called_reason=`` on a call replaces the client's x-called-reason."""
    transport = FakeTransport(platform_ok({"id": "r1", "name": "Taxes"}))
    rules = Rules(requester(transport, api="platform-v1", called_reason="client"))

    rule = await rules.get("r1", called_reason="this call")

    assert "this call" == transport.sent[0].headers["x-called-reason"]
    assert "Taxes" == rule.nickname


async def test_platform_execution_path_names_its_rule() -> None:
    """On Platform, one execution is read at /rules/{ruleId}/executions/{id}."""
    transport = FakeTransport(platform_ok(execution("e-1", "EXECUTED")))
    executions = RuleExecutions(requester(transport, api="platform-v1"))

    result = await executions.get("e-1", rule_id="r1")

    assert "/rules/r1/executions/e-1" == transport.sent[0].path
    assert (ExecutionStatus.EXECUTED, "req-1") == (result.status, result.request_id)


async def test_platform_execution_without_its_rule_is_refused_before_sending() -> None:
    """rule_executions.get without rule_id is a TypeError on Platform; nothing sent."""
    transport = FakeTransport(platform_ok(execution("e-1")))
    executions = RuleExecutions(requester(transport, api="platform-v1"))

    with pytest.raises(TypeError, match="rule_id is required on platform-v1"):
        await executions.get("e-1")
    assert [] == transport.sent


async def test_platform_lists_page_by_page_number_and_resume_after_one() -> None:
    """Platform pages are page=1, 2, ... with pageSize; a page number resumes."""
    transport = FakeTransport(
        page_of([execution("e-4"), execution("e-3")], 1, more=True),
        page_of([execution("e-2"), execution("e-1")], 2, more=False),
    )
    executions = RuleExecutions(requester(transport, api="platform-v1"))

    pages = [p async for p in executions.list(rule_id="r1", page_size=2).pages()]

    assert [{"page": "1", "pageSize": "2"}, {"page": "2", "pageSize": "2"}] == [
        dict(sent.params or {}) for sent in transport.sent
    ]
    assert ["/rules/r1/executions"] * 2 == [sent.path for sent in transport.sent]
    assert [["e-4", "e-3"], ["e-2", "e-1"]] == [[i.id for i in p.items] for p in pages]
    assert ["1", "2"] == [p.page_info.end_cursor for p in pages]

    resumed = FakeTransport(page_of([execution("e-2")], 2, more=False))
    listing = RuleExecutions(requester(resumed, api="platform-v1")).list(
        rule_id="r1", page_size=2, start_after="1"
    )
    assert ["e-2"] == [e.id async for e in listing]
    assert "2" == dict(resumed.sent[0].params or {})["page"]


async def test_a_platform_server_ignoring_the_page_number_ends_the_list() -> None:
    """The same full page again and again (no cursor to repeat): stop, no loop."""
    same = page_of([execution("e-2"), execution("e-1")], 1, more=True)
    transport = FakeTransport(same)
    executions = RuleExecutions(requester(transport, api="platform-v1"))

    ids = [e.id async for e in executions.list(rule_id="r1", page_size=2)]

    assert (["e-2", "e-1"], 4) == (ids, len(transport.sent))


async def test_a_platform_server_cycling_through_pages_ends_the_list() -> None:
    """Pages A, B, A, B... with more to come: three seen pages end it (not 10,000)."""
    a = page_of([execution("e-4"), execution("e-3")], 1, more=True)
    b = page_of([execution("e-2"), execution("e-1")], 2, more=True)
    transport = FakeTransport(a, b, a, b, a, b)
    executions = RuleExecutions(requester(transport, api="platform-v1"))

    ids = [e.id async for e in executions.list(rule_id="r1", page_size=2)]

    assert (["e-4", "e-3", "e-2", "e-1"], 5) == (ids, len(transport.sent))


async def test_a_platform_list_shifted_by_one_page_is_read_to_its_end() -> None:
    """One page of new items pushes page 1 to page 2: skipped, and the list goes on."""
    first = [execution("e-4"), execution("e-3")]
    pages = [
        page_of(first, 1, more=True),
        page_of(first, 2, more=True),  # page 1 again, shifted by 2 new
        page_of([execution("e-2"), execution("e-1")], 3, more=False),
    ]
    transport = FakeTransport(*pages)
    executions = RuleExecutions(requester(transport, api="platform-v1"))

    ids = [e.id async for e in executions.list(rule_id="r1", page_size=2)]

    assert ["e-4", "e-3", "e-2", "e-1"] == ids


async def test_a_platform_list_shifted_by_new_items_is_read_to_its_end() -> None:
    """New executions push page 1 to page 3: it is skipped, and the list goes on."""
    first = [execution("e-6"), execution("e-5")]
    pages = [
        page_of(first, 1, more=True),
        page_of([execution("n-2"), execution("n-1")], 2, more=True),
        page_of(first, 3, more=True),  # the same as page 1, shifted by 4 new
        page_of([execution("e-4"), execution("e-3")], 4, more=True),
        page_of([execution("e-2"), execution("e-1")], 5, more=False),
    ]
    transport = FakeTransport(*pages)
    executions = RuleExecutions(requester(transport, api="platform-v1"))

    ids = [e.id async for e in executions.list(rule_id="r1", page_size=2)]

    assert ["e-6", "e-5", "n-2", "n-1", "e-4", "e-3", "e-2", "e-1"] == ids


async def test_platform_list_without_has_next_page_stops_at_a_short_page() -> None:
    """A Platform page lacking hasNextPage means more only when it is full."""
    full = platform_ok({"items": [execution("e-2"), execution("e-1")]})
    short = platform_ok({"items": [execution("e-0")]})
    transport = FakeTransport(full, short)
    executions = RuleExecutions(requester(transport, api="platform-v1"))

    ids = [e.id async for e in executions.list(rule_id="r1", page_size=2)]

    assert (["e-2", "e-1", "e-0"], 2) == (ids, len(transport.sent))


async def test_platform_query_names_are_camel_case_and_enums_uppercase() -> None:
    """Platform transfers list: /accounts/{id}/transfers, accountRole, UPPERCASE."""
    transport = FakeTransport(page_of([], 1, more=False))
    transfers = Transfers(requester(transport, api="platform-v1"))

    _ = [
        t
        async for t in transfers.list(
            account_id="a1",
            account_role="source",
            origin=models.TransferOrigin.PAYCHECK,
            status=models.TransferStatus.COMPLETE,
            from_=datetime(2026, 1, 1, tzinfo=UTC),
        )
    ]

    (sent,) = transport.sent
    assert "/accounts/a1/transfers" == sent.path
    assert {
        "accountRole": "source",
        "origin": "DIRECT_DEPOSIT",
        "status": "COMPLETE",
        "from": "2026-01-01T00:00:00Z",
        "page": "1",
        "pageSize": "100",
    } == dict(sent.params or {})


async def test_external_transactions_repeat_the_account_ids_parameter() -> None:
    """external_transactions.list sends accountIds[] once per account."""
    transport = FakeTransport(
        page_of(
            [
                {
                    "id": "x1",
                    "accountId": "a1",
                    "amountInCents": 100,
                    "status": "PENDING",
                }
            ],
            1,
            more=False,
        )
    )
    listing = ExternalTransactions(requester(transport, api="platform-v1")).list(
        account_ids=["a1", "a2"], direction="money_in"
    )

    items = [t async for t in listing]

    assert [
        ("accountIds[]", "a1"),
        ("accountIds[]", "a2"),
        ("direction", "MONEY_IN"),
        ("page", "1"),
        ("pageSize", "100"),
    ] == transport.sent[0].params
    assert [("x1", "a1", 100)] == [
        (t.id, t.account_id, t.amount_in_cents) for t in items
    ]


@pytest.mark.parametrize(
    "key", ["k" * 37, "has space", "naïve", "semi;colon", "quote'd"]
)
async def test_platform_refuses_keys_outside_36_characters_of_its_pattern(
    key: str,
) -> None:
    """A Platform idempotency key is 1 to 36 of [A-Za-z0-9._:/|-]; checked first."""
    transport = FakeTransport(platform_ok({"executionId": "e-1"}, 202))
    rules = Rules(requester(transport, api="platform-v1"))

    with pytest.raises(ValueError, match="1 to 36 characters"):
        await rules.trigger("r1", idempotency_key=key)
    assert [] == transport.sent


async def test_platform_accepts_a_36_character_key_of_its_pattern() -> None:
    """A key of exactly 36 allowed characters is sent as it is."""
    key = "order-2026/11:26|batch.7_" + "x" * 11
    transport = FakeTransport(platform_ok({"executionId": "e-1"}, 202))

    await Rules(requester(transport, api="platform-v1")).trigger(
        "r1", idempotency_key=key
    )

    assert (36, key) == (len(key), transport.sent[0].headers["Idempotency-Key"])


async def test_api_v1_still_accepts_keys_up_to_255_characters() -> None:
    """The 36-character rule is Platform's: api-v1 keys may be 255 long."""
    transport = FakeTransport(
        Response(202, {}, b'{"request_id":"q","data":{"execution_id":"e"}}')
    )

    await Rules(requester(transport)).trigger("r1", idempotency_key="k" * 255)

    assert 255 == len(transport.sent[0].headers["Idempotency-Key"])


async def test_surface_only_features_raise_naming_the_profile_before_sending() -> None:
    """simulation, called_reason, cards and card, external transactions, audit logs."""
    v1 = FakeTransport(status(500))
    platform = FakeTransport(status(500))
    on_v1, on_platform = requester(v1), requester(platform, api="platform-v1")
    refused = [
        (Rules(on_v1).trigger("r1", simulation=True), "api-v1"),
        (Rules(on_v1).get("r1", called_reason="why"), "api-v1"),
        (
            Transfers(on_v1).create(
                source_account_id="a",
                destination_account_id="b",
                amount_in_cents=100,
                simulation=False,
            ),
            "api-v1",
        ),
        (Cards(on_platform).get("c1"), "platform-v1"),
    ]
    for call, api in refused:
        with pytest.raises(UnsupportedFeatureError, match=f"Sequence's {api} API"):
            await call
    with pytest.raises(UnsupportedFeatureError, match="api-v1") as caught:
        ExternalTransactions(on_v1).list(account_ids=["a1"])
    assert "api-v1" == caught.value.api
    with pytest.raises(UnsupportedFeatureError, match=r"client\.audit_logs"):
        AuditLogs(on_v1).list()
    with pytest.raises(UnsupportedFeatureError, match=r"client\.card_transactions"):
        CardTransactions(on_v1).list(account_id="a1")
    with pytest.raises(UnsupportedFeatureError, match=r"client\.cards"):
        Cards(on_platform).transactions("c1")
    assert ([], []) == (v1.sent, platform.sent)


async def test_platform_error_codes_map_onto_the_same_classes() -> None:
    """Platform's UPPERCASE codes give the classes api-v1's statuses give."""
    cases = [
        (403, "RULE_DEACTIVATED", PermissionDeniedError),
        (409, "RULE_EXECUTION_IN_PROGRESS", ConflictError),
        (404, "RULE_NOT_FOUND", NotFoundError),
        # A status outside the table: Platform's code chooses the class.
        (418, "INVALID_RULE", PermissionDeniedError),
    ]
    for code, name, cls in cases:
        body = json.dumps({"error": {"code": name, "message": "no"}}).encode()
        rules = Rules(requester(FakeTransport(status(code, body)), api="platform-v1"))
        with pytest.raises(cls) as caught:
            await rules.get("r1")
        assert (code, name) == (caught.value.status, caught.value.code)


def test_platform_uppercase_enums_become_the_same_python_values() -> None:
    """Platform enums (DIRECT_DEPOSIT too) give api-v1's members; unknown stay raw."""
    transfer = _convert.structure(
        {
            "id": "t1",
            "direction": "MONEY_IN",
            "origin": "DIRECT_DEPOSIT",
            "status": "COMPLETE",
            "executionMode": "SIMULATION",
            "source": {"id": "a1", "type": "POD"},
        },
        models.Transfer,
        profile=PLATFORM,
    )
    execution_ = _convert.structure(
        execution("e-1", "BRAND_NEW"), models.RuleExecution, profile=PLATFORM
    )

    assert (
        models.TransferDirection.MONEY_IN,
        models.TransferOrigin.PAYCHECK,
        models.TransferStatus.COMPLETE,
        models.ExecutionMode.SIMULATION,
        models.AccountType.POD,
    ) == (
        transfer.direction,
        transfer.origin,
        transfer.status,
        transfer.execution_mode,
        transfer.source.type if transfer.source else None,
    )
    assert "BRAND_NEW" == execution_.status


def test_resume_tokens_are_refused_by_a_client_of_the_other_profile() -> None:
    """A token records its profile; the other profile's client raises ValueError."""
    made = {
        api: Execution(
            id="e-1",
            rule_id="r1",
            request_id=None,
            idempotency_key=None,
            triggered_at=datetime(2026, 1, 1, tzinfo=UTC),
            requester=requester(FakeTransport(status(500)), api=api),
        )
        for api in ("api-v1", "platform-v1")
    }
    for api, other in (("api-v1", "platform-v1"), ("platform-v1", "api-v1")):
        token = made[api].to_token()
        assert api == json.loads(token)["api"]
        client = SequenceClient("k", api=other, base_url="http://127.0.0.1:9")
        with pytest.raises(ValueError, match=f"of Sequence's '{api}' API"):
            client.execution_from_token(token)
        same = SequenceClient("k", api=api, base_url="http://127.0.0.1:9")
        assert "e-1" == same.execution_from_token(token).id


def test_a_token_without_a_profile_is_api_v1_s() -> None:
    """Tokens from before profiles resume on api-v1 clients only."""
    token = json.dumps(
        {
            "v": 1,
            "id": "e-1",
            "rule_id": "r1",
            "triggered_at": "2026-01-01T00:00:00+00:00",
        }
    )

    assert "e-1" == SequenceClient("k").execution_from_token(token).id
    with pytest.raises(ValueError, match="'api-v1' API"):
        SequenceClient("k", api="platform-v1").execution_from_token(token)


def test_the_profile_comes_from_the_argument_then_sequence_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """api= wins; else SEQUENCE_API; else api-v1; each with its own base URL."""
    monkeypatch.delenv("SEQUENCE_API", raising=False)
    monkeypatch.delenv("SEQUENCE_BASE_URL", raising=False)
    assert ("api-v1", "https://api.getsequence.io/api/v1") == (
        SequenceClient("k").api,
        SequenceClient("k").base_url,
    )
    monkeypatch.setenv("SEQUENCE_API", "platform-v1")
    assert ("platform-v1", "https://api.getsequence.io/platform/v1") == (
        SequenceClient("k").api,
        SequenceClient("k").base_url,
    )
    assert "api-v1" == SequenceClient("k", api="api-v1").api
    with pytest.raises(ValueError, match="api must be one of api-v1, platform-v1"):
        SequenceClient("k", api="v2")


def test_called_reason_is_refused_on_api_v1_clients() -> None:
    """x-called-reason is Platform's header: an api-v1 client refuses it at once."""
    with pytest.raises(UnsupportedFeatureError, match="api-v1"):
        SequenceClient("k", api="api-v1", called_reason="audit")
    with pytest.raises(ValueError, match="printable"):
        SequenceClient("k", api="platform-v1", called_reason="two\nlines")


async def test_platform_server_answers_unlisted_methods_with_plain_text_404() -> None:
    """Platform's fake server: a wrong method or path is a plain-text 404."""
    async with (
        serve(api="platform-v1") as server,
        aiohttp.ClientSession() as session,
    ):
        answers = []
        for method, path in (("DELETE", "/rules/rule_0001"), ("GET", "/nowhere")):
            async with session.request(
                method,
                f"{server.url}{path}",
                headers={"Authorization": f"Bearer {server.api_key}"},
            ) as response:
                answers.append(
                    (response.status, response.content_type, await response.text())
                )

    assert [(404, "text/plain", "Not Found")] * 2 == answers


async def test_a_plain_text_404_reaches_the_caller_as_not_found() -> None:
    """The client maps Platform's plain-text 404 to NotFoundError with its text."""
    transport = FakeTransport(status(404, b"Not Found"))

    with pytest.raises(NotFoundError) as caught:
        await Rules(requester(transport, api="platform-v1")).get("r1")

    assert (404, None, "Not Found") == (
        caught.value.status,
        caught.value.code,
        caught.value.message,
    )


@pytest.mark.apis("platform-v1")
async def test_platform_server_pages_by_number_and_keeps_live_runs_apart(
    server: FakeSequence, live: SequenceClient
) -> None:
    """Listing executions pages by number; dry runs show with execution_mode="all"."""
    server.set_behavior("*", Behavior(median=0.0, sigma=0.0))
    for n in range(5):
        await live.rules.trigger("rule_0001", simulation=n == 4)

    live_runs = [
        e async for e in live.rule_executions.list(rule_id="rule_0001", page_size=2)
    ]
    every = live.rule_executions.list(
        rule_id="rule_0001", page_size=2, execution_mode="all"
    )
    modes = [e.execution_mode async for e in every]

    pages = [r.query for r in server.requests_to("list_rule_executions")]
    assert ["1", "2", "1", "2", "3"] == [q["page"] for q in pages]
    assert {"2"} == {q["pageSize"] for q in pages}
    assert 4 == len(live_runs)
    assert [models.ExecutionMode.SIMULATION] + [models.ExecutionMode.LIVE] * 4 == modes


@pytest.mark.apis("platform-v1")
async def test_platform_server_speaks_its_codes_and_refuses_long_keys(
    server: FakeSequence,
) -> None:
    """Fake Platform: RULE_NOT_FOUND, INVALID_PARAMETERS for a 37-character key."""
    async with aiohttp.ClientSession() as session:
        answers = []
        for rule_id, key in (("nope", "k1"), ("rule_0001", "k" * 37)):
            async with session.post(
                f"{server.url}/rules/{rule_id}/trigger",
                json={},
                headers={
                    "Authorization": f"Bearer {server.api_key}",
                    "idempotency-key": key,
                },
            ) as response:
                body = await response.json()
                answers.append((response.status, body["error"]["code"]))

    assert [(404, "RULE_NOT_FOUND"), (400, "INVALID_PARAMETERS")] == answers


@pytest.mark.apis("platform-v1")
async def test_audit_logs_record_the_calls_made(
    server: FakeSequence, live: SequenceClient
) -> None:
    """Every Platform call lands in the audit log, newest first, with its outcome."""
    await live.rules.get("rule_0001")
    with pytest.raises(NotFoundError):
        await live.rules.get("nope")

    entries = [e async for e in live.audit_logs.list()]

    assert [
        ("GET_RULE", "FAILURE", "RULE_NOT_FOUND"),
        ("GET_RULE", "SUCCESS", None),
    ] == [(e.action, e.outcome, e.error_code) for e in entries]


@pytest.mark.parametrize("start_after", ["Y3Vyc29y", "\u0661", "\u00b2", "-1"])
def test_a_platform_start_after_must_be_a_page_number(start_after: str) -> None:
    """start_after on Platform is ASCII digits, checked when the list is made."""
    executions = RuleExecutions(
        requester(FakeTransport(status(500)), api="platform-v1")
    )

    with pytest.raises(ValueError, match="start_after must be a page number"):
        executions.list(rule_id="r1", start_after=start_after)


async def test_a_platform_list_answered_in_api_v1_s_shape_is_refused() -> None:
    """A list as data (api-v1's page) is no Platform page: never one page of all."""
    answer = {"request_id": "r", "data": [execution("e-1")], "page_info": {}}
    transport = FakeTransport(Response(200, {}, json.dumps(answer).encode()))
    executions = RuleExecutions(requester(transport, api="platform-v1"))

    with pytest.raises(ResponseValidationError, match="expected a page, got list"):
        [e async for e in executions.list(rule_id="r1")]


async def test_a_platform_answer_with_a_key_in_both_cases_is_refused() -> None:
    """Both amountInCents and amount_in_cents: which is the amount? Neither."""
    details = {"type": "MANUAL", "amountInCents": 250000, "amount_in_cents": 1}
    transport = FakeTransport(
        platform_ok({**execution("e-1"), "triggerDetails": details})
    )
    executions = RuleExecutions(requester(transport, api="platform-v1"))

    with pytest.raises(ResponseValidationError, match="trigger_details"):
        await executions.get("e-1", rule_id="r1")


async def test_platform_transfers_are_at_least_one_dollar_before_sending() -> None:
    """Platform's minimum transfer is 100 cents; 99 is a ValueError, unsent."""
    transport = FakeTransport(status(500))
    transfers = Transfers(requester(transport, api="platform-v1"))

    with pytest.raises(ValueError, match="from 100 to"):
        await transfers.create(
            source_account_id="a", destination_account_id="b", amount_in_cents=99
        )
    assert [] == transport.sent


@pytest.mark.apis("platform-v1")
@pytest.mark.parametrize(
    "fields",
    [
        {"amountInCents": 99},
        {"amountInCents": 500, "description": "Rent November"},
        {"amountInCents": 500, "description": "caf\u00e9"},
        {"amountInCents": 500, "description": "a-b"},
    ],
    ids=["under one dollar", "long label", "accent", "dash"],
)
async def test_platform_server_refuses_what_its_openapi_refuses(
    server: FakeSequence, fields: dict[str, object]
) -> None:
    """Below 100 cents, or a label past 10 of [a-zA-Z0-9 ]: 400 INVALID_PARAMETERS."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{server.url}/transfers",
            json={
                "sourceAccountId": "acc_0001",
                "destinationAccountId": "acc_0003",
                **fields,
            },
            headers={"Authorization": f"Bearer {server.api_key}"},
        ) as response,
    ):
        body = await response.json()

    assert (400, "INVALID_PARAMETERS") == (response.status, body["error"]["code"])
