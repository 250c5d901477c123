"""
One poller per rule across processes: leases, registrations, stored outcomes.

Owns ``ClusterPolls``, the ``PollShare`` of one client over a ``Link``. A
wait registers its execution in the rule's registry (with its age and paging
bound, never a client clock's reading). Per rule, the process holding the
lease (taken with ``SET NX PX``, renewed at every heartbeat, handed over on
release) polls for everyone's registered executions and stores each outcome
for 24 h, then announces it on the key's stream. The others read the stream
and fetch the stored outcomes of their own waits; they also fetch them when
they join, at every heartbeat and after an outage, so a lost message costs
nothing. A leader that dies stops renewing: its lease ends within one lease
period and a follower, which asks again exactly when it ends, takes over.
While the store is away the share answers as if the process were alone.

May import: ``errors``, ``models``, ``_checks``, ``_waits``, ``_cluster``,
``_stored``, ``_redis_scripts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from . import _redis_scripts as scripts
from ._checks import is_segment
from ._cluster import Keys, Link, Unavailable, ints
from ._stored import decode, encode
from ._waits import Outcome, Remote, Watch


log = logging.getLogger("sequence_async")
OUTCOME_TTL = 24 * 3600  # seconds: as long as an idempotency key replays
STREAM_LENGTH = 10_000
STREAM_TTL_MS = OUTCOME_TTL * 1000
READ_BLOCK = 1.0  # seconds one stream read may wait for news


class ClusterPolls:
    """
    Shares one client's waits with the other clients of its API key.

    Args:
        link: The shared store.
        keys: The API key's names.
        token: This client's lease token (random; it names no one).
        lease: Seconds a lease lasts without renewal.
    """

    def __init__(self, link: Link, keys: Keys, token: str, *, lease: float) -> None:
        self._link = link
        self._keys = keys
        self._token = token
        self._lease_ms = max(1, int(lease * 1000))
        self._pending: dict[str, dict[str, list[Watch]]] = {}
        self._leading: set[str] = set()
        self._leaving: dict[str, set[str]] = {}
        self._flushing = False
        self._reader: asyncio.Task[None] | None = None
        self._deliver: Callable[[str, Outcome], None] = _nowhere
        self._nudge: Callable[[str], None] = _nobody
        link.every_beat(self._beat)
        link.on_recover(self._recovered)

    def __repr__(self) -> str:
        return f"<ClusterPolls leading {sorted(self._leading)}>"

    def start(
        self,
        deliver: Callable[[str, Outcome], None],
        nudge: Callable[[str], None],
    ) -> None:
        """
        Send outcomes to *deliver*, news of a rule to *nudge*.
        """
        self._deliver, self._nudge = deliver, nudge

    async def join(self, watch: Watch) -> Outcome | None:
        """
        Register a wait; return its outcome when one is stored already.

        Raises:
            CoordinatorError: The store does not speak the Redis protocol.
        """
        await self._link.check()
        mine = self._pending.setdefault(watch.rule_id, {})
        mine.setdefault(watch.execution_id, []).append(watch)
        self._ensure_reader()
        found = await self._register(watch.rule_id, [watch])
        return found.get(watch.execution_id)

    def leave(self, watch: Watch) -> None:
        """
        Unregister a wait that ended without an outcome (in the background).
        """
        if not self._forget(watch.rule_id, watch.execution_id, watch):
            return
        self._leaving.setdefault(watch.rule_id, set()).add(watch.execution_id)
        self._flush_soon()

    def _flush_soon(self) -> None:
        # One flush at a time, started whenever one is due and none runs.
        if self._link.healthy and self._leaving and not self._flushing:
            self._flushing = True
            self._link.spawn(self._flush_leaving())

    async def lead(self, rule_id: str) -> float | list[Remote]:
        """
        Take or keep the lead of *rule_id*: others' waits, or when to ask again.
        """
        if not self._link.healthy:
            return []
        try:
            answer = await self._link.run(
                scripts.LEAD,
                [self._keys.lease(rule_id), self._keys.pending(rule_id)],
                [self._token, self._lease_ms],
            )
            flag, now = ints(answer[:2] if isinstance(answer, list) else answer, 2)
            others = pairs(answer[2:])
        except Unavailable:
            return []
        if flag == 0:
            self._leading.discard(rule_id)
            return min(max(now, 10), self._lease_ms) / 1000 + 0.005
        self._leading.add(rule_id)
        mine = self._pending.get(rule_id, {})
        remotes = []
        for execution_id, value in others:
            if execution_id in mine:
                continue
            remote = _remote(execution_id, value, now)
            if remote is not None:
                remotes.append(remote)
        return remotes

    async def publish(self, rule_id: str, outcomes: Mapping[str, Outcome]) -> None:
        """
        Store the outcomes found as leader for 24 h, and announce them.
        """
        for execution_id in outcomes:
            self._forget(rule_id, execution_id, None)
        if not self._link.healthy:
            return
        ids = list(outcomes)
        args: list[Any] = [OUTCOME_TTL, rule_id, STREAM_LENGTH, STREAM_TTL_MS]
        for execution_id in ids:
            args += [execution_id, encode(outcomes[execution_id])]
        keys = [self._keys.pending(rule_id), self._keys.events]
        keys += map(self._keys.outcome, ids)
        # The poll loop that calls this is cancelled as soon as its last local
        # wait ends: finish storing first (one bounded call), then stop.
        call = asyncio.ensure_future(self._link.run(scripts.PUBLISH, keys, args))
        try:
            await asyncio.shield(call)
        except Unavailable:
            pass
        except asyncio.CancelledError:
            await asyncio.wait([call])
            if not call.cancelled():
                call.exception()  # retrieved: an Unavailable is no news here
            raise

    async def release(self, rule_id: str) -> None:
        """
        Give up the lead of *rule_id*; a follower takes it at once.
        """
        if rule_id not in self._leading:
            return
        self._leading.discard(rule_id)
        if not self._link.healthy:
            return
        with contextlib.suppress(Unavailable):
            await self._link.run(
                scripts.RELEASE,
                [self._keys.lease(rule_id), self._keys.events],
                [self._token, rule_id, STREAM_LENGTH, STREAM_TTL_MS],
            )

    async def aclose(self) -> None:
        """
        Give up every lead, stop reading, detach.
        """
        for rule_id in list(self._leading):
            await self.release(rule_id)
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.wait([self._reader])
            self._reader = None
        self._pending.clear()
        await self._link.aclose()

    # -- internals ---------------------------------------------------------

    def _forget(self, rule_id: str, execution_id: str, watch: Watch | None) -> bool:
        mine = self._pending.get(rule_id, {})
        watches = mine.get(execution_id)
        if not watches:
            return False
        if watch is None:
            watches.clear()
        elif watch in watches:
            watches.remove(watch)
        if watches:
            return False
        del mine[execution_id]
        if not mine:
            del self._pending[rule_id]
        return True

    async def _register(
        self, rule_id: str, watches: list[Watch], *, again: bool = True
    ) -> dict[str, Outcome]:
        if not watches or not self._link.healthy:
            return {}
        args: list[Any] = [3 * self._lease_ms, rule_id, STREAM_LENGTH, STREAM_TTL_MS]
        for watch in watches:
            args += [
                watch.execution_id,
                int(watch.age() * 1000),
                int(watch.oldest().timestamp() * 1000),
            ]
        try:
            answer = await self._link.run(
                scripts.JOIN,
                [
                    self._keys.pending(rule_id),
                    self._keys.events,
                    *(self._keys.outcome(w.execution_id) for w in watches),
                ],
                args,
            )
            stored = pairs(answer)
        except Unavailable:
            return {}
        found, junk = {}, {}
        for execution_id, value in stored:
            outcome = decode(value)
            if outcome is None:  # not ours: dropped, so that the wait registers
                junk[execution_id] = value
            else:
                self._forget(rule_id, execution_id, None)
                found[execution_id] = outcome
        if junk and again:
            with contextlib.suppress(Unavailable):
                keys = [self._keys.outcome(i) for i in junk]
                await self._link.run(scripts.DROP_IF, keys, list(junk.values()))
            rest = [w for w in watches if w.execution_id in junk]
            found.update(await self._register(rule_id, rest, again=False))
        return found

    async def _refresh(self) -> None:
        # Re-register every pending wait (a lost registration heals) and take
        # the outcomes stored meanwhile (a lost message costs nothing).
        for rule_id, mine in list(self._pending.items()):
            watches = [ws[0] for ws in mine.values() if ws]
            for execution_id, outcome in (
                await self._register(rule_id, watches)
            ).items():
                self._deliver(execution_id, outcome)

    async def _beat(self) -> None:
        if self._leading:
            rules = sorted(self._leading)
            with contextlib.suppress(Unavailable):
                held = await self._link.run(
                    scripts.RENEW,
                    [self._keys.lease(r) for r in rules],
                    [self._token, self._lease_ms],
                )
                for rule_id, ok in zip(rules, held, strict=True):
                    if not int(ok):
                        self._leading.discard(rule_id)
        await self._refresh()

    def _recovered(self) -> None:
        self._leading.clear()  # a lease may have ended during the outage
        self._ensure_reader()
        self._flush_soon()  # the waits that ended meanwhile
        for rule_id in list(self._pending):
            self._nudge(rule_id)

    async def _flush_leaving(self) -> None:
        try:
            while self._leaving and self._link.healthy:
                leaving, self._leaving = self._leaving, {}
                for rule_id, ids in leaving.items():
                    with contextlib.suppress(Unavailable):
                        await self._link.drop_fields(
                            self._keys.pending(rule_id), list(ids)
                        )
        finally:
            self._flushing = False

    def _ensure_reader(self) -> None:
        if self._link.healthy and (self._reader is None or self._reader.done()):
            self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        # Where the stream is now, then what is stored, then what comes: no
        # outcome can fall between the two.
        link, stream = self._link, self._keys.events
        with contextlib.suppress(Unavailable):
            after = await link.last_id(stream)
            await self._refresh()
            while self._pending or self._leading:
                for entry_id, fields in await link.read(stream, after, READ_BLOCK):
                    after = entry_id
                    await self._news(fields)

    async def _news(self, fields: dict[str, str]) -> None:
        kind, rule_id = fields.get("k"), fields.get("r", "")
        if kind == "done":
            mine = self._pending.get(rule_id, {})
            ids = [i for i in fields.get("i", "").split() if i in mine]
            if ids:
                values = await self._link.get_many(list(map(self._keys.outcome, ids)))
                for execution_id, value in zip(ids, values, strict=True):
                    outcome = decode(value) if value is not None else None
                    if outcome is not None:
                        self._forget(rule_id, execution_id, None)
                        self._deliver(execution_id, outcome)
        elif (kind == "reg" and rule_id in self._leading) or (
            kind == "free" and rule_id in self._pending
        ):
            self._nudge(rule_id)


def _remote(execution_id: str, value: str, now: int) -> Remote | None:
    # "expires registered age oldest", all milliseconds: the age is counted
    # on the store's clock from the age the registering client had.
    try:
        _, registered, age, oldest = (int(part) for part in value.split())
        since = datetime.fromtimestamp(oldest / 1000, UTC)
    except (ValueError, OverflowError, OSError):  # not ours, or out of range
        return None
    if not is_segment(execution_id):  # no id of ours: nothing to poll
        return None
    return Remote(execution_id, (now - registered + age) / 1000, since)


def _nowhere(_: str, __: Outcome) -> None:
    pass


def _nobody(_: str) -> None:
    pass


def pairs(answer: object) -> list[tuple[str, str]]:
    """
    A script's flat answer ``[id, value, id, value, ...]`` as pairs.

    Raises:
        Unavailable: Anything else (a store that is not ours): fall back.
    """
    if (
        not isinstance(answer, list)
        or len(answer) % 2
        or not all(isinstance(part, str) for part in answer)
    ):
        raise Unavailable(f"the store answered {str(answer)[:60]!r}")
    return list(zip(answer[0::2], answer[1::2], strict=True))
