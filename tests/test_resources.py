"""
Tests of every endpoint's request and parsing, with aioresponses.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aioresponses import aioresponses as Aioresponses  # noqa: N812
from yarl import URL

from sequence_async import (
    AccountType,
    ExecutionStatus,
    RuleStatus,
    SequenceClient,
    TransferStatus,
    errors,
)

from .conftest import envelope, url


def only_call(mock: Aioresponses) -> tuple[str, URL]:
    """
    The method and URL of the one request sent.
    """
    ((method, sent_url),) = mock.requests
    return method, sent_url


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


async def test_accounts_list(client: SequenceClient, mock_http: Aioresponses) -> None:
    """GET /accounts?type= returns accounts."""
    mock_http.get(url("/accounts?type=pod"), payload=envelope([ACCOUNT]))

    accounts = await client.accounts.list(type=AccountType.POD)

    assert ("GET", URL(url("/accounts?type=pod"))) == only_call(mock_http)
    assert ["acc_01HGHI7890"] == [a.id for a in accounts]


async def test_accounts_get_with_balance(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """GET /accounts/{id} parses balance, enum and request id; skips unknown fields."""
    mock_http.get(url("/accounts/acc_01HGHI7890"), payload=envelope(ACCOUNT))

    account = await client.accounts.get("acc_01HGHI7890")

    assert AccountType.EXTERNAL_ACCOUNT == account.type
    assert account.balance is not None
    assert 12345 == account.balance.balance_in_cents
    assert (
        datetime(2024, 4, 23, 9, 15, tzinfo=UTC)
        == account.balance.balance_last_updated_at
    )
    assert "req_srv_1" == account.request_id


async def test_rules_list(client: SequenceClient, mock_http: Aioresponses) -> None:
    """GET /rules?source_id= returns summaries with their source."""
    mock_http.get(
        url("/rules?source_id=acc_1"),
        payload=envelope(
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
        ),
    )

    (rule,) = await client.rules.list(source_id="acc_1")

    assert ("rule_1", RuleStatus.ENABLED, "acc_1") == (
        rule.id,
        rule.status,
        rule.source and rule.source.id,
    )


async def test_rules_get_keeps_unknown_nested_shapes(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """GET /rules/{id}: steps keep conditions and actions as plain data."""
    condition = {
        "all": [
            {"condition": {"fact": "BALANCE", "operator": "GREATER_THAN", "value": 100}}
        ]
    }
    action = {"type": "SOME_NEW_ACTION", "weird": [1, 2]}
    mock_http.get(
        url("/rules/rule_1"),
        payload=envelope(
            {
                "id": "rule_1",
                "status": "ENABLED",
                "trigger": {"type": "ON_FUNDS_TRANSFERRED", "account_id": "acc_1"},
                "steps": [{"conditions": condition, "actions": [action]}],
            }
        ),
    )

    rule = await client.rules.get("rule_1")

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


async def test_rule_executions_get(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """GET /rule-executions/{id} parses outcome fields."""
    mock_http.get(url("/rule-executions/rex_1"), payload=envelope(EXECUTION))

    execution = await client.rule_executions.get("rex_1")

    assert (ExecutionStatus.EXECUTED, ("txr_1", "txr_2"), True) == (
        execution.status,
        execution.transfer_ids,
        execution.done,
    )


async def test_unknown_enum_values_are_kept_raw(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """An execution status this version does not know stays a plain string."""
    mock_http.get(
        url("/rule-executions/rex_1"),
        payload=envelope({**EXECUTION, "status": "awaiting_settlement"}),
    )

    execution = await client.rule_executions.get("rex_1")

    assert ("awaiting_settlement", False) == (execution.status, execution.done)


async def test_rule_executions_list_pages_across_cursors(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """The list follows end_cursor while has_next_page, lazily, with the filters."""
    base = (
        "/rule-executions?rule_id=rule_1&status=failed"
        "&from=2024-01-01T00:00:00Z&first=2"
    )
    mock_http.get(
        url(base),
        payload=envelope(
            [{**EXECUTION, "id": "rex_1"}, {**EXECUTION, "id": "rex_2"}],
            page_info={"end_cursor": "c1", "has_next_page": True},
        ),
    )
    mock_http.get(
        url(base + "&after=c1"),
        payload=envelope(
            [{**EXECUTION, "id": "rex_3"}],
            page_info={"end_cursor": "c2", "has_next_page": False},
        ),
    )

    ids = [
        e.id
        async for e in client.rule_executions.list(
            rule_id="rule_1",
            status="failed",
            from_=datetime(2024, 1, 1, tzinfo=UTC),
            page_size=2,
        )
    ]

    assert ["rex_1", "rex_2", "rex_3"] == ids
    assert 2 == len(mock_http.requests)


async def test_pages_gives_page_objects(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """.pages() yields Page values with their page info."""
    mock_http.get(
        url("/rule-executions?rule_id=rule_1&first=100"),
        payload=envelope(
            [EXECUTION], page_info={"end_cursor": "c1", "has_next_page": False}
        ),
    )

    pages = [p async for p in client.rule_executions.list(rule_id="rule_1").pages()]

    assert [("c1", False, 1)] == [
        (p.page_info.end_cursor, p.page_info.has_next_page, len(p.items)) for p in pages
    ]


async def test_paging_without_has_next_page_stops_on_a_short_page(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """Without has_next_page, a full page goes on and a short one ends the list."""
    base = "/transfers?account_id=acc_1&first=1"
    transfer = {"id": "txr_1", "amount_in_cents": 1, "status": "complete"}
    mock_http.get(
        url(base), payload=envelope([transfer], page_info={"end_cursor": "c1"})
    )
    mock_http.get(
        url(base + "&after=c1"), payload=envelope([], page_info={"end_cursor": None})
    )

    items = [t async for t in client.transfers.list(account_id="acc_1", page_size=1)]

    assert 1 == len(items)
    assert 2 == len(mock_http.requests)


async def test_list_requires_its_filter_locally(client: SequenceClient) -> None:
    """The required rule_id / account_id must be non-empty strings."""
    with pytest.raises(ValueError, match="rule_id"):
        client.rule_executions.list(rule_id="")
    with pytest.raises(ValueError, match="account_id"):
        client.transfers.list(account_id="")
    with pytest.raises(ValueError, match="page_size"):
        client.transfers.list(account_id="a", page_size=500)


async def test_transfers_list_filters(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """GET /transfers sends every documented filter."""
    mock_http.get(
        url(
            "/transfers?account_id=acc_1&account_role=source&direction=internal&origin=rule"
            "&status=complete&to=2024-02-01T00:00:00Z&first=100"
        ),
        payload=envelope(
            [{"id": "txr_1", "status": "complete", "direction": "internal"}]
        ),
    )

    (transfer,) = [
        t
        async for t in client.transfers.list(
            account_id="acc_1",
            account_role="source",
            direction="internal",
            origin="rule",
            status=TransferStatus.COMPLETE,
            to=datetime(2024, 2, 1, tzinfo=UTC),
        )
    ]

    assert TransferStatus.COMPLETE == transfer.status


async def test_transfers_get(client: SequenceClient, mock_http: Aioresponses) -> None:
    """GET /transfers/{id} parses source and destination refs."""
    mock_http.get(
        url("/transfers/txr_1"),
        payload=envelope(
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
        ),
    )

    transfer = await client.transfers.get("txr_1")

    assert (100000, "acc_2") == (
        transfer.amount_in_cents,
        transfer.destination and transfer.destination.id,
    )


@pytest.mark.parametrize("amount", [0, -5])
async def test_transfers_create_rejects_non_positive_amounts(
    client: SequenceClient, amount: int
) -> None:
    """amount_in_cents must be at least 1."""
    with pytest.raises(ValueError, match="amount_in_cents"):
        await client.transfers.create(
            source_account_id="a", destination_account_id="b", amount_in_cents=amount
        )


async def test_cards_endpoints(client: SequenceClient, mock_http: Aioresponses) -> None:
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
    mock_http.get(
        url("/cards?account_id=acc_2&status=active"), payload=envelope([card])
    )
    mock_http.get(url("/cards/card_1"), payload=envelope(card))
    mock_http.get(
        url("/cards/card_1/transactions?direction=debit&first=100"),
        payload=envelope([{"id": "ctx_1", "direction": "debit", "amount_in_cents": 5}]),
    )

    cards = await client.cards.list(account_id="acc_2", status="active")
    one = await client.cards.get("card_1")
    txs = [t async for t in client.cards.transactions("card_1", direction="debit")]

    assert ["4242"] == [c.last_four for c in cards]
    assert "09/28" == one.expiration_date
    assert ["ctx_1"] == [t.id for t in txs]


async def test_wrong_shapes_raise_validation_errors(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """A list where an object belongs, or a missing id, is a ResponseValidationError."""
    mock_http.get(url("/accounts"), payload=envelope({"not": "a list"}))
    mock_http.get(url("/accounts/a"), payload=envelope({"name": "no id"}))
    mock_http.get(url("/rules/r"), payload=envelope({"id": "r", "steps": "nope"}))

    with pytest.raises(errors.ResponseValidationError, match="list of Account"):
        await client.accounts.list()
    with pytest.raises(errors.ResponseValidationError, match=r"Account\.id"):
        await client.accounts.get("a")
    with pytest.raises(errors.ResponseValidationError, match="Rule"):
        await client.rules.get("r")


async def test_invalid_items_in_a_list_raise_validation_errors(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """A list item of the wrong shape is a ResponseValidationError, not a KeyError."""
    mock_http.get(url("/rules"), payload=envelope([{"nickname": "no id"}]))
    mock_http.get(url("/rule-executions/x"), payload=envelope({"id": "x", "status": 5}))
    mock_http.get(
        url("/rule-executions/y"),
        payload=envelope({"id": "y", "status": "executed", "trigger_details": [1]}),
    )

    with pytest.raises(errors.ResponseValidationError):
        await client.rules.list()
    with pytest.raises(errors.ResponseValidationError, match="status"):
        await client.rule_executions.get("x")
    with pytest.raises(errors.ResponseValidationError, match="trigger_details"):
        await client.rule_executions.get("y")
