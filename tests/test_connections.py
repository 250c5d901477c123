"""
Connections: one the server closed, a connect that stalls, a proxy.

On a session the client makes (sent below ``ClientSession.request``) and on
a caller's (sent through it).
"""

from __future__ import annotations

import asyncio
import contextlib
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from sequence_async import RetryPolicy, SequenceClient, errors
from sequence_async._transport.direct import Limit

from .conftest import API_KEY, hostile


Reply = Callable[[int, int, bytes], Awaitable[bytes | None]]
NO_RETRIES = RetryPolicy(max_retries=0)
ACCOUNTS = b'{"data": [], "page_info": {"has_next_page": false}}'
TRIGGERED = b'{"data": {"execution_id": "rex_1"}}'
PROXY_LOGIN = aiohttp.encode_basic_auth("user", "p@ss")
ECHOING_HEAD = (
    f"HTTP/1.1 200 OK\r\nX-Echo: {API_KEY}\r\nContent-Length: 100\r\n\r\n"
).encode()


def answer(body: bytes, status: str = "200 OK") -> bytes:
    """A whole HTTP/1.1 answer, its connection kept open."""
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """Read one request, its body too; return its head."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return head


async def serve_replies(
    reply: Reply,
    connection: int,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    heads: list[bytes] | None = None,
) -> None:
    """Answer one connection's requests with *reply*, until it says None."""
    n = 0
    try:
        while head := await read_request(reader):
            n += 1
            if heads is not None:
                heads.append(head)
            out = await reply(connection, n, head)
            if out is None:
                break
            writer.write(out)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def listening(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A loopback TCP server running *handler* per connection; yields its port."""
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@contextlib.asynccontextmanager
async def raw_server(reply: Reply) -> AsyncIterator[tuple[str, list[bytes]]]:
    """
    A loopback HTTP/1.1 server written by hand; yields its base URL and heads.

    ``reply(connection, request, head)`` (both counted from 1) gives the
    bytes to answer, or None to close the connection without a word.
    """
    heads: list[bytes] = []
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await serve_replies(reply, connections, reader, writer, heads)

    async with listening(serve) as port:
        yield f"http://127.0.0.1:{port}/api/v1", heads


def closing_second_request(body: bytes) -> Reply:
    """Answers, but closes the first connection when its second request comes."""

    async def reply(connection: int, request: int, _: bytes) -> bytes | None:
        return None if (connection, request) == (1, 2) else answer(body)

    return reply


@pytest.fixture(params=[False, True], ids=["own session", "caller's"])
async def session(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """None (the client makes its session) or a caller's aiohttp session."""
    if not request.param:
        yield None
        return
    async with aiohttp.ClientSession() as given:
        yield given


@contextlib.asynccontextmanager
async def client_of_closing_server(
    body: bytes, session: aiohttp.ClientSession | None
) -> AsyncIterator[tuple[SequenceClient, list[bytes]]]:
    """
    A client (no retries) of a server closing its first connection at once.

    The server answers *body*, but closes its first connection when the
    second request comes on it; yields the client and the heads it saw.
    """
    async with (
        raw_server(closing_second_request(body)) as (base_url, heads),
        SequenceClient(
            API_KEY, base_url=base_url, retry=NO_RETRIES, session=session
        ) as client,
    ):
        yield client, heads


async def test_a_get_on_a_connection_the_server_closed_is_sent_again_at_once(
    session: aiohttp.ClientSession | None,
) -> None:
    """A pooled connection closed under a GET: a new one, no retry spent."""
    async with client_of_closing_server(ACCOUNTS, session) as (client, heads):
        await client.accounts.list()
        await client.accounts.list()  # on the pooled connection: closed

    assert 3 == len(heads)
    assert heads[1].split(b"\r\n")[0] == heads[2].split(b"\r\n")[0]


async def test_a_trigger_on_a_pooled_connection_closed_is_never_resent_by_itself(
    session: aiohttp.ClientSession | None,
) -> None:
    """A POST that met a closed connection: unknown, not silently resent."""
    async with client_of_closing_server(TRIGGERED, session) as (client, heads):
        await client.rules.trigger("r1")
        with pytest.raises(errors.OutcomeUnknownError) as info:
            await client.rules.trigger("r1", idempotency_key="order-2")

    assert 2 == len(heads)
    assert "order-2" == info.value.idempotency_key


async def test_a_connect_that_stalls_ends_before_the_attempt_as_never_sent(
    session: aiohttp.ClientSession | None,
) -> None:
    """A TLS handshake never answered: "could not connect", safe to send again."""
    accepted = asyncio.Event()

    async def mute(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.Event().wait()
        writer.close()

    async with (
        listening(mute) as port,
        SequenceClient(
            API_KEY,
            base_url=f"https://127.0.0.1:{port}/api/v1",
            retry=NO_RETRIES,
            timeout=0.3,
            session=session,
        ) as client,
    ):
        with pytest.raises(errors.APITimeoutError) as info:
            await client.rules.trigger("r1", idempotency_key="order-1")

    assert accepted.is_set()
    assert info.value.sent is False
    assert "could not connect within 0.3s" in str(info.value)


async def test_requests_go_through_the_environment_proxy_with_its_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY: the proxy gets the absolute URL, its login, our headers.

    To an http target the login goes with each request (aiohttp sends proxy
    headers only in an https target's CONNECT); a traceback's locals never
    show it, nor the key.
    """
    # (What the proxy saw, its secrets as booleans: the locals of this
    # function are in the traceback looked at.)
    seen: list[tuple[str, bool, bool, str | None]] = []

    async def proxy(request: web.Request) -> web.Response:
        seen.append(
            (
                str(request.url),
                request.headers.get("Proxy-Authorization") == PROXY_LOGIN,
                request.headers.get("Authorization") == f"ApiKey {API_KEY}",
                request.headers.get("User-Agent"),
            )
        )
        if request.path.endswith("/a1"):
            await asyncio.Event().wait()  # a stall, cut by the caller
        return web.Response(body=ACCOUNTS, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", proxy)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://user:p%40ss@{host}:{port}")
    try:
        async with SequenceClient(API_KEY, base_url="http://api.test/api/v1") as c:
            await c.accounts.list()
            with pytest.raises(TimeoutError) as info:
                async with asyncio.timeout(0.2):
                    await c.accounts.get("a1")
    finally:
        await runner.cleanup()

    text = "".join(
        traceback.TracebackException.from_exception(
            info.value, capture_locals=True
        ).format()
    )
    assert API_KEY not in text
    assert PROXY_LOGIN not in text
    (url, logged_in, keyed, agent), _ = seen
    assert "http://api.test/api/v1/accounts" == url
    assert (True, True) == (logged_in, keyed)
    assert agent is not None
    assert agent.startswith("sequence-async/")


async def stall(_: web.Request) -> web.Response:
    """A handler that never answers (the server's cleanup cancels it)."""
    await asyncio.Event().wait()
    raise AssertionError  # pragma: no cover


async def half_body(request: web.Request) -> web.StreamResponse:
    """A head and half a body, then nothing."""
    response = web.StreamResponse(headers={"Content-Length": "100"})
    await response.prepare(request)
    await response.write(b'{"data": [')
    return await stall(request)


@pytest.mark.parametrize("handler", [stall, half_body], ids=["no head", "half a body"])
async def test_an_answer_that_stalls_ends_the_attempt_at_its_timeout(
    session: aiohttp.ClientSession | None,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> None:
    """A stalled head or body: "timed out after", the request maybe sent."""
    async with (
        hostile({("GET", "/accounts"): handler}) as base_url,
        SequenceClient(
            API_KEY, base_url=base_url, retry=NO_RETRIES, timeout=0.2, session=session
        ) as client,
    ):
        with pytest.raises(errors.APITimeoutError) as info:
            await client.accounts.list()
        task = asyncio.current_task()
        assert task is not None
        assert 0 == task.cancelling()  # the attempt's own cancellation, undone

    assert info.value.sent is True
    assert "timed out after 0.2s" in str(info.value)


async def test_a_callers_cancellation_goes_through_a_pending_attempt(
    session: aiohttp.ClientSession | None,
) -> None:
    """Cancelled from outside while waiting for an answer: CancelledError."""
    arrived = asyncio.Event()

    async def noted(request: web.Request) -> web.Response:
        arrived.set()
        return await stall(request)

    async with (
        hostile({("GET", "/accounts"): noted}) as base_url,
        SequenceClient(API_KEY, base_url=base_url, session=session) as client,
    ):
        call = asyncio.ensure_future(client.accounts.list())
        await arrived.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call


async def limited(limit: Limit, work: Awaitable[object]) -> object:
    """*work* awaited under *limit*, as the transport does."""
    try:
        done = await work
    except BaseException as exc:
        limit.end(exc)
        raise
    limit.end(None)
    return done


async def test_the_attempt_limit_turns_its_own_cancellation_into_a_timeout() -> None:
    """Limit: its own cancellation ends as TimeoutError, with no cancel left over."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    limit = Limit(loop, 0)

    with pytest.raises(TimeoutError):
        await limited(limit, loop.create_future())

    assert 0 == task.cancelling()


async def test_a_cancellation_from_elsewhere_wins_over_the_attempt_limit() -> None:
    """Limit: cancelled at once by its limit and from elsewhere: CancelledError."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    limit = Limit(loop, 0)
    loop.call_soon(task.cancel)  # in the same turn of the loop as the limit

    with pytest.raises(asyncio.CancelledError):
        await limited(limit, loop.create_future())

    assert 1 == task.cancelling()  # one cancellation left: the other one's
    task.uncancel()  # (the test's own task goes on)


def traceback_text(error: BaseException) -> str:
    """*error*'s traceback as an error reporter keeping locals shows it."""
    return "".join(
        traceback.TracebackException.from_exception(error, capture_locals=True).format()
    )


async def test_a_key_echoed_in_a_head_before_a_broken_body_is_in_no_traceback(
    session: aiohttp.ClientSession | None,
) -> None:
    """An answer whose head echoes the key, its body cut: no frame shows it."""

    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(ECHOING_HEAD + b"{")
        await writer.drain()
        writer.close()

    async with (
        listening(cut) as port,
        SequenceClient(
            API_KEY,
            base_url=f"http://127.0.0.1:{port}/api/v1",
            retry=NO_RETRIES,
            session=session,
        ) as client,
    ):
        with pytest.raises(errors.APIConnectionError) as info:
            await client.accounts.list()
    text = traceback_text(info.value)

    assert API_KEY not in text


async def test_an_answer_nobody_asked_for_is_never_taken_for_the_next_one() -> None:
    """A stray answer on a pooled connection: the next trigger gets its own."""
    pooled, stray_sent = asyncio.Event(), asyncio.Event()
    connections = 0

    async def later(_: int, __: int, ___: bytes) -> bytes:
        return answer(b'{"data": {"execution_id": "rex_2"}}')

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections > 1:
            await serve_replies(later, connections, reader, writer)
            return
        await read_request(reader)
        writer.write(answer(TRIGGERED))
        await pooled.wait()
        writer.write(answer(b'{"data": {"execution_id": "rex_STRAY"}}'))
        stray_sent.set()
        await reader.read()  # (until the client closes it)
        writer.close()

    async with (
        listening(serve) as port,
        SequenceClient(
            API_KEY, base_url=f"http://127.0.0.1:{port}/api/v1", retry=NO_RETRIES
        ) as client,
    ):
        first = await client.rules.trigger("r1", idempotency_key="order-1")
        pooled.set()  # (its answer read, the connection is back in the pool)
        await stray_sent.wait()
        await asyncio.sleep(0)  # one turn: the client reads the stray bytes
        second = await client.rules.trigger("r1", idempotency_key="order-2")

    assert ("rex_1", "rex_2") == (first.id, second.id)


@pytest.mark.parametrize(
    "proxy",
    [
        "http://user:PROXY_PASSWORD@127.0.0.1:99999",  # a bad port
        "http://us%3Aer:PROXY_PASSWORD@127.0.0.1:1",  # a ":" in the login
        "http://user:PROXY_PASSWORD@a..b:1",  # a host IDNA cannot spell
        "socks5://user:PROXY_PASSWORD@127.0.0.1:1080",  # not http(s)
    ],
)
async def test_a_broken_proxy_url_fails_as_not_sent_and_shows_no_password(
    monkeypatch: pytest.MonkeyPatch, proxy: str
) -> None:
    """A proxy aiohttp cannot use: APIConnectionError(sent=False), no password."""
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    del proxy  # (this frame's locals are in the traceback looked at)

    async with SequenceClient(
        API_KEY, base_url="http://api.test/api/v1", retry=NO_RETRIES
    ) as client:
        with pytest.raises(errors.APIConnectionError) as info:
            await client.rules.trigger("r1", idempotency_key="order-1")

    text = traceback_text(info.value)

    assert info.value.sent is False
    assert "HTTP_PROXY" in str(info.value)
    assert "PROXY_PASSWORD" not in text


async def test_closing_the_client_ends_the_calls_waiting_for_a_connection() -> None:
    """aclose() with the pool full: every call, waiting or not, ClientClosedError."""
    arrived = 0
    full = asyncio.Event()

    async def noted(request: web.Request) -> web.Response:
        nonlocal arrived
        arrived += 1
        if arrived == 100:  # the pool's size: the 101st waits for a slot
            full.set()
        return await stall(request)

    async with hostile({("GET", "/accounts"): noted}) as base_url:
        client = SequenceClient(API_KEY, base_url=base_url, retry=NO_RETRIES)
        calls = [asyncio.ensure_future(client.accounts.list()) for _ in range(101)]
        await full.wait()
        await client.aclose()
        ended = await asyncio.gather(*calls, return_exceptions=True)

    assert {errors.ClientClosedError} == {type(e) for e in ended}


async def test_closing_a_callers_session_ends_the_calls_waiting_for_it() -> None:
    """The caller closes its session= with calls waiting: typed errors only."""
    arrived = asyncio.Event()

    async def noted(request: web.Request) -> web.Response:
        arrived.set()
        return await stall(request)

    async with hostile({("GET", "/accounts"): noted}) as base_url:
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        async with SequenceClient(
            API_KEY, base_url=base_url, retry=NO_RETRIES, session=session
        ) as client:
            calls = [asyncio.ensure_future(client.accounts.list()) for _ in range(3)]
            await arrived.wait()  # one in flight, two waiting for the connection
            await session.close()
            ended = await asyncio.gather(*calls, return_exceptions=True)

    assert all(isinstance(e, errors.APIConnectionError) for e in ended), ended
