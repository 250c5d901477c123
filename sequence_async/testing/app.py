"""
The fake server's control handle and its aiohttp application.

Owns ``FakeSequence``: it builds the state from a seed, puts the pipeline
(``pipeline.PIPELINE``) in front of the endpoints of its API
(``endpoints.ROUTES`` or ``PLATFORM_ROUTES``, spoken through a
``dialect.Dialect``), and gives tests their controls: finish an execution or
push its next attempt, move the manual clock, set behaviours, visibility,
settlement and faults, pause a route or wait for its requests, and read what
was received and started.

May import: ``testing.clock``, ``testing.demo``, ``testing.dialect``,
``testing.endpoints``,
``testing.faults``, ``testing.gates``, ``testing.pipeline``, ``testing.seed``,
``testing.state``.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .clock import ManualClock
from .demo import demo_seed
from .dialect import dialect_named
from .endpoints import PLATFORM_ROUTES, ROUTE_NAMES, ROUTES
from .faults import Faults, RateLimit
from .gates import Pause
from .pipeline import CONTEXT, PIPELINE, Context, Received
from .seed import DEMO_API_KEY, Behavior, Seed
from .state import State


class FakeSequence:
    """
    The fake Sequence server: state, control handle and aiohttp application.

    Args:
        seed: Starting data; the demo organization when ``None``.
        clock: Epoch seconds; a ``ManualClock`` makes time move only when a
            test says so (``advance()``).
        rng_seed: Seed of durations, outcomes and fault rates.
        visibility_delay: Seconds a new execution stays invisible (404).
        rate_limit: Requests per minute per key; ``None`` for no limit.
        rate_burst: Tokens of that limit's bucket (default *rate_limit*).
        record: Keep the received requests (``received``); counts are kept
            always.
        api: The API spoken: ``"api-v1"`` or ``"platform-v1"`` (same state,
            Platform's paths, shapes, paging, codes and quirks).
        settlement: Seconds a run that moved money stays ``in_progress``
            with pending transfers (``transfersPending``) before it ends.

    Attributes:
        url: The base URL (``http://127.0.0.1:PORT/api/v1``, or
            ``.../platform/v1``) once served.
        api_key: A key of the seed (the demo key when there is one).
        state: The organization's data (prefer the controls below).
        faults: The faults per route (set them with ``set_faults``).
        received: The requests received, oldest first (the last 100,000).
        counts: Requests per route name.
        statuses: Answers per HTTP status.
    """

    def __init__(
        self,
        seed: Seed | None = None,
        *,
        clock: Callable[[], float] = time.time,
        rng_seed: int = 0,
        visibility_delay: float = 0.0,
        rate_limit: int | None = None,
        rate_burst: int | None = None,
        record: bool = True,
        api: str = "api-v1",
        settlement: float = 0.0,
    ) -> None:
        seed = seed if seed is not None else demo_seed()
        dialect = dialect_named(api)
        _check_seconds(settlement)
        state = State(
            seed,
            clock=clock,
            rng_seed=rng_seed,
            visibility_delay=visibility_delay,
            settlement=settlement,
        )
        self.api = api
        self.state = state
        self.url: str | None = None
        self.api_key = (
            DEMO_API_KEY if DEMO_API_KEY in seed.keys else next(iter(seed.keys), "")
        )
        self._context = Context(
            state=state,
            rng=random.Random(state.rng.random()),
            rate_limit=RateLimit(rate_limit, rate_burst, state.clock)
            if rate_limit
            else None,
            record=record,
            dialect=dialect,
        )
        self.faults: dict[str, Faults] = self._context.faults
        self.received: deque[Received] = self._context.received
        self.counts: Counter[str] = self._context.counts
        self.statuses: Counter[int] = self._context.statuses
        self.app = web.Application(middlewares=PIPELINE)
        self.app[CONTEXT] = self._context
        for method, path, name, handler in (
            PLATFORM_ROUTES if dialect.platform else ROUTES
        ):
            self.app.router.add_route(method, path, handler, name=name)

    @property
    def in_flight(self) -> int:
        """
        Requests being answered now.
        """
        return self._context.in_flight

    @property
    def max_in_flight(self) -> int:
        """
        The most requests answered at once so far.
        """
        return self._context.max_in_flight

    @property
    def record(self) -> bool:
        """
        Whether received requests are kept in ``received``.
        """
        return self._context.record

    @record.setter
    def record(self, value: bool) -> None:
        self._context.record = value

    # -- control -----------------------------------------------------------

    def set_faults(
        self,
        route: str = "*",
        *,
        latency: float = 0.0,
        error_rate: float = 0.0,
        errors_next: int = 0,
        throttle_rate: float = 0.0,
        throttles_next: int = 0,
        retry_after: float = 1.0,
        drop_rate: float = 0.0,
        drops_next: int = 0,
        malformed_rate: float = 0.0,
        malformed_next: int = 0,
    ) -> Faults:
        """
        Replace the faults of *route* (a route name, or ``"*"`` for all).

        The keywords are those of ``Faults``; leaving them all out clears the
        route's faults.

        Raises:
            ValueError: *route* is not ``"*"`` or a route name (the message
                lists them), or a setting is out of range (see ``Faults``).
        """
        if route != "*":
            _check_route(route, star=True)
        self.faults[route] = Faults(
            latency=latency,
            error_rate=error_rate,
            errors_next=errors_next,
            throttle_rate=throttle_rate,
            throttles_next=throttles_next,
            retry_after=retry_after,
            drop_rate=drop_rate,
            drops_next=drops_next,
            malformed_rate=malformed_rate,
            malformed_next=malformed_next,
        )
        return self.faults[route]

    def advance(self, seconds: float) -> None:
        """
        Move the server's clock forward and settle what came due.

        Executions and manual transfers whose time has come end now.

        Raises:
            TypeError: The server was not started with a ``ManualClock``.
            ValueError: *seconds* is negative or not finite.
        """
        clock = self.state.clock
        if not isinstance(clock, ManualClock):
            raise TypeError(
                "advance() needs a manual clock: start the server with "
                "serve(clock=ManualClock())"
            )
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be finite and >= 0, not {seconds!r}")
        clock.advance(seconds)
        self.state.settle()

    def set_behavior(self, rule_id: str, behavior: Behavior) -> None:
        """
        Set how the next executions of *rule_id* play out.

        ``rule_id="*"`` sets it for every rule and for the default (rules
        without a behaviour of their own).

        Raises:
            ValueError: *rule_id* is not ``"*"`` or a seeded rule.
        """
        if rule_id == "*":
            self.state.default_behavior = behavior
            self.state.behaviors = dict.fromkeys(self.state.rules, behavior)
            return
        if rule_id not in self.state.rules:
            raise ValueError(f"unknown rule id {rule_id!r}; see rule_ids")
        self.state.behaviors[rule_id] = behavior

    def set_settlement(self, seconds: float) -> None:
        """
        Hold later runs that move money ``in_progress`` for *seconds* of settlement.

        Raises:
            ValueError: *seconds* is negative or not finite.
        """
        _check_seconds(seconds)
        self.state.settlement = seconds

    def retry_later(self, execution_id: str, seconds: float) -> None:
        """
        Push a running execution's next attempt *seconds* away.

        It shows ``next_attempt_at`` until then, and runs its job at that
        time.

        Raises:
            ValueError: *seconds* is negative or not finite, or the execution
                was never started or is not running its job.
        """
        _check_seconds(seconds)
        self.state.retry_later(execution_id, seconds)

    def set_visibility_delay(self, seconds: float) -> None:
        """
        Set how long new executions stay invisible (404, left out of lists).

        Raises:
            ValueError: *seconds* is negative or not finite.
        """
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"seconds must be finite and >= 0, not {seconds!r}")
        self.state.visibility_delay = seconds

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """
        The ids of the seeded rules, in seed order.
        """
        return tuple(self.state.rules)

    def executions(self) -> list[dict[str, Any]]:
        """
        Every execution started so far, oldest first, as the API shows it.

        Each is a copy of the execution's JSON (settled to the current time,
        visible or not yet) plus ``idempotency_key``: the key it was
        triggered with, or ``None``.
        """
        self.state.settle()
        return [
            copy.deepcopy(e.data) | {"idempotency_key": e.idempotency_key}
            for e in self.state.executions.values()
        ]

    def finish(self, execution_id: str, status: str = "executed") -> None:
        """
        End an execution now with *status* (``executed``, ``partial``, ``failed``).

        Raises:
            ValueError: Another status, or an execution id never started.
        """
        self.state.finish(execution_id, status)

    def pause(self, route: str) -> Pause:
        """
        Hold requests to *route* before their endpoint runs, until released.

        ``await pause.reached(n)`` waits until *n* requests are held;
        ``pause.release()`` lets them (and later ones) go on. A new pause of
        the same route replaces the old one (release that one first).

        Raises:
            ValueError: *route* is not a route name (the message lists them).
        """
        _check_route(route)
        self._context.pauses[route] = Pause(route)
        return self._context.pauses[route]

    async def wait_for_requests(self, route: str, count: int = 1) -> None:
        """
        Return once *route* has received *count* requests in all.

        Counted as ``counts`` counts them, when they arrive (before their
        answer). Bound the wait with ``asyncio.timeout`` if needed.

        Raises:
            ValueError: *route* is not a route name (the message lists them).
        """
        _check_route(route)
        await self._context.arrivals.wait_for(route, count)

    def requests_to(self, route: str) -> list[Received]:
        """
        The recorded requests of one route, oldest first.
        """
        return [r for r in self.received if r.route == route]


def _check_seconds(seconds: float) -> None:
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be finite and >= 0, not {seconds!r}")


def _check_route(route: str, *, star: bool = False) -> None:
    if route not in ROUTE_NAMES:
        valid = ", ".join(("*", *ROUTE_NAMES) if star else ROUTE_NAMES)
        raise ValueError(f"unknown route {route!r}; valid routes: {valid}")
