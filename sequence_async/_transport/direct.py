"""
Sending below ``ClientSession.request``, on a session of ours.

For a session the transport made, ``ClientSession._request`` does much that
never applies (cookies, redirects, traces, middlewares, auth from the URL,
its own timer) at about 15% of a request's cost. ``start`` does what is left,
with aiohttp's own pieces: a ``ClientRequest``, a connection from the
session's connector, the request written and the answer's head read.

``FITS`` says whether this aiohttp has those pieces as aiohttp 3.14 has
them; if not, or when something watches the session (a trace config, or a
patched ``_request``: aioresponses, an APM agent), the transport goes
through ``ClientSession.request`` instead.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import re
from collections.abc import Mapping

import aiohttp
import yarl

from sequence_async._wire import Request


REQUEST = aiohttp.ClientSession._request  # noqa: SLF001 (is it patched?)
# As aiohttp retries a reused connection the server closed (RFC 9112 9.3.1).
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


def _fits() -> bool:
    version = tuple(int(n) for n in re.findall(r"\d+", aiohttp.__version__)[:2])
    try:  # (an internal module of aiohttp's: it may move)
        from aiohttp.client_proto import ResponseHandler  # noqa: PLC0415

        request = set(inspect.signature(aiohttp.ClientRequest).parameters)
        reading = ResponseHandler.set_response_params
        response = set(inspect.signature(reading).parameters)
    except (ImportError, AttributeError, TypeError, ValueError):  # pragma: no cover
        return False
    return (
        (3, 14) <= version < (4, 0)
        and {"loop", "session", "proxy", "proxy_headers"} <= request
        and {"skip_payload", "read_until_eof", "auto_decompress"} <= response
        # Wrapped before this import (an agent): it is to see every request.
        and inspect.isfunction(REQUEST)
        and REQUEST.__module__ == "aiohttp.client"
        and not hasattr(REQUEST, "__wrapped__")
    )


FITS = _fits()
_STALE = (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError)
_TRIES = 16  # (the pool's strayed connections, then a new one)


def _bare_os_error(exc: BaseException) -> bool:
    # An OSError aiohttp did not wrap (a timeout's excepted), which
    # ClientSession.request raises as ClientOSError.
    if not isinstance(exc, OSError) or isinstance(exc, aiohttp.ClientError):
        return False
    return not (isinstance(exc, TimeoutError) and exc.errno is None)


class Limit:
    """
    ``asyncio.timeout(seconds)`` for one attempt, at about a third of its cost.

    The same rules (Python 3.11's own ``Timeout``, written for one use): when
    the limit passes, the task is cancelled; ``end`` then turns that
    cancellation into ``TimeoutError``, unless the task was also cancelled
    from elsewhere, whose cancellation goes on.
    """

    __slots__ = ("_cancelling", "_expired", "_handle", "_task")

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        task = asyncio.current_task(loop)
        if task is None:  # pragma: no cover (asyncio runs coroutines in tasks)
            raise RuntimeError("an attempt must run inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._expired = False
        self._handle = loop.call_at(loop.time() + seconds, self._expire)

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    def end(self, exc: BaseException | None) -> None:
        """
        Stop the limit as the attempt ends (with *exc*, or None).

        Raises:
            TimeoutError: The limit cancelled the attempt (from *exc*).
        """
        self._handle.cancel()
        if (
            self._expired
            and self._task.uncancel() <= self._cancelling
            and isinstance(exc, asyncio.CancelledError)
        ):
            raise TimeoutError from exc


def watched(session: aiohttp.ClientSession) -> bool:
    """
    Whether *session*'s requests must go through ``ClientSession.request``.
    """
    patched = type(session)._request is not REQUEST  # noqa: SLF001
    return patched or bool(session.trace_configs)


async def _connection(
    connector: aiohttp.BaseConnector,
    req: aiohttp.ClientRequest,
    timeout: aiohttp.ClientTimeout,
) -> aiohttp.connector.Connection:
    # A connection for *req*, but not a pooled one that holds bytes nobody
    # asked for (a stray answer the loop has read): they would be read as
    # req's answer. Such a connection is closed and another one taken. (Bytes
    # not read yet, or sent after the request, cannot be told from its
    # answer: HTTP/1.1 has no way to.)
    for _ in range(_TRIES):
        try:
            connection = await connector.connect(req, traces=[], timeout=timeout)
        except TimeoutError as exc:
            message = f"Connection timeout to host {req.url}"
            raise aiohttp.ConnectionTimeoutError(message) from exc
        protocol = connection.protocol
        if protocol is not None and not protocol.should_close:
            return connection
        connection.close()
    unasked = OSError(errno.EPROTO, f"{_TRIES} connections held bytes sent unasked")
    raise aiohttp.ClientConnectorError(req.connection_key, unasked)


async def start(
    session: aiohttp.ClientSession,
    url: yarl.URL,
    request: Request,
    headers: Mapping[str, str],
    *,
    loop: asyncio.AbstractEventLoop,
    timeout: aiohttp.ClientTimeout,
    proxy: yarl.URL | None,
    proxy_headers: Mapping[str, str] | None,
) -> aiohttp.ClientResponse:
    """
    Send *request* to *url* and return the answer, its head read.

    The caller bounds the whole (``Limit``); the connect phase
    (pool wait, DNS, TCP, TLS) ends within ``timeout.connect``, as aiohttp's
    ``ConnectionTimeoutError``: then nothing was sent. A connection the
    server closed meanwhile is retried once at once for an idempotent
    method, as ``ClientSession.request`` does.

    Raises:
        aiohttp.ClientError: As ``ClientSession.request`` raises them.
    """
    connector = session.connector
    assert connector is not None  # noqa: S101 (a session of ours keeps it)
    for again in (request.method in _IDEMPOTENT, False):
        req = aiohttp.ClientRequest(
            request.method,
            url,
            params=request.params,
            headers=headers,
            data=request.body,
            loop=loop,
            session=session,
            proxy=proxy,
            proxy_headers=proxy_headers,
        )
        connection = await _connection(connector, req, timeout)
        protocol = connection.protocol
        assert protocol is not None  # noqa: S101 (checked by _connection)
        protocol.set_response_params(
            skip_payload=request.method == "HEAD",
            read_until_eof=True,
            auto_decompress=False,
        )
        try:
            response = await req.send(connection)
            try:
                await response.start(connection)
            except BaseException:
                response.close()
                raise
        except BaseException as exc:
            connection.close()
            if again and isinstance(exc, _STALE):
                await req.close()  # (its body's writer, ended)
                continue
            if _bare_os_error(exc):
                raise aiohttp.ClientOSError(*exc.args) from exc
            raise
        return response
    raise AssertionError("unreachable")  # pragma: no cover
