"""
Fuzz the fake server against its OpenAPI descriptions with schemathesis.

The descriptions (``sequence_async/testing/openapi.yaml`` for ``api-v1``,
``openapi-platform.yaml`` for ``platform-v1``) are written from the API
reference; schemathesis sends generated valid and invalid requests over real
HTTP and checks that no answer is a 5xx and every answer matches the
description. Examples are bounded so the suite stays fast.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import sequence_async.testing
from sequence_async.testing import DEMO_API_KEY, serve


HERE = Path(sequence_async.testing.__file__)
schema = schemathesis.openapi.from_path(HERE.with_name("openapi.yaml"))
platform_schema = schemathesis.openapi.from_path(
    HERE.with_name("openapi-platform.yaml")
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
# Framing headers are parsed by aiohttp before the fake server sees the
# request (an invalid Transfer-Encoding gets aiohttp's own text/plain 400), so
# generated values for them test aiohttp, not the fake server.
TRANSPORT_HEADERS = frozenset(
    {"transfer-encoding", "content-length", "host", "connection"}
)


def _without_transport_headers(case: schemathesis.Case[Any]) -> None:
    if case.headers:
        for name in [n for n in case.headers if n.lower() in TRANSPORT_HEADERS]:
            del case.headers[name]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    """
    The api-v1 fake server, in a thread (schemathesis calls it synchronously).
    """
    yield from _serving("api-v1")


@pytest.fixture(scope="module")
def platform_url() -> Iterator[str]:
    """
    The platform-v1 fake server, in a thread of its own.
    """
    yield from _serving("platform-v1")


def _serving(api: str) -> Iterator[str]:
    ready = threading.Event()
    url: list[str] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def run() -> None:
        async with serve(record=False, api=api) as server:
            assert server.url
            url.append(server.url)
            ready.set()
            await stop.wait()

    thread = threading.Thread(
        target=loop.run_until_complete, args=(run(),), daemon=True
    )
    thread.start()
    assert ready.wait(timeout=30)
    try:
        yield url[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_fake_server_matches_its_openapi_description(
    case: schemathesis.Case[Any], base_url: str
) -> None:
    """No 5xx, documented statuses only, bodies matching the schemas."""
    _without_transport_headers(case)
    case.call_and_validate(
        base_url=base_url,
        headers={"Authorization": f"ApiKey {DEMO_API_KEY}"},
        checks=CHECKS,
    )


@platform_schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_platform_fake_server_matches_the_platform_description(
    case: schemathesis.Case[Any], platform_url: str
) -> None:
    """Platform mode: no 5xx, documented statuses only, Platform's shapes."""
    _without_transport_headers(case)
    case.call_and_validate(
        base_url=platform_url,
        headers={"Authorization": f"Bearer {DEMO_API_KEY}"},
        checks=CHECKS,
    )
