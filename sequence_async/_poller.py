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
from datetime import UTC, datetime, timedelta

import attrs

from . import errors, models
from ._paging import list_executions, read_execution
from ._ratelimit import Priority
from ._requester import Requester
from ._retry import PollPolicy, poll_loop


log = logging.getLogger("sequence_async")
_LIST_PAGE = 100
_MAX_LIST_PAGES = 20
# Server and client clocks differ; list paging stops this far before the
# oldest pending trigger.
CLOCK_SKEW = timedelta(seconds=60)
# The longest ``next_attempt_at`` may hold a poll back (a day); a wait's own
# deadline still bounds it.
MAX_NEXT_ATTEMPT = 86_400.0
# Errors that no later poll can cure: they end every wait of the group.
_FATAL = (
    errors.AuthenticationError,
    errors.PermissionDeniedError,
    errors.ClientClosedError,
    errors.EventLoopError,
)


@attrs.frozen(eq=False)
class Watch:
    """
    What a wait asks the poller to watch: an execution and where news goes.
    """

    execution_id: str
    rule_id: str
    observe: Callable[[models.RuleExecution], None]
    age: Callable[[], float]
    oldest: Callable[[], datetime]
    early: bool = False  # ends once only settlement is left

    def ends(self, snapshot: models.RuleExecution) -> bool:
        """
        Whether *snapshot* ends this wait.
        """
        return snapshot.done or (self.early and snapshot.settling)


class _Waiter:
    """
    One pending wait: its watch, its future and its own poll schedule.
    """

    __slots__ = ("deadline", "due", "future", "interval", "policy", "polls", "watch")

    def __init__(
        self,
        watch: Watch,
        policy: PollPolicy,
        now: float,
        first: float,
        deadline: float | None,
    ) -> None:
        self.watch = watch
        self.policy = policy
        self.deadline = deadline
        self.future: asyncio.Future[models.RuleExecution] = (
            asyncio.get_running_loop().create_future()
        )
        self.polls = 0
        self.interval = first
        self.due = now + first

    def advance(self, now: float) -> None:
        """
        Count a poll made at *now* for this waiter, if it was close to due.

        The schedule is anchored to the trigger (1 s, then x1.5 ...), as a
        lone poller's would be. A poll at most half an interval before the
        waiter's next point counts as that point, and the waiter moves on to
        the point after: sharing saves requests at the price of seeing an end
        up to half an interval later. An earlier poll brings news for free and
        changes nothing.
        """
        while self.due - now <= 0.5 * self.interval:
            self.polls += 1
            self.interval = max(self.policy.delay(self.polls + 1), 0.001)
            self.due += self.interval

    def follow(self, snapshot: models.RuleExecution, now: float) -> None:
        """
        Move the next poll to where the server says news can come.

        Never before ``next_attempt_at`` (by the wall clock; capped at a
        day); while only settlement is left, the slow cadence.
        """
        hold = 0.0
        if snapshot.next_attempt_at is not None:
            wait = (snapshot.next_attempt_at - datetime.now(UTC)).total_seconds()
            hold = min(max(0.0, wait), MAX_NEXT_ATTEMPT)
        elif snapshot.settling:
            hold = self.policy.settlement_interval
        if hold and self.due < now + hold:
            self.interval = hold
            self.due = now + hold

    def finish(self, outcome: models.RuleExecution | BaseException) -> None:
        if self.future.done():
            return
        if isinstance(outcome, BaseException):
            self.future.set_exception(outcome)
        else:
            self.future.set_result(outcome)


@attrs.define(eq=False)
class _Group:
    # The pending waits on one rule (for one requester) and their loop.
    requester: Requester
    rule_id: str
    waiters: dict[str, list[_Waiter]] = attrs.Factory(dict)
    wake: asyncio.Event = attrs.Factory(asyncio.Event)
    task: asyncio.Task[None] | None = None
    not_before: float = 0.0  # a Retry-After on the rule's last poll

    def all(self) -> list[_Waiter]:
        return [w for ws in self.waiters.values() for w in ws]

    def remove(self, waiter: _Waiter) -> None:
        same = self.waiters.get(waiter.watch.execution_id, [])
        if waiter in same:
            same.remove(waiter)
            if not same:
                del self.waiters[waiter.watch.execution_id]

    def finish(
        self, waiter: _Waiter, outcome: models.RuleExecution | BaseException
    ) -> None:
        self.remove(waiter)
        waiter.finish(outcome)

    def next_due(self) -> float:
        return max(
            self.not_before, min(w.due for ws in self.waiters.values() for w in ws)
        )

    def hold(self, seconds: float | None, now: float) -> None:
        if seconds:
            self.not_before = max(self.not_before, now + seconds)

    def deadline(self) -> float | None:
        deadlines = [w.deadline for w in self.all()]
        if not deadlines or None in deadlines:
            return None
        return max(d for d in deadlines if d is not None)


class Poller:
    """
    The client's poll scheduler: one loop per rule with pending executions.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._groups: dict[tuple[int, str], _Group] = {}

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
        if group.task is None or group.task.done():
            group.task = asyncio.create_task(self._run(group))
        else:
            group.wake.set()  # the loop replans: this waiter may be due sooner
        try:
            return await waiter.future
        finally:
            await self._leave(key, group, waiter)

    async def _leave(
        self, key: tuple[int, str], group: _Group, waiter: _Waiter
    ) -> None:
        group.remove(waiter)
        if group.waiters or group.task is None:
            return
        # The last waiter of the rule is gone: stop its loop now, and be sure
        # it has stopped before returning, so no task outlives the wait.
        task, group.task = group.task, None
        if self._groups.get(key) is group:
            del self._groups[key]
        if task is not asyncio.current_task() and not task.done():
            task.cancel()
            await asyncio.wait([task])

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

    async def _run(self, group: _Group) -> None:
        await poll_loop(
            functools.partial(self._tick, group),
            wait=lambda: (
                max(0.0, group.next_due() - self._clock()) if group.waiters else 0.0
            ),
            sleep=lambda seconds: _sleep_or_wake(group.wake, seconds),
        )

    async def _tick(self, group: _Group) -> bool:
        """
        Poll the rule if a waiter is due; return whether waiters remain.
        """
        if not group.waiters:
            return False
        started = self._clock()
        if group.next_due() > started:
            return True  # woken early by a new waiter: nothing due yet
        pending = group.waiters
        ids = list(pending)
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
            found = {}
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
                elif waiter.watch.age() > waiter.policy.not_visible_grace:
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
