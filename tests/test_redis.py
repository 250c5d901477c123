"""
Tests of the Redis coordinator in one process, against a real Redis server.

Several coordinators on one Redis stand for several processes (each has its
own connections and lease token); the tests that need real processes are in
``test_redis_workers``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio
import redis

from sequence_async import SequenceClient
from sequence_async import _redis_scripts as scripts
from sequence_async._cluster import ClusterLimiter, Keys, Unavailable, ints
from sequence_async._cluster_polls import _remote, pairs
from sequence_async._coordinator import key_digest, scoped
from sequence_async._ratelimit import Priority, TokenBucket
from sequence_async._stored import decode, encode
from sequence_async._waits import Watch, _Group, _Waiter
from sequence_async._wire import MAX_SERVER_DELAY
from sequence_async.errors import NotFoundError, RateLimitError, WaitTimeoutError
from sequence_async.models import RuleExecution
from sequence_async.redis import CoordinatorError, RedisCoordinator
from sequence_async.testing import Behavior, FakeSequence, demo_seed, serve

from . import redis_server
from .conftest import FAST_POLL, FakeTransport, hostile, requester, status
from .shared_budget import limiter_of, sleeps, spacing


# Redis call timeout for these tests: a loaded CI machine must not turn a
# slow answer into a fallback the test did not ask for.
SLOW_MACHINE = 5.0


@pytest_asyncio.fixture
async def quick(api: str) -> AsyncIterator[FakeSequence]:
    """
    The fake server speaking *api* on the wall clock, executions ending in 50 ms.
    """
    seed = demo_seed(rules=2, failure_rate=0.0)
    for rule_id in ("rule_0001", "rule_0002"):
        seed.behaviors[rule_id] = Behavior(median=0.05, sigma=0.0)
    async with serve(seed, api=api) as server:
        yield server


def _coordinated(
    quick: FakeSequence, redis_url: str, *, lease: float = 10.0, **options: Any
) -> SequenceClient:
    """A client of the fake server's key and API, coordinated on *redis_url*."""
    return SequenceClient(
        quick.api_key,
        api=quick.api,
        base_url=quick.url,
        coordinator=RedisCoordinator.from_url(
            redis_url, lease=lease, timeout=SLOW_MACHINE
        ),
        **options,
    )


def _keys_of(server: FakeSequence) -> Keys:
    """The Redis names of *server*'s key: scoped to its API and URL."""
    digest = scoped(
        key_digest(server.api_key), api=server.api, base_url=str(server.url)
    )
    return Keys("sequence-async", digest)


def _falling_back(quick: FakeSequence, coordinator: RedisCoordinator) -> SequenceClient:
    """A client of the fake server on *coordinator*, quick to poll and retry."""
    return SequenceClient(
        quick.api_key,
        api=quick.api,
        base_url=quick.url,
        rate_limit=6000,
        poll=FAST_POLL,
        coordinator=coordinator,
    )


@contextlib.contextmanager
def _answering_again() -> Iterator[asyncio.Event]:
    """An event set once the client logs that Redis answers again."""
    back = asyncio.Event()

    class _Back(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "answers again" in record.getMessage():
                back.set()

    handler = _Back(logging.INFO)
    logger = logging.getLogger("sequence_async")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield back
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def test_a_bad_url_is_a_clear_error_at_construction() -> None:
    """A URL that is not a Redis URL fails at once, and shows no password."""
    with pytest.raises(CoordinatorError, match="not a usable Redis URL") as bad:
        RedisCoordinator.from_url("http://localhost:6379/0")
    with pytest.raises(CoordinatorError) as port:
        RedisCoordinator.from_url("redis://:hunter2@localhost:notaport/0")
    with pytest.raises(CoordinatorError) as slash:  # the password's head as port
        RedisCoordinator.from_url("redis://:hunt/er2@localhost:6379/0")

    with pytest.raises(CoordinatorError) as bracket:
        RedisCoordinator.from_url("redis://u:hunter2@[::1/0")

    assert "hunter2" not in str(port.value)
    assert "hunt" not in str(slash.value)
    assert "hunter2" not in str(bracket.value)
    assert "'http'" in str(bad.value)


async def test_a_server_that_is_not_redis_is_a_clear_error_at_first_use(
    quick: FakeSequence,
) -> None:
    """Pointed at an HTTP server, the first request raises CoordinatorError."""
    async with hostile({}) as base:
        port = base.split(":")[2].split("/")[0]
        url = f"redis://127.0.0.1:{port}/0"
        async with _coordinated(quick, url, rate_limit=600) as client:
            with pytest.raises(CoordinatorError, match="Redis protocol"):
                await client.accounts.list()


async def test_unreachable_redis_falls_back_with_one_warning(
    quick: FakeSequence, caplog: pytest.LogCaptureFixture
) -> None:
    """With Redis down from the start, waits and requests work, one WARNING said."""
    coordinator = RedisCoordinator.from_url(
        f"redis://127.0.0.1:{redis_server.free_port()}/0", retry=0.1
    )
    with caplog.at_level(logging.WARNING, logger="sequence_async"):
        async with _falling_back(quick, coordinator) as client:
            results = await asyncio.gather(
                *(client.trigger_and_wait("rule_0001", timeout=10) for _ in range(5))
            )
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]

    assert ["executed"] * 5 == [r.status for r in results]
    assert 1 == len(warnings)
    assert "Redis is unreachable" in warnings[0].getMessage()


async def test_a_client_shares_again_once_redis_answers() -> None:
    """Down at the start, then up: the client's budget moves back to Redis."""
    port = redis_server.free_port()
    with _answering_again() as back:
        coordinator = RedisCoordinator.from_url(
            f"redis://127.0.0.1:{port}/0", retry=0.1
        )
        async with SequenceClient(
            "sk_back", rate_limit=600, coordinator=coordinator
        ) as client:
            await limiter_of(client).acquire()  # falls back: nothing listens
            with redis_server.running(port) as server:
                await asyncio.wait_for(back.wait(), timeout=10)
                await limiter_of(client).acquire()
                with redis.Redis.from_url(server.url) as plain:
                    budgets = list(plain.scan_iter(match="*:budget"))

    assert 1 == len(budgets)


async def test_sequence_redis_url_turns_the_coordinator_on(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With SEQUENCE_REDIS_URL set, a client shares its budget without code."""
    monkeypatch.setenv("SEQUENCE_REDIS_URL", redis_url)
    async with SequenceClient("sk_env", rate_limit=60) as client:
        budget = limiter_of(client)._keys.budget

    assert budget.startswith("sequence-async:{")


async def test_coordinator_false_ignores_sequence_redis_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """coordinator=False keeps a client alone even with SEQUENCE_REDIS_URL set."""
    monkeypatch.setenv("SEQUENCE_REDIS_URL", "redis://127.0.0.1:1/0")
    async with SequenceClient("sk_alone", rate_limit=60, coordinator=False) as client:
        limiter = client._requester.shared.limiter

    assert isinstance(limiter, TokenBucket)


async def test_clients_of_one_key_share_one_budget(
    quick: FakeSequence, redis_url: str, fresh: redis.Redis
) -> None:
    """At 60/min, six requests from two coordinators get six distinct 1 s slots."""
    clients = [
        _coordinated(quick, redis_url, rate_limit=60, rate_limit_burst=1)
        for _ in range(2)
    ]
    slots = [sleeps(c, slots=True) for c in clients]
    start = time.monotonic()
    await asyncio.gather(*(c.accounts.list() for c in clients for _ in range(3)))
    for client in clients:
        await client.aclose()

    assert [1, 1, 1, 1] == spacing([s for a in slots for s in a])
    assert min(s for a in slots for s in a) - start > 0.5
    assert 6 == quick.counts["list_accounts"]


async def test_requests_reserving_together_share_one_call_and_take_slots_in_turn(
    redis_url: str, fresh: redis.Redis
) -> None:
    """Five requests at once: two script calls (1, then 4), slots 0 to 4 in turn."""
    async with SequenceClient(
        "sk_batch",
        rate_limit=60,
        rate_limit_burst=1,
        coordinator=RedisCoordinator.from_url(redis_url, timeout=SLOW_MACHINE),
    ) as client:
        limiter = limiter_of(client)
        await limiter._link.check()
        calls: list[list[int]] = []
        run = limiter._link.run

        async def counted(script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
            calls.append(list(args))
            return await run(script, keys, args)

        limiter._link.run = counted  # type: ignore[method-assign]
        slots = sleeps(client, slots=True)
        start = time.monotonic()
        await asyncio.gather(*(limiter.acquire() for _ in range(5)))

    assert [[1_000_000, 0, 1], [1_000_000, 0, 4]] == calls
    assert [1, 1, 1] == spacing(slots)
    assert min(slots) - start > 0.5


class _FailingLink:
    # A store that fails every reservation, one turn of the loop later.
    healthy = True
    peers = 1

    def __init__(self) -> None:
        self.counts: list[int] = []

    async def check(self) -> None:
        pass

    async def run(self, _script: str, _keys: list[str], args: list[int]) -> object:
        self.counts.append(args[2])
        await asyncio.sleep(0)
        raise Unavailable("down")


async def test_requests_gathered_for_a_failed_reservation_fall_back() -> None:
    """When the gathered call fails, each of its requests uses the local bucket."""
    link = _FailingLink()
    limiter = ClusterLimiter(link, Keys("p", "d"), 6000, burst=10)  # type: ignore[arg-type]

    await asyncio.wait_for(
        asyncio.gather(*(limiter.acquire() for _ in range(3))), timeout=5
    )

    assert [1, 2] == link.counts
    assert limiter._fallback is not None


async def test_a_trigger_does_not_wait_behind_polls(
    redis_url: str, fresh: redis.Redis
) -> None:
    """Polls leave headroom: when a poll must wait, a trigger still goes at once."""
    coordinator = RedisCoordinator.from_url(redis_url, headroom=4, timeout=SLOW_MACHINE)
    async with SequenceClient(
        "sk_prio", rate_limit=60, rate_limit_burst=5, coordinator=coordinator
    ) as client:
        limiter = limiter_of(client)
        await limiter.acquire(Priority.POLL)
        poll = asyncio.create_task(limiter.acquire(Priority.POLL))
        await asyncio.wait_for(limiter.acquire(Priority.TRIGGER), timeout=0.5)
        waiting = not poll.done()
        poll.cancel()

    assert waiting


async def test_a_429_pauses_every_client_no_longer_than_the_cap(
    quick: FakeSequence, redis_url: str, fresh: redis.Redis
) -> None:
    """A huge Retry-After on one client's 429 pauses the others, capped."""
    quick.set_faults(throttles_next=1, retry_after=10 * MAX_SERVER_DELAY)
    first, second = (
        _coordinated(
            quick,
            redis_url,
            rate_limit=600,
            max_retries=0,
        )
        for _ in range(2)
    )
    with pytest.raises(RateLimitError):
        await first.accounts.list()
    link = limiter_of(first)._link
    await asyncio.gather(*link._tasks)  # type: ignore[attr-defined]
    keys = _keys_of(quick)
    other = limiter_of(second)._link
    await other.check()
    # A poll's reservation (no burst tolerance) waits exactly the cap too.
    reserved = await other.run(
        scripts.RESERVE, [keys.budget, keys.pause], [100_000, 0, 1]
    )
    wait = reserved[0] / 1_000_000
    await first.aclose()
    await second.aclose()

    assert MAX_SERVER_DELAY - 1 < wait <= MAX_SERVER_DELAY


async def test_a_resumed_wait_reads_the_stored_outcome_without_polling(
    quick: FakeSequence, redis_url: str, fresh: redis.Redis
) -> None:
    """Once a leader stored an outcome, another process's wait ends from Redis."""
    async with _coordinated(
        quick,
        redis_url,
        poll=FAST_POLL,
    ) as leader:
        execution = await leader.rules.trigger("rule_0001")
        expected = await execution.wait(timeout=10)
    token = execution.to_token()
    before = sum(quick.counts.values())
    async with _coordinated(
        quick,
        redis_url,
        poll=FAST_POLL,
    ) as follower:
        actual = await follower.execution_from_token(token).wait(timeout=10)

    assert expected == actual
    assert before == sum(quick.counts.values())


async def test_a_timed_out_wait_leaves_no_registration_behind(
    quick: FakeSequence, redis_url: str, fresh: redis.Redis
) -> None:
    """A coordinated wait times out as before, and unregisters its execution."""
    quick.set_behavior("rule_0002", Behavior(median=600.0, sigma=0.0))
    async with _coordinated(
        quick,
        redis_url,
        poll=FAST_POLL,
    ) as client:
        execution = await client.rules.trigger("rule_0002")
        share = client._requester.shared.poller._share  # type: ignore[union-attr]
        # Connected first: the wait's registration is then one script call,
        # well inside the timeout on a loaded machine (0.2 s was not, in CI).
        await share._link.check()  # type: ignore[union-attr]
        with pytest.raises(WaitTimeoutError) as timed_out:
            await execution.wait(timeout=1.0)
        await asyncio.gather(*share._link._tasks)  # type: ignore[union-attr]
        pending = [
            f for k in fresh.scan_iter(match="*:pending:*") for f in fresh.hkeys(k)
        ]
        events = [
            e for k in fresh.scan_iter(match="*:events") for e in fresh.xrange(k) or ()
        ]

    assert execution is timed_out.value.execution
    assert {"k": "reg", "r": "rule_0002"} in [fields for _, fields in events]
    assert [] == pending


async def test_closing_a_client_gives_up_its_leases(
    quick: FakeSequence, redis_url: str, fresh: redis.Redis
) -> None:
    """After the waits end and the client closes, no lease of it is left."""
    async with _coordinated(
        quick,
        redis_url,
        poll=FAST_POLL,
    ) as client:
        await asyncio.gather(
            client.trigger_and_wait("rule_0001", timeout=10),
            client.trigger_and_wait("rule_0002", timeout=10),
        )

    assert [] == list(fresh.scan_iter(match="*:lease:*"))


async def test_the_api_key_is_in_no_redis_key_or_value_and_every_key_expires(
    quick: FakeSequence, redis_url: str, fresh: redis.Redis
) -> None:
    """After two clients shared waits, limits and a 429, no key holds the API key."""
    clients = [
        _coordinated(quick, redis_url, rate_limit=6000, poll=FAST_POLL, lease=0.3)
        for _ in range(2)
    ]
    executions = [await c.rules.trigger("rule_0001") for c in clients for _ in range(3)]
    await asyncio.gather(*(e.wait(timeout=10) for e in executions))
    limiter_of(clients[0]).drain(0.5)
    await asyncio.gather(*limiter_of(clients[0])._link._tasks)  # type: ignore[attr-defined]
    stored = _scan(fresh)
    for client in clients:
        await client.aclose()
    leaks = [k for k, (v, _) in stored.items() if quick.api_key in k + v]
    forever = [k for k, (_, ttl) in stored.items() if ttl < 0]
    kinds = {k.split(":")[2] for k in stored}

    assert {"budget", "pause", "members", "events", "outcome"} <= kinds
    assert [] == leaks
    assert [] == forever


def _scan(client: redis.Redis) -> dict[str, tuple[str, int]]:
    # Every key with all it holds (as text) and its time to live (ms).
    found = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == "string":
            value = str(client.get(key))
        elif kind == "hash":
            value = repr(client.hgetall(key))
        elif kind == "zset":
            value = repr(client.zrange(key, 0, -1, withscores=True))
        elif kind == "stream":
            value = repr(client.xrange(key))
        else:
            value = f"unexpected type {kind!r}"
        found[key] = (value, int(client.pttl(key)))
    return found


def test_outcomes_round_trip_through_their_stored_text() -> None:
    """A terminal snapshot comes back equal from the JSON the store keeps."""
    snapshot = RuleExecution(
        id="rex_1",
        rule_id="rule_1",
        status="executed",
        transfer_ids=("txr_1",),
        trigger_details={"amount": 5},
    )

    assert snapshot == decode(encode(snapshot))


def test_key_names_carry_a_hash_tag_and_never_the_api_key() -> None:
    """Every name holds the key's digest in braces, not the key."""
    keys = Keys("sequence-async", key_digest("sk_live_SECRET"))
    names = [
        keys.budget,
        keys.pause,
        keys.members,
        keys.events,
        keys.lease("rule_1"),
        keys.pending("rule_1"),
        keys.outcome("rex_1"),
    ]

    assert all("{" + keys.digest + "}" in name for name in names)
    assert not any("SECRET" in name for name in names)


def test_every_script_compiles_and_runs_on_the_server(fresh: redis.Redis) -> None:
    """Each Lua script runs once on the real server without an error."""
    keys = Keys("sequence-async", "0123abcd")
    ran = [
        fresh.eval(scripts.RESERVE, 2, keys.budget, keys.pause, 100_000, 0, 2),
        fresh.eval(scripts.DRAIN, 2, keys.budget, keys.pause, 1_000_000),
        fresh.eval(scripts.LEAD, 2, keys.lease("r"), keys.pending("r"), "t", 1000),
        fresh.eval(scripts.RENEW, 1, keys.lease("r"), "t", 1000),
        fresh.eval(
            scripts.JOIN,
            3,
            keys.pending("r"),
            keys.events,
            keys.outcome("x"),
            3000,
            "r",
            100,
            1000,
            "x",
            5,
            1_700_000_000_000,
        ),
        fresh.eval(
            scripts.PUBLISH,
            3,
            keys.pending("r"),
            keys.events,
            keys.outcome("x"),
            60,
            "r",
            100,
            1000,
            "x",
            "{}",
        ),
        fresh.eval(
            scripts.RELEASE, 2, keys.lease("r"), keys.events, "t", "r", 100, 1000
        ),
        fresh.eval(scripts.MEMBERS, 1, keys.members, "t", 1000),
    ]

    assert 8 == len(ran)
    assert [] == [k for k in fresh.scan_iter() if fresh.pttl(k) < 0]


async def test_a_lease_without_expiry_is_taken_over_and_the_wait_ends(
    quick: FakeSequence, redis_url: str, fresh: redis.Redis
) -> None:
    """A lease set by hand with no TTL would stop the rule's polls for ever."""
    keys = _keys_of(quick)
    fresh.set(keys.lease("rule_0001"), "ghost")  # no expiry

    async with _coordinated(quick, redis_url, poll=FAST_POLL) as client:
        execution = await client.rules.trigger("rule_0001")
        result = await execution.wait(timeout=10)
        holder = fresh.get(keys.lease("rule_0001"))

    assert result.done
    assert holder not in (b"ghost", "ghost")  # taken over, not waited out


@pytest.mark.parametrize(
    "stored",
    [
        "[" * 100_000 + "]" * 100_000,  # nested past the stack
        '{"result": {"id": 5}}',
        "not json",
    ],
)
def test_a_stored_outcome_that_is_not_ours_is_ignored(stored: str) -> None:
    """Garbage in an outcome key is skipped (and logged), never a bare error."""
    assert decode(stored) is None


@pytest.mark.parametrize(
    "value", ["1 2 3 99999999999999999999", "1 2 3 -99999999999999999", "x y"]
)
def test_a_registration_out_of_range_is_ignored(value: str) -> None:
    """A registry entry whose times are out of range is not ours: no OverflowError."""
    assert _remote("rex_1", value, 1_000) is None


async def _listening(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> tuple[asyncio.Server, str]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"


async def _answering(reply: bytes) -> tuple[asyncio.Server, str]:
    """A server answering *reply* to whatever it is sent, and its Redis URL."""

    async def answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while await reader.read(4096):
            writer.write(reply)
            await writer.drain()
        writer.close()

    return await _listening(answer)


@contextlib.asynccontextmanager
async def _proxied(
    redis_url: str, alter: Callable[[bytes], bytes | None]
) -> AsyncIterator[str]:
    """
    A proxy to *redis_url*, its URL: what passes, either way, is ``alter``'s.

    ``None`` from *alter*: the connection stalls, then is dropped.
    """
    upstream = redis_url.removeprefix("redis://").split("/")[0].rsplit(":", 1)
    tasks: set[asyncio.Task[Any]] = set()

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        while (data := await source.read(65536)) and (sent := alter(data)):
            sink.write(sent)
            await sink.drain()

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.current_task())  # type: ignore[arg-type]
        up_reader, up_writer = await asyncio.open_connection(*upstream)
        try:
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        finally:
            up_writer.close()
            writer.close()

    server, url = await _listening(proxy)
    try:
        yield url
    finally:
        server.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_read_only_replica_at_first_contact_is_away_not_wrong(
    quick: FakeSequence,
) -> None:
    """READONLY (a replica mid-failover) falls back; it is no CoordinatorError."""
    server, url = await _answering(
        b"-READONLY You can't write against a read only replica.\r\n"
    )
    try:
        async with _coordinated(quick, url, rate_limit=600) as client:
            accounts = await client.accounts.list()
    finally:
        server.close()

    assert accounts


async def test_a_server_answering_what_is_not_resp_is_a_clear_error(
    quick: FakeSequence,
) -> None:
    """redis-py's parser raises a plain ValueError: CoordinatorError, not that."""
    server, url = await _answering(b":notanint\r\n")
    try:
        async with _coordinated(quick, url, rate_limit=600) as client:
            with pytest.raises(CoordinatorError, match="Redis protocol"):
                await client.accounts.list()
    finally:
        server.close()


async def test_a_redis_that_turns_to_garbage_midway_is_fallen_back_from(
    quick: FakeSequence, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Replies that stop being RESP after a good start: one WARNING, waits end."""
    garbage = asyncio.Event()

    def alter(data: bytes) -> bytes:
        return b":notanint\r\n" if garbage.is_set() else data

    async with _proxied(redis_url, alter) as url:
        with caplog.at_level(logging.WARNING, logger="sequence_async"):
            async with _coordinated(
                quick, url, rate_limit=6000, poll=FAST_POLL
            ) as client:
                execution = await client.rules.trigger("rule_0001")
                garbage.set()
                result = await execution.wait(timeout=10)
                again = await client.trigger_and_wait("rule_0002", timeout=10)
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name == "sequence_async"
    ]

    assert ("executed", "executed") == (result.status, again.status)
    assert 1 == len(warnings)
    assert "ValueError" in warnings[0]
    assert 2 == quick.counts["trigger_rule"]


@pytest.mark.parametrize("password", ["", "not-the-password"])
async def test_a_redis_refusing_our_password_is_a_clear_error_and_no_fallback(
    quick: FakeSequence, password: str, caplog: pytest.LogCaptureFixture
) -> None:
    """redis-py's AuthenticationError is a ConnectionError: still no outage."""
    with redis_server.running(None, "--requirepass", "hunter2pass") as server:
        url = f"redis://:{password}@127.0.0.1:{server.port}/0"
        with caplog.at_level(logging.WARNING, logger="sequence_async"):
            async with _coordinated(quick, url, rate_limit=600) as client:
                with pytest.raises(CoordinatorError, match="Authentication") as bad:
                    await client.accounts.list()
                with pytest.raises(CoordinatorError):  # and again: no fallback
                    await client.trigger_and_wait("rule_0001", timeout=10)

    assert "refused us" in str(bad.value)
    assert [] == [r for r in caplog.records if r.name == "sequence_async"]
    assert 0 == quick.counts["trigger_rule"]


@pytest.mark.parametrize("revoked", ["-@scripting", "-evalsha", "-time"])
async def test_a_command_refused_mid_run_falls_back_for_good_with_one_warning(
    quick: FakeSequence, caplog: pytest.LogCaptureFixture, revoked: str
) -> None:
    """NOPERM (or an ACL failure in a script): PING passes, so no probe, no flap."""
    with redis_server.running() as server, redis.Redis.from_url(server.url) as admin:
        admin.acl_setuser(
            "worker",
            enabled=True,
            passwords=["+pw"],
            keys=["*"],
            channels=["*"],
            commands=["+@all"],
        )
        url = f"redis://worker:pw@127.0.0.1:{server.port}/0"
        with caplog.at_level(logging.INFO, logger="sequence_async"):
            async with _coordinated(
                quick, url, rate_limit=6000, poll=FAST_POLL
            ) as client:
                execution = await client.rules.trigger("rule_0001")
                admin.acl_setuser("worker", commands=[revoked])
                waited = await execution.wait(timeout=10)
                again = await client.trigger_and_wait("rule_0002", timeout=10)
                more = await client.trigger_and_wait("rule_0001", timeout=10)
    said = [r.getMessage() for r in caplog.records if r.name == "sequence_async"]

    assert ["executed"] * 3 == [r.status for r in (waited, again, more)]
    assert 1 == sum("until it restarts" in m for m in said)
    assert 0 == sum("answers again" in m for m in said)


async def test_a_restarted_redis_is_shared_again_after_one_warning_only(
    quick: FakeSequence, caplog: pytest.LogCaptureFixture
) -> None:
    """The connections pooled before the outage are dead: none starts another."""

    async def busy(client: SequenceClient) -> list[str]:
        # Many calls at once: many connections in the pool.
        results = await asyncio.gather(
            *(client.trigger_and_wait("rule_0001", timeout=10) for _ in range(12))
        )
        return [r.status for r in results]

    server = redis_server.start()
    try:
        coordinator = RedisCoordinator.from_url(
            server.url, retry=0.1, timeout=SLOW_MACHINE
        )
        with _answering_again() as back, caplog.at_level(logging.INFO):
            async with _falling_back(quick, coordinator) as client:
                before = await busy(client)
                server.kill()
                during = await busy(client)  # falls back: one WARNING
                server = redis_server.start(server.port)
                await asyncio.wait_for(back.wait(), timeout=10)
                after = await busy(client) + await busy(client)
    finally:
        server.kill()
    said = [r.getMessage() for r in caplog.records if r.name == "sequence_async"]

    assert {"executed"} == {*before, *during, *after}
    assert 1 == sum("unreachable" in m for m in said)
    assert 1 == sum("answers again" in m for m in said)


@pytest.mark.parametrize("stepped", ["budget", "pause"])
async def test_a_budget_or_pause_far_ahead_of_redis_time_holds_nobody(
    quick: FakeSequence, redis_url: str, fresh: redis.Redis, stepped: str
) -> None:
    """A clock stepped back on failover: an hour ahead is not waited out."""
    keys = _keys_of(quick)
    seconds, micros = fresh.time()
    ahead = (seconds + 3600) * 1_000_000 + micros
    fresh.set(keys.budget if stepped == "budget" else keys.pause, str(ahead))

    async with _coordinated(quick, redis_url, rate_limit=600) as client:
        asked = sleeps(client)
        await client.accounts.list()

    assert max(asked, default=0.0) <= 120.0


async def test_a_heartbeat_that_fails_is_logged_and_the_next_one_runs(
    quick: FakeSequence, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Bad data met at a heartbeat never ends the heartbeat (leases live on)."""
    beats = 0
    again = asyncio.Event()

    async def flaky() -> None:
        nonlocal beats
        beats += 1
        if beats == 1:
            raise ValueError("a value in Redis that is not ours")
        again.set()

    async with _coordinated(quick, redis_url, lease=0.3, rate_limit=600) as client:
        link = limiter_of(client)._link
        link.every_beat(flaky)
        await link.check()  # starts the heartbeat
        await asyncio.wait_for(again.wait(), timeout=SLOW_MACHINE)

    assert beats >= 2
    assert ["a heartbeat of the Redis coordinator failed"] == [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
    ]


@pytest.mark.parametrize(
    "ending",
    [
        RuleExecution(id="rex_1", rule_id="r1", status="in_progress"),
        NotFoundError("not visible yet", status=404),
    ],
    ids=["settling snapshot", "404"],
)
async def test_only_a_terminal_status_is_published_to_other_processes(
    ending: RuleExecution | NotFoundError,
) -> None:
    """An early wait's snapshot or a 404 past this waiter's grace is its own.

    Published, the snapshot left other processes' waits unpolled until they
    timed out, and the 404 was stored for a day: later waits got a false
    NotFoundError (and a caller might trigger again).
    """
    group = _Group(requester(FakeTransport(status(500))), "r1")
    waiters = [
        _Waiter(
            Watch(i, "r1", lambda _: None, lambda: 0.0, lambda: datetime.now(UTC)),
            FAST_POLL,
            0.0,
            1.0,
            None,
        )
        for i in ("rex_1", "rex_2")
    ]
    for waiter in waiters:
        group.waiters[waiter.watch.execution_id] = [waiter]

    group.finish(waiters[0], ending)
    terminal = RuleExecution(id="rex_2", rule_id="r1", status="executed")
    group.finish(waiters[1], terminal)

    assert {"rex_2": terminal} == group.outcomes


@pytest.mark.parametrize("answer", [5, ["abc"], [], [1.5, None], "x", [[1]]])
def test_a_reservation_answer_that_is_not_ours_falls_back(answer: object) -> None:
    """Not a TypeError or IndexError from the trigger: the in-process bucket."""
    with pytest.raises(Unavailable):
        ints(answer, 1)


@pytest.mark.parametrize("answer", [3, ["a"], ["a", 1], [1, "x"], ["a", None]])
def test_a_lead_or_join_answer_that_is_not_ours_falls_back(answer: object) -> None:
    """An odd or mistyped list from a store that is not ours: no ValueError."""
    with pytest.raises(Unavailable):
        pairs(answer)


# -- what someone else left in our keys ---------------------------------------


async def _leading(fresh: redis.Redis, keys: Keys, rule_id: str) -> None:
    # Until a client holds the lease of *rule_id* (what Redis shows).
    async with asyncio.timeout(30):
        while fresh.get(keys.lease(rule_id)) is None:
            await asyncio.sleep(0.02)


@pytest.mark.parametrize("stored", ["not-json", '{"result": {"id": 5}}'])
async def test_an_outcome_key_holding_what_is_not_ours_lets_the_wait_register(
    quick: FakeSequence, redis_url: str, fresh: redis.Redis, stored: str
) -> None:
    """The text is dropped, the follower's wait registers, the leader ends it."""
    keys = _keys_of(quick)
    quick.set_behavior("rule_0001", Behavior(median=60.0, sigma=0.0))

    async with (
        _coordinated(quick, redis_url, poll=FAST_POLL) as leader,
        _coordinated(quick, redis_url, poll=FAST_POLL) as follower,
    ):
        long = await leader.rules.trigger("rule_0001")
        holding = asyncio.create_task(long.wait(timeout=60))
        await _leading(fresh, keys, "rule_0001")
        quick.set_behavior("rule_0001", Behavior(median=0.05, sigma=0.0))
        execution = await follower.rules.trigger("rule_0001")
        fresh.set(keys.outcome(execution.id), stored, ex=3600)
        result = await execution.wait(timeout=10)
        kept = fresh.get(keys.outcome(execution.id))
        holding.cancel()

    assert "executed" == result.status
    assert isinstance(kept, str)
    assert decode(kept) == result  # the leader's, not a last look at the end


@pytest.mark.parametrize("name", ["..", "", "a/b"])
async def test_a_registration_of_no_usable_id_is_skipped_by_the_leader(
    quick: FakeSequence, redis_url: str, fresh: redis.Redis, name: str
) -> None:
    """Another's junk in the registry never ends our waits in a bare ValueError."""
    keys = _keys_of(quick)
    quick.set_behavior("rule_0001", Behavior(median=1.0, sigma=0.0))

    async with _coordinated(quick, redis_url, poll=FAST_POLL, lease=1.0) as client:
        execution = await client.rules.trigger("rule_0001")
        waiting = asyncio.create_task(execution.wait(timeout=30))
        await _leading(fresh, keys, "rule_0001")
        seconds, _ = fresh.time()
        now = seconds * 1000
        old = f"{now + 60_000} {now} 999000 {now - 999_000}"  # due at once
        fresh.hset(keys.pending("rule_0001"), name, old)
        result = await waiting
        again = await client.trigger_and_wait("rule_0001", timeout=30)

    assert ["executed", "executed"] == [result.status, again.status]


@pytest.mark.parametrize(
    "case",
    [
        ("budget", "abc"),
        ("budget", "nan"),
        ("budget", {"x": "1"}),
        ("pause", "inf"),
        ("members", "x"),
    ],
)
async def test_a_shared_key_that_is_not_ours_is_started_afresh_without_a_warning(
    quick: FakeSequence,
    redis_url: str,
    fresh: redis.Redis,
    caplog: pytest.LogCaptureFixture,
    case: tuple[str, str | dict[str, str]],
) -> None:
    """Text, NaN or another type where a number goes: no fallback, no log flood."""
    which, planted = case
    key = getattr(_keys_of(quick), which)
    if isinstance(planted, dict):
        fresh.hset(key, "x", planted["x"])
    else:
        fresh.set(key, planted)  # no expiry: it would stay for ever

    with caplog.at_level(logging.WARNING, logger="sequence_async"):
        async with _coordinated(quick, redis_url, rate_limit=6000, lease=1.0) as c:
            for _ in range(3):
                await c.accounts.list()
            async with asyncio.timeout(30):  # a heartbeat counts the members
                while which == "members" and fresh.type(key) != "zset":
                    await asyncio.sleep(0.05)
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]

    assert [] == warned
    if which == "budget":
        assert str(fresh.get(key)).isdigit()


async def test_waits_that_ended_during_an_outage_leave_the_registry_once_it_is_back(
    quick: FakeSequence,
    redis_url: str,
    fresh: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Cancelled while Redis was away, on two rules: unregistered on recovery."""
    keys = _keys_of(quick)
    quick.set_behavior("*", Behavior(median=60.0, sigma=0.0))
    away = asyncio.Event()
    rules = ("rule_0001", "rule_0002")

    async with _proxied(redis_url, lambda data: None if away.is_set() else data) as url:
        coordinator = RedisCoordinator.from_url(url, lease=10.0, timeout=0.5, retry=0.2)
        async with _falling_back(quick, coordinator) as client:
            waits = [
                asyncio.create_task((await client.rules.trigger(rule)).wait())
                for rule in rules
            ]
            async with asyncio.timeout(30):
                while not all(fresh.hlen(keys.pending(r)) for r in rules):
                    await asyncio.sleep(0.02)
            with _answering_again() as back, caplog.at_level(logging.WARNING):
                away.set()
                async with asyncio.timeout(30):  # a call times out: Redis is away
                    while not any("unreachable" in r.message for r in caplog.records):
                        await asyncio.sleep(0.02)
                for wait in waits:
                    wait.cancel()
                await asyncio.gather(*waits, return_exceptions=True)
                away.clear()
                await asyncio.wait_for(back.wait(), 30)
            async with asyncio.timeout(10):  # well before the 30 s expiry
                while any(fresh.hlen(keys.pending(r)) for r in rules):
                    await asyncio.sleep(0.02)
