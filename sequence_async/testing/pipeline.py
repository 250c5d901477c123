"""
The fake server's request pipeline: aiohttp middlewares, in order.

Every request to a known route passes through ``PIPELINE``, outermost first:

1. ``envelope``: checks ``X-Request-ID`` (or makes one), reads the query in
   the server's dialect, wraps answers in ``{request_id, data[, page_info]}``
   (Platform: ``{requestId, data}``, lists as ``{items, pagination}``) and
   errors in ``{error}``, echoes the id in the header, counts the statuses
   sent, and (Platform) writes the audit log.
2. ``record``: counts the route (waking ``wait_for_requests``) and the
   requests in flight, reads a POST's JSON body (400 when it is not JSON or
   nested deeper than 64) and records what was received (``Authorization``
   left out).
3. ``authenticate``: settles the clock, then finds the key's permissions
   (401).
4. ``rate_limit``: the per-key token bucket (429 with ``Retry-After``).
5. ``inject_faults``: injected 503/500/429 before the request runs; a dropped
   connection or an HTML body after its write commits.
6. ``idempotency``: a replay's first answer, a 400 or 409, or runs the
   request and keeps its answer.
7. ``hold``: injected latency, then a test's ``Pause``, before the endpoint
   runs (a replay skips both).

Then the endpoint answers with a ``Reply``. Requests to unknown paths or
methods skip the pipeline: aiohttp's plain-text 404 or 405, as the real API
answers them (Platform: a plain-text 404 for both).

May import: ``testing.api``, ``testing.dialect``, ``testing.faults``,
``testing.gates``, ``testing.seed``, ``testing.state``.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from typing import Any

import attrs
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from .api import ApiError, invalid, printable
from .dialect import Dialect
from .faults import Faults, RateLimit
from .gates import Arrivals, Pause
from .seed import Permission
from .state import State


RECEIVED_KEPT = 100_000
MAX_REQUEST_ID = 128
MAX_JSON_DEPTH = 64


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


@attrs.define(eq=False)
class Context:
    """
    What the pipeline reads and keeps: state, faults, limit and record.
    """

    state: State
    rng: random.Random
    rate_limit: RateLimit | None
    record: bool
    dialect: Dialect
    faults: dict[str, Faults] = attrs.Factory(dict)
    received: deque[Received] = attrs.Factory(lambda: deque(maxlen=RECEIVED_KEPT))
    counts: Counter[str] = attrs.Factory(Counter)
    statuses: Counter[int] = attrs.Factory(Counter)
    pauses: dict[str, Pause] = attrs.Factory(dict)
    arrivals: Arrivals = attrs.field(
        init=False,
        default=attrs.Factory(lambda self: Arrivals(self.counts), takes_self=True),
    )
    in_flight: int = 0
    max_in_flight: int = 0

    def faults_of(self, route: str) -> Faults | None:
        """
        The faults of *route*, else those of every route (``"*"``).
        """
        return self.faults.get(route) or self.faults.get("*")


class Reply(web.Response):
    """
    An endpoint's answer before its envelope: status, data and page info.
    """

    def __init__(
        self, status: int, data: Any, page_info: dict[str, Any] | None = None
    ) -> None:
        super().__init__(status=status, content_type="application/json")
        self.data = data
        self.page_info = page_info


CONTEXT = web.AppKey("context", Context)
ROUTE = web.RequestKey("route", str)
BODY = web.RequestKey("body", object)
QUERY = web.RequestKey("query", dict[str, str])
PERMISSIONS = web.RequestKey("permissions", tuple[Permission, ...])


@web.middleware
async def envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    """
    Request ids, the success and error bodies, and the count of statuses.
    """
    context = request.app[CONTEXT]
    dialect = context.dialect
    route = request.match_info.route.name
    if route is None:  # an unknown path or method: aiohttp's 404 or 405
        if dialect.platform:  # Platform: 404 in plain text for both
            return web.Response(status=404, text="Not Found")
        return await request.match_info.handler(request)
    given = request.headers.get("X-Request-ID")
    request_id = _request_id()
    error_code: str | None = None
    if given is not None and not printable(given, MAX_REQUEST_ID):
        response: web.StreamResponse = _error(
            invalid("X-Request-ID must be 1 to 128 printable ASCII characters."),
            request_id,
            dialect,
            route,
        )
    else:
        request_id = given or request_id
        request[ROUTE] = route
        try:
            request[QUERY] = dialect.query_in(request.query)
            response = await handler(request)
        except ApiError as exc:
            response = _error(exc, request_id, dialect, route)
            error_code = dialect.code(exc.code, route)
        else:
            if isinstance(response, Reply):
                response.text = _dumps(
                    dialect.envelope(request_id, response.data, response.page_info)
                )
            response.headers["X-Request-ID"] = request_id
    context.statuses[response.status] += 1
    if dialect.platform and PERMISSIONS in request:
        context.state.audit(
            request.headers.get("Authorization", ""),
            path=request.path,
            route=route,
            request_id=request_id,
            error_code=error_code,
        )
    return response


@web.middleware
async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
    """
    Counts, in flight, the JSON body of a POST and the record of requests.
    """
    context = request.app[CONTEXT]
    context.counts[request[ROUTE]] += 1
    context.arrivals.counted(request[ROUTE])
    context.in_flight += 1
    context.max_in_flight = max(context.max_in_flight, context.in_flight)
    try:
        request[BODY] = context.dialect.body_in(
            await _json_body(request), request[ROUTE]
        )
        if context.record:
            context.received.append(
                Received(
                    method=request.method,
                    path=request.path,
                    route=request[ROUTE],
                    query=dict(request.query),
                    headers={
                        k: v
                        for k, v in request.headers.items()
                        if k.lower() != "authorization"
                    },
                    body=request[BODY],
                )
            )
        return await handler(request)
    finally:
        context.in_flight -= 1


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """
    Settle the clock, then find the key's permissions (401 when it has none).
    """
    context = request.app[CONTEXT]
    context.state.settle()
    request[PERMISSIONS] = context.state.permissions(
        request.headers.get("Authorization"), scheme=context.dialect.scheme
    )
    return await handler(request)


@web.middleware
async def rate_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """
    Take a token from the key's bucket (429 with ``Retry-After`` when empty).
    """
    limit = request.app[CONTEXT].rate_limit
    key = request.headers.get("Authorization", "")
    if limit is not None and (wait := limit.take(key)) is not None:
        raise ApiError(
            429, "rate_limit_exceeded", "Too many requests.", retry_after=wait
        )
    return await handler(request)


@web.middleware
async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    """
    Refuse before the request runs, or lose or garble its answer after.
    """
    context = request.app[CONTEXT]
    faults = context.faults_of(request[ROUTE])
    if faults is None:
        return await handler(request)
    refusal = faults.refusal(context.rng)
    if refusal is not None:
        raise refusal
    response = await handler(request)
    if faults.drops(context.rng):
        # The write is committed; the client never hears about it.
        if request.transport is not None:
            request.transport.close()
        raise web.HTTPServiceUnavailable
    if faults.malforms(context.rng):
        return web.Response(
            status=200,
            text="<html><body>502 Bad Gateway</body></html>",
            content_type="text/html",
        )
    return response


@web.middleware
async def idempotency(request: web.Request, handler: Handler) -> web.StreamResponse:
    """
    Answer a replay with the first answer; keep the answer of a first request.
    """
    idem_key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or idem_key is None:
        return await handler(request)
    context = request.app[CONTEXT]
    if not context.dialect.key_ok(idem_key):
        raise invalid(
            "idempotency-key must be 1 to 36 characters of [A-Za-z0-9._:/|-]."
        )
    store = context.state.idempotency
    slot = (request.headers.get("Authorization", ""), request.path, idem_key)
    first = store.begin(slot, request[BODY])
    if first is not None:
        return Reply(*first)
    try:
        response = await handler(request)
    except BaseException:
        store.end(slot, None)
        raise
    answer = (response.status, response.data) if isinstance(response, Reply) else None
    store.end(slot, answer)
    return response


@web.middleware
async def hold(request: web.Request, handler: Handler) -> web.StreamResponse:
    """
    Wait the injected latency, and at a test's pause, before the endpoint runs.
    """
    context = request.app[CONTEXT]
    faults = context.faults_of(request[ROUTE])
    if faults is not None and faults.latency:
        await asyncio.sleep(faults.latency)
    pause = context.pauses.get(request[ROUTE])
    if pause is not None and not pause.released:
        await pause.hold()
    return await handler(request)


PIPELINE: tuple[Middleware, ...] = (
    envelope,
    record,
    authenticate,
    rate_limit,
    inject_faults,
    idempotency,
    hold,
)


async def _json_body(request: web.Request) -> Any:
    if request.method != "POST" or not request.can_read_body:
        return None
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):  # bad UTF-8 is a ValueError too
        raise invalid("The request body is not valid JSON.") from None
    # Later steps walk the body recursively (the idempotency fingerprint).
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and _deeper_than(
        body, MAX_JSON_DEPTH
    ):
        raise invalid(f"The request body is nested deeper than {MAX_JSON_DEPTH}.")
    return body


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _request_id() -> str:
    return f"req_{uuid.uuid4().hex[:20]}"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _error(
    exc: ApiError, request_id: str, dialect: Dialect, route: str
) -> web.Response:
    headers = {"X-Request-ID": request_id}
    if exc.retry_after is not None:
        headers["Retry-After"] = str(max(0, math.ceil(exc.retry_after)))
    return web.json_response(
        {"error": {"code": dialect.code(exc.code, route), "message": exc.message}},
        status=exc.status,
        headers=headers,
        dumps=_dumps,
    )
