"""
Bulk triggering: many rules at once, each ending as one outcome.

Owns ``BulkRun``: at most ``concurrency`` triggers in flight from a lazily
read input, waits through the shared poller, a ``TriggerOutcome`` per item
as it ends. Every item has its key before it is sent, so a lost answer can
be found again. An item's failure is its outcome; an input that raises stops
the pulling, lets the items sent finish, then raises. Leaving the loop early
cancels the work in flight (``in_flight()`` hands it back), leaving no task.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Iterable
from functools import partial
from typing import Any, Self

import attrs

from . import _resume, errors, models
from ._checks import check_count, check_number
from ._execution import Execution, Until, check_until
from ._journal import Journal
from ._otel import Telemetry
from ._outcomes import (
    BulkProgress,
    InFlightItem,
    Keys,
    Source,
    Tally,
    TriggerOutcome,
    TriggerRequest,
    as_request,
    check_requests,
    collect,
    rejected,
)
from ._records import Recorder
from ._requester import Requester
from ._resume import Action, Planned, Refused
from ._rules import send_trigger


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
    at a known point when leaving the loop early (else at garbage collection).
    ``in_flight()`` lists what was started and has no outcome yet.
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
        check_requests(requests)
        self._concurrency = check_count(concurrency, "concurrency", minimum=1) or 1
        self._timeout = check_number(timeout, "timeout", allow_none=True)
        self._max_failures = check_count(
            max_failures, "max_failures", minimum=1, allow_none=True
        )
        if not isinstance(wait, bool):
            raise TypeError("wait must be a bool")
        check_until(until)
        self._until: Until = until
        self._requester = requester
        self._requests = requests
        self._recorder = Recorder(journal) if journal is not None else None
        self._rate_limit = rate_limit
        self._wait = wait
        self._tally = Tally(on_progress, requester.shared.observer.telemetry)
        self._items: dict[int, _Item] = {}
        self._keys = Keys(requester.profile)
        self._workers: list[asyncio.Task[None]] = []
        self._tasks: set[asyncio.Task[None]] = set()  # the waits
        self._stopping = False
        self._failures = 0
        self._crash: BaseException | None = None
        self._outcomes: AsyncIterator[TriggerOutcome] | None = None
        # Outcomes not yet taken (then the input's error, if any, and None).
        self._ready: deque[TriggerOutcome | BaseException | None] = deque()
        self._arrived: asyncio.Future[None] | None = None
        self._room = asyncio.Event()  # set as the consumer takes outcomes
        self._closing = False
        self._stopped = asyncio.Event()  # set once the run has wound down
        self._reading: asyncio.Future[list[Any]] | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> TriggerOutcome:
        if self._closing:  # aclose() in another task: the loop ends with it
            await self._stopped.wait()
            raise StopAsyncIteration
        ready = self._ready
        if ready and isinstance(head := ready[0], TriggerOutcome):
            # An outcome already waits: no need to resume the run itself.
            ready.popleft()
            self._room.set()
            self._items.pop(head.index, None)  # handed over: no longer in flight
            return head
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

        From another task too: the loop iterating the run then ends.
        """
        self._closing = True
        if self._outcomes is None:
            self._outcomes = self._run()  # closed before it started: it never will
        outcomes: Any = self._outcomes
        if outcomes.ag_running:  # another task waits inside: end its loop
            if self._reading is not None:
                self._reading.cancel()
            self._put(None, first=True)
            await self._stopped.wait()
        else:
            await outcomes.aclose()
            self._stopped.set()

    def in_flight(self) -> list[InFlightItem]:
        """
        Return the items started whose outcome you have not taken, in input order.
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
        self._stop = False
        try:
            self._requester.shared.check_open()  # closed, or another loop: no item
            source = Source(await self._source())
        except BaseException:
            self._stopped.set()  # (the journal, if opened, is closed)
            reading, task = self._reading, asyncio.current_task()
            if not (reading and reading.cancelled() and task and not task.cancelling()):
                raise
            return  # aclose() in another task stopped the input's reading
        telemetry = self._requester.shared.observer.telemetry
        span = None
        if telemetry is not None:
            span = telemetry.start("trigger_many", {"sequence.wait": self._wait})
        # Up to `concurrency` workers pull the input, one trigger each (a task
        # per item only to wait), copying this context: spans nest in the run's.
        with Telemetry.current(span) if span is not None else contextlib.nullcontext():
            self._spawn(source)
        end = asyncio.create_task(self._end(source))
        try:
            while True:
                while not self._ready:
                    self._arrived = asyncio.get_running_loop().create_future()
                    await self._arrived
                outcome = self._ready.popleft()
                self._room.set()
                if outcome is None:
                    return
                if isinstance(outcome, BaseException):
                    raise outcome
                self._items.pop(outcome.index, None)
                yield outcome
        finally:
            tasks = (end, *self._workers, *self._tasks)
            await self._wind_down(tasks, span, sys.exc_info()[1])

    async def _wind_down(
        self, tasks: tuple[Any, ...], span: Any, ending: BaseException | None
    ) -> None:
        # Stop every task, end the span, close the journal; tell aclose().
        try:
            self._stopping = True
            self._ready.clear()  # their items stay in in_flight()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if span is not None:
                span.set_attributes(self._tally.attributes())
                Telemetry.end(span)
        finally:
            try:
                if self._recorder is not None:
                    await self._recorder.close(ending)
            finally:
                self._stopped.set()

    async def _source(self) -> Iterable[object] | AsyncIterable[object]:
        # The raw input, or (journalled) the plan of the whole input, read in
        # a task of its own (aclose() in another task may stop it).
        if self._recorder is None:
            return self._requests
        self._reading = asyncio.ensure_future(collect(self._requests))
        return await self._recorder.plan(
            await self._reading,
            check=self._keys.checked,
            api=self._requester.profile.name,
            target=self._requester.shared.base_url,
            wait=self._wait,
            per_minute=self._rate_limit,
            concurrency=self._concurrency,
        )

    async def _work(self, source: Source) -> None:
        # One worker: pull, trigger (or find again), end or wait; until the end.
        while True:
            # Backpressure: pull nothing while the consumer is behind.
            while len(self._ready) >= self._concurrency:
                self._room.clear()
                await self._room.wait()
            if self._crash is not None:
                return
            pulled = source.take() if source.plain else await source.pull()
            if pulled is None:
                return
            if len(self._workers) < self._concurrency:
                self._spawn(source)
            item = self._start(*pulled)
            if item is None:
                continue
            error: Exception | None = None
            try:
                if item.execution is None:
                    item.execution = await (
                        self._trigger(item)
                        if item.planned is None or self._recorder is None
                        else self._recorder.obtain(
                            item.planned, self._requester, partial(self._trigger, item)
                        )
                    )
            except Exception as exc:  # noqa: BLE001 (an item's failure is its outcome)
                error = exc
            if item.execution is None or not self._wait:
                self._end_item(item, None, error, "triggering")
                continue
            self._tally.move("triggering", "waiting")
            task = asyncio.create_task(self._wait_one(item, item.execution))
            self._tasks.add(task)
            task.add_done_callback(self._died)

    def _spawn(self, source: Source) -> None:
        task = asyncio.create_task(self._work(source))
        self._workers.append(task)
        task.add_done_callback(self._died)

    def _died(self, task: asyncio.Task[None]) -> None:
        # A worker or wait that died of what it never catches (on_progress
        # raising a BaseException): the run ends with it, not in a hang.
        self._tasks.discard(task)
        if self._stopping or self._crash is not None:
            return
        self._crash = asyncio.CancelledError() if task.cancelled() else task.exception()
        if self._crash is not None:
            self._put(self._crash)  # after the outcomes already waiting

    async def _end(self, source: Source) -> None:
        # Once the input is done (or broken) and every item sent has ended,
        # end the run: with the input's error, if it raised.
        while busy := {t for t in (*self._workers, *self._tasks) if not t.done()}:
            await asyncio.wait(busy)
        self._put(source.failure or self._crash)  # None: the end

    def _start(self, index: int, raw: object) -> _Item | None:
        # The item to trigger, or None when it ended here (refused, replayed,
        # or not started after max_failures).
        planned = raw if isinstance(raw, Planned) else None
        if isinstance(raw, Refused):  # never recorded: "new" on every resume
            self._finish(rejected(index, raw.item, raw.error), new=False)
            return None
        if self._stop and (planned is None or planned.action is Action.SEND):
            self._finish(_resume.not_started(index, planned or raw))
            return None
        try:
            if planned is not None:
                request, key = planned.request, planned.key
            else:
                request = as_request(raw)
                key = self._keys.claim(request)
        except (TypeError, ValueError) as exc:
            self._finish(rejected(index, raw, exc))
            return None
        if planned is not None and planned.action is Action.REPLAY:
            self._finish(_resume.replayed(planned, self._requester), new=False)
            return None
        item = self._items[index] = _Item(index, request, key, planned=planned)
        if planned is not None and self._recorder is not None:
            self._recorder.remember(planned)
            if planned.action is Action.WAIT and planned.entry is not None:
                item.execution = _resume.handle(
                    planned, planned.entry.execution_id or "", self._requester
                )
        self._tally.start()
        return item

    async def _wait_one(self, item: _Item, execution: Execution) -> None:
        result: models.RuleExecution | None = None
        error: Exception | None = None
        try:
            result = await execution.wait(self._timeout, until=self._until)
        except errors.ExecutionFailedError as exc:
            result, error = exc.result, exc
        except Exception as exc:  # noqa: BLE001 (an item's failure is its outcome)
            error = exc
        self._end_item(item, result, error, "waiting")

    def _end_item(
        self,
        item: _Item,
        result: models.RuleExecution | None,
        error: Exception | None,
        stage: str,
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
        planned = item.planned
        if self._recorder is not None and planned is not None:
            self._recorder.ended(planned, outcome)
        self._finish(outcome, stage, new=planned is None or planned.entry is None)

    def _trigger(self, item: _Item) -> Coroutine[Any, Any, Execution]:
        # The trigger's coroutine itself: no layer of its own to resume (the
        # key was checked, or made, by Keys).
        request = item.request
        return send_trigger(
            self._requester,
            request.rule_id,
            key=item.key,
            manual_execute_amount=request.manual_execute_amount,
            request_id=request.request_id,
        )

    def _finish(
        self, outcome: TriggerOutcome, stage: str | None = None, *, new: bool = True
    ) -> None:
        # Hand the outcome over, then count it (out of the item's *stage*).
        # Only the failures of *new* items count toward max_failures: an item
        # the journal knew (replayed, or failing again), or refused before
        # it could be recorded, must not stop every resume at the same place.
        self._put(outcome)
        if self._tally.end(stage, outcome.error) and new:
            self._failures += 1
            limit = self._max_failures
            self._stop = self._stop or (limit is not None and self._failures >= limit)

    def _put(
        self, outcome: TriggerOutcome | BaseException | None, *, first: bool = False
    ) -> None:
        (self._ready.appendleft if first else self._ready.append)(outcome)
        arrived = self._arrived
        if arrived is not None and not arrived.done():
            arrived.set_result(None)
