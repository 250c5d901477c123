"""
Execution handles and waiting for them, alone or by the thousand.

Owns the ``Execution`` handle (what ``rules.trigger()`` returns), its resume
token, and the ``Poller``: one per client, shared by every waiter. Each
waiter runs its own poll schedule (``_retry.poll``, result-based tenacity),
but asks the poller for an *observation* instead of sending a request: the
poller answers from the rule's latest poll when that poll is recent enough
and started after the waiter's previous look, joins a poll already in flight,
or starts one. One poll serves every pending execution of its rule: one
``GET /rule-executions/{id}`` when one is pending, else
``GET /rule-executions?rule_id=…&first=100`` paged until every pending id is
seen. Cancelling a wait stops its polling at once; a shared poll is cancelled
only when no waiter is left on it.

May import: ``_convert``, ``_ratelimit``, ``_retry``, ``_wire``, ``models``,
``errors``.
"""

from __future__ import annotations

import asyncio
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
from ._retry import PollPolicy, poll
from ._wire import is_retryable


log = logging.getLogger("sequence_async")
_TOKEN_VERSION = 1
_LIST_PAGE = 100
_MAX_LIST_PAGES = 20
# Server and client clocks differ; list paging stops this far before the
# oldest pending trigger.
_CLOCK_SKEW = timedelta(seconds=60)


@attrs.define(eq=False)
class _Group:
    """
    The pending executions of one rule and its latest poll.
    """

    pending: dict[str, Execution] = attrs.Factory(dict)
    snapshot: Mapping[str, models.RuleExecution] = attrs.Factory(dict)
    snapshot_started: float = float("-inf")
    inflight: asyncio.Task[Mapping[str, models.RuleExecution]] | None = None
    inflight_started: float = 0.0
    inflight_users: int = 0


class Poller:
    """
    The client's shared poll machinery (one per client).
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
        self.requests = 0  # polls sent, for tests and benchmarks

    def __repr__(self) -> str:
        pending = sum(len(g.pending) for g in self._groups.values())
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
        Poll until *execution* is terminal (the caller bounds the time).
        """
        group = self._groups.setdefault(execution.rule_id, _Group())
        group.pending[execution.id] = execution
        # A snapshot up to half a poll interval old is as good as a new poll:
        # on average a waiter sees a change half an interval late anyway.
        state = _WaitState(since=float("-inf"), max_age=0.5 * policy.delay(1))
        first = max(0.0, policy.delay(1) - execution.age())

        async def observe() -> models.RuleExecution | None:
            snapshot = await self._observe(group, execution, state)
            state.since = self._clock()
            state.max_age = 0.5 * policy.delay(state.polls + 2)
            state.polls += 1
            if snapshot is not None:
                execution._record(snapshot)  # noqa: SLF001
            return snapshot

        try:
            result = await poll(
                observe,
                done=lambda s: s is not None and s.done,
                keep_going=is_retryable,
                policy=policy,
                first_delay=first,
            )
        finally:
            if group.pending.get(execution.id) is execution:
                del group.pending[execution.id]
            self._forget_if_idle(execution.rule_id, group)
        assert result is not None  # noqa: S101 (the done predicate ensures it)
        return result

    async def _observe(
        self, group: _Group, execution: Execution, state: _WaitState
    ) -> models.RuleExecution | None:
        now = self._clock()
        cached = group.snapshot.get(execution.id)
        if (
            cached is not None
            and group.snapshot_started >= state.since
            and now - group.snapshot_started <= state.max_age
        ):
            return cached
        if group.inflight is None or group.inflight_started < state.since:
            group.inflight = asyncio.create_task(
                self._poll_group(group, execution.rule_id)
            )
            # Its waiters may all be gone when it fails: mark the error seen.
            group.inflight.add_done_callback(_consume)
            group.inflight_started = now
            group.inflight_users = 0
        task = group.inflight
        group.inflight_users += 1
        try:
            found = await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.done():
                group.inflight_users -= 1
                if group.inflight_users == 0:
                    task.cancel()  # nobody else wants it
            raise
        except errors.NotFoundError:
            found = {}
        snapshot = found.get(execution.id)
        if snapshot is None and execution.age() > self.policy.not_visible_grace:
            # Never seen in time: ask for it alone, so a real 404 surfaces.
            snapshot = await self.get(execution.id)
        return snapshot

    async def _poll_group(
        self, group: _Group, rule_id: str
    ) -> Mapping[str, models.RuleExecution]:
        started = self._clock()
        pending = dict(group.pending)
        try:
            if len(pending) == 1:
                (execution_id,) = pending
                self.requests += 1
                found = {execution_id: await self.get(execution_id)}
            else:
                found = await self._list(rule_id, pending)
        finally:
            if group.inflight is asyncio.current_task():
                group.inflight = None
            self._forget_if_idle(rule_id, group)
        if started >= group.snapshot_started:
            group.snapshot, group.snapshot_started = found, started
        return found

    def _forget_if_idle(self, rule_id: str, group: _Group) -> None:
        if (
            not group.pending
            and group.inflight is None
            and self._groups.get(rule_id) is group
        ):
            del self._groups[rule_id]

    async def _list(
        self, rule_id: str, pending: Mapping[str, Execution]
    ) -> dict[str, models.RuleExecution]:
        # Where to stop paging when some pending id is not on the pages (not
        # visible yet): past the oldest pending execution, by the server's own
        # created_at when it was seen before, else by our trigger time.
        oldest = min(
            e.result.created_at
            if e.result is not None and e.result.created_at is not None
            else e.triggered_at - _CLOCK_SKEW
            for e in pending.values()
        )
        found: dict[str, models.RuleExecution] = {}
        params = {"rule_id": rule_id, "first": str(_LIST_PAGE)}
        for _ in range(_MAX_LIST_PAGES):
            self.requests += 1
            envelope = await self._request(
                "GET", "/rule-executions", params=params, priority=Priority.POLL
            )
            items = _convert.structure_list(
                envelope.data, models.RuleExecution, request_id=envelope.request_id
            )
            found.update((item.id, item) for item in items)
            page_info = envelope.page_info or {}
            cursor = page_info.get("end_cursor")
            if (
                pending.keys() <= found.keys()
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


@attrs.define(eq=False)
class _WaitState:
    since: float
    max_age: float
    polls: int = 0


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
        if not self.done:
            try:
                async with asyncio.timeout(timeout) as deadline:
                    await self._poller.wait(self, poll or self._poller.policy)
            except TimeoutError:
                if not deadline.expired():
                    raise
                raise errors.WaitTimeoutError(
                    self, timeout=timeout or 0.0, last_status=self.status
                ) from None
        result = self._seen.last
        assert result is not None  # noqa: S101 (done implies a result)
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


def _consume(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None
