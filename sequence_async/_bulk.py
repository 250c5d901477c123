"""
Bulk triggering: many rules at once, each ending as one outcome.

Owns ``trigger_many``: it consumes its input lazily, keeps at most
``concurrency`` triggers in flight, waits through the client's shared poller,
and yields a ``TriggerOutcome`` per item as it completes. An item's failure is
its outcome, never an exception that stops the others. Leaving the loop early
or cancelling it cancels the work in flight and leaves no task behind.

May import: ``_execution``, ``models``, ``errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
)
from typing import Protocol, Self

import attrs

from . import errors, models
from ._execution import Execution
from ._wire import is_int


@attrs.frozen
class TriggerRequest:
    """
    One item of a bulk trigger.

    Args:
        rule_id: The rule to trigger.
        manual_execute_amount: For ``MANUAL`` rules, the amount in cents.
        idempotency_key: Your key for this item; must be unique in a batch.
    """

    rule_id: str
    manual_execute_amount: int | None = attrs.field(default=None, kw_only=True)
    idempotency_key: str | None = attrs.field(default=None, kw_only=True)


@attrs.frozen(kw_only=True)
class TriggerOutcome:
    """
    How one bulk item ended.

    ``ok`` is true when the trigger succeeded and, when waiting, the
    execution ended ``executed`` or ``partial``. ``error`` holds what went
    wrong otherwise: an API error, ``OutcomeUnknownError``,
    ``ExecutionFailedError`` (with ``result`` set too), ``WaitTimeoutError``,
    ``NotStartedError``, or a ``ValueError`` for an item rejected before
    sending.
    """

    index: int
    request: TriggerRequest
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
class BulkProgress:
    """
    Counts of a running bulk trigger, as given to ``on_progress``.
    """

    started: int
    in_flight: int
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


class TriggerFn(Protocol):
    """
    ``client.rules.trigger`` as bulk triggering uses it.
    """

    def __call__(
        self,
        rule_id: str,
        *,
        manual_execute_amount: int | None = ...,
        idempotency_key: str | None = ...,
    ) -> Awaitable[Execution]: ...


def _as_request(item: object) -> TriggerRequest:
    if isinstance(item, TriggerRequest):
        return item
    if isinstance(item, str):
        return TriggerRequest(item)
    raise TypeError(
        f"trigger_many takes rule ids or TriggerRequests, not {type(item).__name__}"
    )


async def _aiter(
    requests: Iterable[TriggerRequest | str] | AsyncIterable[TriggerRequest | str],
) -> AsyncIterator[TriggerRequest | str]:
    if isinstance(requests, AsyncIterable):
        async for item in requests:
            yield item
    else:
        for item in requests:
            yield item


@attrs.define(eq=False)
class _Counts:
    started: int = 0
    in_flight: int = 0
    succeeded: int = 0
    failed: int = 0
    not_started: int = 0


async def trigger_many(
    trigger: TriggerFn,
    requests: Iterable[TriggerRequest | str] | AsyncIterable[TriggerRequest | str],
    *,
    concurrency: int = 16,
    wait: bool = True,
    timeout: float | None = 300.0,
    max_failures: int | None = None,
    on_progress: Callable[[BulkProgress], None] | None = None,
) -> AsyncGenerator[TriggerOutcome, None]:
    """
    Trigger every request and yield one outcome each, as they complete.

    See ``SequenceClient.trigger_many`` for the arguments.
    """
    if not (is_int(concurrency) and concurrency >= 1):
        raise ValueError("concurrency must be an int of at least 1")
    if max_failures is not None and max_failures < 1:
        raise ValueError("max_failures must be at least 1 or None")
    counts = _Counts()
    started_at = time.monotonic()
    outcomes: asyncio.Queue[TriggerOutcome | Exception | None] = asyncio.Queue()
    slots = asyncio.Semaphore(concurrency)
    workers: set[asyncio.Task[None]] = set()
    keys: set[str] = set()
    stop = asyncio.Event()
    room = asyncio.Event()

    def report() -> None:
        if on_progress is not None:
            on_progress(
                BulkProgress(
                    started=counts.started,
                    in_flight=counts.in_flight,
                    succeeded=counts.succeeded,
                    failed=counts.failed,
                    not_started=counts.not_started,
                    elapsed=time.monotonic() - started_at,
                )
            )

    def finish(outcome: TriggerOutcome) -> None:
        if outcome.ok:
            counts.succeeded += 1
        elif isinstance(outcome.error, errors.NotStartedError):
            counts.not_started += 1
        else:
            counts.failed += 1
            if max_failures is not None and counts.failed >= max_failures:
                stop.set()
        outcomes.put_nowait(outcome)
        report()

    async def run(index: int, request: TriggerRequest) -> None:
        execution: Execution | None = None
        result: models.RuleExecution | None = None
        try:
            try:
                execution = await trigger(
                    request.rule_id,
                    manual_execute_amount=request.manual_execute_amount,
                    idempotency_key=request.idempotency_key,
                )
            finally:
                counts.in_flight -= 1
                slots.release()
            if wait:
                result = await execution.wait(timeout)
        except errors.ExecutionFailedError as exc:
            finish(
                TriggerOutcome(
                    index=index,
                    request=request,
                    execution=execution,
                    result=exc.result,
                    error=exc,
                )
            )
        except Exception as exc:  # noqa: BLE001 (an item's failure is its outcome)
            finish(
                TriggerOutcome(
                    index=index, request=request, execution=execution, error=exc
                )
            )
        else:
            finish(
                TriggerOutcome(
                    index=index, request=request, execution=execution, result=result
                )
            )

    def reject(index: int, item: object, error: Exception) -> None:
        request = (
            item if isinstance(item, TriggerRequest) else TriggerRequest(str(item))
        )
        finish(TriggerOutcome(index=index, request=request, error=error))

    async def produce() -> None:
        items = aiter(_aiter(requests))
        index = -1
        try:
            while True:
                # Backpressure: pull nothing while the consumer is behind.
                while outcomes.qsize() >= concurrency:
                    room.clear()
                    await room.wait()
                if not stop.is_set():
                    # Slots free up as triggers finish, failed ones included.
                    await slots.acquire()
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    break
                index += 1
                if stop.is_set():
                    reject(index, item, errors.NotStartedError("max_failures reached"))
                    continue
                try:
                    request = _checked(item, keys)
                except (TypeError, ValueError) as exc:
                    slots.release()
                    reject(index, item, exc)
                    continue
                counts.started += 1
                counts.in_flight += 1
                task = asyncio.create_task(run(index, request))
                workers.add(task)
                task.add_done_callback(workers.discard)
                report()
            while workers:
                await asyncio.wait(set(workers))
        except Exception as exc:  # noqa: BLE001 (the input itself failed: tell the consumer)
            outcomes.put_nowait(exc)
        outcomes.put_nowait(None)

    producer = asyncio.create_task(produce())
    try:
        while (outcome := await outcomes.get()) is not None:
            room.set()
            if isinstance(outcome, Exception):
                raise outcome
            yield outcome
    finally:
        for task in (producer, *workers):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(producer, *workers, return_exceptions=True)


def _checked(item: object, keys: set[str]) -> TriggerRequest:
    request = _as_request(item)
    key = request.idempotency_key
    if key is not None:
        if key in keys:
            raise ValueError(
                f"duplicate idempotency_key {key!r} in this batch; not sent"
            )
        keys.add(key)
    return request


class BulkRun:
    """
    The outcomes of ``trigger_many``: iterate with ``async for``.

    Use it as ``async with`` (or call ``aclose()``) to stop the work in flight
    at a known point when leaving the loop early; otherwise it is stopped
    when the run is garbage-collected.
    """

    __slots__ = ("_outcomes",)

    def __init__(self, outcomes: AsyncGenerator[TriggerOutcome, None]) -> None:
        self._outcomes = outcomes

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> TriggerOutcome:
        return await anext(self._outcomes)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """
        Cancel the work in flight and wait until it has stopped.
        """
        await self._outcomes.aclose()
