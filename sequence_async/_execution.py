"""
Execution handles and waiting for them, alone or by the thousand.

Owns the ``Execution`` handle (what ``rules.trigger()`` returns), its resume
token, and the ``Poller``, the client's one poll scheduler. A wait registers
a future with its own schedule; per rule with pending waits, one loop (on
tenacity, ``_retry.poll_loop``) ticks when the earliest waiter is due and
sends one request for all of them: ``GET /rule-executions/{id}`` when one is
pending, else ``GET /rule-executions?rule_id=…&first=100`` paged until every
pending id is seen. A wait costs a future and a small record, not a task.
Cancelling a wait stops its polling at once; the rule's loop stops with its
last waiter.

May import: ``_convert``, ``_ratelimit``, ``_retry``, ``_wire``, ``models``,
``errors``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from . import _convert, errors, models
from ._ratelimit import Priority
from ._resources import RequestFn
from ._retry import PollPolicy, poll_loop
from ._wire import is_retryable


log = logging.getLogger("sequence_async")
_TOKEN_VERSION = 1
_LIST_PAGE = 100
_MAX_LIST_PAGES = 20
# Server and client clocks differ; list paging stops this far before the
# oldest pending trigger.
_CLOCK_SKEW = timedelta(seconds=60)


class _Waiter:
    """
    One pending wait: the handle, its future and its own poll schedule.
    """

    __slots__ = ("due", "execution", "future", "interval", "policy", "polls")

    def __init__(
        self, execution: Execution, policy: PollPolicy, now: float, first: float
    ) -> None:
        self.execution = execution
        self.policy = policy
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


class _Group:
    """
    The pending waits on one rule and the task that polls for them.
    """

    __slots__ = ("rule_id", "task", "waiters", "wake")

    def __init__(self, rule_id: str) -> None:
        self.rule_id = rule_id
        self.waiters: dict[str, list[_Waiter]] = {}
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def all(self) -> list[_Waiter]:
        return [w for ws in self.waiters.values() for w in ws]

    def remove(self, waiter: _Waiter) -> None:
        same = self.waiters.get(waiter.execution.id, [])
        if waiter in same:
            same.remove(waiter)
            if not same:
                del self.waiters[waiter.execution.id]

    def next_due(self) -> float:
        return min(w.due for ws in self.waiters.values() for w in ws)


class Poller:
    """
    The client's poll scheduler: one loop per rule with pending executions.

    Waiters register a future; each tick of a rule's loop sends one request
    for all of that rule's pending executions and resolves every waiter it
    can. A tick comes when the earliest waiter of the rule is due on its own
    schedule (``PollPolicy``); waiters close to due count it as their own poll
    (``_Waiter.advance``). The loop runs through tenacity
    (``_retry.poll_loop``) and ends when its rule has no waiter left.
    """

    def __init__(
        self,
        request: RequestFn,
        policy: PollPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._request = request
        self.policy = policy
        self._clock = clock
        self._groups: dict[str, _Group] = {}

    def __repr__(self) -> str:
        pending = sum(len(g.waiters) for g in self._groups.values())
        return f"<Poller {len(self._groups)} rules, {pending} pending>"

    async def get(self, execution_id: str) -> models.RuleExecution:
        """
        Fetch one execution now.
        """
        envelope = await self._request(
            "GET", f"/rule-executions/{execution_id}", priority=Priority.POLL
        )
        return _convert.structure(
            envelope.data, models.RuleExecution, request_id=envelope.request_id
        )

    async def wait(
        self, execution: Execution, policy: PollPolicy
    ) -> models.RuleExecution:
        """
        Register *execution* and wait until a poll finds it terminal.

        The caller bounds the time; cancelling leaves nothing behind.
        """
        group = self._groups.get(execution.rule_id)
        if group is None:
            group = self._groups[execution.rule_id] = _Group(execution.rule_id)
        first = max(0.0, policy.delay(1) - execution.age())
        waiter = _Waiter(execution, policy, self._clock(), first)
        group.waiters.setdefault(execution.id, []).append(waiter)
        if group.task is None or group.task.done():
            group.task = asyncio.create_task(self._run(group))
        else:
            group.wake.set()  # the loop replans: this waiter may be due sooner
        try:
            return await waiter.future
        finally:
            await self._leave(group, waiter)

    async def _leave(self, group: _Group, waiter: _Waiter) -> None:
        group.remove(waiter)
        if group.waiters or group.task is None:
            return
        # The last waiter of the rule is gone: stop its loop now, and be sure
        # it has stopped before returning, so no task outlives the wait.
        task, group.task = group.task, None
        if self._groups.get(group.rule_id) is group:
            del self._groups[group.rule_id]
        if task is not asyncio.current_task() and not task.done():
            task.cancel()
            await asyncio.wait([task])

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
                found = {ids[0]: await self.get(ids[0])}
            else:
                found = await self._list(group.rule_id, pending)
        except errors.NotFoundError:
            found = {}
        except errors.SequenceError as exc:
            if is_retryable(exc):
                log.info("poll of rule %s failed (%s); retrying", group.rule_id, exc)
                found = {}
            else:
                for waiter in group.all():
                    _finish(group, waiter, exc)
                return False
        for execution_id in ids:
            snapshot = found.get(execution_id)
            for waiter in list(pending.get(execution_id, ())):
                waiter.advance(started)
                if snapshot is not None:
                    waiter.execution._record(snapshot)  # noqa: SLF001
                    if snapshot.done:
                        _finish(group, waiter, snapshot)
                elif waiter.execution.age() > waiter.policy.not_visible_grace:
                    await self._settle_alone(group, waiter)
        return bool(group.waiters)

    async def _settle_alone(self, group: _Group, waiter: _Waiter) -> None:
        # Never seen within the grace period: ask for it alone, so that a real
        # 404 (or its state) reaches this waiter only.
        try:
            snapshot = await self.get(waiter.execution.id)
        except errors.SequenceError as exc:
            if not is_retryable(exc):
                _finish(group, waiter, exc)
            return
        waiter.execution._record(snapshot)  # noqa: SLF001
        if snapshot.done:
            _finish(group, waiter, snapshot)

    async def _list(
        self, rule_id: str, pending: Mapping[str, list[_Waiter]]
    ) -> dict[str, models.RuleExecution]:
        # Where to stop paging when some pending id is not on the pages (not
        # visible yet): past the oldest pending execution, by the server's own
        # created_at when it was seen before, else by our trigger time.
        oldest = min(
            w.execution.result.created_at
            if w.execution.result is not None
            and w.execution.result.created_at is not None
            else w.execution.triggered_at - _CLOCK_SKEW
            for ws in pending.values()
            for w in ws
        )
        wanted = set(pending)
        found: dict[str, models.RuleExecution] = {}
        params = {"rule_id": rule_id, "first": str(_LIST_PAGE)}
        for _ in range(_MAX_LIST_PAGES):
            envelope = await self._request(
                "GET", "/rule-executions", params=params, priority=Priority.POLL
            )
            items = _convert.structure_list(
                envelope.data, models.RuleExecution, request_id=envelope.request_id
            )
            found.update((item.id, item) for item in items if item.id in wanted)
            page_info = envelope.page_info or {}
            cursor = page_info.get("end_cursor")
            if (
                wanted <= found.keys()
                or not items
                or not isinstance(cursor, str)
                or page_info.get("has_next_page") is False
                or any(
                    i.created_at is not None and i.created_at < oldest for i in items
                )
            ):
                break
            params = {**params, "after": cursor}
        return found


class _Seen:
    """
    What a handle has seen so far (the handle itself is frozen).
    """

    __slots__ = ("last", "warned")

    def __init__(self) -> None:
        self.last: models.RuleExecution | None = None
        self.warned: set[str] | None = None


@attrs.frozen(eq=False, repr=False)
class Execution:
    """
    The handle of one rule execution: wait for it, refresh it, resume it.

    ``status`` and ``done`` reflect the last state seen. Cancelling a wait
    (or the task around it) stops polling; it never cancels the execution
    itself, and Sequence has no endpoint that could.
    """

    id: str
    rule_id: str
    request_id: str | None
    idempotency_key: str | None
    triggered_at: datetime
    _poller: Poller = attrs.field(alias="poller")
    _seen: _Seen = attrs.field(factory=_Seen, init=False)

    def __repr__(self) -> str:
        return (
            f"<Execution {self.id} of {self.rule_id}: {self.status or 'not seen yet'}>"
        )

    @property
    def status(self) -> models.ExecutionStatus | str | None:
        """
        The last status seen, or ``None`` before the first look.
        """
        return self._seen.last.status if self._seen.last else None

    @property
    def done(self) -> bool:
        """
        Whether the last status seen is terminal.
        """
        return self._seen.last is not None and self._seen.last.done

    @property
    def result(self) -> models.RuleExecution | None:
        """
        The last state seen, or ``None``.
        """
        return self._seen.last

    def age(self) -> float:
        """
        Seconds since the trigger, by the wall clock.
        """
        return (datetime.now(UTC) - self.triggered_at).total_seconds()

    def _record(self, snapshot: models.RuleExecution) -> None:
        self._seen.last = snapshot
        status = snapshot.status
        if isinstance(status, models.ExecutionStatus):
            return
        warned = self._seen.warned = self._seen.warned or set()
        if status not in warned:
            warned.add(status)
            log.warning(
                "execution %s has status %r, unknown to this version of "
                "sequence-async; waiting on until it is terminal or the wait times out",
                self.id,
                status,
            )

    async def refresh(self) -> models.RuleExecution:
        """
        Fetch the execution's latest state now.
        """
        snapshot = await self._poller.get(self.id)
        self._record(snapshot)
        return snapshot

    async def wait(
        self,
        timeout: float | None = 300.0,
        *,
        raise_on_failure: bool = True,
        poll: PollPolicy | None = None,
    ) -> models.RuleExecution:
        """
        Wait until the execution is terminal and return it.

        Args:
            timeout: Seconds to wait; ``None`` waits for ever (ask for it
                explicitly).
            raise_on_failure: Raise ``ExecutionFailedError`` when the status
                is ``failed``. ``partial`` is always returned: whether it is
                good enough is the caller's decision.
            poll: The poll schedule; the client's by default.

        Raises:
            errors.WaitTimeoutError: The deadline passed. The execution goes
                on; wait again on ``error.execution``.
            errors.ExecutionFailedError: The execution failed.
        """
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be a positive number of seconds or None")
        result = self._seen.last
        if result is None or not result.done:
            try:
                async with asyncio.timeout(timeout) as deadline:
                    result = await self._poller.wait(self, poll or self._poller.policy)
            except TimeoutError:
                if not deadline.expired():
                    raise
                raise errors.WaitTimeoutError(
                    self, timeout=timeout or 0.0, last_status=self.status
                ) from None
        if raise_on_failure and result.status == models.ExecutionStatus.FAILED:
            raise errors.ExecutionFailedError(result)
        return result

    def to_token(self) -> str:
        """
        Return a small JSON token from which ``execution_from_token`` resumes.
        """
        return json.dumps(
            {
                "v": _TOKEN_VERSION,
                "id": self.id,
                "rule_id": self.rule_id,
                "request_id": self.request_id,
                "idempotency_key": self.idempotency_key,
                "triggered_at": self.triggered_at.isoformat(),
            },
            separators=(",", ":"),
        )


def from_token(token: str, poller: Poller) -> Execution:
    """
    Rebuild a handle from ``Execution.to_token()``.

    Raises:
        ValueError: The token is not one of ours, or of a newer version.
    """
    try:
        data: Any = json.loads(token)
    except (TypeError, ValueError):
        raise ValueError("not an execution token: not JSON") from None
    if not isinstance(data, dict) or data.get("v") != _TOKEN_VERSION:
        raise ValueError(f"not an execution token of version {_TOKEN_VERSION}")
    try:
        fields = {k: data[k] for k in ("id", "rule_id", "triggered_at")}
        triggered_at = datetime.fromisoformat(fields["triggered_at"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"execution token is missing or bad: {exc}") from None
    if not all(isinstance(fields[k], str) and fields[k] for k in ("id", "rule_id")):
        raise ValueError("execution token has a bad id or rule_id")
    return Execution(
        id=fields["id"],
        rule_id=fields["rule_id"],
        request_id=_opt_str(data.get("request_id")),
        idempotency_key=_opt_str(data.get("idempotency_key")),
        triggered_at=triggered_at
        if triggered_at.tzinfo
        else triggered_at.replace(tzinfo=UTC),
        poller=poller,
    )


def _finish(
    group: _Group, waiter: _Waiter, outcome: models.RuleExecution | BaseException
) -> None:
    group.remove(waiter)
    if waiter.future.done():
        return
    if isinstance(outcome, BaseException):
        waiter.future.set_exception(outcome)
    else:
        waiter.future.set_result(outcome)


async def _sleep_or_wake(wake: asyncio.Event, seconds: float) -> None:
    # A new waiter may be due sooner than the loop planned: it sets `wake`
    # (perhaps during the last tick, so a set flag ends the sleep at once).
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await wake.wait()
    wake.clear()


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None
