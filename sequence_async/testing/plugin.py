"""
The pytest plugin (entry point ``sequence_async``): fake-server fixtures.

Gives ``sequence_server``, a fake server on loopback whose clock moves only
when the test says (``sequence_server.advance(seconds)``) or when it ends an
execution (``sequence_server.finish(id)``), and ``sequence_client``,
a ``SequenceClient`` bound to it that polls every 10 ms. Both are async
fixtures for pytest-asyncio. Imports stay inside the fixtures, so merely
having the package installed costs a pytest run nothing.

May import: ``sequence_async`` (public API), ``testing``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from sequence_async import SequenceClient
    from sequence_async.testing import FakeSequence


async def sequence_server() -> AsyncIterator[FakeSequence]:
    """
    A fake Sequence server with the demo organization and a manual clock.
    """
    from sequence_async.testing import ManualClock, serve  # noqa: PLC0415

    async with serve(clock=ManualClock()) as server:
        yield server


async def sequence_client(
    sequence_server: FakeSequence,
) -> AsyncIterator[SequenceClient]:
    """
    A ``SequenceClient`` bound to ``sequence_server``, polling every 10 ms.
    """
    from sequence_async import PollPolicy, SequenceClient  # noqa: PLC0415

    poll = PollPolicy(wait_initial=0.01, multiplier=1.0, wait_max=0.01, jitter=0.0)
    async with SequenceClient(
        sequence_server.api_key, base_url=sequence_server.url, poll=poll
    ) as client:
        yield client


# The fixtures need pytest-asyncio; without it the plugin offers none.
if importlib.util.find_spec("pytest_asyncio") is not None:
    import pytest_asyncio

    sequence_server = pytest_asyncio.fixture(sequence_server)
    sequence_client = pytest_asyncio.fixture(sequence_client)
