"""
Tests of every endpoint's request and parsing, through the ``FakeTransport`` seam.

Each namespace is built over a ``Requester`` whose transport is the fake: the
tests see the exact ``Request`` (method, path, query, body) an endpoint builds
and feed it canned answers. What aiohttp does with a request is in
``test_client.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from sequence_async import (
    AccountType,
    ExecutionStatus,
    RuleStatus,
    TransferStatus,
    errors,
)
from sequence_async._resources import Accounts, Cards
from sequence_async._rules import RuleExecutions, Rules
from sequence_async._transfers import Transfers
from sequence_async._wire import Request, Response

from .conftest import FakeTransport, Wire, answer, envelope, ok, requester


def only_call(transport: FakeTransport) -> tuple[str, str, dict[str, str], Any]:
    """
    The method, path, query and decoded JSON body of the one request sent.
    """
    (request,) = transport.sent
    return request_of(request)


def request_of(request: Request) -> tuple[str, str, dict[str, str], Any]:
    """
    The method, path, query and decoded JSON body of *request*.
    """
    body = None if request.body is None else json.loads(request.body)
    return request.method, request.path, dict(request.params or {}), body


def paged(data: Any, **page_info: Any) -> Response:
    """
    A success answer with *data* and the given ``page_info`` fields.
    """
    return answer(200, envelope(data, page_info=page_info))


ACCOUNT = {
    "id": "acc_01HGHI7890",
    "name": "Amex Gold ••1234",
    "type": "external_account",
    "description": None,
    "external_account_type": "LIABILITY",
    "beneficiary_name": "John Smith",
    "institution_name": "American Express",
    "can_be_source": False,
    "balance": {
        "balance_in_cents": 12345,
        "balance_last_updated_at": "2024-04-23T09:15:00Z",
    },
    "some_future_field": {"x": 1},
}


async def test_accounts_list_sends_the_type_filter() -> None:
    """GET /accounts?type= returns accounts."""
    transport = FakeTransport(ok([ACCOUNT]))

    accounts = await Accounts(requester(transport)).list(type=AccountType.POD)

    assert ("GET", "/accounts", {"type": "pod"}, None) == only_call(transport)
    assert ["acc_01HGHI7890"] == [a.id for a in accounts]


async def test_accounts_get_parses_balance_enum_and_request_id(wire: Wire) -> None:
    """GET /accounts/{id} parses balance, enum and request id; skips unknown fields.

    On platform-v1 the same answer comes in camelCase with UPPERCASE enums.
    """
    transport = FakeTransport(wire.ok(ACCOUNT))

    account = await Accounts(wire.requester(transport)).get("acc_01HGHI7890")

    assert ("GET", "/accounts/acc_01HGHI7890", {}, None) == only_call(transport)
    assert AccountType.EXTERNAL_ACCOUNT == account.type
    assert account.balance is not None
    assert 12345 == account.balance.balance_in_cents
    assert (
        datetime(2024, 4, 23, 9, 15, tzinfo=UTC)
        == account.balance.balance_last_updated_at
    )
    assert "req_srv_1" == account.request_id


async def test_rules_list_returns_summaries_with_their_source(wire: Wire) -> None:
    """GET /rules?source_id= returns summaries with their source."""
    transport = FakeTransport(
        wire.listing(
            [
                {
                    "id": "rule_1",
                    "nickname": "Auto-save",
                    "status": "enabled",
                    "trigger_type": "ON_FUNDS_TRANSFERRED",
                    "source": {"id": "acc_1", "type": "income_source", "name": "Chase"},
                    "created_at": "2024-04-23T09:15:00Z",
                }
            ]
        )
    )

    (rule,) = await Rules(wire.requester(transport)).list(source_id="acc_1")

    method, path, params, _ = only_call(transport)
    assert ("GET", "/rules") == (method, path)
    assert "acc_1" == wire.dialect.query_in(params)["source_id"]
    assert ("rule_1", RuleStatus.ENABLED, "acc_1", "on_funds_transferred") == (
        rule.id,
        rule.status,
        rule.source and rule.source.id,
        rule.trigger_type,  # one spelling on both profiles, whatever the case
    )


async def test_rules_get_keeps_unknown_nested_shapes(wire: Wire) -> None:
    """GET /rules/{id}: steps keep conditions and actions as plain data."""
    condition = {
        "all": [
            {"condition": {"fact": "BALANCE", "operator": "GREATER_THAN", "value": 100}}
        ]
    }
    action = {"type": "SOME_NEW_ACTION", "weird": [1, 2]}
    transport = FakeTransport(
        wire.ok(
            {
                "id": "rule_1",
                "status": "ENABLED",
                "trigger": {"type": "ON_FUNDS_TRANSFERRED", "account_id": "acc_1"},
                "steps": [{"conditions": condition, "actions": [action]}],
            }
        )
    )

    rule = await Rules(wire.requester(transport)).get("rule_1")

    assert ("GET", "/rules/rule_1", {}, None) == only_call(transport)
    assert RuleStatus.ENABLED == rule.status
    assert rule.trigger is not None
    assert "acc_1" == rule.trigger.account_id
    assert condition == rule.steps[0].conditions
    assert (action,) == rule.steps[0].actions


EXECUTION = {
    "id": "rex_1",
    "rule_id": "rule_1",
    "rule_name": "Save",
    "trigger_type": "on_funds_transferred",
    "status": "executed",
    "created_at": "2024-04-23T09:15:00Z",
    "trigger_details": {"type": "on_funds_transferred", "amount_in_cents": 250000},
    "transfer_ids": ["txr_1", "txr_2"],
    "transfers_failed": 0,
}


# Platform names an execution under its rule.
EXECUTION_PATHS = {
    "api-v1": "/rule-executions/rex_1",
    "platform-v1": "/rules/rule_1/executions/rex_1",
}


async def test_rule_executions_get_parses_outcome_fields(wire: Wire) -> None:
    """GET /rule-executions/{id} parses outcome fields."""
    transport = FakeTransport(wire.ok(EXECUTION))

    execution = await RuleExecutions(wire.requester(transport)).get(
        "rex_1", rule_id="rule_1"
    )

    assert ("GET", EXECUTION_PATHS[wire.api], {}, None) == only_call(transport)
    assert (ExecutionStatus.EXECUTED, ("txr_1", "txr_2"), True) == (
        execution.status,
        execution.transfer_ids,
        execution.done,
    )


async def test_an_execution_of_another_rule_is_refused_where_the_path_names_it(
    wire: Wire,
) -> None:
    """Platform asks under a rule: an answer of another rule is not the one asked."""
    transport = FakeTransport(wire.ok({**EXECUTION, "rule_id": "rule_other"}))
    executions = RuleExecutions(wire.requester(transport))

    if wire.api == "api-v1":  # rule_id is ignored there (documented)
        assert "rule_other" == (await executions.get("rex_1", rule_id="rule_1")).rule_id
        return
    with pytest.raises(errors.ResponseValidationError, match="rule_other"):
        await executions.get("rex_1", rule_id="rule_1")


async def test_unknown_enum_values_are_kept_raw(wire: Wire) -> None:
    """An execution status this version does not know stays the string sent."""
    transport = FakeTransport(wire.ok({**EXECUTION, "status": "awaiting_settlement"}))

    execution = await RuleExecutions(wire.requester(transport)).get(
        "rex_1", rule_id="rule_1"
    )

    sent = wire.dialect.out({"status": "awaiting_settlement"})["status"]
    assert (sent, False) == (execution.status, execution.done)


async def test_rule_executions_list_pages_across_cursors() -> None:
    """The list follows end_cursor while has_next_page, lazily, with the filters."""
    transport = FakeTransport(
        paged(
            [{**EXECUTION, "id": "rex_1"}, {**EXECUTION, "id": "rex_2"}],
            end_cursor="c1",
            has_next_page=True,
        ),
        paged([{**EXECUTION, "id": "rex_3"}], end_cursor="c2", has_next_page=False),
    )
    filters = {
        "rule_id": "rule_1",
        "status": "failed",
        "from": "2024-01-01T00:00:00Z",
        "first": "2",
    }

    seen = [
        (e.id, len(transport.sent))
        async for e in RuleExecutions(requester(transport)).list(
            rule_id="rule_1",
            status="failed",
            from_=datetime(2024, 1, 1, tzinfo=UTC),
            page_size=2,
        )
    ]

    assert [("rex_1", 1), ("rex_2", 1), ("rex_3", 2)] == seen
    assert [
        ("GET", "/rule-executions", filters, None),
        ("GET", "/rule-executions", {**filters, "after": "c1"}, None),
    ] == [request_of(r) for r in transport.sent]


async def test_pages_gives_page_objects() -> None:
    """.pages() yields Page values with their page info."""
    transport = FakeTransport(paged([EXECUTION], end_cursor="c1", has_next_page=False))

    pages = [
        p
        async for p in RuleExecutions(requester(transport))
        .list(rule_id="rule_1")
        .pages()
    ]

    assert [("c1", False, 1)] == [
        (p.page_info.end_cursor, p.page_info.has_next_page, len(p.items)) for p in pages
    ]
    assert ("GET", "/rule-executions", {"rule_id": "rule_1", "first": "100"}, None) == (
        only_call(transport)
    )


async def test_paging_without_has_next_page_stops_on_a_short_page() -> None:
    """Without has_next_page, a full page goes on and a short one ends the list."""
    transfer = {"id": "txr_1", "amount_in_cents": 1, "status": "complete"}
    transport = FakeTransport(
        paged([transfer], end_cursor="c1"), paged([], end_cursor=None)
    )

    items = [
        t
        async for t in Transfers(requester(transport)).list(
            account_id="acc_1", page_size=1
        )
    ]

    assert 1 == len(items)
    assert [
        {"account_id": "acc_1", "first": "1"},
        {"account_id": "acc_1", "first": "1", "after": "c1"},
    ] == [r.params for r in transport.sent]


async def test_list_requires_its_filter_locally(wire: Wire) -> None:
    """The required rule_id / account_id must be non-empty strings."""
    transport = FakeTransport(wire.ok([]))

    with pytest.raises(ValueError, match="rule_id"):
        RuleExecutions(wire.requester(transport)).list(rule_id="")
    with pytest.raises(ValueError, match="account_id"):
        Transfers(wire.requester(transport)).list(account_id="")
    with pytest.raises(ValueError, match="page_size"):
        Transfers(wire.requester(transport)).list(account_id="a", page_size=500)

    assert [] == transport.sent


async def test_transfers_list_sends_every_filter() -> None:
    """GET /transfers sends every documented filter."""
    transport = FakeTransport(
        ok([{"id": "txr_1", "status": "complete", "direction": "internal"}])
    )

    (transfer,) = [
        t
        async for t in Transfers(requester(transport)).list(
            account_id="acc_1",
            account_role="source",
            direction="internal",
            origin="rule",
            status=TransferStatus.COMPLETE,
            to=datetime(2024, 2, 1, tzinfo=UTC),
        )
    ]

    filters = {
        "account_id": "acc_1",
        "account_role": "source",
        "direction": "internal",
        "origin": "rule",
        "status": "complete",
        "to": "2024-02-01T00:00:00Z",
        "first": "100",
    }
    assert ("GET", "/transfers", filters, None) == only_call(transport)
    assert TransferStatus.COMPLETE == transfer.status


async def test_transfers_get_parses_source_and_destination(wire: Wire) -> None:
    """GET /transfers/{id} parses source and destination refs."""
    transport = FakeTransport(
        wire.ok(
            {
                "id": "txr_1",
                "amount_in_cents": 100000,
                "direction": "internal",
                "origin": "rule",
                "status": "complete",
                "source": {
                    "id": "acc_1",
                    "name": "Main Payroll",
                    "type": "income_source",
                },
                "destination": {"id": "acc_2", "name": "Emergency Fund", "type": "pod"},
            }
        )
    )

    transfer = await Transfers(wire.requester(transport)).get("txr_1")

    assert ("GET", "/transfers/txr_1", {}, None) == only_call(transport)
    assert (100000, "acc_1", "acc_2") == (
        transfer.amount_in_cents,
        transfer.source and transfer.source.id,
        transfer.destination and transfer.destination.id,
    )


@pytest.mark.parametrize("amount", [0, -5])
async def test_transfers_create_rejects_non_positive_amounts(
    amount: int, wire: Wire
) -> None:
    """amount_in_cents must be at least 1; nothing is sent."""
    transport = FakeTransport(wire.ok({"id": "txr_1"}, 201))

    with pytest.raises(ValueError, match="amount_in_cents"):
        await Transfers(wire.requester(transport)).create(
            source_account_id="a", destination_account_id="b", amount_in_cents=amount
        )

    assert [] == transport.sent


async def test_cards_endpoints_send_their_filters_and_parse_items() -> None:
    """GET /cards, /cards/{id} and /cards/{id}/transactions parse their items."""
    card = {
        "id": "card_1",
        "type": "physical",
        "status": "active",
        "last_four": "4242",
        "holder_name": "John Smith",
        "expiration_date": "09/28",
        "account_id": "acc_2",
        "created_at": "2024-01-15T10:00:00Z",
    }
    transport = FakeTransport(
        ok([card]),
        ok(card),
        ok([{"id": "ctx_1", "direction": "debit", "amount_in_cents": 5}]),
    )
    cards_api = Cards(requester(transport))

    cards = await cards_api.list(account_id="acc_2", status="active")
    one = await cards_api.get("card_1")
    txs = [t async for t in cards_api.transactions("card_1", direction="debit")]

    assert [
        ("GET", "/cards", {"account_id": "acc_2", "status": "active"}, None),
        ("GET", "/cards/card_1", {}, None),
        (
            "GET",
            "/cards/card_1/transactions",
            {"direction": "debit", "first": "100"},
            None,
        ),
    ] == [request_of(r) for r in transport.sent]
    assert ["4242"] == [c.last_four for c in cards]
    assert "09/28" == one.expiration_date
    assert ["ctx_1"] == [t.id for t in txs]


async def test_wrong_shapes_raise_validation_errors(wire: Wire) -> None:
    """A list where an object belongs, or a missing id, is a ResponseValidationError."""
    transport = FakeTransport(
        wire.ok({"not": "a list"}),
        wire.ok({"name": "no id"}),
        wire.ok({"id": "r", "steps": "nope"}),
    )
    request = wire.requester(transport)

    with pytest.raises(errors.ResponseValidationError, match="list of Account"):
        await Accounts(request).list()
    with pytest.raises(errors.ResponseValidationError, match=r"Account\.id"):
        await Accounts(request).get("a")
    with pytest.raises(errors.ResponseValidationError, match="Rule"):
        await Rules(request).get("r")

    assert ["/accounts", "/accounts/a", "/rules/r"] == [r.path for r in transport.sent]


async def test_invalid_items_in_a_list_raise_validation_errors(wire: Wire) -> None:
    """A list item of the wrong shape is a ResponseValidationError, not a KeyError."""
    transport = FakeTransport(
        wire.listing([{"nickname": "no id"}]),
        wire.ok({"id": "x", "status": 5}),
        wire.ok({"id": "y", "status": "executed", "trigger_details": [1]}),
    )
    request = wire.requester(transport)

    with pytest.raises(errors.ResponseValidationError):
        await Rules(request).list()
    with pytest.raises(errors.ResponseValidationError, match="status"):
        await RuleExecutions(request).get("x", rule_id="r")
    with pytest.raises(errors.ResponseValidationError, match="trigger_details"):
        await RuleExecutions(request).get("y", rule_id="r")

    executions = (
        "/rules/r/executions/" if wire.dialect.platform else "/rule-executions/"
    )
    assert ["/rules", executions + "x", executions + "y"] == [
        r.path for r in transport.sent
    ]
