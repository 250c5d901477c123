"""
The poll scheduler: one loop per rule, however many waits are pending on it.

Owns ``Poller``, one per client (in ``Shared``). A wait registers a future
with its own schedule (``PollPolicy``); per rule and requester with pending
waits, one loop (on tenacity, ``_retry.poll_loop``) ticks when the earliest
waiter is due and sends one request for all of them: ``get_execution`` when
one is pending, else ``list_executions`` paged until every pending id is
seen. A wait costs a future and a small record, not a task. Every snapshot's
identity is checked; a failed or malformed poll is retried until each wait's
own deadline; only an auth failure or a closed client ends the waits early.

With a ``PollShare`` (``_waits``; ``sequence_async.redis`` implements it),
waits join their peers in other processes: per rule, only the process that
leads it polls, for everyone's pending executions (stand-in waiters with the
same schedule), and publishes what ended; the others receive it. The share's
records (``Watch``, the waiter and group) live in ``_waits``.

Polls follow the server: no execution is polled before its
``next_attempt_at``; one that only waits for its transfers to settle is
polled every ``PollPolicy.settlement_interval``; a ``Retry-After`` on a
poll's answer (or error) holds the rule's next poll back that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Mapping
from datetime import timedelta

from . import errors, models
from ._paging import list_executions, read_execution
from ._ratelimit import Priority
from ._requester import Requester
from ._retry import PollPolicy, poll_loop
from ._waits import Outcome, PollShare, Remote, Watch, _Group, _Waiter


__all__ = ["CLOCK_SKEW", "Poller", "Watch"]

log = logging.getLogger("sequence_async")
_LIST_PAGE = 100
_MAX_LIST_PAGES = 20
# Server and client clocks differ; list paging stops this far before the
# oldest pending trigger.
CLOCK_SKEW = timedelta(seconds=60)
# Errors that no later poll can cure: they end every wait of the group.
_FATAL = (
    errors.AuthenticationError,
    errors.PermissionDeniedError,
    errors.ClientClosedError,
    errors.EventLoopError,
)


class Poller:
    """
    The client's poll scheduler: one loop per rule with pending executions.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        share: PollShare | None = None,
    ) -> None:
        self._clock = clock
        self._groups: dict[tuple[int, str], _Group] = {}
        self._share = share
        if share is not None:
            share.start(self._deliver, self._nudge)

    def __repr__(self) -> str:
        pending = sum(len(g.waiters) for g in self._groups.values())
        return f"<Poller {len(self._groups)} rules, {pending} pending>"

    async def wait(
        self,
        watch: Watch,
        requester: Requester,
        policy: PollPolicy,
        deadline: float | None,
    ) -> models.RuleExecution:
        """
        Register *watch* and wait until a poll finds it terminal.

        The caller bounds the time; cancelling leaves nothing behind.
        """
        key = (id(requester), watch.rule_id)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(requester, watch.rule_id)
        first = max(0.0, policy.delay(1) - watch.age())
        waiter = _Waiter(watch, policy, self._clock(), first, deadline)
        group.waiters.setdefault(watch.execution_id, []).append(waiter)
        try:
            if self._share is not None:  # an outcome stored already: no poll
                stored = await self._share.join(watch)
                if stored is not None:
                    group.settle(waiter, stored)
            if waiter.future.done():
                pass
            elif group.task is None or group.task.done():
                group.task = asyncio.create_task(self._run(group))
            else:
                group.wake.set()  # the loop replans: this waiter may be due sooner
            return await waiter.future
        finally:
            await self._leave(key, group, waiter)

    async def _leave(
        self, key: tuple[int, str], group: _Group, waiter: _Waiter
    ) -> None:
        group.remove(waiter)
        future = waiter.future
        if self._share is not None and (
            not future.done()
            or future.cancelled()
            or future.exception()
            or not future.result().done  # an early end: nothing was published
        ):
            self._share.leave(waiter.watch)
        if group.has_local() or group.task is None:
            return
        # The last waiter of the rule is gone: stop its loop now, and be sure
        # it has stopped before returning, so no task outlives the wait.
        task, group.task = group.task, None
        if self._groups.get(key) is group:
            del self._groups[key]
        for other in group.all():  # other processes' waits: no longer ours
            group.remove(other)
            other.finish(errors.ClientClosedError("no longer leading"))
        if task is not asyncio.current_task() and not task.done():
            task.cancel()
            await asyncio.wait([task])
        if self._share is not None:
            await self._share.release(group.rule_id)

    def _deliver(self, execution_id: str, outcome: Outcome) -> None:
        # Another process published the outcome of an execution.
        for group in list(self._groups.values()):
            for waiter in list(group.waiters.get(execution_id, ())):
                if waiter.remote:
                    group.remove(waiter)
                    waiter.finish(outcome)
                else:
                    group.settle(waiter, outcome)

    def _nudge(self, rule_id: str) -> None:
        # News of a rule: a new wait elsewhere, or its lead is free.
        for group in self._groups.values():
            if group.rule_id == rule_id:
                group.follow_until = None
                group.wake.set()

    async def aclose(self) -> None:
        """
        End every pending wait with ``ClientClosedError`` and stop every loop.
        """
        groups, self._groups = list(self._groups.values()), {}
        tasks = [g.task for g in groups if g.task is not None and not g.task.done()]
        for group in groups:
            for waiter in group.all():
                group.finish(
                    waiter, errors.ClientClosedError("the SequenceClient was closed")
                )
            group.task = None
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        if self._share is not None:
            await self._share.aclose()

    async def _run(self, group: _Group) -> None:
        try:
            await poll_loop(
                functools.partial(self._tick, group),
                wait=functools.partial(self._sleep_for, group),
                sleep=lambda seconds: _sleep_or_wake(group.wake, seconds),
            )
        except Exception as exc:
            # A bug must end the waits, never leave them hanging.
            log.exception("the poll loop of rule %s failed", group.rule_id)
            for waiter in group.all():
                group.finish(waiter, exc)

    def _sleep_for(self, group: _Group) -> float:
        if not group.waiters:
            return 0.0
        until = group.next_due() if group.follow_until is None else group.follow_until
        return max(0.0, until - self._clock())

    async def _tick(self, group: _Group) -> bool:
        """
        Poll the rule if a waiter is due; return whether waiters remain.

        With a share, only the process that leads the rule polls it, for
        every process's waits, and publishes what ended.
        """
        if not group.waiters:
            return False
        share = self._share
        if share is not None:
            if group.follow_until is not None and self._clock() < group.follow_until:
                return True
            led = await share.lead(group.rule_id)
            if not isinstance(led, list):
                group.follow_until = self._clock() + led
                return True
            group.follow_until = None
            self._adopt(group, led)
            if not group.waiters:
                return False
        try:
            return await self._poll(group)
        finally:
            outcomes, group.outcomes = group.outcomes, {}
            if share is not None and outcomes:
                await share.publish(group.rule_id, outcomes)

    def _adopt(self, group: _Group, remotes: list[Remote]) -> None:
        # Stand-ins for the other processes' waits on a rule this one leads,
        # on this process's schedule, as if they were its own.
        now = self._clock()
        live = {r.execution_id for r in remotes}
        for waiter in group.all():
            if waiter.remote and waiter.watch.execution_id not in live:
                group.remove(waiter)
                waiter.finish(errors.ClientClosedError("left"))
        policy = group.requester.poll
        for remote in remotes:
            if remote.execution_id in group.waiters:
                continue
            watch = remote.watch(group.rule_id, now, self._clock)
            first = max(0.0, policy.delay(1) - remote.age)
            group.waiters[remote.execution_id] = [
                _Waiter(watch, policy, now, first, None, remote=True)
            ]

    async def _poll(self, group: _Group) -> bool:
        started = self._clock()
        if group.next_due() > started:
            return True  # woken early by a new waiter: nothing due yet
        pending = group.waiters
        ids = list(pending)
        answered = True
        try:
            if len(ids) == 1:
                found = await self._get(group, ids[0])
            else:
                found = await self._list(group, pending)
        except errors.NotFoundError:
            found = {}
        except _FATAL as exc:
            for waiter in group.all():
                group.finish(waiter, exc)
            return False
        except errors.SequenceError as exc:
            # Failed or malformed: the next due poll tries again; each wait's
            # own deadline bounds how long.
            log.info("poll of rule %s failed (%s); retrying", group.rule_id, exc)
            if isinstance(exc, errors.RateLimitError):
                group.hold(exc.retry_after, self._clock())
            found, answered = {}, False
        telemetry = group.requester.shared.observer.telemetry
        if telemetry is not None:
            served = sum(len(pending.get(i, ())) for i in found)
            telemetry.polls.add(
                1, {"sequence.poll": "get" if len(ids) == 1 else "list"}
            )
            telemetry.waits_served.record(served)
        for execution_id in ids:
            snapshot = found.get(execution_id)
            for waiter in list(pending.get(execution_id, ())):
                waiter.advance(started)
                if snapshot is not None:
                    waiter.watch.observe(snapshot)
                    if waiter.watch.ends(snapshot):
                        group.finish(waiter, snapshot)
                    else:
                        waiter.follow(snapshot, started)
                elif answered and waiter.watch.age() > waiter.policy.not_visible_grace:
                    # Only a poll that answered without it says "not there":
                    # a failing server is not asked once per wait.
                    await self._settle_alone(group, waiter)
        return bool(group.waiters)

    async def _get(
        self, group: _Group, execution_id: str
    ) -> dict[str, models.RuleExecution]:
        snapshot, hint = await read_execution(
            group.requester,
            execution_id,
            rule_id=group.rule_id,
            priority=Priority.POLL,
            deadline=group.deadline(),
        )
        group.hold(hint, self._clock())
        if snapshot.id != execution_id or snapshot.rule_id not in (
            None,
            group.rule_id,
        ):
            raise errors.ResponseValidationError(
                f"asked for execution {execution_id} of {group.rule_id}, got "
                f"{snapshot.id!r} of {snapshot.rule_id!r}",
                request_id=snapshot.request_id,
            )
        return {execution_id: snapshot}

    async def _settle_alone(self, group: _Group, waiter: _Waiter) -> None:
        # Never seen within the grace period: ask for it alone, so that a real
        # 404 (or its state) reaches this waiter only.
        try:
            found = await self._get(group, waiter.watch.execution_id)
        except (errors.NotFoundError, *_FATAL) as exc:
            group.finish(waiter, exc)
            return
        except errors.SequenceError:
            return
        snapshot = found[waiter.watch.execution_id]
        waiter.watch.observe(snapshot)
        if waiter.watch.ends(snapshot):
            group.finish(waiter, snapshot)

    async def _list(
        self, group: _Group, pending: Mapping[str, list[_Waiter]]
    ) -> dict[str, models.RuleExecution]:
        # Where to stop paging when some pending id is not on the pages (not
        # visible yet): past the oldest pending execution, by the server's own
        # created_at when it was seen before, else by our trigger time.
        oldest = min(w.watch.oldest() for ws in pending.values() for w in ws)
        wanted = set(pending)
        found: dict[str, models.RuleExecution] = {}
        # Platform lists live runs only unless asked: dry runs are waited on too.
        pages = list_executions(
            group.requester,
            group.rule_id,
            page_size=_LIST_PAGE,
            priority=Priority.POLL,
            execution_mode="all" if _has_dry_runs(group.requester) else None,
        ).pages()
        try:
            count = 0
            async for page in pages:
                count += 1
                group.hold(page.retry_after, self._clock())
                found.update(
                    (item.id, item)
                    for item in page.items
                    if item.id in wanted and item.rule_id in (None, group.rule_id)
                )
                if (
                    wanted <= found.keys()
                    or count >= _MAX_LIST_PAGES
                    or any(
                        i.created_at is not None and i.created_at < oldest
                        for i in page.items
                    )
                ):
                    break
        finally:
            await pages.aclose()  # type: ignore[attr-defined]
        return found


def _has_dry_runs(requester: Requester) -> bool:
    return "simulation" in requester.profile.features


async def _sleep_or_wake(wake: asyncio.Event, seconds: float) -> None:
    # A new waiter may be due sooner than the loop planned: it sets `wake`
    # (perhaps during the last tick, so a set flag ends the sleep at once).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await wake.wait()
    wake.clear()
