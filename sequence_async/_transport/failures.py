"""
What a failed attempt raises, mapped once, here.

aiohttp's failures and timeouts become ``APIConnectionError`` /
``APITimeoutError``, saying whether the request may have been sent.

aiohttp's frames hold the plain ``Authorization`` header in their locals, so
every exception leaves ``send`` without them: its traceback starts there,
and the tracebacks of its cause and context are dropped (their type and
message stay). aiohttp's parse errors quote the server's bytes, shown as
their length only; the key is taken out of every message.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

import aiohttp

from sequence_async import errors
from sequence_async._wire import Request


# A bytes literal as repr() writes it, in either quote.
_QUOTED_BYTES = re.compile(r"b'(?:[^'\\]|\\.)*'" + r'|b"(?:[^"\\]|\\.)*"')


def _text(exc: BaseException) -> str:
    # An aiohttp answer error's text, its message not repr'd a second time
    # (which would escape the quote of the server's bytes).
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{exc.status}, message={exc.message}"
    return str(exc)


def _bytes_shown(quoted: re.Match[str]) -> str:
    return f"<{len(quoted.group())} characters of the answer>"


def failure(
    exc: BaseException,
    request: Request,
    timeout: float,
    *,
    redact: Callable[[str], str],
    closed: bool,
    session: aiohttp.ClientSession | None,
) -> BaseException:
    """
    The typed error *exc* becomes, without aiohttp's frames (see above).
    """
    what = f"{request.method} {request.path}"
    request_id = request.headers.get("X-Request-ID")
    # aiohttp's parse errors quote the server's bytes (cut at 100, so a
    # key may be cut too): shown as their length, never their content.
    told = redact(_QUOTED_BYTES.sub(_bytes_shown, _text(exc)))
    error: BaseException
    if isinstance(exc, aiohttp.ClientConnectorError):
        error = errors.APIConnectionError(
            f"{what} could not connect: {told}", request_id=request_id, sent=False
        )
    elif isinstance(exc, aiohttp.ConnectionTimeoutError):
        error = errors.APITimeoutError(
            f"{what} could not connect within {timeout:g}s",
            request_id=request_id,
            sent=False,
        )
    elif isinstance(exc, TimeoutError | aiohttp.ClientError) and closed:
        error = errors.ClientClosedError(
            "the SequenceClient was closed during the request"
        )
    elif isinstance(exc, TimeoutError):
        error = errors.APITimeoutError(
            f"{what} timed out after {timeout:g}s", request_id=request_id
        )
    elif isinstance(exc, RuntimeError) and session is not None and session.closed:
        # A caller's session closed before the client: nothing was sent.
        error = errors.APIConnectionError(
            f"{what} not sent: the aiohttp session given as session= is closed",
            request_id=request_id,
            sent=False,
        )
    elif isinstance(exc, aiohttp.ClientError):
        error = errors.APIConnectionError(
            f"{what} failed: {type(exc).__name__}: {told}", request_id=request_id
        )
    elif (
        isinstance(exc, asyncio.CancelledError)
        and (closed or (session is not None and session.closed))
        and not _cancelling()
    ):
        # aiohttp's connector, closed, cancels the calls waiting for one of
        # its connections (not their tasks): our close, or the caller's of
        # the session given as session=.
        error = (
            errors.ClientClosedError("the SequenceClient was closed during the request")
            if closed
            else errors.APIConnectionError(
                f"{what} failed: the aiohttp session given as session= was closed "
                "during the request",
                request_id=request_id,
            )
        )
    else:
        # Cancellation (a caller's asyncio.timeout too) and our own typed
        # errors pass unchanged, but without aiohttp's frames.
        return scrubbed(exc, None)
    if told != str(exc) or hasattr(exc, "request_info"):
        # Keep the cause's type and message, but neither the key nor
        # aiohttp's request_info (its headers hold the key too).
        exc = aiohttp.ClientError(f"{type(exc).__name__}: {told}")
    return scrubbed(error, exc)


def _cancelling() -> bool:
    # Whether the running task itself is being cancelled.
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def scrubbed(error: BaseException, cause: BaseException | None) -> BaseException:
    # Keep the cause, but none of the frames (aiohttp's locals hold the
    # plain key).
    seen: set[int] = set()
    link = cause or error.__cause__ or error.__context__
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        link.__traceback__ = None
        link = link.__cause__ or link.__context__
    error.__traceback__ = None
    if cause is not None:
        error.__cause__ = cause
        error.__suppress_context__ = True
    return error
