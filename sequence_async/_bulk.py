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
import contextlib
import logging
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
)
from typing import Any, Self

import attrs

from . import _resume, errors, models
from ._checks import check_count, check_number
from ._execution import Execution, Until, check_until
from ._ids import new_id
from ._journal import Journal
from ._otel import Telemetry
from ._outcomes import (
    BulkProgress,
    InFlightItem,
    Source,
    TriggerOutcome,
    TriggerRequest,
    as_request,
    iterate,
)
from ._records import Recorder
from ._requester import Requester
from ._resume import Action, Planned, Refused
from ._rules import Rules


log = logging.getLogger("sequence_async")
Requests = Iterable["TriggerRequest | str"] | AsyncIterable["TriggerRequest | str"]


@attrs.define(eq=False)
class _Item:
    index: int
    request: TriggerRequest
    key: str
    execution: Execution | None = None
    planned: Planned | None = None


class BulkRun:
    """
    The outcomes of ``trigger_many``: iterate with ``async for``.

    Use it as ``async with`` (or call ``aclose()``) to stop the work in flight
    at a known point when leaving the loop early; otherwise it is stopped
    when the run is garbage-collected. ``in_flight()`` lists what was started
    and has no outcome yet. Made by ``SequenceClient.trigger_many``, not for
    direct use.
    """

    def __init__(
        self,
        requester: Requester,
        requests: Requests,
        *,
        concurrency: int,
        wait: bool,
        timeout: float | None,
        max_failures: int | None,
        on_progress: Callable[[BulkProgress], None] | None,
        journal: Journal | None = None,
        rate_limit: float | None = None,
        until: Until = "settled",
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
        check_until(until)
        self._until: Until = until
        if on_progress is not None and not callable(on_progress):
            raise TypeError("on_progress must be callable")
        self._requester = requester
        self._rules = Rules(requester)
        self._requests = requests
        self._journal = journal
        self._recorder = Recorder(journal) if journal is not None else None
        self._rate_limit = rate_limit
        self._wait = wait
        self._on_progress = on_progress
        self._items: dict[int, _Item] = {}
        self._keys: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()  # the waits
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
        self._room = asyncio.Event()
        self._stop = False
        source = Source(await self._source())
        telemetry = self._requester.shared.observer.telemetry
        span = None
        if telemetry is not None:
            span = telemetry.start("trigger_many", {"sequence.wait": self._wait})
        # A fixed set of workers pulls the input, one trigger each at a time:
        # no task, semaphore or wake-up per item (a task per item only to
        # wait). The workers copy the context here: with the run's span
        # current, the items' spans nest under it.
        with Telemetry.current(span) if span is not None else contextlib.nullcontext():
            workers = [
                asyncio.create_task(self._work(source))
                for _ in range(self._concurrency)
            ]
        end = asyncio.create_task(self._end(source, workers))
        try:
            while (outcome := await self._queue.get()) is not None:
                self._room.set()
                if isinstance(outcome, BaseException):
                    raise outcome
                yield outcome
        finally:
            tasks = (end, *workers, *self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._journal is not None:
                if self._recorder is not None:
                    await self._recorder.drain()
                await self._journal.close()
            if span is not None:
                span.set_attributes(
                    {f"sequence.{k}": v for k, v in self._counts.items()}
                )
                span.end()

    async def _source(self) -> Iterable[object] | AsyncIterable[object]:
        # The items to start: the raw input, or (journalled) the plan of the
        # whole input, checked against the journal before anything is sent.
        if self._journal is None or self._recorder is None:
            return self._requests
        plan = await _resume.prepare(
            self._journal,
            self._recorder.claimed,
            [item async for item in iterate(self._requests)],
            check=self._checked,
            api=self._requester.profile.name,
            wait=self._wait,
            per_minute=self._rate_limit,
        )
        self._recorder.expect(plan, window=self._concurrency)
        return plan

    def _checked(self, item: object) -> TriggerRequest:
        request = as_request(item)
        if request.idempotency_key is not None:
            self._claim_key(request)
        return request

    # -- the workers' side -----------------------------------------------

    async def _work(self, source: Source) -> None:
        # One worker: pull an item, trigger it (or find it again), then end
        # it, or hand its wait to a task of its own; until the input ends.
        while True:
            # Backpressure: pull nothing while the consumer is behind.
            while self._queue.qsize() >= self._concurrency:
                self._room.clear()
                await self._room.wait()
            pulled = await source.pull()
            if pulled is None:
                return
            item = self._start(*pulled)
            if item is None:
                continue
            error: Exception | None = None
            try:
                if item.execution is None:
                    item.execution = await (
                        self._trigger(item)
                        if item.planned is None
                        else self._obtain(item)
                    )
            except Exception as exc:  # noqa: BLE001 (an item's failure is its outcome)
                error = exc
            finally:
                self._counts["triggering"] -= 1
            if item.execution is None or not self._wait:
                self._end_item(item, None, error)
                continue
            self._counts["waiting"] += 1
            self._report()  # triggered: from triggering to waiting
            task = asyncio.create_task(self._wait_one(item, item.execution))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _end(self, source: Source, workers: list[asyncio.Task[None]]) -> None:
        # Once the input is done (or broken) and every item sent has ended,
        # end the run: with the input's error, if it raised.
        await asyncio.wait(workers)
        while self._tasks:
            await asyncio.wait(set(self._tasks))
        failure = source.failure
        for worker in workers:  # a worker's own bug ends the run too
            failure = failure or worker.exception()
        self._queue.put_nowait(failure)
        self._queue.put_nowait(None)

    def _start(self, index: int, raw: object) -> _Item | None:
        # The item to trigger, or None when it ended here (refused, replayed
        # from the journal, or not started after max_failures).
        if self._stop:
            self._reject(index, raw, errors.NotStartedError("max_failures reached"))
            return None
        planned = raw if isinstance(raw, Planned) else None
        if isinstance(raw, Refused):
            self._reject(index, raw.item, raw.error)
            return None
        try:
            if planned is not None:
                request, key = planned.request, planned.key
            else:
                request = as_request(raw)
                key = self._claim_key(request)
        except (TypeError, ValueError) as exc:
            self._reject(index, raw, exc)
            return None
        if planned is not None and planned.action is Action.REPLAY:
            self._finish(_resume.replayed(planned, self._requester))
            return None
        item = self._items[index] = _Item(index, request, key, planned=planned)
        if planned is not None and self._recorder is not None:
            self._recorder.remember(planned)
            if planned.action is Action.WAIT and planned.entry is not None:
                item.execution = _resume.handle(
                    planned, planned.entry.execution_id or "", self._requester
                )
        self._counts["started"] += 1
        self._counts["triggering"] += 1
        self._report()
        return item

    def _claim_key(self, request: TriggerRequest) -> str:
        if request.idempotency_key is None:
            return new_id()
        key = self._requester.profile.check_idempotency_key(request.idempotency_key)
        if key in self._keys:
            raise ValueError(
                f"duplicate idempotency_key {key!r} in this batch; not sent"
            )
        self._keys.add(key)
        return key

    async def _wait_one(self, item: _Item, execution: Execution) -> None:
        result: models.RuleExecution | None = None
        error: Exception | None = None
        try:
            result = await execution.wait(self._timeout, until=self._until)
        except errors.ExecutionFailedError as exc:
            result, error = exc.result, exc
        except Exception as exc:  # noqa: BLE001 (an item's failure is its outcome)
            error = exc
        finally:
            self._counts["waiting"] -= 1
        self._end_item(item, result, error)

    def _end_item(
        self,
        item: _Item,
        result: models.RuleExecution | None,
        error: Exception | None,
    ) -> None:
        # The outcome is built once, here (attrs.evolve cost more).
        outcome = TriggerOutcome(
            index=item.index,
            request=item.request,
            idempotency_key=item.key,
            execution=item.execution,
            result=result,
            error=error,
        )
        if self._recorder is not None and item.planned is not None:
            self._recorder.ended(item.planned, outcome)
        del self._items[item.index]
        self._finish(outcome)

    async def _obtain(self, item: _Item) -> Execution:
        # A journalled item's execution: triggered now, or found again.
        recorder, planned = self._recorder, item.planned
        if recorder is None or planned is None:
            return await self._trigger(item)
        if planned.action is Action.RECONCILE:
            found = await _resume.reconcile(planned, self._requester, recorder.claimed)
            if found is None:
                raise _resume.needs_review(planned)
            recorder.accepted(planned, found)
            return _resume.handle(planned, found, self._requester)
        await recorder.sending(planned)
        execution = await self._trigger(item)
        recorder.accepted(planned, execution.id)
        return execution

    def _trigger(self, item: _Item) -> Coroutine[Any, Any, Execution]:
        # The trigger's coroutine itself: no layer of its own to resume.
        request = item.request
        return self._rules.trigger(
            request.rule_id,
            manual_execute_amount=request.manual_execute_amount,
            idempotency_key=item.key,
            request_id=request.request_id,
        )

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
        telemetry = self._requester.shared.observer.telemetry
        if telemetry is not None:
            kind = "ok" if outcome.ok else type(outcome.error).__name__
            telemetry.bulk_items.add(1, {"outcome": kind})
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
