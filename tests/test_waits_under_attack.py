"""
Waits, polls and settings under attack (helper review of 2026-11-27).

A wait that fails after its trigger was accepted names the execution it
started; a closed client ends a wait as closed, not as timed out; a trigger
time near year 1 ends no wait; settings that would fail at the first retry
or request are refused when given; a redirected trigger keeps its key.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs
import pytest
from aiohttp import web

from sequence_async import (
    ClientClosedError,
    OutcomeUnknownError,
    PermissionDeniedError,
    PollPolicy,
    ResponseValidationError,
    RetryPolicy,
    SequenceClient,
    SequenceError,
    WaitTimeoutError,
)
from sequence_async._observe import Hooks, Observer
from sequence_async._requester import Shared
from sequence_async._rules import Rules
from sequence_async._wire import Response
from sequence_async.testing import Seed

from .conftest import (
    API_KEY,
    FAST_POLL,
    NO_WAIT_RETRIES,
    FakeTransport,
    hostile,
    ok,
    requester,
)
from .test_hostile import answer, client_of, executed


def accepted(execution_id: str = "ex1") -> Any:
    """A trigger route that accepts, naming *execution_id*."""

    async def trigger(_: web.Request) -> web.Response:
        return answer({"execution_id": execution_id}, 202)

    return trigger


async def test_trigger_and_wait_names_the_execution_when_reads_are_refused() -> None:
    """A key that may trigger but not read: the 403 says the rule did start."""

    async def refused(_: web.Request) -> web.Response:
        return web.json_response({"error": {"code": "forbidden"}}, status=403)

    routes = {
        ("POST", "/rules/r1/trigger"): accepted(),
        ("GET", "/rule-executions/ex1"): refused,
        ("GET", "/rule-executions"): refused,
    }
    async with hostile(routes) as base_url, client_of(base_url) as client:
        with pytest.raises(PermissionDeniedError) as raised:
            await client.trigger_and_wait("r1", idempotency_key="pay-1", timeout=30)

    execution = raised.value.execution
    assert execution is not None
    assert ("ex1", "pay-1") == (execution.id, execution.idempotency_key)
    assert any("'ex1'" in note for note in raised.value.__notes__)


async def test_cancelling_trigger_and_wait_once_triggered_names_the_execution() -> None:
    """A cancel during the wait: the CancelledError names the execution and key."""
    polled = asyncio.Event()
    never = asyncio.Event()

    async def stall(_: web.Request) -> web.Response:
        polled.set()
        await never.wait()
        return answer(executed("ex1"))

    routes = {
        ("POST", "/rules/r1/trigger"): accepted(),
        ("GET", "/rule-executions/ex1"): stall,
        ("GET", "/rule-executions"): stall,
    }
    async with hostile(routes) as base_url, client_of(base_url) as client:
        waiting = asyncio.create_task(
            client.trigger_and_wait("r1", idempotency_key="pay-2", timeout=30)
        )
        await polled.wait()
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError) as raised:
            await waiting
        never.set()

    notes = " ".join(raised.value.__notes__)
    assert "'ex1'" in notes
    assert "'pay-2'" in notes


async def test_closing_the_client_during_a_waits_last_look_ends_it_closed() -> None:
    """Not WaitTimeoutError (which invites waiting again): ClientClosedError."""
    looked = asyncio.Event()
    never = asyncio.Event()

    async def stall(_: web.Request) -> web.Response:
        looked.set()  # the only read: no poll is due before the deadline
        await never.wait()
        return answer(executed("ex1"))

    routes = {
        ("POST", "/rules/r1/trigger"): accepted(),
        ("GET", "/rule-executions/ex1"): stall,
    }
    patient = PollPolicy(wait_initial=60.0, multiplier=1.0, wait_max=60.0, jitter=0.0)
    async with hostile(routes) as base_url:
        client = client_of(base_url, poll=patient)
        execution = await client.rules.trigger("r1")
        waiting = asyncio.create_task(execution.wait(timeout=0.05))
        await looked.wait()
        await client.aclose()
        with pytest.raises(ClientClosedError):
            await waiting
        never.set()


def _token(triggered_at: str, execution_id: str = "ex1") -> str:
    return (
        f'{{"v":1,"api":"api-v1","id":"{execution_id}","rule_id":"r1",'
        f'"request_id":null,"idempotency_key":null,"triggered_at":"{triggered_at}"}}'
    )


async def test_a_trigger_time_two_days_from_year_one_ends_no_wait() -> None:
    """A minute of clock skew taken from it once broke every wait on its rule."""
    done = {"id": "ex1", "rule_id": "r1", "status": "executed"}
    peer = {"id": "ex2", "rule_id": "r1", "status": "executed"}

    async def listing(_: web.Request) -> web.Response:
        return web.json_response({"data": [done, peer], "page_info": {}})

    async def one(request: web.Request) -> web.Response:
        wanted = request.match_info["id"]
        return answer(done if wanted == "ex1" else peer)

    routes = {
        ("GET", "/rule-executions"): listing,
        ("GET", "/rule-executions/{id}"): one,
    }
    async with hostile(routes) as base_url, client_of(base_url) as client:
        old = "0001-01-03T00:00:30-14:00"  # year 1, fields and all
        first = client.execution_from_token(_token(old))
        second = client.execution_from_token(_token(old, "ex2"))
        results = await asyncio.gather(first.wait(timeout=30), second.wait(timeout=30))

    assert ["ex1", "ex2"] == [r.id for r in results]


# Within two days of datetime's ends (in UTC: the first is year 1 west of UTC).
EDGES = [
    "0001-01-01T00:00:30-14:00",
    "0001-01-01T00:00:00+00:00",
    "0001-01-02T23:59:00+00:00",
    "9999-12-30T00:01:00+00:00",
    "9999-12-31T23:59:00-14:00",
]


@pytest.mark.parametrize("when", EDGES)
async def test_a_time_at_the_ends_of_time_is_refused_in_a_token_or_a_filter(
    when: str,
) -> None:
    """Ours or the caller's: a ValueError, never an OverflowError later."""
    async with client_of("http://127.0.0.1:9/api/v1") as client:
        with pytest.raises(ValueError, match="token is missing or bad"):
            client.execution_from_token(_token(when))
        with pytest.raises(ValueError, match=r"from_ .* is out of range"):
            client.rule_executions.list(
                rule_id="r1", from_=datetime.fromisoformat(when)
            )


@pytest.mark.parametrize("when", EDGES)
async def test_a_servers_time_at_the_ends_of_time_is_waited_on_all_the_same(
    when: str,
) -> None:
    """Go's zero time is year 1: answers carrying such times still end waits."""
    seen: dict[str, int] = {}

    def execution(execution_id: str) -> dict[str, Any]:
        seen[execution_id] = seen.get(execution_id, 0) + 1
        done = seen[execution_id] > 1  # in progress when fetched, then done
        return {
            "id": execution_id,
            "rule_id": "r1",
            "status": "executed" if done else "in_progress",
            "created_at": when if execution_id == "ex1" else "2026-11-27T10:00:00Z",
            "next_attempt_at": "0001-01-01T00:00:00Z",
        }

    async def listing(_: web.Request) -> web.Response:
        items = [execution("ex1"), execution("ex2")]
        return web.json_response({"data": items, "page_info": {}})

    async def one(request: web.Request) -> web.Response:
        return answer(execution(request.match_info["id"]))

    routes = {
        ("GET", "/rule-executions"): listing,
        ("GET", "/rule-executions/{id}"): one,
    }
    async with hostile(routes) as base_url, client_of(base_url) as client:
        first = await client.execution_from_id("ex1")
        second = await client.execution_from_id("ex2")
        again = client.execution_from_token(first.to_token())
        results = await asyncio.gather(
            first.wait(timeout=30), second.wait(timeout=30), again.wait(timeout=30)
        )

    assert ["executed"] * 3 == [r.status for r in results]


@pytest.mark.parametrize("rule_id", ["..", "a\nb", "r" * 300])
async def test_an_execution_fetched_of_a_rule_that_is_no_id_is_refused(
    rule_id: str,
) -> None:
    """Its handle's own token would be refused: the answer is, when read."""

    async def one(_: web.Request) -> web.Response:
        return answer({"id": "ex1", "rule_id": rule_id, "status": "executed"})

    routes = {("GET", "/rule-executions/{id}"): one}
    async with hostile(routes) as base_url, client_of(base_url) as client:
        with pytest.raises(ResponseValidationError, match="of rule"):
            await client.execution_from_id("ex1")


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        ({"wait_initial": 0j}, TypeError),
        ({"wait_max": Decimal(0)}, TypeError),
        ({"wait_initial": -2}, ValueError),
        ({"wait_initial": 10**400}, ValueError),
    ],
)
def test_retry_delays_of_the_wrong_type_are_refused_when_given(
    setting: dict[str, object], error: type[Exception]
) -> None:
    """0j and Decimal(0) equal 0, and once passed unchecked to fail at a retry."""
    with pytest.raises(error):
        RetryPolicy(**setting)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "setting",
    [{"rate_limit": 5e-324}, {"rate_limit": 10**400}, {"timeout": 10**400}],
)
def test_settings_past_a_floats_range_are_value_errors(
    setting: dict[str, object],
) -> None:
    """Not ZeroDivisionError at the second request, nor a bare OverflowError."""
    with pytest.raises(ValueError):
        SequenceClient(API_KEY, **setting)  # type: ignore[arg-type]


async def test_a_wait_with_a_timeout_past_a_floats_range_is_a_value_error() -> None:
    """wait(timeout=10**400) is refused as a value, before any request."""

    async def never_asked(_: web.Request) -> web.Response:
        raise AssertionError("nothing should be sent")

    routes = {("POST", "/rules/r1/trigger"): never_asked}
    async with hostile(routes) as base_url, client_of(base_url) as client:
        with pytest.raises(ValueError, match="timeout"):
            await client.trigger_and_wait("r1", timeout=10**400)


async def test_trigger_many_on_a_closed_client_raises_before_any_item() -> None:
    """Closed (or another loop's): one error from the loop, not one per item."""
    client = SequenceClient(API_KEY, retry=NO_WAIT_RETRIES, poll=FAST_POLL)
    await client.aclose()
    pulled: list[str] = []

    def items() -> Any:
        for rule_id in ("r1", "r2"):
            pulled.append(rule_id)
            yield rule_id

    with pytest.raises(ClientClosedError):
        await client.trigger_all(items(), wait=False)

    assert [] == pulled


@pytest.mark.parametrize(("code", "unknown"), [(302, True), (301, True), (308, False)])
async def test_a_redirected_trigger_keeps_its_key_unless_told_to_send_it_again(
    code: int, unknown: bool
) -> None:
    """A 302 after a POST may mean done (post-redirect-get); 307/308 mean not here."""
    transport = FakeTransport(Response(code, {"Location": "/elsewhere"}, b""))

    with pytest.raises(SequenceError) as raised:
        await Rules(requester(transport)).trigger("r1", idempotency_key="pay-3")

    assert unknown == isinstance(raised.value, OutcomeUnknownError)
    if unknown:
        assert "pay-3" == raised.value.idempotency_key  # type: ignore[attr-defined]


async def test_a_hook_raising_cancelled_error_is_its_own_not_the_requests() -> None:
    """Nothing cancelled the trigger: it goes on, with its execution."""

    def rude(_: object) -> None:
        raise asyncio.CancelledError

    transport = FakeTransport(ok({"execution_id": "ex1"}, 202))
    base = requester(transport)
    hooked = attrs.evolve(
        base,
        shared=Shared(
            transport, observer=Observer(Hooks({"response": [rude]}), None, base.auth)
        ),
    )

    execution = await Rules(hooked).trigger("r1")

    assert "ex1" == execution.id


def test_an_async_on_progress_is_refused_at_the_call() -> None:
    """It would never run, and warn 'never awaited' at every change."""

    async def progress(_: object) -> None:
        return None

    client = SequenceClient(API_KEY)

    with pytest.raises(TypeError, match="on_progress"):
        client.trigger_many(["r1"], on_progress=progress)  # type: ignore[arg-type]


def test_a_seed_nested_past_the_stack_is_a_value_error() -> None:
    """Not a RecursionError (serve --seed printed a traceback)."""
    with pytest.raises(ValueError, match="seed"):
        Seed.from_json('{"rules": ' + "[" * 100_000 + "]" * 100_000 + "}")


async def test_trigger_and_wait_never_sleeps_past_its_timeout_to_trigger() -> None:
    """A 503 asking for 60 s, timeout=5: OutcomeUnknownError now, with its key."""
    posts: list[str] = []

    async def unavailable(request: web.Request) -> web.Response:
        posts.append(request.headers["Idempotency-Key"])
        return web.json_response(
            {"error": {"code": "unavailable", "message": "busy"}},
            status=503,
            headers={"Retry-After": "60"},
        )

    routes = {("POST", "/rules/{id}/trigger"): unavailable}
    async with hostile(routes) as base_url, client_of(base_url) as client:
        async with asyncio.timeout(30):  # (a guard: 60 s of sleep was the bug)
            with pytest.raises(OutcomeUnknownError) as unknown:
                await client.trigger_and_wait("r1", timeout=5)

    assert [unknown.value.idempotency_key] == posts


async def test_trigger_and_wait_keeps_one_budget_for_trigger_and_wait() -> None:
    """Retry-After 1 s on the trigger, timeout=1.5: the wait gets what is left."""
    posts = [0]

    async def busy_once(_: web.Request) -> web.Response:
        posts[0] += 1
        if posts[0] == 1:
            return web.json_response(
                {"error": {"code": "unavailable", "message": "busy"}},
                status=503,
                headers={"Retry-After": "1"},
            )
        return answer({"execution_id": "ex1"}, 202)

    async def pending(_: web.Request) -> web.Response:
        return answer({"id": "ex1", "rule_id": "r1", "status": "in_progress"})

    routes = {
        ("POST", "/rules/{id}/trigger"): busy_once,
        ("GET", "/rule-executions/{id}"): pending,
        ("GET", "/rule-executions"): pending,
    }
    async with hostile(routes) as base_url, client_of(base_url) as client:
        started = time.monotonic()
        with pytest.raises(WaitTimeoutError) as late:
            await client.trigger_and_wait("r1", timeout=1.5)
        spent = time.monotonic() - started

    assert late.value.execution is not None
    assert "ex1" == late.value.execution.id
    assert 1.5 == late.value.timeout  # the caller's, as it said
    assert spent < 2.4  # not the second slept and then 1.5 s more
