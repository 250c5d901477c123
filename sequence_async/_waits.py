"""
What the poller keeps per wait and per rule, and its seam to other processes.

Owns ``Watch`` (what a wait asks to be watched), ``_Waiter`` (one pending wait
and its own poll schedule), ``_Group`` (the waits pending on one rule, with
their loop) and ``PollShare``: the protocol through which the poller of one
process shares its waits with the pollers of others (``sequence_async.redis``
implements it; without one, a poller is alone). ``Remote`` is another
process's pending execution, as a share reports it.

May import: ``models``, ``errors``, ``_requester``, ``_retry``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

import attrs

from . import errors, models
from ._requester import Requester
from ._retry import PollPolicy


# What a wait can end with, as a share passes it between processes: the
# terminal snapshot, or the 404 of an execution never seen.
Outcome = models.RuleExecution | errors.NotFoundError
# The longest a server's next_attempt_at may hold a poll back.
MAX_NEXT_ATTEMPT = 86_400.0


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


@attrs.frozen
class Remote:
    """
    An execution another process waits for: its age (seconds) and paging bound.
    """

    execution_id: str
    age: float
    oldest: datetime

    def watch(self, rule_id: str, now: float, clock: Callable[[], float]) -> Watch:
        """
        A stand-in wait for it, on this process's schedule.

        Its news is not observed here: the process that waits gets it from
        the share.
        """
        return Watch(
            self.execution_id,
            rule_id,
            _ignore,
            functools.partial(_aged, self.age, now, clock),
            functools.partial(_fixed, self.oldest),
        )


class PollShare(Protocol):
    """
    The seam between one process's poller and the others on the same key.

    One process at a time *leads* a rule: it polls for every process's
    pending executions of that rule and publishes what ends; the others
    follow and receive outcomes through ``deliver``. Every method is bounded
    in time and never raises for the share's own failures: a share that
    cannot reach its peers answers as if the process were alone (it leads
    every rule and knows no one else's waits).
    """

    def start(
        self,
        deliver: Callable[[str, Outcome], None],
        nudge: Callable[[str], None],
    ) -> None:
        """Send outcomes to *deliver* (by execution id), news of a rule to *nudge*."""

    async def join(self, watch: Watch) -> Outcome | None:
        """Register a pending wait; return its outcome if one is stored already."""

    def leave(self, watch: Watch) -> None:
        """Unregister a wait that ended without an outcome (soon, not now)."""

    async def lead(self, rule_id: str) -> float | list[Remote]:
        """
        Take or keep the lead of *rule_id*.

        Return the other processes' pending executions of the rule when this
        process leads it, else the seconds after which to ask again.
        """

    async def publish(self, rule_id: str, outcomes: Mapping[str, Outcome]) -> None:
        """Store and announce the outcomes this process found as leader."""

    async def release(self, rule_id: str) -> None:
        """Give up the lead of *rule_id* (this process waits on it no more)."""

    async def aclose(self) -> None:
        """Give up every lead and stop."""


class _Waiter:
    """
    One pending wait: its watch, its future and its own poll schedule.

    A *remote* waiter stands for another process's wait while this process
    leads the rule: it has the same schedule, and nobody awaits its future.
    """

    __slots__ = (
        "deadline",
        "due",
        "future",
        "interval",
        "policy",
        "polls",
        "remote",
        "watch",
    )

    def __init__(
        self,
        watch: Watch,
        policy: PollPolicy,
        now: float,
        first: float,
        deadline: float | None,
        *,
        remote: bool = False,
    ) -> None:
        self.watch = watch
        self.policy = policy
        self.deadline = deadline
        self.remote = remote
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
        if self.remote:
            self.future.cancel()  # nobody awaits it; the outcome is published
        elif isinstance(outcome, BaseException):
            self.future.set_exception(outcome)
        else:
            self.future.set_result(outcome)


@attrs.define(eq=False)
class _Group:
    # The pending waits on one rule (for one requester) and their loop. With
    # a share: until when another process leads the rule, and the outcomes
    # found by this process's last poll, to publish.
    requester: Requester
    rule_id: str
    waiters: dict[str, list[_Waiter]] = attrs.Factory(dict)
    wake: asyncio.Event = attrs.Factory(asyncio.Event)
    task: asyncio.Task[None] | None = None
    follow_until: float | None = None
    outcomes: dict[str, Outcome] = attrs.Factory(dict)
    not_before: float = 0.0  # a Retry-After on the rule's last poll

    def all(self) -> list[_Waiter]:
        return [w for ws in self.waiters.values() for w in ws]

    def has_local(self) -> bool:
        return any(not w.remote for ws in self.waiters.values() for w in ws)

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
        if isinstance(outcome, models.RuleExecution) and outcome.done:
            # Only a terminal status is everyone's (published to other
            # processes): a settling snapshot (an early wait's) or a 404 (this
            # waiter's grace) is this waiter's alone.
            self.outcomes[waiter.watch.execution_id] = outcome
        waiter.finish(outcome)

    def settle(self, waiter: _Waiter, outcome: Outcome) -> None:
        """
        End *waiter* with an outcome another process published (or stored).
        """
        if isinstance(outcome, errors.NotFoundError):
            self.remove(waiter)
            waiter.finish(outcome)
        elif outcome.id == waiter.watch.execution_id and outcome.rule_id in (
            None,
            self.rule_id,
        ):
            waiter.watch.observe(outcome)
            if waiter.watch.ends(outcome):
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
        deadlines = [w.deadline for w in self.all() if not w.remote]
        if not deadlines or None in deadlines:
            return None
        return max(d for d in deadlines if d is not None)


def _ignore(_: models.RuleExecution) -> None:
    pass


def _aged(age: float, since: float, clock: Callable[[], float]) -> float:
    return age + clock() - since


def _fixed(value: datetime) -> datetime:
    return value
