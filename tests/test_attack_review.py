"""
Regression tests of the second attack review (hangs, secrets, checks).
"""

from __future__ import annotations

import asyncio
import json
import pickle
import traceback
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web

from sequence_async import (
    APITimeoutError,
    AuthenticationError,
    OutcomeUnknownError,
    PollPolicy,
    RateLimitError,
    ResponseValidationError,
    RetryPolicy,
    SequenceClient,
    SequenceError,
    _convert,
    models,
)
from sequence_async._rules import Rules
from sequence_async._wire import Response
from sequence_async.testing import FakeSequence

from .conftest import (
    API_KEY,
    NO_WAIT_RETRIES,
    FakeTransport,
    api_error,
    hostile,
    ok,
    requester,
    status,
)


def test_long_waits_never_overflow_the_schedules() -> None:
    """Poll 10,000 and retry 5,000 get the capped delay, not an OverflowError."""
    assert 15.0 * 0.8 <= PollPolicy().delay(10_000) <= 15.0 * 1.2
    assert RetryPolicy().backoff(5_000) <= 8.0


async def test_a_token_from_a_fast_clock_is_polled_at_once(
    live: SequenceClient, server: FakeSequence
) -> None:
    """A trigger time an hour ahead of this clock does not delay the first poll."""
    execution = await live.rules.trigger("rule_0001")
    token = json.loads(execution.to_token())
    ahead = datetime.now(UTC) + timedelta(hours=1)
    token["triggered_at"] = ahead.isoformat()
    handle = live.execution_from_token(json.dumps(token))
    server.finish(execution.id)

    async with asyncio.timeout(5):
        result = await handle.wait(timeout=None)

    assert execution.id == result.id


async def test_failed_list_polls_do_not_fan_out_per_wait() -> None:
    """Past the grace period, a failing list poll is not followed by a GET per wait."""
    counts = {"list": 0, "get": 0}

    async def trigger(request: web.Request) -> web.Response:
        number = int(request.headers["Idempotency-Key"][-2:], 16)
        return web.json_response({"data": {"execution_id": f"ex{number}"}}, status=202)

    async def listing(_: web.Request) -> web.Response:
        counts["list"] += 1
        return web.Response(status=500)

    async def one(_: web.Request) -> web.Response:
        counts["get"] += 1
        return web.Response(status=500)

    routes = {
        ("POST", "/rules/r1/trigger"): trigger,
        ("GET", "/rule-executions"): listing,
        ("GET", "/rule-executions/{id}"): one,
    }
    grace = PollPolicy(
        wait_initial=0.01, multiplier=1, wait_max=0.01, jitter=0, not_visible_grace=0
    )
    async with (
        hostile(routes) as base_url,
        SequenceClient(
            API_KEY,
            base_url=base_url,
            poll=grace,
            retry=RetryPolicy(max_retries=0),
        ) as client,
    ):
        executions = [
            await client.rules.trigger("r1", idempotency_key=f"key-{n:02x}")
            for n in range(20)
        ]
        waits = [asyncio.create_task(e.wait(timeout=0.3)) for e in executions]
        await asyncio.gather(*waits, return_exceptions=True)

    assert counts["list"] > 3
    assert counts["get"] <= len(executions)  # at most the last looks


async def test_an_input_raising_cancelled_error_ends_the_run(
    live: SequenceClient,
) -> None:
    """An async input that raises CancelledError is an input error, not a hang."""

    async def items() -> AsyncIterator[str]:
        yield "rule_0001"
        raise asyncio.CancelledError

    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await live.trigger_all(items(), wait=False)


def test_the_key_is_not_in_the_constructors_locals(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bad setting's traceback, locals included, never shows the key."""
    monkeypatch.setenv("SEQUENCE_API_KEY", API_KEY)
    bad: list[dict[str, object]] = [
        {"timeout": 0},
        {"default_headers": {"X": "a\n"}},
        {"base_url": ""},
    ]
    for options in bad:
        with pytest.raises((TypeError, ValueError)) as info:
            SequenceClient(**options)  # type: ignore[arg-type]
        text = "".join(
            traceback.TracebackException.from_exception(
                info.value, capture_locals=True
            ).format()
        )

        assert API_KEY not in text


@pytest.mark.parametrize(
    "base_url",
    [
        "http://:8080/api/v1",
        "http://a..b/api/v1",
        f"http://{'a' * 64}.io",
        "http://h\\ost/api/v1",
        "http://[::1]x/api/v1",
        "http://x[::1]/api/v1",
    ],
)
def test_a_base_url_without_a_usable_host_is_refused(base_url: str) -> None:
    """No host, one IDNA cannot spell, or one aiohttp cannot parse: refused here."""
    with pytest.raises(ValueError, match="base_url"):
        SequenceClient(API_KEY, base_url=base_url)


@pytest.mark.parametrize("base_url", ["", "   "])
def test_an_empty_base_url_is_refused(base_url: str) -> None:
    """An empty --base-url (an unset shell variable) never means production."""
    with pytest.raises(ValueError, match="base_url"):
        SequenceClient(API_KEY, base_url=base_url)


async def test_gets_check_the_id_they_got() -> None:
    """A get answered with another object's id is a ResponseValidationError."""
    transport = FakeTransport(ok({"id": "rule_other"}))

    with pytest.raises(ResponseValidationError, match="rule_other"):
        await Rules(requester(transport)).get("rule_1")


@pytest.mark.parametrize(
    "options",
    [
        {"session": object()},
        {"ssl": "yes"},
        {"default_headers": {"Host": "evil.test"}},
        {"default_headers": {"X-A": "1", "x-a": "2"}},
        {"default_headers": {"X-A": "a\0b"}},
        {"rate_limit_burst": 5},
    ],
)
def test_more_settings_are_checked_at_construction(options: dict[str, object]) -> None:
    """Sessions, SSL, owned headers, duplicates, NULs and a lone burst are refused."""
    with pytest.raises((TypeError, ValueError)):
        SequenceClient(API_KEY, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rule_id", "amount"),
    [("r" * 256, None), ("a\0b", None), ("r1", 10**30)],
)
async def test_ids_and_amounts_are_bounded(rule_id: str, amount: int | None) -> None:
    """Ids over 255 characters or with control characters, and huge amounts."""
    transport = FakeTransport(ok({"execution_id": "ex1"}, 202))

    with pytest.raises(ValueError):
        await Rules(requester(transport)).trigger(rule_id, manual_execute_amount=amount)

    assert [] == transport.sent


def test_plain_data_nested_too_deep_is_malformed_not_a_later_recursion_error() -> None:
    """Plain data past the depth limit is refused when read (it broke pickling)."""
    deep: object = {"type": "manual"}
    for _ in range(_convert.MAX_PLAIN_DEPTH):
        deep = [deep]
    execution = {"id": "ex1", "status": "executed", "trigger_details": {"a": deep}}

    with pytest.raises(ResponseValidationError, match="trigger_details"):
        _convert.structure(execution, models.RuleExecution)
    execution["trigger_details"] = {"a": [[{"b": 1}]] * 3}
    fitting = _convert.structure(execution, models.RuleExecution)
    assert fitting == pickle.loads(pickle.dumps(fitting))  # noqa: S301 (our own bytes)


@pytest.mark.parametrize(
    "answer",
    [
        api_error(401, "unauthorized", f"invalid key: ApiKey {API_KEY}"),
        status(502, f"<html>bad gateway for ApiKey {API_KEY}</html>".encode()),
        status(200, f"<html>proxy login, key {API_KEY}</html>".encode()),
    ],
)
async def test_a_key_echoed_by_a_server_never_reaches_the_error(
    answer: Response,
) -> None:
    """A server or proxy that echoes the key in its answer: the error hides it."""
    transport = FakeTransport(answer)

    with pytest.raises(SequenceError) as info:
        await requester(transport, retry=RetryPolicy(max_retries=0)).request(
            "GET", "/accounts"
        )

    shown = "".join(traceback.format_exception(info.value))
    assert API_KEY not in shown
    assert "<redacted>" in str(info.value)


def test_a_null_status_is_malformed() -> None:
    """An execution with "status": null is not a status this version does not know."""
    with pytest.raises(ResponseValidationError, match="status"):
        _convert.structure({"id": "ex1", "status": None}, models.RuleExecution)


async def test_a_cancelled_trigger_names_its_key() -> None:
    """Cancelling a trigger in flight adds a note with its idempotency key."""
    arrived = asyncio.Event()

    async def stall(_: web.Request) -> web.Response:
        arrived.set()
        await asyncio.sleep(3600)
        raise AssertionError  # pragma: no cover

    async with (
        hostile({("POST", "/rules/r1/trigger"): stall}) as base_url,
        SequenceClient(API_KEY, base_url=base_url, retry=NO_WAIT_RETRIES) as client,
    ):
        task = asyncio.create_task(client.rules.trigger("r1", idempotency_key="k-9"))
        await arrived.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError) as info:
            await task

    assert any("k-9" in note for note in getattr(info.value, "__notes__", []))


@pytest.mark.parametrize(
    "answer",
    [
        {"body": b"\x00garbage", "headers": {"Content-Encoding": "br"}},
        {"body": b"not gzip", "headers": {"Content-Encoding": "gzip"}},
        {"body": b"x" * (5 * 1024 * 1024)},
    ],
)
async def test_a_5xx_with_an_unreadable_body_counts_as_a_5xx(
    answer: dict[str, object],
) -> None:
    """Its status decides: retried, then OutcomeUnknownError with the key."""
    sent = [0]

    async def failing(_: web.Request) -> web.Response:
        sent[0] += 1
        return web.Response(status=503, **answer)  # type: ignore[arg-type]

    async with (
        hostile({("POST", "/rules/r1/trigger"): failing}) as base_url,
        SequenceClient(API_KEY, base_url=base_url, retry=NO_WAIT_RETRIES) as client,
    ):
        with pytest.raises(OutcomeUnknownError) as info:
            await client.rules.trigger("r1", idempotency_key="k-5xx")

    assert "k-5xx" == info.value.idempotency_key
    assert 1 + NO_WAIT_RETRIES.max_retries == sent[0]


async def test_a_503_retry_after_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    """A 503's Retry-After sets the sleep before the retry, as a 429's does."""
    asked: list[float] = []
    real_sleep = asyncio.sleep

    async def no_sleep(delay: float) -> None:
        asked.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    transport = FakeTransport(
        api_error_with(503, {"Retry-After": "5"}), ok({"execution_id": "ex1"}, 202)
    )

    await Rules(requester(transport, retry=RetryPolicy())).trigger("r1")

    assert [5.0] == asked


async def test_only_429s_are_a_rate_limit_error_not_unknown() -> None:
    """A trigger that only got 429s ran nowhere: RateLimitError, not unknown."""
    transport = FakeTransport(api_error_with(429, {"Retry-After": "0"}))

    with pytest.raises(RateLimitError):
        await Rules(requester(transport, retry=RetryPolicy(max_retries=0))).trigger(
            "r1"
        )


async def test_a_rejection_after_a_lost_attempt_is_still_unknown() -> None:
    """A timeout, then a 401: the first attempt may have run: outcome unknown."""
    transport = FakeTransport(APITimeoutError("lost"), api_error_with(401, {}))

    with pytest.raises(OutcomeUnknownError) as info:
        await Rules(requester(transport)).trigger("r1", idempotency_key="k-401")

    assert "k-401" == info.value.idempotency_key
    assert isinstance(info.value.__cause__, AuthenticationError)


def api_error_with(code: int, headers: dict[str, str]) -> Response:
    """An error answer with *headers*."""
    body = json.dumps({"error": {"code": "c", "message": "m"}}).encode()
    return Response(code, headers, body)
