"""
Tests of the fake server's pipeline: what each step does, and in which order.

The order (``sequence_async.testing.pipeline.PIPELINE``) is observable from
outside: a refused key takes no rate-limit token, an injected refusal keeps
no idempotency key, a lost answer does. These tests pin those behaviours
over raw HTTP.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from sequence_async.testing import FakeSequence, ManualClock, serve


# Raw requests in api-v1's wire language; test_platform.py speaks Platform's.
pytestmark = pytest.mark.apis("api-v1")


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """
    A raw HTTP session with no default headers.
    """
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    server: FakeSequence,
    method: str,
    path: str,
    *,
    key: str | None = None,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, Any, str]:
    """
    Send one request; return status, JSON (or text) and the Content-Type.
    """
    assert server.url
    all_headers = {"Authorization": f"ApiKey {key or server.api_key}"}
    all_headers.update(headers or {})
    async with http.request(
        method, server.url + path, data=data, headers=all_headers
    ) as response:
        text = await response.text()
        content_type = response.content_type
    try:
        return response.status, json.loads(text), content_type
    except ValueError:
        return response.status, text, content_type


async def test_unknown_paths_skip_the_pipeline(
    server: FakeSequence, http: aiohttp.ClientSession
) -> None:
    """An unknown path gets a plain-text 404 and is neither counted nor recorded."""
    status, _, content_type = await call(http, server, "GET", "/nope")

    assert (404, "text/plain") == (status, content_type)
    assert ([], {}) == (list(server.received), dict(server.counts))


async def test_unlisted_methods_are_a_plain_405(
    server: FakeSequence, http: aiohttp.ClientSession
) -> None:
    """DELETE on a rule is not part of the API: 405, no JSON envelope."""
    status, _, content_type = await call(http, server, "DELETE", "/rules/rule_0001")

    assert (405, "text/plain") == (status, content_type)


async def test_a_bad_request_id_is_refused_before_anything_runs(
    server: FakeSequence, http: aiohttp.ClientSession
) -> None:
    """A bad X-Request-ID gets 400 under a fresh id; nothing is recorded."""
    status, body, _ = await call(
        http,
        server,
        "POST",
        "/rules/rule_0001/trigger",
        headers={"X-Request-ID": "a b"},
    )

    assert (400, "invalid_request") == (status, body["error"]["code"])
    assert ([], 1) == (server.executions(), server.statuses[400])


async def test_a_body_that_is_not_json_is_counted_but_not_recorded(
    server: FakeSequence, http: aiohttp.ClientSession
) -> None:
    """Invalid JSON is a 400; the route counts it, the record keeps nothing."""
    status, body, _ = await call(
        http, server, "POST", "/rules/rule_0001/trigger", data=b"{nope"
    )

    assert (400, "The request body is not valid JSON.") == (
        status,
        body["error"]["message"],
    )
    assert (1, []) == (server.counts["trigger_rule"], list(server.received))


async def test_a_refused_key_takes_no_rate_limit_token(
    http: aiohttp.ClientSession,
) -> None:
    """Authentication runs before the rate limit: a 401 leaves the bucket full."""
    async with serve(clock=ManualClock(), rate_limit=1) as server:
        refused, _, _ = await call(http, server, "GET", "/rules", key="nope")
        first, _, _ = await call(http, server, "GET", "/rules")
        second, _, _ = await call(http, server, "GET", "/rules")

    assert (401, 200, 429) == (refused, first, second)


async def test_an_injected_refusal_keeps_no_idempotency_key(
    server: FakeSequence, http: aiohttp.ClientSession
) -> None:
    """Faults refuse before idempotency: the retry with the same key runs."""
    server.set_faults("trigger_rule", errors_next=1)
    key = {"Idempotency-Key": "k1", "Content-Type": "application/json"}

    refused, _, _ = await call(
        http, server, "POST", "/rules/rule_0001/trigger", data=b"{}", headers=key
    )
    retried, body, _ = await call(
        http, server, "POST", "/rules/rule_0001/trigger", data=b"{}", headers=key
    )

    assert (503, 202) == (refused, retried)
    assert [(body["data"]["execution_id"], "k1")] == [
        (e["id"], e["idempotency_key"]) for e in server.executions()
    ]


async def test_a_malformed_answer_still_echoes_the_request_id(
    server: FakeSequence, http: aiohttp.ClientSession
) -> None:
    """The envelope step sets X-Request-ID even on an injected HTML answer."""
    server.set_faults("list_rules", malformed_next=1)
    assert server.url

    async with http.get(
        server.url + "/rules",
        headers={"Authorization": f"ApiKey {server.api_key}", "X-Request-ID": "r1"},
    ) as response:
        await response.read()

    assert ("text/html", "r1") == (
        response.content_type,
        response.headers["X-Request-ID"],
    )
