"""
``SequenceClient``: configuration, lifecycle, and what hangs on the client.

Owns the checks of the client's settings (all before any request), the
``Shared`` state and the first ``Requester``, ``with_options`` views (other
requesters over the same ``Shared``), the resource namespaces, and the
conveniences on top: ``trigger_and_wait``, ``execution_from_*``,
``trigger_many`` and ``trigger_all``.
"""

from __future__ import annotations

import os
import ssl as _ssl
import time
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Literal, Self

from . import _setup, _tokens, errors, models
from ._bulk import BulkRun
from ._checks import check_number, check_timeout
from ._coordinator import Coordinator
from ._execution import Execution, Until, check_until
from ._journal import Journal
from ._namespaces import Namespaces
from ._observe import Hook
from ._outcomes import BulkProgress, TriggerOutcome, TriggerRequest
from ._resources import called_reason_of, wait_triggered
from ._retry import PollPolicy, RetryPolicy, check_poll, resolve_retry
from ._sqlite_journal import as_journal
from ._transport import ClientSession
from ._wire import DEFAULT_MAX_RESPONSE_BYTES


class SequenceClient(Namespaces):
    """
    An asyncio client for Sequence's ``/api/v1`` or ``/platform/v1``.

    Use it as ``async with SequenceClient() as client:`` or call ``aclose()``.
    Every setting is checked here, before any request.

    Args:
        api_key: The API key; ``SEQUENCE_API_KEY`` from the environment when
            not given.
        api: Which of Sequence's APIs the key belongs to: ``"api-v1"`` (the
            default) or ``"platform-v1"``; ``SEQUENCE_API`` from the
            environment when not given. Same methods and models on both.
        base_url: ``SEQUENCE_BASE_URL`` from the environment, else the API's
            production URL. Must be an ``http://`` or ``https://`` URL.
        timeout: Seconds per attempt (a finite number above 0).
        max_retries: Retries after a failed attempt (connection errors,
            timeouts, 408, 429, 5xx); ignored when *retry* is given.
        retry: The whole retry policy (``RetryPolicy``), backoff included.
        rate_limit: Requests per minute this client may send, shared by every
            request, triggers first; ``None`` turns the limiter off.
        rate_limit_burst: Requests the limiter lets out at once (default a
            tenth of *rate_limit*).
        session: Your ``aiohttp.ClientSession``; used as is, never closed.
        default_headers: Headers added to every request.
        ssl: An SSL context (or ``False``) for the session the client makes.
        poll: The default poll schedule of waits.
        max_response_bytes: The most bytes of one answer the client reads,
            decompressed (default 4 MiB); a bigger one raises
            ``ResponseTooLargeError``.
        event_hooks: ``{"request": [...], "response": [...], "retry":
            [...]}``: callables (sync or async) given a ``RequestEvent``,
            ``ResponseEvent`` or ``RetryEvent``; one that raises is logged.
        tracer_provider: The OpenTelemetry tracer provider (the global one
            by default, when ``opentelemetry-api`` is installed).
        meter_provider: The OpenTelemetry meter provider (likewise).
        coordinator: Shares the rate budget (*rate_limit* per minute for all
            clients of the key), the 429 pause and the polling with every
            process on the same coordinator and key (``RedisCoordinator``).
            By default one is made from ``SEQUENCE_REDIS_URL`` when that is
            set; ``False``: none, whatever the environment says.
        called_reason: Sent as ``x-called-reason`` on every request
            (``platform-v1`` only; Sequence records it in the audit log).
            Methods take ``called_reason=`` for one call.

    Raises:
        ValueError, TypeError: No API key, or a bad setting.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        api: str | None = None,
        base_url: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        retry: RetryPolicy | None = None,
        rate_limit: float | None = None,
        rate_limit_burst: float | None = None,
        session: ClientSession | None = None,
        default_headers: Mapping[str, str] | None = None,
        ssl: _ssl.SSLContext | bool | None = None,
        poll: PollPolicy | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        called_reason: str | None = None,
        event_hooks: Mapping[str, Sequence[Hook]] | None = None,
        tracer_provider: object = None,
        meter_provider: object = None,
        coordinator: Coordinator | Literal[False] | None = None,
    ) -> None:
        # The plain key leaves every frame's locals before anything can
        # raise: a traceback that shows locals must never show it.
        try:
            auth, digest, profile = _setup.credentials(api_key, api)
        finally:
            del api_key
        self._requester, self.base_url = _setup.requester(
            auth,
            digest,
            profile,
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            retry=retry,
            rate_limit=rate_limit,
            rate_limit_burst=rate_limit_burst,
            session=session,
            default_headers=default_headers,
            ssl=ssl,
            poll=poll,
            max_response_bytes=max_response_bytes,
            event_hooks=event_hooks,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
            coordinator=coordinator,
            called_reason=called_reason,
        )
        self._rate_limit = rate_limit
        self._mount(self._requester)

    @property
    def api(self) -> str:
        """
        The API this client speaks: ``"api-v1"`` or ``"platform-v1"``.
        """
        return self._requester.profile.name

    def __repr__(self) -> str:
        requester = getattr(self, "_requester", None)  # half-built: in __init__
        state = "closed" if requester is None or requester.shared.closed else "open"
        api = requester.profile.name if requester is not None else "?"
        return f"<SequenceClient {api} {getattr(self, 'base_url', '?')} ({state})>"

    def __reduce__(self) -> tuple[object, ...]:
        """
        Refuse to pickle: a client holds the API key and a live session.
        """
        raise TypeError("a SequenceClient cannot be pickled (it holds the API key)")

    def with_options(
        self,
        *,
        timeout: float | None = None,
        max_retries: int | None = None,
        retry: RetryPolicy | None = None,
        poll: PollPolicy | None = None,
        called_reason: str | None = None,
    ) -> Self:
        """
        Return a view with other settings, sharing session, limiter and poller.

        Requests and waits started from the view (handles it returns
        included) use the view's settings. Closing the original closes the
        view, and the view's ``aclose()`` closes both.
        """
        changes: dict[str, object] = {}
        if timeout is not None:
            changes["timeout"] = check_timeout(timeout)
        if called_reason is not None:
            profile = self._requester.profile
            changes["called_reason"] = called_reason_of(called_reason, profile)
        if retry is not None or max_retries is not None:
            changes["retry"] = resolve_retry(
                retry, max_retries, base=self._requester.retry
            )
        if poll is not None:
            changes["poll"] = check_poll(poll)
        view = object.__new__(type(self))
        view.base_url = self.base_url
        view._rate_limit = self._rate_limit
        view._requester = self._requester.evolve(**changes)
        view._mount(view._requester)
        return view

    @property
    def closed(self) -> bool:
        """
        Whether ``aclose()`` was called.
        """
        return self._requester.shared.closed

    async def __aenter__(self) -> Self:
        if self.closed:
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
        Close the client and everything it started.

        Pending waits and queued requests end with ``ClientClosedError``, no
        request goes out any more, and the session the client made is closed
        (never a session you gave).
        """
        await self._requester.shared.aclose()

    # -- executions --------------------------------------------------------

    async def trigger_and_wait(
        self,
        rule_id: str,
        *,
        manual_execute_amount: int | None = None,
        idempotency_key: str | None = None,
        request_id: str | None = None,
        timeout: float | None = 300.0,
        raise_on_failure: bool = True,
        poll: PollPolicy | None = None,
        until: Until = "settled",
        simulation: bool | None = None,
        called_reason: str | None = None,
    ) -> models.RuleExecution:
        """
        Trigger a rule; wait till its execution ends (a cancel stops only the wait).

        Args:
            rule_id: The rule to trigger.
            manual_execute_amount: For ``MANUAL`` rules, the amount in cents.
            idempotency_key: See ``rules.trigger``.
            request_id: Sent as ``X-Request-ID`` on the trigger.
            timeout: Seconds for the whole call: the trigger's retries
                never sleep past it, and the wait gets what they left.
            raise_on_failure: Raise ``ExecutionFailedError`` on ``failed``.
            poll: The poll schedule; the client's by default.
            until: ``"transfers_created"`` returns once the rule has run and
                only settlement is left; see ``Execution.wait``.
            simulation: A dry run (``platform-v1`` only).
            called_reason: Sent as ``x-called-reason`` on the trigger.

        Raises:
            errors.WaitTimeoutError: Not terminal in time; the error carries
                the handle to wait on again.
            errors.ExecutionFailedError: The execution failed.
            Exception: Any other, once triggered, names the execution in a
                note and carries its handle (``execution``) if a
                ``SequenceError``: wait on it again, never trigger again.
        """
        check_number(timeout, "timeout", allow_none=True)  # before the trigger
        check_poll(poll)
        check_until(until)
        deadline = None if timeout is None else time.monotonic() + timeout
        execution = await self.rules._trigger(  # noqa: SLF001 (our own)
            rule_id,
            manual_execute_amount=manual_execute_amount,
            idempotency_key=idempotency_key,
            request_id=request_id,
            simulation=simulation,
            called_reason=called_reason,
            deadline=deadline,
        )
        return await wait_triggered(
            execution,
            timeout,
            deadline=deadline,
            raise_on_failure=raise_on_failure,
            poll=poll,
            until=until,
        )

    async def execution_from_id(
        self,
        execution_id: str,
        *,
        rule_id: str | None = None,
        request_id: str | None = None,
    ) -> Execution:
        """
        Fetch an execution by id and return its handle, to wait on it.

        ``rule_id`` is required on ``platform-v1`` (its path names the rule).

        Raises:
            errors.NotFoundError: No such execution.
            errors.ResponseValidationError: The answer names no rule (or
                one that is no id), or another execution.
        """
        return await _tokens.fetch(
            self._requester, execution_id, rule_id=rule_id, request_id=request_id
        )

    def execution_from_token(self, token: str) -> Execution:
        """
        Rebuild an ``Execution`` handle from ``Execution.to_token()``.

        Raises:
            ValueError: The token is not a valid execution token, or is of
                the other API (``api-v1`` / ``platform-v1``) than this client.
        """
        return _tokens.from_token(token, self._requester)

    def trigger_many(
        self,
        requests: Iterable[TriggerRequest | str] | AsyncIterable[TriggerRequest | str],
        *,
        concurrency: int = 16,
        wait: bool = True,
        timeout: float | None = 300.0,
        max_failures: int | None = None,
        on_progress: Callable[[BulkProgress], None] | None = None,
        journal: str | os.PathLike[str] | Journal | None = None,
        until: Until = "settled",
    ) -> BulkRun:
        """
        Trigger many rules; iterate over one ``TriggerOutcome`` per request.

        The input is consumed lazily; at most *concurrency* triggers are in
        flight. An item's failure is its outcome; an input that raises stops
        the pulling, and its error is raised once the items sent are done.

        Args:
            requests: Rule ids or ``TriggerRequest``s (sync or async iterable).
            concurrency: Triggers in flight at most.
            wait: Wait for each execution to end (else: once triggered).
            timeout: Seconds each wait may take.
            max_failures: Failures after which no item starts (the rest:
                ``NotStartedError``).
            on_progress: Given a ``BulkProgress`` at every change of counts
                (an item started, triggered, ended), before its outcome is
                yielded.
            journal: A path (a SQLite file, made if missing) or a
                ``Journal``: every item's intent is recorded before it is
                sent; the same run again resumes it (README: "Crash-safe bulk
                runs"). The input is then read whole, and checked first.
            until: With *wait*, ``"transfers_created"`` ends each wait once
                its rule has run and only settlement is left.

        Returns:
            A ``BulkRun``: ``async for outcome in run``. Use ``async with`` to
            stop in-flight work at once when leaving the loop early, and
            ``run.in_flight()`` to see what was started and not finished.

        Raises:
            ValueError, TypeError: A bad argument, at once.
        """
        return BulkRun(
            self._requester,
            requests,
            concurrency=concurrency,
            wait=wait,
            timeout=timeout,
            max_failures=max_failures,
            on_progress=on_progress,
            journal=None if journal is None else as_journal(journal),
            rate_limit=self._rate_limit,
            until=until,
        )

    async def trigger_all(
        self,
        requests: Iterable[TriggerRequest | str] | AsyncIterable[TriggerRequest | str],
        *,
        concurrency: int = 16,
        wait: bool = True,
        timeout: float | None = 300.0,
        max_failures: int | None = None,
        on_progress: Callable[[BulkProgress], None] | None = None,
        journal: str | os.PathLike[str] | Journal | None = None,
        until: Until = "settled",
    ) -> list[TriggerOutcome]:
        """
        Run ``trigger_many`` to the end and return the outcomes in input order.
        """
        async with self.trigger_many(
            requests,
            concurrency=concurrency,
            wait=wait,
            timeout=timeout,
            max_failures=max_failures,
            on_progress=on_progress,
            journal=journal,
            until=until,
        ) as run:
            return sorted([outcome async for outcome in run], key=lambda o: o.index)
