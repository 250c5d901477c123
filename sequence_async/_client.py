"""
``SequenceClient``: configuration, lifecycle and the one request path.

Owns the API key (never shown), the session's lifecycle, the request path
``rate limit -> transport -> decode`` with retries entered only after a first
failure, the translation of exhausted mutating requests into
``OutcomeUnknownError``, and the resource namespaces, waiting and bulk
triggering hung on the client.

May import: every module of the package.
"""

from __future__ import annotations

import logging
import os
import ssl as _ssl
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from . import _bulk, errors, models
from ._bulk import BulkProgress, BulkRun, TriggerOutcome, TriggerRequest
from ._execution import Execution, Poller, from_token
from ._ids import new_id
from ._ratelimit import Priority, TokenBucket
from ._resources import Accounts, Cards, RuleExecutions, Rules, Transfers
from ._retry import PollPolicy, RetryPolicy, retry_request
from ._transport import ClientSession, Transport
from ._wire import (
    DEFAULT_BASE_URL,
    Envelope,
    Request,
    Secret,
    build_request,
    check_request_id,
    decode_response,
)


log = logging.getLogger("sequence_async")


class _State:
    __slots__ = ("closed",)

    def __init__(self) -> None:
        self.closed = False


class SequenceClient:
    """
    An asyncio client for Sequence's ``/api/v1``.

    Use it as ``async with SequenceClient() as client:`` or call ``aclose()``.

    Args:
        api_key: The API key; ``SEQUENCE_API_KEY`` from the environment when
            not given.
        base_url: ``SEQUENCE_BASE_URL`` from the environment, else production.
        timeout: Seconds per attempt.
        max_retries: Retries after a failed attempt (connection errors,
            timeouts, 408, 429, 5xx).
        rate_limit: Requests per minute this client may send, shared by every
            request, triggers first; ``None`` turns the limiter off.
        rate_limit_burst: Requests the limiter lets out at once (default a
            tenth of *rate_limit*).
        session: Your ``aiohttp.ClientSession``; used as is, never closed.
        default_headers: Headers added to every request.
        ssl: An SSL context (or ``False``) for the session the client makes.
        poll: The default poll schedule of waits.

    Raises:
        ValueError: No API key was given or found.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        rate_limit: float | None = None,
        rate_limit_burst: float | None = None,
        session: ClientSession | None = None,
        default_headers: Mapping[str, str] | None = None,
        ssl: _ssl.SSLContext | bool | None = None,
        poll: PollPolicy | None = None,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get("SEQUENCE_API_KEY")
        if not key:
            raise ValueError(
                "no API key: pass SequenceClient(api_key=...) or set SEQUENCE_API_KEY"
            )
        self._auth = Secret(f"ApiKey {key}")
        self.base_url = (
            base_url or os.environ.get("SEQUENCE_BASE_URL") or DEFAULT_BASE_URL
        ).rstrip("/")
        self._retry = RetryPolicy(max_retries=max_retries)
        self._transport = Transport(
            self.base_url, timeout=timeout, session=session, ssl=ssl
        )
        self._limiter = (
            TokenBucket(rate_limit, burst=rate_limit_burst)
            if rate_limit is not None
            else None
        )
        self._default_headers = dict(default_headers or {})
        self._state = _State()
        self._poller = Poller(self._request, poll or PollPolicy())
        self._mount()

    def _mount(self) -> None:
        self.accounts = Accounts(self._request)
        self.rules = Rules(self._request, self._make_execution)
        self.rule_executions = RuleExecutions(self._request)
        self.transfers = Transfers(self._request)
        self.cards = Cards(self._request)

    def __repr__(self) -> str:
        state = "closed" if self._state.closed else "open"
        return f"<SequenceClient {self.base_url} ({state})>"

    def with_options(
        self, *, timeout: float | None = None, max_retries: int | None = None
    ) -> Self:
        """
        Return a view with other settings, sharing session, limiter and poller.

        Closing the original closes the view; the view's ``aclose()`` closes
        both.
        """
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        if timeout is not None:
            view._transport = self._transport.with_timeout(timeout)
        if max_retries is not None:
            view._retry = RetryPolicy(max_retries=max_retries)
        view._mount()
        return view

    @property
    def closed(self) -> bool:
        """
        Whether ``aclose()`` was called.
        """
        return self._state.closed

    async def __aenter__(self) -> Self:
        if self._state.closed:
            raise errors.ClientClosedError("this SequenceClient is closed")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """
        Close the client and the session it made (never a session you gave).
        """
        self._state.closed = True
        await self._transport.aclose()

    # -- the request path ------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        priority: Priority = Priority.OTHER,
        deadline: float | None = None,
    ) -> Envelope:
        if self._state.closed:
            raise errors.ClientClosedError("this SequenceClient is closed")
        request = build_request(
            method,
            path,
            auth=self._auth,
            request_id=new_id() if request_id is None else check_request_id(request_id),
            params=params,
            json_body=json,
            idempotency_key=idempotency_key,
            default_headers=self._default_headers,
        )
        attempts = [0]
        uncertain = [False]

        async def send() -> Envelope:
            if self._state.closed:
                raise errors.ClientClosedError("this SequenceClient is closed")
            attempts[0] += 1
            try:
                return await self._attempt(request, priority, attempts[0])
            except (errors.APIConnectionError, errors.ServerError):
                uncertain[0] = True
                raise

        try:
            return await send()
        except errors.SequenceError as first:
            try:
                return await retry_request(
                    send,
                    first,
                    policy=self._retry,
                    deadline=deadline,
                    describe=f"{method} {path}",
                )
            except (errors.APIStatusError, errors.APIConnectionError) as exc:
                if (
                    idempotency_key is not None
                    and uncertain[0]
                    and _may_have_acted(exc)
                ):
                    raise errors.OutcomeUnknownError(
                        f"{method} {path} may have been carried out: {exc}",
                        idempotency_key=idempotency_key,
                    ) from exc
                raise

    async def _attempt(
        self, request: Request, priority: Priority, attempt: int
    ) -> Envelope:
        if self._limiter is not None:
            await self._limiter.acquire(priority)
        started = time.perf_counter()
        response = await self._transport.send(request)
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%s %s -> %d in %.1f ms (attempt %d, request id %s)",
                request.method,
                request.path,
                response.status,
                (time.perf_counter() - started) * 1000,
                attempt,
                request.headers["X-Request-ID"],
            )
        try:
            return decode_response(
                response,
                request_id=request.headers["X-Request-ID"],
                idempotency_key=request.idempotency_key,
            )
        except errors.RateLimitError as exc:
            if self._limiter is not None:
                self._limiter.drain(
                    exc.retry_after if exc.retry_after is not None else 1.0
                )
            raise

    # -- executions --------------------------------------------------------

    def _make_execution(
        self,
        *,
        execution_id: str,
        rule_id: str,
        request_id: str | None,
        idempotency_key: str | None,
        triggered_at: datetime,
    ) -> Execution:
        return Execution(
            id=execution_id,
            rule_id=rule_id,
            request_id=request_id,
            idempotency_key=idempotency_key,
            triggered_at=triggered_at,
            poller=self._poller,
        )

    async def trigger_and_wait(
        self,
        rule_id: str,
        *,
        manual_execute_amount: int | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = 300.0,
        raise_on_failure: bool = True,
        poll: PollPolicy | None = None,
    ) -> models.RuleExecution:
        """
        Trigger a rule and wait until its execution is terminal.

        Cancelling the call stops the waiting, not the execution.

        Args:
            rule_id: The rule to trigger.
            manual_execute_amount: For ``MANUAL`` rules, the amount in cents.
            idempotency_key: See ``rules.trigger``.
            timeout: Seconds to wait for the end of the execution.
            raise_on_failure: Raise ``ExecutionFailedError`` on ``failed``.
            poll: The poll schedule; the client's by default.

        Raises:
            errors.WaitTimeoutError: Not terminal in time; the error carries
                the handle to wait on again.
            errors.ExecutionFailedError: The execution failed.
        """
        execution = await self.rules.trigger(
            rule_id,
            manual_execute_amount=manual_execute_amount,
            idempotency_key=idempotency_key,
        )
        return await execution.wait(
            timeout, raise_on_failure=raise_on_failure, poll=poll
        )

    async def execution_from_id(self, execution_id: str) -> Execution:
        """
        Fetch an execution by id and return its handle, to wait on it.

        Raises:
            errors.NotFoundError: No such execution.
            errors.ResponseValidationError: The answer names no rule.
        """
        current = await self.rule_executions.get(execution_id)
        if not current.rule_id:
            raise errors.ResponseValidationError(
                f"execution {current.id} names no rule_id",
                request_id=current.request_id,
            )
        execution = self._make_execution(
            execution_id=current.id,
            rule_id=current.rule_id,
            request_id=current.request_id,
            idempotency_key=None,
            triggered_at=current.created_at or datetime.now(UTC),
        )
        execution._record(current)  # noqa: SLF001
        return execution

    def execution_from_token(self, token: str) -> Execution:
        """
        Rebuild an ``Execution`` handle from ``Execution.to_token()``.

        Raises:
            ValueError: The token is not a valid execution token.
        """
        return from_token(token, self._poller)

    def trigger_many(
        self,
        requests: Iterable[TriggerRequest | str] | AsyncIterable[TriggerRequest | str],
        *,
        concurrency: int = 16,
        wait: bool = True,
        timeout: float | None = 300.0,
        max_failures: int | None = None,
        on_progress: Callable[[BulkProgress], None] | None = None,
    ) -> BulkRun:
        """
        Trigger many rules; iterate over one ``TriggerOutcome`` per request.

        The input is consumed lazily. At most *concurrency* triggers are in
        flight; waits go through the client's shared poller. An item's
        failure is its outcome and never stops the others.

        Args:
            requests: Rule ids or ``TriggerRequest``s (sync or async iterable).
            concurrency: Triggers in flight at most.
            wait: Wait for each execution to end (else outcomes come as soon
                as the trigger is accepted).
            timeout: Seconds each wait may take.
            max_failures: After this many failed items, start no more; the
                rest come out with ``NotStartedError``.
            on_progress: Called with a ``BulkProgress`` as items start and end.

        Returns:
            A ``BulkRun``: ``async for outcome in run``. Use ``async with`` to
            stop in-flight work at once when leaving the loop early.
        """
        return BulkRun(
            _bulk.trigger_many(
                self.rules.trigger,
                requests,
                concurrency=concurrency,
                wait=wait,
                timeout=timeout,
                max_failures=max_failures,
                on_progress=on_progress,
            )
        )

    async def trigger_all(
        self,
        requests: Iterable[TriggerRequest | str] | AsyncIterable[TriggerRequest | str],
        **options: Any,
    ) -> list[TriggerOutcome]:
        """
        Run ``trigger_many`` to the end and return the outcomes in input order.

        Takes the same keyword arguments as ``trigger_many``.
        """
        async with self.trigger_many(requests, **options) as run:
            outcomes = [outcome async for outcome in run]
        outcomes.sort(key=lambda o: o.index)
        return outcomes


def _may_have_acted(exc: Exception) -> bool:
    # A 429 or 409 after an uncertain attempt still leaves the first unknown.
    return (
        not isinstance(exc, errors.APIStatusError)
        or exc.status >= 500
        or exc.status
        in (
            408,
            409,
            429,
        )
    )
