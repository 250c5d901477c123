"""
Tests of the fake server over raw HTTP.

The server is checked against the API reference on its own, never through our
client.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from sequence_async.testing import (
    Behavior,
    FakeSequence,
    ManualClock,
    Permission,
    Seed,
    demo_seed,
    serve,
)


# Raw requests in api-v1's wire language; test_platform.py speaks Platform's.
pytestmark = pytest.mark.apis("api-v1")


class Raw:
    """
    A tiny raw-HTTP client of the fake server.
    """

    def __init__(
        self, http: aiohttp.ClientSession, server: FakeSequence, key: str
    ) -> None:
        self.http, self.server, self.key = http, server, key

    async def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        body: Any = None,
        **headers: str,
    ) -> tuple[int, Any, Mapping[str, str]]:
        """
        Send one request; return status, decoded JSON (or text) and headers.
        """
        all_headers = {"Authorization": f"ApiKey {key or self.key}", **headers}
        assert self.server.url
        async with self.http.request(
            method, self.server.url + path, json=body, headers=all_headers
        ) as response:
            text = await response.text()
            try:
                data = json.loads(text)
            except ValueError:
                data = text
            return response.status, data, response.headers

    async def trigger(self, rule_id: str = "rule_0001", **headers: str) -> str:
        """
        Trigger a rule and return the execution id.
        """
        status, body, _ = await self.call(
            "POST", f"/rules/{rule_id}/trigger", body={}, **headers
        )
        assert 202 == status, body
        return str(body["data"]["execution_id"])


@pytest_asyncio.fixture
async def raw(server: FakeSequence) -> AsyncIterator[Raw]:
    """
    Raw HTTP to the fake server with the demo key.
    """
    async with aiohttp.ClientSession() as http:
        yield Raw(http, server, server.api_key)


def restricted_seed() -> Seed:
    """
    The demo organization plus keys with narrow permissions.
    """
    seed = demo_seed(rules=3)
    seed.api_key(
        "k_rules_only", [Permission(scope="TRIGGER_RULES", resources=("rule_0001",))]
    )
    seed.api_key(
        "k_reader",
        [
            Permission(scope="READ_RULE_EXECUTIONS", resources=("rule_0001",)),
            Permission(scope="READ_TRANSFERS", resources=("acc_0002",)),
            Permission(scope="READ_ACCOUNTS", resources=("acc_0001",)),
            Permission(scope="READ_CARDS", resources=("acc_0003",)),
        ],
    )
    seed.api_key(
        "k_mover",
        [
            Permission(
                scope="MANUAL_TRANSFER",
                transfers=(
                    {"source": "acc_0001", "target": "acc_0002", "max_amount": 10_000},
                ),
            )
        ],
    )
    return seed


@pytest_asyncio.fixture
async def strict(clock: ManualClock) -> AsyncIterator[Raw]:
    """
    Raw HTTP to a server with restricted keys.
    """
    async with (
        serve(restricted_seed(), clock=clock) as server,
        aiohttp.ClientSession() as http,
    ):
        yield Raw(http, server, server.api_key)


@pytest.mark.parametrize(
    "auth", [None, "Bearer sk_demo_fake_sequence_key", "ApiKey nope"]
)
async def test_missing_or_invalid_key_is_401(raw: Raw, auth: str | None) -> None:
    """A missing, mis-schemed or unknown key gets 401 unauthorized."""
    headers = {} if auth is None else {"Authorization": auth}
    assert raw.server.url
    async with raw.http.get(raw.server.url + "/accounts", headers=headers) as response:
        body = await response.json()

    assert (
        401,
        {"error": {"code": "unauthorized", "message": "Missing or invalid API key."}},
    ) == (
        response.status,
        body,
    )


@pytest.mark.parametrize(
    ("key", "method", "path"),
    [
        ("k_rules_only", "GET", "/accounts"),
        ("k_rules_only", "POST", "/rules/rule_0002/trigger"),
        ("k_reader", "GET", "/rule-executions?rule_id=rule_0002"),
        ("k_reader", "GET", "/transfers?account_id=acc_0001"),
        ("k_reader", "GET", "/accounts/acc_0002"),
        ("k_reader", "GET", "/cards?account_id=acc_0002"),
        ("k_reader", "GET", "/cards/card_0001"),
        ("k_reader", "GET", "/rules"),
        ("k_mover", "GET", "/transfers/txr_1"),
    ],
)
async def test_scope_and_resource_lists_are_enforced(
    strict: Raw, key: str, method: str, path: str
) -> None:
    """A key without the scope, or without the id in its list, gets 403 forbidden."""
    status, body, _ = await strict.call(
        method, path, key=key, body={} if method == "POST" else None
    )

    assert (403, "forbidden") == (status, body["error"]["code"])


async def test_allowed_resources_pass(strict: Raw) -> None:
    """A key whose list holds the id gets through."""
    status, _, _ = await strict.call(
        "POST", "/rules/rule_0001/trigger", key="k_rules_only", body={}
    )
    account_status, account, _ = await strict.call(
        "GET", "/accounts/acc_0001", key="k_reader"
    )

    assert (202, 200) == (status, account_status)
    assert 50_000_000 == account["data"]["balance"]["balance_in_cents"]


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/acc_nope",
        "/rules/rule_nope",
        "/rule-executions/rex_nope",
        "/transfers/txr_nope",
        "/cards/card_nope",
        "/cards/card_nope/transactions",
    ],
)
async def test_unknown_ids_are_404(raw: Raw, path: str) -> None:
    """An unknown id gets 404 resource_not_found."""
    status, body, _ = await raw.call("GET", path)

    assert (404, "resource_not_found") == (status, body["error"]["code"])


async def test_trigger_unknown_rule_is_404_with_documented_message(raw: Raw) -> None:
    """Triggering an unknown rule says which rule was not found."""
    status, body, _ = await raw.call("POST", "/rules/rule_123/trigger", body={})

    assert (404, "Rule with id 'rule_123' was not found.") == (
        status,
        body["error"]["message"],
    )


@pytest.mark.parametrize("path", ["/rule-executions", "/transfers", "/cards"])
async def test_required_filters_are_required(raw: Raw, path: str) -> None:
    """rule_id / account_id missing gets 400."""
    status, body, _ = await raw.call("GET", path)

    assert (400, "invalid_request") == (status, body["error"]["code"])


async def test_request_id_is_echoed_in_header_and_body(raw: Raw) -> None:
    """A client's X-Request-ID comes back in the header and the body."""
    status, body, headers = await raw.call(
        "GET", "/accounts", **{"X-Request-ID": "my-id"}
    )

    assert (200, "my-id", "my-id") == (
        status,
        headers["X-Request-ID"],
        body["request_id"],
    )


async def test_request_id_is_made_when_absent(raw: Raw) -> None:
    """Without X-Request-ID the server makes a req_ id, same in header and body."""
    _, body, headers = await raw.call("GET", "/rules")

    assert body["request_id"].startswith("req_")
    assert body["request_id"] == headers["X-Request-ID"]


async def test_pagination_defaults_and_cursors(raw: Raw) -> None:
    """First defaults to 20; after walks pages newest first; has_next_page ends it."""
    ids = [await raw.trigger() for _ in range(45)]

    seen: list[str] = []
    pages = []
    path = "/rule-executions?rule_id=rule_0001"
    while True:
        _, body, _ = await raw.call("GET", path)
        seen += [e["id"] for e in body["data"]]
        pages.append(len(body["data"]))
        info = body["page_info"]
        if not info["has_next_page"]:
            break
        path = f"/rule-executions?rule_id=rule_0001&after={info['end_cursor']}"

    assert [20, 20, 5] == pages
    assert list(reversed(ids)) == seen


@pytest.mark.parametrize("first", ["0", "101", "ten", "-1"])
async def test_bad_first_is_400(raw: Raw, first: str) -> None:
    """First outside 1..100 gets 400."""
    status, _, _ = await raw.call(
        "GET", f"/rule-executions?rule_id=rule_0001&first={first}"
    )

    assert 400 == status


async def test_first_100_is_allowed_and_bad_cursor_is_400(raw: Raw) -> None:
    """first=100 is the maximum; a cursor that is not ours gets 400."""
    ok, _, _ = await raw.call("GET", "/rule-executions?rule_id=rule_0001&first=100")
    bad, _, _ = await raw.call("GET", "/rule-executions?rule_id=rule_0001&after=%%%")

    assert (200, 400) == (ok, bad)


async def test_execution_lifecycle_follows_the_clock(
    raw: Raw, clock: ManualClock
) -> None:
    """An execution runs until its duration passes, then ends with transfers."""
    raw.server.set_behavior("rule_0001", Behavior(median=5.0, sigma=0.0))
    execution_id = await raw.trigger()

    _, before, _ = await raw.call("GET", f"/rule-executions/{execution_id}")
    clock.advance(5.0)
    _, after, _ = await raw.call("GET", f"/rule-executions/{execution_id}")
    transfer_id = after["data"]["transfer_ids"][0]
    _, transfer, _ = await raw.call("GET", f"/transfers/{transfer_id}")

    assert "in_progress" == before["data"]["status"]
    assert ("executed", 2, 2) == (
        after["data"]["status"],
        after["data"]["transfers_attempted"],
        after["data"]["transfers_completed"],
    )
    assert (execution_id, "complete", "rule") == (
        transfer["data"]["rule_execution_id"],
        transfer["data"]["status"],
        transfer["data"]["origin"],
    )


async def test_outcomes_follow_the_behaviour(raw: Raw, clock: ManualClock) -> None:
    """failure_rate 1 fails every run with an error message and failed transfers."""
    raw.server.set_behavior(
        "rule_0001", Behavior(median=1.0, sigma=0.0, failure_rate=1.0)
    )
    execution_id = await raw.trigger()
    clock.advance(1.0)

    _, body, _ = await raw.call("GET", f"/rule-executions/{execution_id}")

    assert ("failed", 2) == (body["data"]["status"], body["data"]["transfers_failed"])
    assert body["data"]["error_message"]


async def test_partial_outcome_has_a_failed_transfer(
    raw: Raw, clock: ManualClock
) -> None:
    """Partial ends with one completed and one failed transfer."""
    raw.server.set_behavior(
        "rule_0001", Behavior(median=1.0, sigma=0.0, partial_rate=1.0)
    )
    execution_id = await raw.trigger()
    clock.advance(2.0)

    _, body, _ = await raw.call("GET", f"/rule-executions/{execution_id}")

    assert ("partial", 1, 1) == (
        body["data"]["status"],
        body["data"]["transfers_completed"],
        body["data"]["transfers_failed"],
    )


async def test_manual_rules_honour_manual_execute_amount(raw: Raw) -> None:
    """A MANUAL rule moves manual_execute_amount on each action."""
    status, body, _ = await raw.call(
        "POST", "/rules/rule_0001/trigger", body={"manual_execute_amount": 150_000}
    )
    execution_id = body["data"]["execution_id"]
    raw.server.finish(execution_id)

    _, execution, _ = await raw.call("GET", f"/rule-executions/{execution_id}")
    amounts = []
    for transfer_id in execution["data"]["transfer_ids"]:
        _, transfer, _ = await raw.call("GET", f"/transfers/{transfer_id}")
        amounts.append(transfer["data"]["amount_in_cents"])

    assert 202 == status
    assert 150_000 == execution["data"]["trigger_details"]["amount_in_cents"]
    assert [150_000, 150_000] == amounts


@pytest.mark.parametrize(
    "body", [{"manual_execute_amount": -1}, {"manual_execute_amount": "5"}, [1]]
)
async def test_bad_trigger_bodies_are_400(raw: Raw, body: Any) -> None:
    """A bad manual_execute_amount or a non-object body gets 400."""
    status, _, _ = await raw.call("POST", "/rules/rule_0001/trigger", body=body)

    assert 400 == status


async def test_disabled_rules_cannot_be_triggered(raw: Raw) -> None:
    """A disabled rule answers 403."""
    raw.server.state.rules["rule_0001"]["status"] = "disabled"

    status, body, _ = await raw.call("POST", "/rules/rule_0001/trigger", body={})

    assert (403, "rule_deactivated") == (status, body["error"]["code"])


async def test_idempotent_replay_creates_nothing(raw: Raw) -> None:
    """The same key and body within 24 h returns the first answer, one execution."""
    first = await raw.trigger(**{"Idempotency-Key": "k1"})
    second = await raw.trigger(**{"Idempotency-Key": "k1"})

    assert first == second
    assert 1 == len(raw.server.executions())


async def test_idempotency_expires_after_24_hours(raw: Raw, clock: ManualClock) -> None:
    """After 24 h the key is forgotten and a new execution starts."""
    first = await raw.trigger(**{"Idempotency-Key": "k1"})
    clock.advance(24 * 3600 + 1)

    second = await raw.trigger(**{"Idempotency-Key": "k1"})

    assert first != second


async def test_idempotency_key_with_another_body_is_400(raw: Raw) -> None:
    """The same key with another body gets 400 idempotency_key_mismatch."""
    await raw.trigger(**{"Idempotency-Key": "k1"})

    status, body, _ = await raw.call(
        "POST",
        "/rules/rule_0001/trigger",
        body={"manual_execute_amount": 5},
        **{"Idempotency-Key": "k1"},
    )

    assert (400, "idempotency_key_mismatch") == (status, body["error"]["code"])


async def test_concurrent_duplicate_is_409(raw: Raw) -> None:
    """A duplicate arriving while the first still runs gets 409."""
    pause = raw.server.pause("trigger_rule")
    first = asyncio.create_task(
        raw.call(
            "POST", "/rules/rule_0001/trigger", body={}, **{"Idempotency-Key": "k1"}
        )
    )
    await pause.reached(1)

    status, _, _ = await raw.call(
        "POST", "/rules/rule_0001/trigger", body={}, **{"Idempotency-Key": "k1"}
    )
    pause.release()

    assert (409, 202) == (status, (await first)[0])
    assert 1 == len(raw.server.executions())


async def test_manual_transfer_permissions_and_max_amount(strict: Raw) -> None:
    """A transfer must match a MANUAL_TRANSFER pair and stay under its max_amount."""
    body = {
        "source_account_id": "acc_0001",
        "destination_account_id": "acc_0002",
        "amount_in_cents": 10_000,
    }
    ok, created, _ = await strict.call("POST", "/transfers", key="k_mover", body=body)
    too_much, err, _ = await strict.call(
        "POST", "/transfers", key="k_mover", body=body | {"amount_in_cents": 10_001}
    )
    other_pair, _, _ = await strict.call(
        "POST",
        "/transfers",
        key="k_mover",
        body=body | {"destination_account_id": "acc_0003"},
    )

    assert (201, "processing") == (ok, created["data"]["status"])
    assert (403, "maximum_amount_exceeded") == (too_much, err["error"]["code"])
    assert 403 == other_pair


async def test_manual_transfer_completes_and_is_listed(
    raw: Raw, clock: ManualClock
) -> None:
    """A manual transfer completes after a moment and shows in the account's list."""
    body = {
        "source_account_id": "acc_0001",
        "destination_account_id": "acc_0002",
        "amount_in_cents": 700,
    }
    _, created, _ = await raw.call("POST", "/transfers", body=body)
    clock.advance(2)

    _, listed, _ = await raw.call(
        "GET", "/transfers?account_id=acc_0002&account_role=destination&origin=user"
    )

    assert [(created["data"]["id"], "complete")] == [
        (t["id"], t["status"]) for t in listed["data"]
    ]


@pytest.mark.parametrize(
    "body",
    [
        {
            "source_account_id": "acc_0001",
            "destination_account_id": "acc_0002",
            "amount_in_cents": 0,
        },
        {"source_account_id": "acc_0001", "amount_in_cents": 5},
        {
            "source_account_id": "acc_0001",
            "destination_account_id": "acc_0002",
            "amount_in_cents": 5,
            "description": 3,
        },
    ],
)
async def test_bad_transfer_bodies_are_400(raw: Raw, body: dict[str, Any]) -> None:
    """Missing accounts, non-positive amounts or bad descriptions get 400."""
    status, _, _ = await raw.call("POST", "/transfers", body=body)

    assert 400 == status


async def test_list_filters_apply(raw: Raw) -> None:
    """status, trigger_type, from/to and direction filters narrow the lists."""
    done = await raw.trigger()
    await raw.trigger()
    raw.server.finish(done, "failed")

    _, failed, _ = await raw.call(
        "GET", "/rule-executions?rule_id=rule_0001&status=failed"
    )
    _, manual, _ = await raw.call(
        "GET", "/rule-executions?rule_id=rule_0001&trigger_type=manual"
    )
    _, future, _ = await raw.call(
        "GET", "/rule-executions?rule_id=rule_0001&from=2099-01-01T00:00:00Z"
    )
    _, money_in, _ = await raw.call(
        "GET", "/transfers?account_id=acc_0001&direction=money_in"
    )
    bad_status, _, _ = await raw.call(
        "GET", "/rule-executions?rule_id=rule_0001&status=nope"
    )
    bad_time, _, _ = await raw.call(
        "GET", "/rule-executions?rule_id=rule_0001&to=yesterday"
    )

    assert [done] == [e["id"] for e in failed["data"]]
    assert 2 == len(manual["data"])
    assert [] == future["data"]
    assert [] == money_in["data"]
    assert (400, 400) == (bad_status, bad_time)


async def test_accounts_rules_and_cards_lists(raw: Raw) -> None:
    """Accounts filter by type, rules by source, cards and their transactions list."""
    _, pods, _ = await raw.call("GET", "/accounts?type=pod")
    _, rules, _ = await raw.call("GET", "/rules?source_id=acc_0001")
    _, none, _ = await raw.call("GET", "/rules?source_id=acc_0002")
    _, cards, _ = await raw.call("GET", "/cards?account_id=acc_0002&type=physical")
    _, txs, _ = await raw.call(
        "GET", "/cards/card_0001/transactions?direction=debit&first=2"
    )

    assert {"pod"} == {a["type"] for a in pods["data"]}
    assert 10 == len(rules["data"])
    assert [] == none["data"]
    assert ["card_0001"] == [c["id"] for c in cards["data"]]
    assert (2, True) == (len(txs["data"]), txs["page_info"]["has_next_page"])


async def test_injected_5xx_and_429(raw: Raw) -> None:
    """errors_next answers 503 and throttles_next 429 with Retry-After."""
    raw.server.set_faults("list_rules", errors_next=1, throttles_next=1, retry_after=3)

    first, _, _ = await raw.call("GET", "/rules")
    second, _, headers = await raw.call("GET", "/rules")
    third, _, _ = await raw.call("GET", "/rules")

    assert (503, 429, "3", 200) == (first, second, headers["Retry-After"], third)


async def test_rate_limit_per_key(clock: ManualClock) -> None:
    """Past the per-key limit, 429 with Retry-After until tokens refill."""
    async with (
        serve(clock=clock, rate_limit=60) as server,
        aiohttp.ClientSession() as http,
    ):
        raw = Raw(http, server, server.api_key)
        statuses = [(await raw.call("GET", "/rules"))[0] for _ in range(61)]
        _, _, headers = await raw.call("GET", "/rules")
        clock.advance(1.0)
        after, _, _ = await raw.call("GET", "/rules")

    assert [200] * 60 + [429] == statuses
    assert "1" == headers["Retry-After"]
    assert 200 == after


async def test_dropped_response_still_commits(raw: Raw) -> None:
    """drops_next closes the connection after the execution is created."""
    raw.server.set_faults("trigger_rule", drops_next=1)

    with pytest.raises(aiohttp.ClientError):
        await raw.call(
            "POST", "/rules/rule_0001/trigger", body={}, **{"Idempotency-Key": "k1"}
        )
    replay = await raw.trigger(**{"Idempotency-Key": "k1"})

    assert [replay] == [e["id"] for e in raw.server.executions()]


async def test_malformed_body_fault(raw: Raw) -> None:
    """malformed_next answers 200 with an HTML page."""
    raw.server.set_faults("*", malformed_next=1)

    status, body, _ = await raw.call("GET", "/accounts")

    assert 200 == status
    assert "<html>" in body


async def test_visibility_delay_hides_new_executions(clock: ManualClock) -> None:
    """A new execution answers 404 and is left out of lists until the delay passes."""
    async with (
        serve(clock=clock, visibility_delay=2.0) as server,
        aiohttp.ClientSession() as http,
    ):
        raw = Raw(http, server, server.api_key)
        execution_id = await raw.trigger()
        hidden, _, _ = await raw.call("GET", f"/rule-executions/{execution_id}")
        _, listed, _ = await raw.call("GET", "/rule-executions?rule_id=rule_0001")
        clock.advance(2.0)
        shown, _, _ = await raw.call("GET", f"/rule-executions/{execution_id}")

    assert (404, [], 200) == (hidden, listed["data"], shown)


async def test_latency_fault_delays_answers(raw: Raw) -> None:
    """Latency makes requests overlap: the server counts them in flight."""
    raw.server.set_faults("list_accounts", latency=0.05)

    await asyncio.gather(*(raw.call("GET", "/accounts") for _ in range(4)))

    assert 4 == raw.server.max_in_flight


async def test_requests_are_recorded_without_the_key(raw: Raw) -> None:
    """The server records method, path, headers and body, never Authorization."""
    await raw.trigger(**{"Idempotency-Key": "k9"})

    (received,) = raw.server.requests_to("trigger_rule")

    assert ("POST", {}, "k9") == (
        received.method,
        received.body,
        received.headers["Idempotency-Key"],
    )
    assert "Authorization" not in received.headers
    assert ["k9"] == raw.server.state.idempotency_keys


def test_seed_round_trips_through_json() -> None:
    """A seed written to JSON reads back the same."""
    seed = restricted_seed()

    assert seed == Seed.from_json(seed.to_json())


@pytest.mark.parametrize("text", ["[]", '{"keys": {"k": [{"no_scope": 1}]}}', "nope"])
def test_bad_seed_json_is_a_value_error(text: str) -> None:
    """A file that is not a seed raises ValueError."""
    with pytest.raises(ValueError, match="seed"):
        Seed.from_json(text)


def test_finish_rejects_unknown_status() -> None:
    """The control handle only ends executions with a terminal status."""
    server = FakeSequence(clock=ManualClock())

    with pytest.raises(ValueError, match="status"):
        server.finish("rex_1", "in_progress")
