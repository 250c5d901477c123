"""
Shared fixtures: a client for aioresponses cases, the mock, the fake server.

The aioresponses shim: aioresponses 0.7.9 builds ``aiohttp.ClientResponse``
without the ``stream_writer`` argument that aiohttp 3.14 requires
(pnuckowski/aioresponses#289). Until a fixed release, its response class is
replaced by a subclass that supplies one. The shim installs itself only when
aiohttp's signature needs it and aioresponses does not pass it, so it turns
into a no-op once either side is fixed: delete it then.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import aioresponses.core
import pytest
import pytest_asyncio
from aioresponses import aioresponses as Aioresponses  # noqa: N812

from sequence_async import PollPolicy, SequenceClient
from sequence_async._retry import RetryPolicy
from sequence_async.testing import FakeSequence, ManualClock, serve


BASE_URL = "https://api.test/api/v1"
API_KEY = "sk_live_SUPERSECRET_0123456789"
FAST_POLL = PollPolicy(wait_initial=0.005, multiplier=1.0, wait_max=0.005, jitter=0.0)
NO_WAIT_RETRIES = RetryPolicy(max_retries=3, wait_initial=0.0, wait_max=0.0)


def _needs_stream_writer_shim() -> bool:
    wanted = (
        "stream_writer" in inspect.signature(aiohttp.ClientResponse.__init__).parameters
    )
    passed = "stream_writer" in inspect.getsource(
        aioresponses.core.RequestMatch._build_response
    )
    return wanted and not passed


if _needs_stream_writer_shim():  # aioresponses#289: remove when fixed upstream

    class _ShimmedResponse(aiohttp.ClientResponse):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
            super().__init__(*args, **kwargs)

    aioresponses.core.ClientResponse = _ShimmedResponse  # type: ignore[attr-defined]


@pytest.fixture
def mock_http() -> Iterator[Aioresponses]:
    """
    aioresponses, letting loopback (the fake server) through.
    """
    with Aioresponses(passthrough=["http://127.0.0.1"]) as mock:
        yield mock


@pytest_asyncio.fixture
async def client() -> AsyncIterator[SequenceClient]:
    """
    A client of a mocked base URL whose retries do not sleep.
    """
    async with SequenceClient(API_KEY, base_url=BASE_URL, poll=FAST_POLL) as c:
        c._retry = NO_WAIT_RETRIES
        yield c


@pytest.fixture
def clock() -> ManualClock:
    """
    The fake server's clock: time moves only when a test says so.
    """
    return ManualClock()


@pytest_asyncio.fixture
async def server(clock: ManualClock) -> AsyncIterator[FakeSequence]:
    """
    The fake server on loopback, with the demo organization and a manual clock.
    """
    async with serve(clock=clock) as s:
        yield s


@pytest_asyncio.fixture
async def live(server: FakeSequence) -> AsyncIterator[SequenceClient]:
    """
    A client talking real HTTP to ``server``, polling every 5 ms.
    """
    async with SequenceClient(server.api_key, base_url=server.url, poll=FAST_POLL) as c:
        c._retry = NO_WAIT_RETRIES
        yield c


def url(path: str) -> str:
    """
    The mocked URL of an API path.
    """
    return BASE_URL + path


def envelope(data: Any, **extra: Any) -> dict[str, Any]:
    """
    A success body.
    """
    return {"request_id": "req_srv_1", "data": data, **extra}
