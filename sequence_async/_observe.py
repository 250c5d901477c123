"""
What a client lets you see of its requests: event hooks and raw answers.

Owns the event values given to hooks (``RequestEvent``, ``ResponseEvent``,
``RetryEvent``: method, path, attempt, status, elapsed, ids, and headers with
``Authorization`` hidden and the key out of every value), calling the hooks
(sync or async; one that raises is logged and never breaks the request),
``RawResponse`` and ``capture_responses()``, which collects the answers behind
the calls made in its block. Capture uses a context variable, so concurrent
tasks never see each other's answers: there is no shared "last response".
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal

import attrs

from ._otel import Telemetry, current_span
from ._secret import Secret
from ._wire import Request, Response


log = logging.getLogger("sequence_async")
HookKind = Literal["request", "response", "retry"]
_KINDS: tuple[HookKind, ...] = ("request", "response", "retry")


@attrs.frozen(kw_only=True)
class RequestEvent:
    """
    An attempt about to be sent.

    Attributes:
        operation: The logical call, e.g. ``rules.trigger``.
        method: The HTTP method.
        path: The endpoint path.
        attempt: The attempt's number, from 1.
        request_id: The ``X-Request-ID`` sent.
        idempotency_key: The key of a mutating call, else ``None``.
        headers: The request's headers, ``Authorization`` and the key redacted.
    """

    operation: str
    method: str
    path: str
    attempt: int
    request_id: str
    idempotency_key: str | None
    headers: Mapping[str, str]


@attrs.frozen(kw_only=True)
class ResponseEvent:
    """
    An answer received (any status).

    Attributes:
        operation: The logical call, e.g. ``rules.trigger``.
        method: The HTTP method.
        path: The endpoint path.
        attempt: The attempt's number, from 1.
        request_id: The ``X-Request-ID`` sent.
        idempotency_key: The key of a mutating call, else ``None``.
        status: The HTTP status.
        elapsed: Seconds from sending to the whole answer.
        headers: The answer's headers (the key out of every value).
    """

    operation: str
    method: str
    path: str
    attempt: int
    request_id: str
    idempotency_key: str | None
    status: int
    elapsed: float
    headers: Mapping[str, str]


@attrs.frozen(kw_only=True)
class RetryEvent:
    """
    A failed attempt that will be retried.

    Attributes:
        operation: The logical call, e.g. ``rules.trigger``.
        method: The HTTP method.
        path: The endpoint path.
        attempt: The attempt's number, from 1.
        request_id: The ``X-Request-ID`` sent.
        idempotency_key: The key of a mutating call, else ``None``.
        error: What the attempt ended with.
        delay: Seconds until the retry.
    """

    operation: str
    method: str
    path: str
    attempt: int
    request_id: str
    idempotency_key: str | None
    error: Exception
    delay: float


Event = RequestEvent | ResponseEvent | RetryEvent
Hook = Callable[[Any], Awaitable[object] | object]


class Hooks:
    """
    The client's event hooks, each kind a list of callables taking the event.

    Kinds: ``"request"``, ``"response"``, ``"retry"`` (httpx's shape).

    Raises:
        ValueError: An unknown kind of hook.
        TypeError: A hook that is not callable.
    """

    __slots__ = ("request", "response", "retry")

    def __init__(self, hooks: Mapping[str, Sequence[Hook]] | None = None) -> None:
        if hooks is not None and not isinstance(hooks, Mapping):
            raise TypeError(
                'event_hooks must be a mapping ({"request": [hook, ...]}), '
                f"not {type(hooks).__name__}"
            )
        given = dict(hooks or {})
        unknown = set(given) - set(_KINDS)
        if unknown:
            raise ValueError(
                f"unknown event hooks {sorted(unknown, key=str)}; use {list(_KINDS)}"
            )
        for kind in _KINDS:
            found = given.get(kind, ())
            if not isinstance(found, list | tuple) or not all(map(callable, found)):
                raise TypeError(f"event_hooks[{kind!r}] must be a list of callables")
            setattr(self, kind, tuple(found))

    request: tuple[Hook, ...]
    response: tuple[Hook, ...]
    retry: tuple[Hook, ...]

    async def emit(
        self, hooks: tuple[Hook, ...], event: Event, *, timeout: float
    ) -> None:
        """
        Call every hook with *event*; log (never raise) what one raises.

        A hook that takes longer than *timeout* seconds (the request's own
        time) is cancelled, and the request goes on.
        """
        kind = type(event).__name__.removesuffix("Event").lower()
        for hook in hooks:
            bound = asyncio.timeout(timeout)
            try:
                async with bound:
                    result = hook(event)
                    if inspect.isawaitable(result):
                        await result
            except TimeoutError:
                if not bound.expired():
                    log.exception("a %s hook raised; the request goes on", kind)
                    continue
                log.warning(
                    "a %s hook took over %gs, the request's time: cancelled; "
                    "the request goes on",
                    kind,
                    timeout,
                )
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise  # this request was cancelled: never swallowed
                log.exception(  # the hook's own, not a cancellation of ours
                    "a %s hook raised CancelledError; the request goes on", kind
                )
            except Exception:
                log.exception("a %s hook raised; the request goes on", kind)


@attrs.frozen(kw_only=True)
class RawResponse:
    """
    The answer behind a result: status, headers and time, for one attempt.

    Attributes:
        operation: The logical call, e.g. ``accounts.get``.
        method: The HTTP method.
        path: The endpoint path.
        attempt: The attempt's number, from 1.
        request_id: The ``X-Request-ID`` sent.
        status: The HTTP status.
        headers: The answer's headers (the key out of every value).
        elapsed: Seconds from sending to the whole answer.
    """

    operation: str
    method: str
    path: str
    attempt: int
    request_id: str
    status: int
    headers: Mapping[str, str]
    elapsed: float


_captured: contextvars.ContextVar[list[RawResponse] | None] = contextvars.ContextVar(
    "sequence_async_captured", default=None
)


# The list the current block collects answers into, if any (the variable's
# own ``get``: no Python frame of ours on every answer).
captured = _captured.get


@contextlib.contextmanager
def capture_responses() -> Iterator[list[RawResponse]]:
    """
    Collect a ``RawResponse`` for every answer the calls in this block get.

    Every attempt counts (a retried call adds one per answer), in order.
    Tasks started inside the block add to the same list; other tasks never
    do. No second request is ever made.

    Examples:
        ```python
        with capture_responses() as answers:
            account = await client.accounts.get("acc_1")
        print(answers[-1].status, answers[-1].headers["X-Request-ID"])
        ```
    """
    answers: list[RawResponse] = []
    token = _captured.set(answers)
    try:
        yield answers
    finally:
        _captured.reset(token)


def _about(operation: str, request: Request, attempt: int) -> dict[str, Any]:
    # The fields every event shares.
    return {
        "operation": operation,
        "method": request.method,
        "path": request.path,
        "attempt": attempt,
        "request_id": request.headers["X-Request-ID"],
        "idempotency_key": request.idempotency_key,
    }


class Observer:
    """
    A client's hooks and telemetry, called at each step of the request path.

    The flags say which steps anyone watches, so that the path pays nothing
    for what no one asked for.
    """

    __slots__ = (
        "before",
        "hooks",
        "secret",
        "telemetry",
        "watch_answers",
        "watch_retries",
    )

    def __init__(
        self,
        hooks: Hooks,
        telemetry: Telemetry | None,
        secret: Secret | None = None,
    ) -> None:
        self.hooks = hooks
        self.telemetry = telemetry
        # Headers reach hooks and captured answers through it: Authorization
        # hidden, and the key taken out of any header that echoes it.
        self.secret = secret or Secret("")
        self.before = bool(hooks.request)
        self.watch_answers = bool(hooks.response) or telemetry is not None
        self.watch_retries = bool(hooks.retry) or telemetry is not None

    async def request(
        self, operation: str, request: Request, attempt: int, timeout: float
    ) -> None:
        """
        An attempt is about to be sent (hooks get *timeout*: the view's).
        """
        await self.hooks.emit(
            self.hooks.request,
            RequestEvent(
                **_about(operation, request, attempt),
                headers=self.secret.redact_headers(request.headers),
            ),
            timeout=timeout,
        )

    async def response(
        self,
        operation: str,
        request: Request,
        attempt: int,
        response: Response,
        elapsed: float,
        *,
        timeout: float,
    ) -> None:
        """
        An answer came back: hooks, the captured answers, the metrics.
        """
        request_id = request.headers["X-Request-ID"]
        answers = captured()
        if answers is not None:
            answers.append(
                RawResponse(
                    operation=operation,
                    method=request.method,
                    path=request.path,
                    attempt=attempt,
                    request_id=request_id,
                    status=response.status,
                    headers=self.secret.redact_headers(response.headers),
                    elapsed=elapsed,
                )
            )
        if self.telemetry is not None:
            labels: dict[str, str | int] = {
                "operation": operation,
                "http.response.status_code": response.status,
            }
            self.telemetry.requests.add(1, labels)
            if response.status == 429:
                self.telemetry.throttled.add(1, {"operation": operation})
        if self.hooks.response:
            await self.hooks.emit(
                self.hooks.response,
                ResponseEvent(
                    **_about(operation, request, attempt),
                    status=response.status,
                    elapsed=elapsed,
                    headers=self.secret.redact_headers(response.headers),
                ),
                timeout=timeout,
            )

    async def retry(
        self,
        operation: str,
        request: Request,
        attempt: int,
        error: Exception,
        delay: float,
        *,
        timeout: float,
    ) -> None:
        """
        A failed attempt will be retried after *delay* seconds.
        """
        if self.telemetry is not None:
            self.telemetry.retries.add(1, {"operation": operation})
            span = current_span()
            if span is not None:
                span.add_event(
                    "retry",
                    {
                        "attempt": attempt,
                        "error.type": type(error).__name__,
                        "delay": delay,
                    },
                )
        await self.hooks.emit(
            self.hooks.retry,
            RetryEvent(
                **_about(operation, request, attempt),
                error=error,
                delay=delay,
            ),
            timeout=timeout,
        )
