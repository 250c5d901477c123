"""
Regression tests of the defects found by attacking the SDK (issue 8).

Hostile servers are real aiohttp servers on loopback (``conftest.hostile``);
request-path cases use the ``FakeTransport`` seam.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import math
import os
import pickle
import random
import subprocess
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sequence_async import (
    APIConnectionError,
    ClientClosedError,
    EventLoopError,
    ExecutionStatus,
    OutcomeUnknownError,
    PollPolicy,
    ResponseTooLargeError,
    ResponseValidationError,
    RetryPolicy,
    SequenceClient,
    TriggerOutcome,
    TriggerRequest,
    _convert,
    _wire,
    errors,
    models,
)
from sequence_async._ids import new_id, new_request_id
from sequence_async._ratelimit import Priority, TokenBucket
from sequence_async._rules import Rules
from sequence_async.testing import Behavior, FakeSequence

from .conftest import (
    API_KEY,
    FAST_POLL,
    NO_WAIT_RETRIES,
    FakeTransport,
    hostile,
    ok,
    requester,
    status,
)
from .test_execution import other_tasks


DEEP = b"[" * 100_000 + b"]" * 100_000


def client_of(base_url: str, **options: Any) -> SequenceClient:
    """A client of *base_url* that polls fast and retries without sleeping."""
    settings: dict[str, Any] = {"poll": FAST_POLL, "retry": NO_WAIT_RETRIES}
    return SequenceClient(API_KEY, base_url=base_url, **{**settings, **options})


def executed(execution_id: str, rule_id: str = "r1") -> dict[str, Any]:
    """An execution's JSON, terminal."""
    return {"id": execution_id, "rule_id": rule_id, "status": "executed"}


def answer(data: Any, status: int = 200) -> web.Response:
    """An enveloped JSON answer."""
    return web.json_response({"request_id": "req", "data": data}, status=status)


async def accepted(_: web.Request) -> web.Response:
    """A trigger accepted as execution ex1."""
    return answer({"execution_id": "ex1"}, 202)


# -- money and data -----------------------------------------------------------


def make(_: int) -> str:
    """A new id."""
    return new_id()


@pytest.mark.parametrize("make_id", [new_id, new_request_id])
def test_ids_are_unique_across_threads(make_id: Callable[[], str]) -> None:
    """Threads making ids at once never get the same one (item 2)."""
    ids: list[list[str]] = [[] for _ in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [
            threading.Thread(
                target=lambda out=out: out.extend(make_id() for _ in range(20_000))
            )
            for out in ids
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)

    every = [i for out in ids for i in out]
    assert len(every) == len(set(every))


@pytest.mark.parametrize("make_id", [new_id, new_request_id])
def test_ids_are_version_4_uuids_that_a_seeded_random_module_does_not_repeat(
    make_id: Callable[[], str],
) -> None:
    """A caller seeding ``random`` (tests, simulations) gets no repeated ids."""
    state = random.getstate()
    try:
        random.seed(7)
        first = make_id()
        random.seed(7)
        again = make_id()
    finally:
        random.setstate(state)
    assert first != again
    assert [uuid.UUID(i).version for i in (first, again)] == [4, 4]
    assert [str(uuid.UUID(i)) for i in (first, again)] == [first, again]


_FORKED = """
import os, sys
from sequence_async._ids import new_id, new_request_id
make = {"new_id": new_id, "new_request_id": new_request_id}[sys.argv[1]]
make()
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    os.write(write, " ".join(make() for _ in range(3)).encode())
    os._exit(0)
os.close(write)
child = os.fdopen(read).read()
os.waitpid(pid, 0)
print(child)
print(" ".join(make() for _ in range(3)))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is POSIX-only")
@pytest.mark.parametrize("name", ["new_id", "new_request_id"])
def test_a_forked_child_makes_other_ids_than_its_parent(name: str) -> None:
    """After os.fork(), parent and child never make the same next ids."""
    # (In a process of its own: this one has threads, and forking it warns.)
    done = subprocess.run(  # noqa: S603 (our own interpreter and code)
        [sys.executable, "-c", _FORKED, name],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    child, parent = (set(line.split()) for line in done.stdout.splitlines())
    assert len(child) == len(parent) == 3
    assert not child & parent


async def test_a_breaking_input_lets_sent_items_finish_then_raises(
    live: SequenceClient, server: FakeSequence
) -> None:
    """Items sent before the input raised still end as outcomes (item 3)."""
    server.set_behavior("*", Behavior(median=0.0, sigma=0.0))

    def items() -> Iterator[str]:
        for n in range(40):
            yield f"rule_000{n % 3 + 1}"
        raise RuntimeError("input broke")

    outcomes: list[TriggerOutcome] = []

    async def consume() -> None:
        async with live.trigger_many(items(), concurrency=16, wait=False) as run:
            async for outcome in run:
                outcomes.append(outcome)  # noqa: PERF401 (kept when the input raises)

    with pytest.raises(RuntimeError, match="input broke"):
        await consume()

    assert 40 == len(outcomes)
    assert len(server.executions()) == len([o for o in outcomes if o.execution])
    assert all(o.idempotency_key for o in outcomes)


async def test_closing_during_a_trigger_keeps_the_key() -> None:
    """aclose() while a trigger is in flight ends it in OutcomeUnknownError (item 4)."""
    arrived = asyncio.Event()

    async def stall(_: web.Request) -> web.Response:
        arrived.set()
        await asyncio.sleep(3600)
        raise AssertionError  # pragma: no cover

    async with hostile({("POST", "/rules/r1/trigger"): stall}) as base_url:
        client = client_of(base_url)
        task = asyncio.create_task(client.rules.trigger("r1", idempotency_key="k-4"))
        await arrived.wait()
        await client.aclose()

        with pytest.raises(OutcomeUnknownError) as info:
            await task

    assert "k-4" == info.value.idempotency_key


async def test_refused_connections_are_not_outcome_unknown() -> None:
    """A trigger that reached no server is a plain APIConnectionError (item 5)."""
    async with hostile({}) as base_url:
        pass  # the port is free again
    async with client_of(base_url) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.rules.trigger("r1")

    assert not isinstance(info.value, OutcomeUnknownError)
    assert info.value.sent is False


async def test_malformed_and_foreign_polls_are_retried() -> None:
    """Garbage and another execution's snapshot are retried, never returned (6, 7)."""
    answers = [
        web.Response(body=b"<html>oops"),
        answer(
            {"id": "ex1", "rule_id": "r1", "status": "in_progress", "x": DEEP.decode()}
        ),
        answer(executed("ex_other")),
        answer(executed("ex1", rule_id="r2")),
        answer(
            {"id": "ex1", "rule_id": "r1", "status": "executed", "amount_in_cents": 1.5}
        ),
        answer(executed("ex1")),
    ]

    async def poll(_: web.Request) -> web.Response:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    routes = {
        ("POST", "/rules/r1/trigger"): accepted,
        ("GET", "/rule-executions/ex1"): poll,
    }
    async with hostile(routes) as base_url, client_of(base_url) as client:
        result = await client.trigger_and_wait("r1", timeout=30)

    assert ("ex1", ExecutionStatus.EXECUTED) == (result.id, result.status)
    assert 1 == len(answers)


@pytest.mark.parametrize("value", [1999.99, "1999", True])
def test_money_fields_are_never_coerced(value: object) -> None:
    """Integer fields reject floats, strings and bools (item 8)."""
    with pytest.raises(ResponseValidationError, match="amount_in_cents"):
        _convert.structure({"id": "t", "amount_in_cents": value}, models.Transfer)


@pytest.mark.parametrize(
    "options",
    [{"timeout": 0}, {"timeout": -1}, {"timeout": math.nan}, {"max_failures": 1.5}],
)
async def test_bad_bulk_arguments_are_refused_before_sending(
    live: SequenceClient, server: FakeSequence, options: dict[str, Any]
) -> None:
    """trigger_all checks timeout and max_failures before any trigger (item 9)."""
    with pytest.raises((TypeError, ValueError)):
        await live.trigger_all(["rule_0001"], **options)

    assert 0 == server.counts["trigger_rule"]


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": 0},
        {"timeout": -1},
        {"timeout": math.nan},
        {"rate_limit": math.nan},
        {"max_retries": 1.5},
        {"max_retries": True},
        {"base_url": "api.getsequence.io/api/v1"},
        {"default_headers": {"X": "a\r\nInjected: 1"}},
        {"max_response_bytes": 0},
    ],
)
def test_bad_client_settings_are_refused(options: dict[str, Any]) -> None:
    """Every client setting is checked at construction (items 9, 22)."""
    with pytest.raises((TypeError, ValueError)):
        SequenceClient(API_KEY, **options)


async def test_polls_keep_a_share_of_a_busy_limiter() -> None:
    """Queued polls get every fourth token while triggers wait too (item 10)."""
    bucket = TokenBucket(60_000, burst=1)
    bucket.drain(0.05)  # nothing is admitted for 50 ms: every task below queues
    order: list[str] = []

    async def take(kind: str, priority: Priority) -> None:
        await bucket.acquire(priority)
        order.append(kind)

    tasks = [asyncio.create_task(take("trigger", Priority.TRIGGER)) for _ in range(12)]
    tasks += [asyncio.create_task(take("poll", Priority.POLL)) for _ in range(3)]
    await asyncio.gather(*tasks)

    assert ["trigger"] * 3 + ["poll"] == order[:4]
    assert 3 == order[:12].count("poll")


# -- hangs and resource exhaustion ---------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["99999999", "inf", "1e309", "Fri, 31 Dec 9999 23:59:59 GMT", "-5", "nan"],
)
def test_server_delays_are_capped(value: str) -> None:
    """Every Retry-After is finite, non-negative and at most a minute (item 11)."""
    delay = _wire.parse_retry_after(value, now=datetime.now(UTC))

    assert delay is None or 0.0 <= delay <= _wire.MAX_SERVER_DELAY


async def test_a_huge_retry_after_drains_the_limiter_for_a_minute_at_most() -> None:
    """A 429 with Retry-After: inf pauses the limiter for the cap, not for ever."""
    clock = [0.0]
    bucket = TokenBucket(600, clock=lambda: clock[0])
    bucket.drain(math.inf)
    clock[0] = _wire.MAX_SERVER_DELAY + 0.1

    async with asyncio.timeout(1):
        await bucket.acquire()


def gzip_bomb() -> bytes:
    """Small compressed, 64 MiB inflated."""
    return gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)


@pytest.mark.parametrize("kind", ["big", "endless", "bomb"])
async def test_bodies_are_capped(kind: str) -> None:
    """A huge, endless or gzip-bomb body ends in ResponseTooLargeError (item 12)."""
    bomb = gzip_bomb() if kind == "bomb" else b""

    async def huge(request: web.Request) -> web.StreamResponse:
        if kind == "big":
            return web.Response(body=b"x" * (5 * 1024 * 1024))
        if kind == "bomb":
            return web.Response(body=bomb, headers={"Content-Encoding": "gzip"})
        response = web.StreamResponse()
        await response.prepare(request)
        while True:
            await response.write(b"x" * 65536)

    once = RetryPolicy(max_retries=0)
    async with (
        hostile({("GET", "/accounts"): huge}) as base_url,
        client_of(base_url, retry=once) as client,
    ):
        with pytest.raises(ResponseTooLargeError):
            await client.accounts.list()


@pytest.mark.parametrize("first", ["capped", "read"])
async def test_a_connection_is_reused_only_after_a_whole_answer(first: str) -> None:
    """After a capped body the next call gets a new connection and its own answer."""
    peers: list[object] = []

    async def accounts(request: web.Request) -> web.StreamResponse:
        peers.append(request.transport and request.transport.get_extra_info("peername"))
        if len(peers) == 1 and first == "capped":
            return web.Response(body=b'{"data": [' + b" " * (3 * 1024 * 1024))
        return answer([{"id": f"acc_{len(peers)}", "name": "Main"}])

    once = RetryPolicy(max_retries=0)
    async with (
        hostile({("GET", "/accounts"): accounts}) as base_url,
        client_of(base_url, retry=once, max_response_bytes=1024 * 1024) as client,
    ):
        if first == "capped":
            with pytest.raises(ResponseTooLargeError):
                await client.accounts.list()
        else:
            await client.accounts.list()
        second = await client.accounts.list()

    assert [account.id for account in second] == ["acc_2"]
    # A whole answer leaves its connection for the next call; a cut one never.
    assert (peers[0] == peers[1]) is (first == "read")


async def test_bytes_after_the_end_of_a_gzip_body_are_refused_not_hoarded() -> None:
    """Endless bytes after a gzip member end the read with a typed error (12)."""
    member = gzip.compress(b'{"request_id": "r", "data": []}')

    async def trailing(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Encoding": "gzip"})
        await response.prepare(request)
        await response.write(member)
        while True:  # zlib used to keep all of it, uncounted
            await response.write(b"\0" * 65536)

    once = RetryPolicy(max_retries=0)
    async with (
        hostile({("GET", "/accounts"): trailing}) as base_url,
        client_of(base_url, retry=once) as client,
    ):
        with pytest.raises(ResponseValidationError, match="after the end"):
            await client.accounts.list()


@pytest.mark.parametrize("page_info", [{"end_cursor": "c1", "has_next_page": True}])
async def test_paging_stops_on_a_repeated_cursor_or_empty_page(
    page_info: dict[str, Any],
) -> None:
    """A server repeating its cursor, or sending empty pages, ends the listing (13)."""
    sent = [0]

    async def pages(request: web.Request) -> web.Response:
        sent[0] += 1
        items = [] if request.query.get("after") else [{"id": "t1"}]
        return web.json_response({"data": items, "page_info": page_info})

    async with (
        hostile({("GET", "/transfers"): pages}) as base_url,
        client_of(base_url) as client,
    ):
        items = [t async for t in client.transfers.list(account_id="a")]

    assert ["t1"] == [t.id for t in items]
    assert 2 == sent[0]


@pytest.mark.parametrize("cursor", [None, ""])
async def test_more_pages_said_without_a_cursor_end_the_listing_with_a_warning(
    cursor: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    """has_next_page true with no cursor to follow: said, not a silent end."""

    async def page(request: web.Request) -> web.Response:
        info = {"end_cursor": cursor, "has_next_page": True}
        return web.json_response({"data": [{"id": "t1"}], "page_info": info})

    async with (
        hostile({("GET", "/transfers"): page}) as base_url,
        client_of(base_url) as client,
    ):
        items = [t async for t in client.transfers.list(account_id="a")]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    assert ["t1"] == [t.id for t in items]
    assert any("sent no cursor" in w for w in warnings)


async def test_deeply_nested_json_is_a_typed_error() -> None:
    """Nesting that would exhaust the stack is a typed error everywhere (item 14)."""
    transport = FakeTransport(Response_deep(200))
    with pytest.raises(ResponseValidationError):
        await requester(transport).request("GET", "/accounts")

    busy = FakeTransport(Response_deep(503))
    with pytest.raises(OutcomeUnknownError) as info:
        await requester(busy).request("POST", "/x", json={}, idempotency_key="k-14")
    assert "k-14" == info.value.idempotency_key

    async with SequenceClient(API_KEY) as client:
        with pytest.raises(ValueError, match="token"):
            client.execution_from_token(DEEP.decode()[:4000])


def Response_deep(code: int) -> _wire.Response:  # noqa: N802
    """An answer nested 100,000 levels deep."""
    return status(code, DEEP)


async def test_aclose_stops_queued_requests_and_polls(
    live: SequenceClient, server: FakeSequence
) -> None:
    """After aclose() nothing is sent and no task remains (item 15)."""
    slow = SequenceClient(
        server.api_key, base_url=server.url, rate_limit=60, rate_limit_burst=1
    )
    await slow.accounts.list()
    queued = asyncio.create_task(slow.accounts.list())
    execution = await live.rules.trigger("rule_0001")
    # The first poll is due in 30 s: the poll loop is asleep at the close.
    later = PollPolicy(wait_initial=30, wait_max=30)
    waiting = asyncio.create_task(execution.wait(timeout=60, poll=later))
    await asyncio.sleep(0)  # both tasks reach their await
    sent = sum(server.counts.values())

    await slow.aclose()
    await live.aclose()

    with pytest.raises(ClientClosedError):
        await queued
    with pytest.raises(ClientClosedError):
        await waiting
    assert sent == sum(server.counts.values())
    assert not other_tasks()


# -- security -------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["..", ".", "", "../accounts/acc_0001"])
async def test_ids_never_leave_their_path_segment(bad: str) -> None:
    """Dot segments are refused and every id is quoted (item 16)."""
    transport = FakeTransport(ok({"execution_id": "ex1"}, 202))
    rules = Rules(requester(transport))

    if bad in ("..", ".", ""):
        with pytest.raises(ValueError):
            await rules.trigger(bad)
        assert [] == transport.sent
    else:
        await rules.trigger(bad)
        assert "/rules/..%2Faccounts%2Facc_0001/trigger" == transport.sent[0].path


async def test_a_rule_id_is_checked_every_time_it_is_sent_however_spelled() -> None:
    """A refused id stays refused; a str subclass is checked as its text."""

    class Id(str):
        __slots__ = ()

    transport = FakeTransport(ok({"execution_id": "ex1"}, 202))
    rules = Rules(requester(transport))

    for _ in range(2):
        with pytest.raises(ValueError):
            await rules.trigger("..")
        with pytest.raises(ValueError):
            await rules.trigger(Id(".."))
    await rules.trigger(Id("rule/1"))
    await rules.trigger("rule/1")

    assert 2 * ["/rules/rule%2F1/trigger"] == [r.path for r in transport.sent]


async def test_tokens_with_escaping_ids_are_refused() -> None:
    """A resume token whose id would leave its segment is a ValueError (item 16)."""
    token = json.dumps(
        {"v": 1, "id": "..", "rule_id": "r1", "triggered_at": "2026-01-01T00:00:00Z"}
    )
    async with SequenceClient(API_KEY) as client:
        with pytest.raises(ValueError, match="token"):
            client.execution_from_token(token)


@pytest.mark.parametrize("borrowed", [False, True], ids=["own session", "caller's"])
async def test_the_key_is_not_in_tracebacks_or_pickles(borrowed: bool) -> None:
    """Neither a caller's timeout traceback nor a pickle holds the key (item 17).

    On either session: the headers merged for one are hidden in a repr too.
    """

    async def stall(_: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        raise AssertionError  # pragma: no cover

    async with (
        aiohttp.ClientSession() as session,
        hostile({("GET", "/accounts"): stall}) as base_url,
        client_of(base_url, session=session if borrowed else None) as client,
    ):
        with pytest.raises(TimeoutError) as info:
            async with asyncio.timeout(0.2):
                await client.accounts.list()
        with pytest.raises(TypeError):
            pickle.dumps(client)

    text = "".join(
        traceback.TracebackException.from_exception(
            info.value, capture_locals=True
        ).format()
    )
    assert API_KEY not in text


async def test_redirects_are_never_followed() -> None:
    """A 307 is an error; its target is never asked (item 18)."""
    hits: list[str] = []

    async def redirect(_: web.Request) -> web.Response:
        return web.json_response(
            {"data": {"execution_id": "x"}},
            status=307,
            headers={"Location": "/api/v1/rules/r2/trigger"},
        )

    async def other(request: web.Request) -> web.Response:
        hits.append(request.path)
        return answer({"execution_id": "ex2"}, 202)

    routes = {
        ("POST", "/rules/r1/trigger"): redirect,
        ("POST", "/rules/r2/trigger"): other,
    }
    async with hostile(routes) as base_url, client_of(base_url) as client:
        with pytest.raises(ResponseValidationError, match="307"):
            await client.rules.trigger("r1")

    assert [] == hits


# -- correctness -----------------------------------------------------------------


async def test_views_poll_with_their_own_settings() -> None:
    """Waits started from a view use the view's timeout for their polls (item 19)."""
    transport = FakeTransport(ok({"execution_id": "ex1"}, 202), ok(executed("ex1")))
    base = requester(transport, timeout=30.0)
    view = base.evolve(timeout=1.5)

    execution = await Rules(view).trigger("r1")
    await execution.wait(timeout=10)

    assert [1.5, 1.5] == transport.timeouts


def every_error() -> list[errors.SequenceError]:
    """One of each public exception, with its attributes set."""
    result = models.RuleExecution(id="ex1", rule_id="r1", status=ExecutionStatus.FAILED)
    return [
        errors.APIConnectionError("x", request_id="r", sent=False),
        errors.APITimeoutError("x", request_id="r"),
        errors.ServerError(
            "boom", status=503, code="c", request_id="r", idempotency_key="k"
        ),
        errors.RateLimitError("slow", status=429, retry_after=2.0),
        errors.NotFoundError("no", status=404),
        errors.ResponseValidationError("bad", status=200, request_id="r"),
        errors.ResponseTooLargeError("big", status=200),
        errors.OutcomeUnknownError("lost", idempotency_key="k-20"),
        errors.ExecutionFailedError(result),
        errors.NotStartedError("skipped"),
        errors.ClientClosedError("closed"),
        errors.EventLoopError("loop"),
    ]


async def test_errors_round_trip_through_pickle_without_the_key() -> None:
    """Every public exception pickles with its attributes and no secret (item 20)."""
    transport = FakeTransport(ok({"execution_id": "ex1"}, 202))
    execution = await Rules(requester(transport)).trigger("r1")
    timeout = errors.WaitTimeoutError(execution, timeout=1.0, last_status="in_progress")

    for error in [*every_error(), timeout]:
        data = pickle.dumps(error)
        copy = pickle.loads(data)  # noqa: S301 (our own bytes)

        assert API_KEY.encode() not in data
        assert (type(error), str(error)) == (type(copy), str(copy))
        assert {k: repr(v) for k, v in vars(error).items()} == {
            k: repr(v) for k, v in vars(copy).items()
        }


async def test_transport_errors_keep_their_cause() -> None:
    """A connection failure chains aiohttp's error, without its frames (item 21)."""
    async with hostile({}) as base_url:
        pass
    async with client_of(base_url) as client:
        with pytest.raises(APIConnectionError) as info:
            await client.accounts.list()

    cause = info.value.__cause__
    assert cause is not None
    assert cause.__traceback__ is None


def test_a_client_reused_in_a_second_event_loop_says_so() -> None:
    """A second asyncio.run() gives EventLoopError, not 'Event loop is closed' (22)."""
    clients: list[SequenceClient] = []

    async def use() -> None:
        async with aiohttp.ClientSession() as session:
            client = SequenceClient(
                API_KEY, base_url="http://127.0.0.1:9/api/v1", session=session
            )
            clients.append(client)
            with pytest.raises(APIConnectionError):
                await client.accounts.list()

    asyncio.run(use())
    client = clients[0]

    async def again() -> None:
        await client.accounts.list()

    with pytest.raises(EventLoopError):
        asyncio.run(again())


async def test_small_argument_checks(live: SequenceClient) -> None:
    """Description must be a str; a NaN wait timeout is a ValueError (item 22)."""
    with pytest.raises(TypeError, match="description"):
        await live.transfers.create(
            source_account_id="a",
            destination_account_id="b",
            amount_in_cents=100,
            description=123,  # type: ignore[arg-type]
        )
    execution = await live.rules.trigger("rule_0001")
    with pytest.raises(ValueError, match="timeout"):
        await execution.wait(timeout=math.nan)


async def test_trigger_requests_carry_request_ids(
    live: SequenceClient, server: FakeSequence
) -> None:
    """TriggerRequest.request_id is sent as X-Request-ID (issue 9 item 10)."""
    outcomes = await live.trigger_all(
        [TriggerRequest("rule_0001", request_id="req-bulk-1")], wait=False
    )

    assert outcomes[0].ok
    assert "req-bulk-1" in [r.headers.get("X-Request-ID") for r in server.received]
