"""
Hostile inputs at every entry point (review of 2026-11-27, sixth round).

Each was accepted and then failed later (a bare ``OverflowError`` or
``AttributeError``, a hang, a request to another path, the key's head in an
error) or ate the machine; now each is refused when given, with a typed
error, before anything is sent.
"""

from __future__ import annotations

import itertools
import sys
from typing import Any

import pytest
import redis.asyncio
from aiohttp import web

from sequence_async import SequenceClient, TriggerRequest
from sequence_async._activity import MAX_ACCOUNT_IDS, ExternalTransactions
from sequence_async._cluster import ClusterLimiter
from sequence_async.cli import main
from sequence_async.cli._base import MAX_ITEMS
from sequence_async.errors import AuthenticationError, BadRequestError
from sequence_async.redis import RedisCoordinator
from sequence_async.testing import FakeSequence, Seed

from .conftest import API_KEY, FakeTransport, hostile, requester, status


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"base_url": "http://127.0.0.1:9/api/v1\x00"}, ValueError),
        ({"base_url": "http://127.0.0.1:9/api/v1\x1b"}, ValueError),
        ({"base_url": "http://127.0.0.1:9/api v1"}, ValueError),
        ({"base_url": "http://127.0.0.1:9/api/v1?x=1"}, ValueError),
        ({"base_url": "http://127.0.0.1:9/api/v1#frag"}, ValueError),
        ({"base_url": "http://127.0.0.1:9/api/v1?"}, ValueError),
        ({"tracer_provider": 5}, TypeError),
        ({"meter_provider": "x"}, TypeError),
        ({"api": ""}, ValueError),
        ({"rate_limit": 1e-300}, ValueError),
        ({"rate_limit": 1 / 2000}, ValueError),
        ({"rate_limit": 60, "rate_limit_burst": sys.float_info.max}, ValueError),
    ],
    ids=[
        "NUL",
        "ESC",
        "inner space",
        "query",
        "fragment",
        "bare ?",
        "tracer provider",
        "meter provider",
        "empty api",
        "rate that never allows a second request",
        "rate below one a day",
        "burst past a float",
    ],
)
def test_settings_that_fail_later_are_refused_when_given(
    options: dict[str, Any], error: type[Exception]
) -> None:
    """A typed error from the constructor, never a hang or an AttributeError later."""
    with pytest.raises(error):
        SequenceClient(API_KEY, **options)


@pytest.mark.parametrize(
    "hooks",
    [[print], {"request": print}, {"request": itertools.repeat(print)}],
    ids=["a list", "one hook", "endless"],
)
def test_event_hooks_of_the_wrong_shape_say_what_to_pass(hooks: Any) -> None:
    """Not "cannot convert dictionary update sequence element"; an endless one hung."""
    with pytest.raises(TypeError, match=r"event_hooks.* must be a (mapping|list)"):
        SequenceClient(API_KEY, event_hooks=hooks)


def test_a_key_that_is_not_a_str_is_a_type_error() -> None:
    """api_key=5 is no missing key: it is the wrong type."""
    with pytest.raises(TypeError, match="api_key must be a str, not int"):
        SequenceClient(5)  # type: ignore[arg-type]


def test_a_key_longer_than_any_key_is_refused_unsent() -> None:
    """An 8 KB key made the server quote its head back in every error."""
    with pytest.raises(ValueError, match="longer than 1024") as raised:
        SequenceClient("sk_live_" + "A1b2" * 2000)

    assert "A1b2" not in str(raised.value)


async def test_a_base_url_with_spaces_around_it_reaches_its_path(
    server: FakeSequence,
) -> None:
    """A quoted .env value (a trailing space) went to '/api/v1%20/...' as a 404."""
    async with SequenceClient(
        server.api_key, api=server.api, base_url=f" {server.url} \n"
    ) as client:
        await client.accounts.list()

    assert 1 == server.counts["list_accounts"]


async def test_an_error_quoting_the_keys_head_never_shows_it() -> None:
    """A proxy's "header too long" quotes the Authorization value cut at 100 bytes."""
    quoted = f"Got more than 8190 bytes when reading: b'ApiKey {API_KEY[:22]}..."
    transport = FakeTransport(status(400, quoted.encode()))
    with pytest.raises(BadRequestError) as raised:
        await requester(transport).request("GET", "/accounts")

    assert API_KEY[:12] not in str(raised.value)
    assert "<redacted>" in str(raised.value)


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("the item's own __str__")


async def test_an_item_whose_str_raises_is_its_own_outcome_and_the_rest_go(
    live: SequenceClient, server: FakeSequence
) -> None:
    """It ended the whole run, and the valid items were never sent."""
    items: list[Any] = [_Unprintable(), "rule_0001", TriggerRequest("rule_0002")]
    async with live as client:
        outcomes = await client.trigger_all(items, wait=False)

    assert [False, True, True] == [o.ok for o in outcomes]
    assert isinstance(outcomes[0].error, TypeError)
    assert "<unprintable _Unprintable>" == outcomes[0].request.rule_id
    assert 2 == server.counts["trigger_rule"]


def test_endless_account_ids_are_refused_not_read_for_ever() -> None:
    """itertools.repeat as account_ids hung in tuple()."""
    listing = ExternalTransactions(
        requester(FakeTransport(status(500)), api="platform-v1")
    )
    with pytest.raises(ValueError, match=f"1 to {MAX_ACCOUNT_IDS} accounts"):
        listing.list(account_ids=itertools.repeat("acc_1"))


# -- the Redis coordinator's numbers (no server: checked when given) ----------


@pytest.mark.parametrize(
    "options",
    [
        {"lease": sys.float_info.max},
        {"lease": 1e300},
        {"lease": 0.001},
        {"retry": 5e-324},
        {"retry": 1e300},
        {"timeout": 1e300},
        {"timeout": 1e-300},
    ],
    ids=[
        "lease max",
        "lease huge",
        "lease tiny",
        "retry tiny",
        "retry huge",
        "timeout",
        "timeout tiny",
    ],
)
def test_coordinator_times_out_of_range_are_refused(options: dict[str, Any]) -> None:
    """
    A huge lease broke every Lua call: coordination silently off.

    A tiny one made the heartbeat send thousands of commands a second.
    """
    with pytest.raises(ValueError, match=r"at (most|least)"):
        RedisCoordinator(redis.asyncio.Redis(), **options)


def test_a_coordinator_prefix_that_is_not_a_str_is_a_type_error() -> None:
    """Not "argument of type 'int' is not iterable"."""
    with pytest.raises(TypeError, match="prefix must be a str"):
        RedisCoordinator(redis.asyncio.Redis(), prefix=5)  # type: ignore[arg-type]


async def test_a_huge_burst_on_a_coordinator_is_the_same_burst_in_integers() -> None:
    """It raised OverflowError; the tolerance now fits a Lua number exactly."""
    coordinator = RedisCoordinator(redis.asyncio.Redis())
    clients = [
        SequenceClient(API_KEY, rate_limit=rate, rate_limit_burst=1e9, coordinator=c)
        for rate, c in ((1 / 1440, coordinator), (60.0, coordinator))
    ]
    limiters = [c._requester.shared.limiter for c in clients]
    for client in clients:
        await client.aclose()

    assert all(isinstance(limiter, ClusterLimiter) for limiter in limiters)
    tolerances = [limiter._tolerance for limiter in limiters]  # type: ignore[union-attr]
    assert [2**51, int((1e9 - 1) * 1_000_000)] == tolerances


async def test_a_refused_setting_leaves_no_client_attached_to_the_coordinator() -> None:
    """A bad provider after attach() left a link the coordinator counted for ever."""
    coordinator = RedisCoordinator(redis.asyncio.Redis())
    with pytest.raises(TypeError):
        SequenceClient(API_KEY, coordinator=coordinator, tracer_provider=5)

    assert "(0 clients)" in repr(coordinator)


# -- the command line's bulk inputs ---------------------------------------------


def _exit_code(argv: list[str]) -> int:
    # main()'s code, or argparse's exit for an option it refused.
    try:
        return main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)


@pytest.mark.parametrize(
    "argv",
    [
        ["trigger-many", "rule_0001", "--repeat", str(MAX_ITEMS + 1)],
        ["trigger-many", "rule_0001", "rule_0002", "--repeat", str(MAX_ITEMS // 2 + 1)],
        ["demo", "--count", str(MAX_ITEMS + 1)],
        ["demo", "--rules", "10001"],
    ],
    ids=["repeat", "ids times repeat", "demo count", "demo rules"],
)
def test_a_bulk_run_past_a_million_items_is_a_usage_error_at_once(
    argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--repeat 1000000000 built the whole list first: minutes, then MemoryError."""
    monkeypatch.setenv("SEQUENCE_API_KEY", API_KEY)
    monkeypatch.setenv("SEQUENCE_BASE_URL", "http://127.0.0.1:9/api/v1")

    assert 2 == _exit_code(argv)
    assert "at most" in capsys.readouterr().err


def test_an_endless_stdin_of_rule_ids_is_read_no_further_than_the_limit(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`yes rule_0001 | sequence-async trigger-many -` read until memory ran out."""

    class Endless:
        read_lines = 0

        def readline(self, _size: int = -1) -> str:
            Endless.read_lines += 1
            return "rule_0001\n"

    monkeypatch.setattr(sys, "stdin", Endless())
    monkeypatch.setenv("SEQUENCE_API_KEY", API_KEY)
    monkeypatch.setenv("SEQUENCE_BASE_URL", "http://127.0.0.1:9/api/v1")

    assert 2 == _exit_code(["trigger-many", "-"])
    assert "split the input" in capsys.readouterr().err
    assert MAX_ITEMS + 1 == Endless.read_lines


async def test_a_trailing_question_mark_never_reaches_the_server() -> None:
    """'.../api/v1?x=1' sent POST /api/v1?x=1/rules/... with the key, as a 404."""
    seen: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        return web.json_response({"data": [], "page_info": {}})

    async with hostile({("GET", "/accounts"): anything}) as base_url:
        with pytest.raises(ValueError, match="query"):
            SequenceClient(API_KEY, base_url=base_url + "?x=1")

    assert [] == seen


@pytest.mark.parametrize(
    ("speaks", "path"), [("api-v1", "/platform/v1"), ("platform-v1", "/api/v1/")]
)
async def test_a_401_from_a_base_url_of_the_other_api_says_which_api_to_pass(
    speaks: str, path: str
) -> None:
    """It was a bare "invalid API key", with a valid key."""
    other = "platform-v1" if speaks == "api-v1" else "api-v1"

    async def refused(request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": "unauthorized"}}, status=401)

    app = web.Application()
    app.router.add_route("GET", path.rstrip("/") + "/accounts", refused)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with SequenceClient(
            API_KEY, api=speaks, base_url=f"http://127.0.0.1:{port}{path}"
        ) as client:
            with pytest.raises(AuthenticationError, match=f"pass api='{other}'"):
                await client.accounts.list()
    finally:
        await runner.cleanup()


def test_a_seed_with_a_field_it_does_not_have_is_refused() -> None:
    """A misspelt "rules" was an empty organization, silently."""
    with pytest.raises(ValueError, match=r"unknown fields \['ruels'\]"):
        Seed.from_json('{"ruels": [], "keys": {}}')


def test_a_stdin_line_longer_than_any_id_is_refused_not_read_whole(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """3 GB with no newline was read whole: a MemoryError."""

    class NoNewline:
        asked: list[int] = []  # noqa: RUF012 (the class is the test's record)

        def readline(self, size: int = -1) -> str:
            NoNewline.asked.append(size)
            return "a" * size  # an endless line, as much as asked for

    monkeypatch.setattr(sys, "stdin", NoNewline())
    monkeypatch.setenv("SEQUENCE_API_KEY", API_KEY)
    monkeypatch.setenv("SEQUENCE_BASE_URL", "http://127.0.0.1:9/api/v1")

    assert 2 == _exit_code(["trigger-many", "-"])
    assert "longer than 1024 characters" in capsys.readouterr().err
    assert [1026] == NoNewline.asked


def test_one_request_a_day_however_written_is_taken() -> None:
    """1/24/60 is one ulp under 1/1440: it was refused as below one a day."""
    client = SequenceClient(API_KEY, rate_limit=1 / 24 / 60)

    assert client._requester.shared.limiter is not None


async def test_an_error_page_of_megabytes_quoting_the_keys_head_shows_none_of_it() -> (
    None
):
    """Redacting the whole 4 MiB page held the loop for a second; now only its head."""
    page = f"<html>{API_KEY[:20]}".encode() + b"x" * (4 << 20)
    transport = FakeTransport(status(400, page))
    with pytest.raises(BadRequestError) as raised:
        await requester(transport).request("GET", "/accounts")

    assert str(raised.value).startswith("400 error: <html><redacted>xxx")
