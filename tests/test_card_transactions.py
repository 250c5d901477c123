"""
Tests of Platform's card transactions and of rules the API cannot represent.

``GET /card-transactions`` (Platform only; api-v1 lists a card's
transactions under ``/cards/{id}/transactions``) through the client and over
raw HTTP, and ``INVALID_RULE`` (403), which both profiles map onto
``PermissionDeniedError``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest
import pytest_asyncio

from sequence_async import (
    PermissionDeniedError,
    SequenceClient,
    UnsupportedFeatureError,
    models,
)
from sequence_async.testing import FakeSequence, ManualClock, Seed, serve

from .conftest import FAST_POLL, NO_WAIT_RETRIES


def two_pods_with_cards() -> Seed:
    """Two pods: the first with two cards (5 and 2 transactions), the other one."""
    seed = Seed()
    payroll = seed.account("Payroll", type="income_source")
    taxes, rent = seed.account("Taxes"), seed.account("Rent")
    seed.card(taxes, transactions=5)
    seed.card(taxes, transactions=2)
    seed.card(rent, transactions=1)
    seed.rule("Taxes", source=payroll, destinations=[(taxes, 1_000)])
    seed.rule("Odd", source=payroll, destinations=[(rent, 500)], supported=False)
    seed.api_key("sk_test_cards")
    return seed


@pytest_asyncio.fixture
async def cards_server(clock: ManualClock, api: str) -> AsyncIterator[FakeSequence]:
    """The fake server of ``two_pods_with_cards`` speaking *api*."""
    async with serve(two_pods_with_cards(), clock=clock, api=api) as server:
        yield server


@pytest_asyncio.fixture
async def cards_client(cards_server: FakeSequence) -> AsyncIterator[SequenceClient]:
    """A client of ``cards_server`` in its API."""
    async with SequenceClient(
        cards_server.api_key,
        api=cards_server.api,
        base_url=cards_server.url,
        poll=FAST_POLL,
        retry=NO_WAIT_RETRIES,
    ) as client:
        yield client


@pytest.mark.apis("platform-v1")
async def test_card_transactions_list_a_pods_cards_newest_first_by_page(
    cards_server: FakeSequence, cards_client: SequenceClient
) -> None:
    """Every card of the pod, newest first, page by page, in Platform's shape."""
    listed = [
        t
        async for t in cards_client.card_transactions.list(
            account_id="acc_0002", page_size=3
        )
    ]

    pages = [r.query for r in cards_server.requests_to("list_card_transactions")]
    assert [("1", "3"), ("2", "3"), ("3", "3")] == [
        (q["page"], q["pageSize"]) for q in pages
    ]
    assert {"acc_0002"} == {q["accountId"] for q in pages}
    assert 7 == len(listed)
    assert sorted(listed, key=lambda t: t.created_at or 0, reverse=True) == listed
    assert {"card_0001", "card_0002"} == {t.card_id for t in listed}
    refund = next(t for t in listed if t.id == "ctx_0001_005")
    assert (
        models.TransferDirection.MONEY_IN,
        "REFUND",
        "COMPLETE",
        "DEBIT_CARD",
        1_000 + 250 * 4,
        datetime(2024, 2, 5, 12, tzinfo=UTC),
        "acc_0002",
        models.AccountType.POD,
    ) == (
        refund.direction,
        refund.subtype,
        refund.status,
        refund.card_type,
        refund.amount_in_cents,
        refund.completed_at,
        refund.account and refund.account.id,
        refund.account and refund.account.type,
    )
    assert {(models.TransferDirection.MONEY_OUT, "PURCHASE")} == {
        (t.direction, t.subtype) for t in listed if t.id != refund.id
    }


@pytest.mark.apis("platform-v1")
async def test_card_transactions_filter_by_card_and_time(
    cards_client: SequenceClient,
) -> None:
    """A card_id keeps one card's transactions; from_ and to bound them in time."""
    one_card = cards_client.card_transactions.list(
        account_id="acc_0002", card_id="card_0002"
    )
    in_time = cards_client.card_transactions.list(
        account_id="acc_0002",
        from_=datetime(2024, 2, 2, tzinfo=UTC),
        to=datetime(2024, 2, 3, 23, tzinfo=UTC),
    )
    other_pods_card = cards_client.card_transactions.list(
        account_id="acc_0002", card_id="card_0003"
    )

    assert ["ctx_0002_002", "ctx_0002_001"] == [t.id async for t in one_card]
    assert ["ctx_0001_003", "ctx_0002_002", "ctx_0001_002"] == [
        t.id async for t in in_time
    ]
    assert [] == [t async for t in other_pods_card]


@pytest.mark.apis("platform-v1")
async def test_platform_card_transactions_require_the_pod(
    cards_server: FakeSequence,
) -> None:
    """The fake Platform answers 400 INVALID_PARAMETERS without accountId."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{cards_server.url}/card-transactions",
            headers={"Authorization": f"Bearer {cards_server.api_key}"},
        ) as response,
    ):
        body = await response.json()

    assert (400, "INVALID_PARAMETERS") == (response.status, body["error"]["code"])


@pytest.mark.apis("api-v1")
async def test_card_transactions_are_refused_on_api_v1_before_sending(
    cards_server: FakeSequence, cards_client: SequenceClient
) -> None:
    """api-v1 has no /card-transactions: UnsupportedFeatureError, nothing sent."""
    with pytest.raises(UnsupportedFeatureError, match=r"client\.card_transactions"):
        cards_client.card_transactions.list(account_id="acc_0002")

    assert [] == list(cards_server.received)


async def test_rules_the_api_cannot_represent_are_permission_denied(
    cards_server: FakeSequence, cards_client: SequenceClient, api: str
) -> None:
    """An unsupported rule is listed as such; getting or triggering it is a 403."""
    summaries = {r.id: r.is_supported for r in await cards_client.rules.list()}

    with pytest.raises(PermissionDeniedError) as on_get:
        await cards_client.rules.get("rule_0002")
    with pytest.raises(PermissionDeniedError) as on_trigger:
        await cards_client.rules.trigger("rule_0002")

    code = "INVALID_RULE" if api == "platform-v1" else "invalid_rule"
    assert {"rule_0001": True, "rule_0002": False} == summaries
    assert [(403, code)] * 2 == [
        (e.value.status, e.value.code) for e in (on_get, on_trigger)
    ]
    assert [] == cards_server.executions()
