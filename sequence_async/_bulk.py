"""
Bulk triggering: many rules at once, each ending as one outcome.

Owns ``BulkRun``: it consumes its input lazily, keeps at most ``concurrency``
triggers in flight, waits through the client's shared poller, and yields a
``TriggerOutcome`` per item as it completes. Every item gets its idempotency
key before it is sent (the caller's, or a new one), so an item whose answer
is lost can always be found again. An item's failure is its outcome; an
input that raises stops the pulling, lets every item already sent finish,
then raises. Leaving the loop early or cancelling it cancels the work in
flight (``in_flight()`` hands it back first) and leaves no task behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from typing import Self

import attrs

from . import errors, models
from ._checks import check_count, check_idempotency_key, check_number
from ._execution import Execution
from ._ids import new_id
from ._rules import Rules


log = logging.getLogger("sequence_async")
Requests = Iterable["TriggerRequest | str"] | AsyncIterable["TriggerRequest | str"]


@attrs.frozen
class TriggerRequest:
    """
    One item of a bulk trigger.

    Args:
        rule_id: The rule to trigger.
        manual_execute_amount: For ``MANUAL`` rules, the amount in cents.
        idempotency_key: Your key for this item; must be unique in a batch.
        request_id: Sent as ``X-Request-ID`` on the trigger.
    """

    rule_id: str
    manual_execute_amount: int | None = attrs.field(default=None, kw_only=True)
    idempotency_key: str | None = attrs.field(default=None, kw_only=True)
    request_id: str | None = attrs.field(default=None, kw_only=True)


@attrs.frozen(kw_only=True)
class TriggerOutcome:
    """
    How one bulk item ended.

    ``ok`` is true when the trigger succeeded and, when waiting, the
    execution ended ``executed`` or ``partial``. ``error`` holds what went
    wrong otherwise: an API error, ``OutcomeUnknownError``,
    ``ExecutionFailedError`` (with ``result`` set too), ``WaitTimeoutError``,
    ``NotStartedError``, or a ``ValueError``/``TypeError`` for an item
    rejected before sending. ``idempotency_key`` is the key the item was (or
    would have been) sent with: trigger it again with that key to learn what
    happened without moving money twice.
    """

    index: int
    request: TriggerRequest
    idempotency_key: str | None = None
    execution: Execution | None = None
    result: models.RuleExecution | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        """
        Whether the item succeeded.
        """
        return self.error is None


@attrs.frozen(kw_only=True)
class InFlightItem:
    """
    An item started but not finished: its key, and its handle once triggered.

    ``execution`` is ``None`` while the trigger request is in flight.
    """

    index: int
    request: TriggerRequest
    idempotency_key: str
    execution: Execution | None


@attrs.frozen(kw_only=True)
class BulkProgress:
    """
    Counts of a running bulk trigger, as given to ``on_progress``.

    ``triggering`` counts trigger requests in flight; ``waiting`` counts
    executions triggered and being waited on.
    """

    started: int
    triggering: int
    waiting: int
    succeeded: int
    failed: int
    not_started: int
    elapsed: float

    @property
    def finished(self) -> int:
        """
        Items with an outcome.
        """
        return self.succeeded + self.failed + self.not_started


@attrs.define(eq=False)
class _Item:
    index: int
    request: TriggerRequest
    key: str
    execution: Execution | None = None


class BulkRun:
    """
    The outcomes of ``trigger_many``: iterate with ``async for``.

    Use it as ``async with`` (or call ``aclose()``) to stop the work in flight
    at a known point when leaving the loop early; otherwise it is stopped
    when the run is garbage-collected. ``in_flight()`` lists what was started
    and has no outcome yet.
    """

    def __init__(
        self,
        rules: Rules,
        requests: Requests,
        *,
        concurrency: int,
        wait: bool,
        timeout: float | None,
        max_failures: int | None,
        on_progress: Callable[[BulkProgress], None] | None,
    ) -> None:
        given: object = requests
        if not isinstance(given, Iterable | AsyncIterable) or isinstance(
            given, str | bytes
        ):
            raise TypeError(
                "requests must be an iterable of rule ids or TriggerRequests"
            )
        self._concurrency = check_count(concurrency, "concurrency", minimum=1) or 1
        self._timeout = check_number(timeout, "timeout", allow_none=True)
        self._max_failures = check_count(
            max_failures, "max_failures", minimum=1, allow_none=True
        )
        if not isinstance(wait, bool):
            raise TypeError("wait must be a bool")
        if on_progress is not None and not callable(on_progress):
            raise TypeError("on_progress must be callable")
        self._rules = rules
        self._requests = requests
        self._wait = wait
        self._on_progress = on_progress
        self._items: dict[int, _Item] = {}
        self._keys: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._counts = dict.fromkeys(
            ("started", "triggering", "waiting", "succeeded", "failed", "not_started"),
            0,
        )
        self._outcomes: AsyncIterator[TriggerOutcome] | None = None

    # -- the consumer's side ---------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> TriggerOutcome:
        if self._outcomes is None:
            self._outcomes = self._run()
        return await anext(self._outcomes)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """
        Cancel the work in flight and wait until it has stopped.
        """
        if self._outcomes is not None:
            await self._outcomes.aclose()  # type: ignore[attr-defined]

    def in_flight(self) -> list[InFlightItem]:
        """
        Return the items started and not finished, in input order.
        """
        return [
            InFlightItem(
                index=item.index,
                request=item.request,
                idempotency_key=item.key,
                execution=item.execution,
            )
            for _, item in sorted(self._items.items())
        ]

    async def _run(self) -> AsyncIterator[TriggerOutcome]:
        self._started_at = time.monotonic()
        self._queue: asyncio.Queue[TriggerOutcome | BaseException | None] = (
            asyncio.Queue()
        )
        self._slots = asyncio.Semaphore(self._concurrency)
        self._room = asyncio.Event()
        self._stop = False
        producer = asyncio.create_task(self._produce())
        try:
            while (outcome := await self._queue.get()) is not None:
                self._room.set()
                if isinstance(outcome, BaseException):
                    raise outcome
                yield outcome
        finally:
            tasks = (producer, *self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- the producer's side ---------------------------------------------

    async def _produce(self) -> None:
        failure: BaseException | None = None
        index = -1
        try:
            items = aiter(_aiter(self._requests))
            while True:
                # Backpressure: pull nothing while the consumer is behind.
                while self._queue.qsize() >= self._concurrency:
                    self._room.clear()
                    await self._room.wait()
                if not self._stop:
                    await self._slots.acquire()  # freed as triggers finish
                try:
                    raw = await anext(items)
                except StopAsyncIteration:
                    break
                index += 1
                self._start(index, raw)
        except Exception as exc:  # noqa: BLE001 (the input failed: raised after the items sent)
            failure = exc
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        self._queue.put_nowait(failure)
        self._queue.put_nowait(None)

    def _start(self, index: int, raw: object) -> None:
        if self._stop:
            self._reject(index, raw, errors.NotStartedError("max_failures reached"))
            return
        try:
            request = _as_request(raw)
            key = self._claim_key(request)
        except (TypeError, ValueError) as exc:
            self._slots.release()
            self._reject(index, raw, exc)
            return
        item = self._items[index] = _Item(index, request, key)
        self._counts["started"] += 1
        self._counts["triggering"] += 1
        task = asyncio.create_task(self._run_one(item))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._report()

    def _claim_key(self, request: TriggerRequest) -> str:
        if request.idempotency_key is None:
            return new_id()
        key = check_idempotency_key(request.idempotency_key)
        if key in self._keys:
            raise ValueError(
                f"duplicate idempotency_key {key!r} in this batch; not sent"
            )
        self._keys.add(key)
        return key

    async def _run_one(self, item: _Item) -> None:
        request = item.request
        outcome = TriggerOutcome(
            index=item.index, request=request, idempotency_key=item.key
        )
        try:
            try:
                item.execution = await self._rules.trigger(
                    request.rule_id,
                    manual_execute_amount=request.manual_execute_amount,
                    idempotency_key=item.key,
                    request_id=request.request_id,
                )
            finally:
                self._counts["triggering"] -= 1
                self._slots.release()
            outcome = attrs.evolve(outcome, execution=item.execution)
            if self._wait:
                self._counts["waiting"] += 1
                try:
                    result = await item.execution.wait(self._timeout)
                finally:
                    self._counts["waiting"] -= 1
                outcome = attrs.evolve(outcome, result=result)
        except errors.ExecutionFailedError as exc:
            outcome = attrs.evolve(outcome, result=exc.result, error=exc)
        except Exception as exc:  # noqa: BLE001 (an item's failure is its outcome)
            outcome = attrs.evolve(outcome, error=exc)
        del self._items[item.index]
        self._finish(outcome)

    def _reject(self, index: int, raw: object, error: Exception) -> None:
        request = raw if isinstance(raw, TriggerRequest) else TriggerRequest(str(raw))
        key = (
            request.idempotency_key
            if isinstance(request.idempotency_key, str)
            else None
        )
        self._finish(
            TriggerOutcome(
                index=index, request=request, idempotency_key=key, error=error
            )
        )

    def _finish(self, outcome: TriggerOutcome) -> None:
        counts = self._counts
        if outcome.ok:
            counts["succeeded"] += 1
        elif isinstance(outcome.error, errors.NotStartedError):
            counts["not_started"] += 1
        else:
            counts["failed"] += 1
            if (
                self._max_failures is not None
                and counts["failed"] >= self._max_failures
            ):
                self._stop = True
        self._queue.put_nowait(outcome)
        self._report()

    def _report(self) -> None:
        if self._on_progress is None:
            return
        progress = BulkProgress(
            **self._counts, elapsed=time.monotonic() - self._started_at
        )
        try:
            self._on_progress(progress)
        except Exception:
            log.exception("on_progress raised; the bulk run goes on")


def _as_request(item: object) -> TriggerRequest:
    if isinstance(item, TriggerRequest):
        return item
    if isinstance(item, str):
        return TriggerRequest(item)
    raise TypeError(
        f"trigger_many takes rule ids or TriggerRequests, not {type(item).__name__}"
    )


async def _aiter(requests: Requests) -> AsyncIterator[TriggerRequest | str]:
    if isinstance(requests, AsyncIterable):
        async for item in requests:
            yield item
    else:
        for item in requests:
            yield item
