"""
The fake server's synchronisation points for tests: no sleeping, no polling.

Owns ``Pause`` (requests to a route held before their endpoint runs, until
the test releases them) and ``Arrivals`` (waiting until a route has received
N requests). Both are events the pipeline fires as requests pass, so a test
awaits exactly the moment it needs.

May import: nothing from the package.
"""

from __future__ import annotations

import asyncio
from collections import Counter


class Pause:
    """
    Requests to one route, held before their endpoint runs until released.

    Get one from ``FakeSequence.pause(route)``. Requests refused earlier in
    the pipeline (401, 429, an idempotency 409) are not held.
    """

    def __init__(self, route: str) -> None:
        self.route = route
        self.held = 0
        self._released = asyncio.Event()
        self._arrived = asyncio.Condition()

    @property
    def released(self) -> bool:
        """
        Whether ``release()`` was called.
        """
        return self._released.is_set()

    async def reached(self, count: int = 1) -> None:
        """
        Wait until *count* requests in all have been held here.
        """
        async with self._arrived:
            await self._arrived.wait_for(lambda: self.held >= count)

    def release(self) -> None:
        """
        Let every held request, and every later one, go on.
        """
        self._released.set()

    async def hold(self) -> None:
        """
        Hold the calling request until ``release()`` (the pipeline's call).
        """
        async with self._arrived:
            self.held += 1
            self._arrived.notify_all()
        await self._released.wait()


class Arrivals:
    """
    Waiters for a route's request count to reach a number.
    """

    def __init__(self, counts: Counter[str]) -> None:
        self._counts = counts
        self._waiters: list[tuple[str, int, asyncio.Future[None]]] = []

    async def wait_for(self, route: str, count: int) -> None:
        """
        Return once *route* has received *count* requests in all.
        """
        if self._counts[route] >= count:
            return
        future = asyncio.get_running_loop().create_future()
        self._waiters.append((route, count, future))
        try:
            await future
        finally:
            self._waiters = [w for w in self._waiters if w[2] is not future]

    def counted(self, route: str) -> None:
        """
        Wake the waiters that *route*'s latest request satisfies.
        """
        total = self._counts[route]
        for waited, count, future in self._waiters:
            if waited == route and total >= count and not future.done():
                future.set_result(None)
