"""
The fake server's HTTP face: an aiohttp.web application for ``/api/v1``.

Owns routing, the ``{request_id, data}`` and ``{error}`` envelopes, the
``X-Request-ID`` echo, the per-key rate limit, fault injection per route
(latency, 5xx, 429, dropped connection after the write commits, HTML bodies)
and the record of what was received. What each endpoint means lives in
``state``.

May import: ``testing.state``, ``testing.seed``.
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
from aiohttp import web

from .seed import DEMO_API_KEY, Behavior, Permission, Seed, demo_seed
from .state import (
    ACCOUNT_TYPES,
    CARD_STATUSES,
    CARD_TYPES,
    ApiError,
    ManualClock,
    State,
    enum_param,
    not_found,
)


@attrs.define(kw_only=True)
class Faults:
    """
    Faults injected on one route (or every route, under ``"*"``).

    Rates are probabilities drawn from the server's seeded RNG; ``*_next``
    counts hit the next requests for certain, then run out.

    Args:
        latency: Seconds added before the answer (after the write, if any).
        error_rate: Answer 500 before doing anything.
        errors_next: Answer the next N requests with 503.
        throttle_rate: Answer 429 with ``Retry-After: retry_after``.
        throttles_next: Answer the next N requests with 429.
        retry_after: Seconds sent in ``Retry-After``.
        drop_rate: Close the connection after the write commits (the
            response is lost).
        drops_next: Drop the next N responses after their write commits.
        malformed_rate: Answer 200 with an HTML page instead of JSON.
        malformed_next: Answer the next N requests with HTML.
    """

    latency: float = 0.0
    error_rate: float = 0.0
    errors_next: int = 0
    throttle_rate: float = 0.0
    throttles_next: int = 0
    retry_after: float = 1.0
    drop_rate: float = 0.0
    drops_next: int = 0
    malformed_rate: float = 0.0
    malformed_next: int = 0


@attrs.frozen
class Received:
    """
    One request as the server received it (``Authorization`` left out).
    """

    method: str
    path: str
    route: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: Any


class _RateLimit:
    """
    Per-key token bucket refilled at *per_minute*.

    It holds *burst* tokens: by default a minute's worth, like the 100-token
    bucket the reference describes.
    """

    def __init__(
        self, per_minute: int, burst: int | None, clock: Callable[[], float]
    ) -> None:
        self.per_minute = per_minute
        self.burst = float(burst or per_minute)
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float | None:
        """
        Take a token for *key*; return seconds to wait when there is none.
        """
        now = self.clock()
        rate = self.per_minute / 60.0
        tokens, then = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * rate)
        if tokens >= 1:
            self.buckets[key] = (tokens - 1, now)
            return None
        self.buckets[key] = (tokens, now)
        return (1 - tokens) / rate


# (method, path, route name); the endpoint of a route is ``FakeSequence._<name>``.
ROUTES = (
    ("GET", "/api/v1/accounts", "list_accounts"),
    ("GET", "/api/v1/accounts/{id}", "get_account"),
    ("GET", "/api/v1/rules", "list_rules"),
    ("GET", "/api/v1/rules/{id}", "get_rule"),
    ("POST", "/api/v1/rules/{id}/trigger", "trigger_rule"),
    ("GET", "/api/v1/rule-executions", "list_rule_executions"),
    ("GET", "/api/v1/rule-executions/{id}", "get_rule_execution"),
    ("GET", "/api/v1/transfers", "list_transfers"),
    ("GET", "/api/v1/transfers/{id}", "get_transfer"),
    ("POST", "/api/v1/transfers", "create_transfer"),
    ("GET", "/api/v1/cards", "list_cards"),
    ("GET", "/api/v1/cards/{id}", "get_card"),
    ("GET", "/api/v1/cards/{id}/transactions", "list_card_transactions"),
)
ROUTE_NAMES = tuple(name for _, _, name in ROUTES)

Handler = Callable[
    [web.Request, tuple[Permission, ...], str],
    Awaitable[tuple[int, Any, Mapping[str, Any] | None]],
]


class FakeSequence:
    """
    The fake Sequence server: state, control handle and aiohttp application.

    Args:
        seed: Starting data; the demo organization when ``None``.
        clock: Epoch seconds; a ``ManualClock`` makes time move only when a
            test says so.
        rng_seed: Seed of durations, outcomes and fault rates.
        visibility_delay: Seconds a new execution stays invisible (404).
        rate_limit: Requests per minute per key; ``None`` for no limit.
        rate_burst: Tokens of that limit's bucket (default *rate_limit*).
        record: Keep the received requests (``received``); counts are kept
            always.

    Attributes:
        url: The base URL (``http://127.0.0.1:PORT/api/v1``) once served.
        api_key: A key of the seed (the demo key when there is one).
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
    ) -> None:
        seed = seed if seed is not None else demo_seed()
        state = State(
            seed, clock=clock, rng_seed=rng_seed, visibility_delay=visibility_delay
        )
        self.state = state
        self.url: str | None = None
        self.api_key = (
            DEMO_API_KEY if DEMO_API_KEY in seed.keys else next(iter(seed.keys), "")
        )
        self.faults: dict[str, Faults] = {}
        self.rate_limit = (
            _RateLimit(rate_limit, rate_burst, state.clock) if rate_limit else None
        )
        self.record = record
        self.received: deque[Received] = deque(maxlen=100_000)
        self.counts: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.rng = random.Random(state.rng.random())
        self.app = self._build()

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
            ValueError: *route* is not ``"*"`` or a route name (see ``ROUTES``).
        """
        if route != "*" and route not in ROUTE_NAMES:
            valid = ", ".join(("*", *ROUTE_NAMES))
            raise ValueError(f"unknown route {route!r}; valid routes: {valid}")
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
        """
        self.state.finish(execution_id, status)

    def requests_to(self, route: str) -> list[Received]:
        """
        The recorded requests of one route, oldest first.
        """
        return [r for r in self.received if r.route == route]

    # -- application -------------------------------------------------------

    def _build(self) -> web.Application:
        app = web.Application()
        for method, path, name in ROUTES:
            handler: Handler = getattr(self, f"_{name}")
            app.router.add_route(
                method, path, self._wrap(name, handler, mutating=method == "POST")
            )
        return app

    def _fault(self, route: str) -> Faults | None:
        return self.faults.get(route) or self.faults.get("*")

    def _wrap(
        self, route: str, handler: Handler, *, mutating: bool
    ) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            given = request.headers.get("X-Request-ID")
            request_id = given or f"req_{uuid.uuid4().hex[:20]}"
            self.counts[route] += 1
            if given is not None and not _printable(given, 128):
                self.statuses[400] += 1
                return _error(
                    400,
                    "invalid_request",
                    "X-Request-ID must be 1 to 128 printable ASCII characters.",
                    f"req_{uuid.uuid4().hex[:20]}",
                )
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                response = await self._answer(
                    request, route, handler, request_id, mutating=mutating
                )
            finally:
                self.in_flight -= 1
            response.headers["X-Request-ID"] = request_id
            self.statuses[response.status] += 1
            return response

        return endpoint

    async def _answer(
        self,
        request: web.Request,
        route: str,
        handler: Handler,
        request_id: str,
        *,
        mutating: bool,
    ) -> web.StreamResponse:
        faults = self._fault(route)
        body: Any = None
        if mutating and request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return _error(
                    400,
                    "invalid_request",
                    "The request body is not valid JSON.",
                    request_id,
                )
        if self.record:
            self.received.append(
                Received(
                    method=request.method,
                    path=request.path,
                    route=route,
                    query=dict(request.query),
                    headers={
                        k: v
                        for k, v in request.headers.items()
                        if k.lower() != "authorization"
                    },
                    body=body,
                )
            )
        key = request.headers.get("Authorization", "")
        idem_key = request.headers.get("Idempotency-Key") if mutating else None
        try:
            self.state.settle()
            permissions = self.state.permissions(key)
            if (
                self.rate_limit is not None
                and (wait := self.rate_limit.take(key)) is not None
            ):
                return _error(
                    429,
                    "rate_limit_exceeded",
                    "Too many requests.",
                    request_id,
                    retry_after=wait,
                )
            if faults is not None:
                early = self._early_fault(faults, request_id)
                if early is not None:
                    return early
            replay = None
            if idem_key is not None:
                replay = self.state.idempotent_begin(key, request.path, idem_key, body)
            if replay is not None:
                status, data, page_info = replay[0], replay[1], None
            else:
                try:
                    if faults is not None and faults.latency:
                        await asyncio.sleep(faults.latency)
                    status, data, page_info = await handler(request, permissions, body)
                except BaseException:
                    if idem_key is not None:
                        self.state.idempotent_end(key, request.path, idem_key, None)
                    raise
                if idem_key is not None:
                    self.state.idempotent_end(
                        key, request.path, idem_key, (status, data)
                    )
        except ApiError as exc:
            return _error(exc.status, exc.code, exc.message, request_id)
        if faults is not None and self._late_fault(faults, "drops_next", "drop_rate"):
            # The write is committed; the client never hears about it.
            if request.transport is not None:
                request.transport.close()
            raise web.HTTPServiceUnavailable
        if faults is not None and self._late_fault(
            faults, "malformed_next", "malformed_rate"
        ):
            return web.Response(
                status=200,
                text="<html><body>502 Bad Gateway</body></html>",
                content_type="text/html",
            )
        payload: dict[str, Any] = {"request_id": request_id, "data": data}
        if page_info is not None:
            payload["page_info"] = page_info
        return web.json_response(payload, status=status, dumps=_dumps)

    def _early_fault(self, faults: Faults, request_id: str) -> web.Response | None:
        if faults.errors_next > 0:
            faults.errors_next -= 1
            return _error(503, "service_unavailable", "Injected outage.", request_id)
        if faults.error_rate and self.rng.random() < faults.error_rate:
            return _error(500, "internal_error", "Injected failure.", request_id)
        if faults.throttles_next > 0 or (
            faults.throttle_rate and self.rng.random() < faults.throttle_rate
        ):
            faults.throttles_next = max(0, faults.throttles_next - 1)
            return _error(
                429,
                "rate_limit_exceeded",
                "Too many requests.",
                request_id,
                retry_after=faults.retry_after,
            )
        return None

    def _late_fault(self, faults: Faults, count: str, rate: str) -> bool:
        left: int = getattr(faults, count)
        if left > 0:
            setattr(faults, count, left - 1)
            return True
        chance: float = getattr(faults, rate)
        return bool(chance) and self.rng.random() < chance

    # -- endpoints ---------------------------------------------------------

    async def _list_accounts(
        self, request: web.Request, perms: tuple[Permission, ...], _: Any
    ) -> tuple[int, Any, Any]:
        State.require(perms, "LIST_ACCOUNTS")
        kind = enum_param(request.query, "type", ACCOUNT_TYPES)
        return (
            200,
            [a for a in self.state.accounts.values() if not kind or a["type"] == kind],
            None,
        )

    async def _get_account(
        self, request: web.Request, perms: tuple[Permission, ...], _: Any
    ) -> tuple[int, Any, Any]:
        account_id = request.match_info["id"]
        State.require(perms, "READ_ACCOUNTS", account_id)
        return 200, self.state.account(account_id, with_balance=True), None

    async def _list_rules(
        self, request: web.Request, perms: tuple[Permission, ...], _: Any
    ) -> tuple[int, Any, Any]:
        State.require(perms, "LIST_RULES")
        source_id = request.query.get("source_id")
        out = []
        for rule in self.state.rules.values():
            trigger = rule["trigger"]
            actions = rule["steps"][0]["actions"] if rule["steps"] else []
            source = actions[0]["source"] if actions else None
            if source_id and (source or {}).get("id") != source_id:
                continue
            out.append(
                {
                    "id": rule["id"],
                    "nickname": rule.get("nickname"),
                    "description": rule.get("description"),
                    "status": rule.get("status"),
                    "trigger_type": trigger.get("type"),
                    "source": source,
                    "created_at": rule.get("created_at"),
                    "updated_at": rule.get("updated_at"),
                }
            )
        return 200, out, None

    async def _get_rule(
        self, request: web.Request, perms: tuple[Permission, ...], _: Any
    ) -> tuple[int, Any, Any]:
        rule_id = request.match_info["id"]
        State.require(perms, "READ_RULES", rule_id)
        rule = self.state.rules.get(rule_id)
        if rule is None:
            raise not_found("Rule", rule_id)
        return 200, rule, None

    async def _trigger_rule(
        self, request: web.Request, perms: tuple[Permission, ...], body: Any
    ) -> tuple[int, Any, Any]:
        rule_id = request.match_info["id"]
        State.require(perms, "TRIGGER_RULES", rule_id)
        key = request.headers.get("Idempotency-Key")
        return 202, self.state.trigger(rule_id, body, idempotency_key=key), None

    async def _list_rule_executions(
        self, request: web.Request, perms: tuple[Permission, ...], _: Any
    ) -> tuple[int, Any, Any]:
        rule_id = _required(request.query, "rule_id")
        State.require(perms, "READ_RULE_EXECUTIONS", rule_id)
        items, page_info = self.state.page(
            self.state.list_executions(request.query), request.query
        )
        return 200, items, page_info

    async def _get_rule_execution(
        self, request: web.Request, perms: tuple[Permission, ...], _: Any
    ) -> tuple[int, Any, Any]:
        execution_id = request.match_info["id"]
        State.require(perms, "READ_RULE_EXECUTIONS")
        execution = self.state.visible_execution(execution_id)
        if execution is None:
            raise not_found("Rule execution", execution_id)
        State.require(perms, "READ_RULE_EXECUTIONS", execution.data["rule_id"])
        return 200, execution.data, None

    async def _list_transfers(
        self, request: web.Request, perms: tuple[Permission, ...], _: Any
    ) -> tuple[int, Any, Any]:
        account_id = _required(request.query, "account_id")
        State.require(perms, "READ_TRANSFERS", account_id)
        items, page_info = self.state.page(
            self.state.list_transfers(request.query), request.query
        )
        return 200, items, page_info

    async def _get_transfer(
        self, request: web.Request, perms: tuple[Permission, ...], _: Any
    ) -> tuple[int, Any, Any]:
        transfer_id = request.match_info["id"]
        State.require(perms, "READ_TRANSFERS")
        transfer = self.state.transfers.get(transfer_id)
        if transfer is None:
            raise not_found("Transfer", transfer_id)
        ends = [
            (transfer.get(side) or {}).get("id") for side in ("source", "destination")
        ]
        if not any(
            p.scope == "READ_TRANSFERS" and p.allows(e)
            for p in perms
            for e in ends
            if e
        ):
            raise State.forbidden()
        return 200, transfer, None

    async def _create_transfer(
        self, _: web.Request, perms: tuple[Permission, ...], body: Any
    ) -> tuple[int, Any, Any]:
        State.require(perms, "MANUAL_TRANSFER")
        return 201, self.state.create_transfer(perms, body), None

    async def _list_cards(
        self, request: web.Request, perms: tuple[Permission, ...], _: Any
    ) -> tuple[int, Any, Any]:
        account_id = _required(request.query, "account_id")
        State.require(perms, "READ_CARDS", account_id)
        status = enum_param(request.query, "status", CARD_STATUSES)
        kind = enum_param(request.query, "type", CARD_TYPES)
        cards = [
            c
            for c in self.state.cards.values()
            if c["account_id"] == account_id
            and (not status or c["status"] == status)
            and (not kind or c["type"] == kind)
        ]
        return 200, cards, None

    def _card(
        self, request: web.Request, perms: tuple[Permission, ...]
    ) -> dict[str, Any]:
        card_id = request.match_info["id"]
        State.require(perms, "READ_CARDS")
        card = self.state.cards.get(card_id)
        if card is None:
            raise not_found("Card", card_id)
        State.require(perms, "READ_CARDS", card["account_id"])
        return card

    async def _get_card(
        self, request: web.Request, perms: tuple[Permission, ...], _: Any
    ) -> tuple[int, Any, Any]:
        return 200, self._card(request, perms), None

    async def _list_card_transactions(
        self, request: web.Request, perms: tuple[Permission, ...], _: Any
    ) -> tuple[int, Any, Any]:
        card = self._card(request, perms)
        rows = self.state.card_transactions_of(card["id"], request.query)
        items, page_info = self.state.page(rows, request.query)
        return 200, items, page_info


def _printable(value: str, longest: int) -> bool:
    return 1 <= len(value) <= longest and all(" " < c <= "~" for c in value)


def _required(query: Mapping[str, str], name: str) -> str:
    value = query.get(name)
    if not value:
        raise ApiError(
            400, "invalid_request", f"The {name} query parameter is required."
        )
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _error(
    status: int,
    code: str,
    message: str,
    request_id: str,
    *,
    retry_after: float | None = None,
) -> web.Response:
    headers = {"X-Request-ID": request_id}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return web.json_response(
        {"error": {"code": code, "message": message}},
        status=status,
        headers=headers,
        dumps=_dumps,
    )
