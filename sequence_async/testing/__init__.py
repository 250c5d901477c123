"""
An in-memory Sequence server for demos, tests and benchmarks.

It speaks ``/api/v1`` or, with ``api="platform-v1"``, ``/platform/v1``.

Start it with ``async with serve() as server:`` and point a client at
``server.url`` with ``server.api_key``; steer it through the same object:
``finish(id)``, ``advance(seconds)`` (with ``clock=ManualClock()``),
``set_behavior()``, ``set_visibility_delay()``, ``set_settlement()``,
``retry_later()``, ``set_faults()``,
``pause(route)`` and ``wait_for_requests(route, n)``, and read
``executions()``, ``received`` and ``counts``. The pytest plugin gives the
``sequence_server`` and ``sequence_client`` fixtures.

The server's modules, top down: ``app`` (the control handle), ``endpoints``
(one handler per route), ``pipeline`` (the middlewares every request passes),
``state`` with ``executions``, ``transfers`` and ``idempotency``, then
``faults``, ``gates``, ``paging``, ``api``, ``demo``, ``seed`` and ``clock``.

May import: its own modules. The server never imports the client (an
import-linter contract): it judges requests by the API reference, on its
own. Only ``plugin`` uses the public ``sequence_async`` API, to build a client.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from .app import FakeSequence
from .clock import ManualClock
from .demo import demo_seed
from .faults import Faults
from .pipeline import Received
from .seed import ALL_SCOPES, DEMO_API_KEY, Behavior, Permission, Seed
from .state import State


__all__ = [
    "ALL_SCOPES",
    "DEMO_API_KEY",
    "Behavior",
    "FakeSequence",
    "Faults",
    "ManualClock",
    "Permission",
    "Received",
    "Seed",
    "State",
    "demo_seed",
    "serve",
]


@contextlib.asynccontextmanager
async def serve(
    seed: Seed | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: Callable[[], float] = time.time,
    rng_seed: int = 0,
    visibility_delay: float = 0.0,
    rate_limit: int | None = None,
    rate_burst: int | None = None,
    record: bool = True,
    api: str = "api-v1",
    settlement: float = 0.0,
) -> AsyncIterator[FakeSequence]:
    """
    Run the fake server on loopback (a free port by default) until exit.

    Yields the ``FakeSequence``, with ``url`` and ``api_key`` set; *api*
    (``"api-v1"`` or ``"platform-v1"``) chooses the API it speaks.
    """
    server = FakeSequence(
        seed,
        clock=clock,
        rng_seed=rng_seed,
        visibility_delay=visibility_delay,
        rate_limit=rate_limit,
        rate_burst=rate_burst,
        record=record,
        api=api,
        settlement=settlement,
    )
    runner = web.AppRunner(server.app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        prefix = "/platform/v1" if server.api == "platform-v1" else "/api/v1"
        server.url = f"http://{bound_host}:{bound_port}{prefix}"
        yield server
    finally:
        await runner.cleanup()
