"""
The one request path, and what a client shares with its views.

Owns ``Shared`` (transport and session, rate limiter, poller, event loop and
closed state: one per client, whatever its views) and ``Requester`` (one per
client or view: key, default headers, timeout, retry and poll policies).
``Requester.request`` is the only way a request goes out: check open, build,
take a token, send, decode, retry, decide whether a mutating request's
outcome is unknown.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from . import errors
from ._checks import check_request_id
from ._ids import new_request_id
from ._observe import Hooks, Observer, captured
from ._profiles import DEFAULT, Profile, other_surface
from ._ratelimit import Limiter, Priority
from ._retry import PollPolicy, RetryPolicy, retry_request
from ._secret import Secret
from ._wire import (
    Envelope,
    Request,
    Response,
    build_request,
    decode_response,
    may_have_acted,
)


if TYPE_CHECKING:
    from ._otel import Telemetry
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
    limiter: Limiter | None = None
    poller: Poller | None = None
    observer: Observer = attrs.Factory(lambda: Observer(Hooks(), None))
    closed: bool = False
    loop: asyncio.AbstractEventLoop | None = None
    # The server's base URL: a journal of runs against another is refused.
    base_url: str = ""

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
    # One logical call: its request (reused by every retry), its deadline (no
    # attempt runs, nor retry sleeps, past it), how many attempts went out,
    # and whether any may have been carried out without an answer that says
    # how (then a mutating call's outcome is unknown, whatever comes later).
    request: Request
    priority: Priority
    operation: str
    deadline: float | None = None
    attempts: int = 0
    uncertain: bool = False
    status: int | None = None


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

    def request(
        self,
        method: str,
        path: str,
        *,
        operation: str = "request",
        attributes: Mapping[str, str] | None = None,
        params: Mapping[str, str | tuple[str, ...]] | None = None,
        json: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        priority: Priority = Priority.OTHER,
        deadline: float | None = None,
        called_reason: str | None = None,
    ) -> Coroutine[Any, Any, Envelope]:
        """
        Send one logical call, retrying what may be retried; return its envelope.

        The request is checked and built at once (so bad input raises here);
        the coroutine returned sends it. It is the call's own coroutine, not
        one wrapping it: no extra layer to resume on every answer.

        Args:
            method: The HTTP method.
            path: The endpoint path (from ``_checks.path``).
            operation: The logical call (``rules.trigger``): names its span
                and labels its metrics and events.
            attributes: Span attributes (the ids involved).
            params: The query.
            json: The JSON body.
            idempotency_key: Makes the call mutating: sent, and reused by
                every retry.
            request_id: The ``X-Request-ID`` (a new one by default).
            priority: The call's place in the rate limiter's queue.
            deadline: ``time.monotonic()`` seconds no attempt runs past (each
                is cut to what is left) and no retry sleeps past.
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
                request_id=new_request_id()
                if request_id is None
                else check_request_id(request_id),
                params=params,
                json_body=json,
                idempotency_key=idempotency_key,
                default_headers=self.default_headers,
                called_reason=called_reason or self.called_reason,
            ),
            priority,
            operation,
            deadline,
        )
        telemetry = self.shared.observer.telemetry
        if telemetry is None:
            return self._call(call)
        return self._traced(telemetry, call, attributes)

    async def _traced(
        self,
        telemetry: Telemetry,
        call: _Call,
        attributes: Mapping[str, str] | None,
    ) -> Envelope:
        # The call under its span (only when telemetry is recording).
        request = call.request
        span_attributes = {
            "http.request.method": request.method,
            "sequence.request_id": request.headers["X-Request-ID"],
            **(attributes or {}),
        }
        if request.idempotency_key is not None:
            span_attributes["sequence.idempotency_key"] = request.idempotency_key
        with telemetry.span(call.operation, span_attributes) as span:
            try:
                return await self._call(call)
            finally:
                span.set_attribute(
                    "http.request.resend_count", max(0, call.attempts - 1)
                )
                if call.status is not None:
                    span.set_attribute("http.response.status_code", call.status)

    async def _call(self, call: _Call) -> Envelope:
        try:
            return await self._attempt(call, checked=True)  # by request()
        except errors.SequenceError as first:
            return await self._recover(call, first)

    async def _recover(self, call: _Call, first: errors.SequenceError) -> Envelope:
        # After a failed attempt: retry what may be retried, then decide
        # whether a mutating call's outcome is unknown.
        request = call.request
        observer = self.shared.observer

        async def retrying(error: Exception, delay: float) -> None:
            op, n = call.operation, call.attempts  # (hooks: the view's timeout)
            await observer.retry(op, request, n, error, delay, timeout=self.timeout)

        try:
            return await retry_request(
                lambda: self._attempt(call),
                first,
                policy=self.retry,
                deadline=call.deadline,
                describe=f"{request.method} {request.path}",
                on_retry=retrying if observer.watch_retries else None,
                fields={
                    "operation": call.operation,
                    "method": request.method,
                    "path": request.path,
                    "request_id": request.headers["X-Request-ID"],
                },
            )
        except errors.SequenceError as exc:
            key = request.idempotency_key
            if key is not None and call.uncertain:
                raise errors.OutcomeUnknownError(
                    f"{request.method} {request.path} may have been carried out: {exc}",
                    idempotency_key=key,
                ) from exc
            raise

    def _within(self, call: _Call) -> float:
        # An attempt's timeout: the client's, or what is left of the call's
        # deadline (an attempt cut short is a timeout: unknown if mutating);
        # with nothing left, it is not sent.
        if call.deadline is None:
            return self.timeout
        left = call.deadline - time.monotonic()
        if left <= 0:
            raise _unsent(call)
        return min(self.timeout, left)

    async def _queue(self, limiter: Limiter, call: _Call) -> None:
        # The rate limiter's wait, never past the call's deadline.
        if call.deadline is None:
            await limiter.acquire(call.priority)
            return
        try:
            async with asyncio.timeout(call.deadline - time.monotonic()):
                await limiter.acquire(call.priority)
        except TimeoutError:
            raise _unsent(call) from None

    async def _attempt(self, call: _Call, *, checked: bool = False) -> Envelope:
        shared = self.shared
        observer = shared.observer
        if not checked:
            shared.check_open()
        if shared.limiter is not None:
            queued = time.perf_counter()
            await self._queue(shared.limiter, call)
            shared.check_open()
            if observer.telemetry is not None:
                observer.telemetry.limiter_wait.record(
                    time.perf_counter() - queued, {"operation": call.operation}
                )
        call.attempts += 1
        request = call.request
        if observer.before:
            await observer.request(call.operation, request, call.attempts, self.timeout)
        started = time.perf_counter()
        try:
            response = await shared.transport.send(request, timeout=self._within(call))
        except BaseException as exc:
            # No answer: cancelled, closed or unreadable mid-request, it may
            # have acted; a connection error says whether it was sent.
            sent = not isinstance(exc, errors.APIConnectionError) or exc.sent
            call.uncertain = call.uncertain or sent
            if log.isEnabledFor(logging.DEBUG):
                _log_attempt(call, started, None, exc)
            raise
        call.status = response.status
        request_id = request.headers["X-Request-ID"]
        if observer.watch_answers or captured() is not None:
            await observer.response(
                call.operation,
                request,
                call.attempts,
                response,
                time.perf_counter() - started,
                timeout=self.timeout,
            )
        if log.isEnabledFor(logging.DEBUG):
            _log_attempt(call, started, response.status)
        try:
            return decode_response(
                response,
                request_id=request_id,
                idempotency_key=request.idempotency_key,
                profile=self.profile,
                secret=self.auth,
            )
        except errors.SequenceError as exc:
            call.uncertain = call.uncertain or may_have_acted(exc)
            if isinstance(exc, errors.AuthenticationError):  # a valid key, maybe
                hint = other_surface(shared.base_url, self.profile)
                exc.args = (f"{exc.args[0]} ({hint})",) if hint else exc.args
            if isinstance(exc, errors.RateLimitError) and shared.limiter is not None:
                shared.limiter.drain(
                    exc.retry_after if exc.retry_after is not None else 1.0
                )
            raise


def _unsent(call: _Call) -> errors.APITimeoutError:
    # The call's deadline came before this attempt was sent.
    request = call.request
    return errors.APITimeoutError(
        f"{request.method} {request.path} reached its deadline before it was sent",
        request_id=request.headers["X-Request-ID"],
        sent=False,
    )


def _log_attempt(
    call: _Call,
    started: float,
    status: int | None,
    failure: BaseException | None = None,
) -> None:
    # The DEBUG line of one attempt, its fields as the record's attributes
    # (``status`` None: no answer, *failure* instead).
    request = call.request
    elapsed = (time.perf_counter() - started) * 1000
    request_id = request.headers["X-Request-ID"]
    log.debug(
        "%s %s %s in %.1f ms (attempt %d, request id %s)",
        request.method,
        request.path,
        f"-> {status}" if failure is None else f"failed ({type(failure).__name__})",
        elapsed,
        call.attempts,
        request_id,
        extra={
            "operation": call.operation,
            "method": request.method,
            "path": request.path,
            "status": status,
            "elapsed_ms": elapsed,
            "attempt": call.attempts,
            "request_id": request_id,
        },
    )
