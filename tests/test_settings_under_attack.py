"""
Settings and inputs a new user got wrong (review of 2026-11-27).

Each was accepted when given and then failed every request with an untyped
error, or was sent as it was for the server to refuse; now each is refused
before anything is sent, and a key pasted with spaces around it works.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from sequence_async import SequenceClient
from sequence_async._transfers import Transfers

from .conftest import API_KEY, FakeTransport, hostile, ok, requester


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"base_url": "https://user:s3cr3t@api.example.com/v1"}, ValueError),
        ({"base_url": "https://api.example.com:99999/v1"}, ValueError),
        ({"base_url": "https://api.example.com:abc/v1"}, ValueError),
        ({"default_headers": {"X-Note": "a\x0bb"}}, ValueError),
        ({"default_headers": {"X-Note": "a\x7fb"}}, ValueError),
        ({"default_headers": [("X-Note", "a")]}, TypeError),
        ({"default_headers": {"": "a"}}, ValueError),
        ({"default_headers": {"X(Note)": "a"}}, ValueError),
        ({"coordinator": "redis://localhost:6379/0"}, TypeError),
    ],
    ids=[
        "credentials",
        "port",
        "port text",
        "VT",
        "DEL",
        "list",
        "empty name",
        "name with ()",
        "URL string",
    ],
)
def test_settings_that_would_fail_every_request_are_refused_when_given(
    options: dict[str, Any], error: type[Exception]
) -> None:
    """Not a bare ValueError from yarl per request, nor an AttributeError."""
    with pytest.raises(error) as raised:
        SequenceClient(API_KEY, **options)

    assert "s3cr3t" not in str(raised.value)


def test_a_tab_in_a_header_value_is_still_allowed() -> None:
    """HTTP allows a tab inside a field value; only other controls are refused."""
    client = SequenceClient(API_KEY, default_headers={"X-Note": "a\tb"})

    assert client.closed is False


async def test_a_key_pasted_with_spaces_around_it_is_sent_without_them() -> None:
    """A leading space made 'ApiKey  sk_...' and a 401."""
    seen: list[str] = []

    async def accounts(request: web.Request) -> web.Response:
        seen.append(request.headers["Authorization"])
        return web.json_response({"data": [], "page_info": {}})

    async with (
        hostile({("GET", "/accounts"): accounts}) as base_url,
        SequenceClient(f"  {API_KEY} ", base_url=base_url) as client,
    ):
        await client.accounts.list()

    assert [f"ApiKey {API_KEY}"] == seen


def test_an_empty_start_after_is_refused_before_sending() -> None:
    """An unset variable as the cursor was sent, for the server to refuse."""
    transport = FakeTransport(ok([]))
    transfers = Transfers(requester(transport))

    with pytest.raises(ValueError, match="start_after"):
        transfers.list(account_id="acc_1", start_after="")

    assert [] == transport.sent


@pytest.mark.parametrize(
    "description", ["Rent November 2026", "a\nb", "caf\u00e9", "x" * 5000]
)
async def test_a_platform_description_past_the_ach_label_is_refused(
    description: str,
) -> None:
    """Platform's description is at most 10 letters, digits or spaces."""
    transport = FakeTransport(ok({"id": "t1"}, 201))
    transfers = Transfers(requester(transport, api="platform-v1"))

    with pytest.raises(ValueError, match="description"):
        await transfers.create(
            source_account_id="acc_1",
            destination_account_id="acc_2",
            amount_in_cents=500,
            description=description,
        )

    assert [] == transport.sent


async def test_a_platform_description_within_the_label_is_sent() -> None:
    """'Rent Nov' fits; api-v1 has no such limit."""
    answer = ok({"id": "t1", "amountInCents": 500}, 201)
    platform = FakeTransport(answer)
    api_v1 = FakeTransport(ok({"id": "t1", "amount_in_cents": 500}, 201))

    await Transfers(requester(platform, api="platform-v1")).create(
        source_account_id="acc_1",
        destination_account_id="acc_2",
        amount_in_cents=500,
        description="Rent Nov",
    )
    await Transfers(requester(api_v1)).create(
        source_account_id="acc_1",
        destination_account_id="acc_2",
        amount_in_cents=500,
        description="Rent November 2026",
    )

    assert 1 == len(platform.sent) == len(api_v1.sent)
