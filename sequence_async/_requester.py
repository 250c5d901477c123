"""
The one request path, and what a client shares with its views.

Owns ``Shared`` (the transport and its session, the rate limiter, the poller,
the event loop and the closed state: one per client, whatever its views) and
``Requester`` (one per client or view: key, default headers, timeout, retry
and poll policies). ``Requester.request`` is the only way a request goes out:
check open, build, take a token, send, decode, retry, and decide whether a
mutating request's outcome is unknown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from . import errors
from ._checks import check_request_id
from ._ids import new_id
from ._profiles import DEFAULT, Profile
from ._ratelimit import Priority, TokenBucket
from ._retry import PollPolicy, RetryPolicy, retry_request
from ._wire import Envelope, Request, Response, Secret, build_request, decode_response


if TYPE_CHECKING:
    from ._poller import Poller


log = logging.getLogger("sequence_async")


class Transport(Protocol):
    """
    The seam to the network (``_transport.AiohttpTransport``, or a test double).
    """

    async def send(self, request: Request, *, timeout: float) -> Response:
        """Send *request* once and return the whole answer."""

    async def aclose(self) -> None:
        """Release the connection pool."""


@attrs.define(eq=False)
class Shared:
    """
    What a client and all of its views share; closing it closes them all.
    """

    transport: Transport
    limiter: TokenBucket | None = None
    poller: Poller | None = None
    closed: bool = False
    loop: asyncio.AbstractEventLoop | None = None

    def check_open(self) -> None:
        """
        Raise unless requests may go out now, from this event loop.

        Raises:
            errors.ClientClosedError: After ``aclose()``.
            errors.EventLoopError: Called from another loop than the first.
        """
        if self.closed:
            raise errors.ClientClosedError("this SequenceClient is closed")
        loop = asyncio.get_running_loop()
        if self.loop is None:
            self.loop = loop
        elif loop is not self.loop:
            raise errors.EventLoopError(
                "this SequenceClient belongs to the event loop it first ran on "
                "(an earlier asyncio.run()?); make one client per event loop"
            )

    async def aclose(self) -> None:
        """
        Stop everything: queued requests, polls, then the session.
        """
        self.closed = True
        if self.limiter is not None:
            self.limiter.close()
        if self.poller is not None:
            await self.poller.aclose()
        await self.transport.aclose()


@attrs.define(eq=False)
class _Call:
    # One logical call: its request (reused by every retry), how many
    # attempts went out, and whether any of them may have reached the server.
    request: Request
    priority: Priority
    attempts: int = 0
    reached_server: bool = False


@attrs.frozen(eq=False)
class Requester:
    """
    Sends requests for one client or view, with that view's settings.

    ``with_options`` views are other ``Requester``s over the same ``Shared``.
    """

    shared: Shared
    auth: Secret
    default_headers: Mapping[str, str]
    timeout: float
    retry: RetryPolicy
    poll: PollPolicy
    profile: Profile = DEFAULT
    called_reason: str | None = None

    def evolve(self, **changes: Any) -> Requester:
        """
        Return a requester with some settings changed, over the same ``Shared``.
        """
        return attrs.evolve(self, **changes)

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | tuple[str, ...]] | None = None,
        json: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        priority: Priority = Priority.OTHER,
        deadline: float | None = None,
        called_reason: str | None = None,
    ) -> Envelope:
        """
        Send one logical call, retrying what may be retried; return its envelope.

        Args:
            method: The HTTP method.
            path: The endpoint path (from ``_wire.path``).
            params: The query.
            json: The JSON body.
            idempotency_key: Makes the call mutating: sent, and reused by
                every retry.
            request_id: The ``X-Request-ID`` (a new one by default).
            priority: The call's place in the rate limiter's queue.
            deadline: ``time.monotonic()`` seconds no retry may sleep past.
            called_reason: Sent as ``x-called-reason`` (Platform), instead
                of the requester's own.

        Raises:
            errors.OutcomeUnknownError: A mutating call (one with an
                idempotency key) may have been carried out, but ended without
                an answer that says so.
            errors.SequenceError: Any other failure, as ``_wire`` maps it.
        """
        self.shared.check_open()
        call = _Call(
            build_request(
                method,
                path,
                auth=self.auth,
                request_id=new_id()
                if request_id is None
                else check_request_id(request_id),
                params=params,
                json_body=json,
                idempotency_key=idempotency_key,
                default_headers=self.default_headers,
                called_reason=called_reason or self.called_reason,
            ),
            priority,
        )
        try:
            try:
                return await self._attempt(call)
            except errors.SequenceError as first:
                return await retry_request(
                    lambda: self._attempt(call),
                    first,
                    policy=self.retry,
                    deadline=deadline,
                    describe=f"{method} {path}",
                )
        except errors.SequenceError as exc:
            if idempotency_key is not None and _outcome_unknown(call, exc):
                raise errors.OutcomeUnknownError(
                    f"{method} {path} may have been carried out: {exc}",
                    idempotency_key=idempotency_key,
                ) from exc
            raise

    async def _attempt(self, call: _Call) -> Envelope:
        shared = self.shared
        shared.check_open()
        if shared.limiter is not None:
            await shared.limiter.acquire(call.priority)
            shared.check_open()
        call.attempts += 1
        request = call.request
        started = time.perf_counter()
        try:
            response = await shared.transport.send(request, timeout=self.timeout)
        except errors.APIConnectionError as exc:
            call.reached_server = call.reached_server or exc.sent
            raise
        except BaseException:
            call.reached_server = True
            raise
        call.reached_server = True
        request_id = request.headers["X-Request-ID"]
        if log.isEnabledFor(logging.DEBUG):
            elapsed = (time.perf_counter() - started) * 1000
            log.debug(
                "%s %s -> %d in %.1f ms (attempt %d, request id %s)",
                request.method,
                request.path,
                response.status,
                elapsed,
                call.attempts,
                request_id,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status,
                    "elapsed_ms": elapsed,
                    "attempt": call.attempts,
                    "request_id": request_id,
                },
            )
        try:
            return decode_response(
                response,
                request_id=request_id,
                idempotency_key=request.idempotency_key,
                profile=self.profile,
            )
        except errors.RateLimitError as exc:
            if shared.limiter is not None:
                shared.limiter.drain(
                    exc.retry_after if exc.retry_after is not None else 1.0
                )
            raise


def _outcome_unknown(call: _Call, exc: errors.SequenceError) -> bool:
    # Only an attempt that may have reached the server can have acted; a
    # definite rejection (4xx other than 408/409/429) or a redirect says the
    # last attempt did not, and idempotency makes earlier ones replay as it.
    if not call.reached_server:
        return False
    if isinstance(exc, errors.APIStatusError):
        return exc.status >= 500 or exc.status in (408, 409, 429)
    if isinstance(exc, errors.ResponseValidationError):
        return 200 <= exc.status < 300
    return isinstance(exc, errors.APIConnectionError | errors.ClientClosedError)
