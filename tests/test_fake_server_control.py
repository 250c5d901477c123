"""
Tests of the fake server's control handle: what a test may steer, and how.

Every control is public API on ``FakeSequence``; the requests that observe it
go over raw HTTP, as in ``test_fake_server``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from sequence_async.testing import Behavior, FakeSequence, ManualClock, serve


# Raw requests in api-v1's wire language; test_platform.py speaks Platform's.
pytestmark = pytest.mark.apis("api-v1")


@pytest_asyncio.fixture
async def http(server: FakeSequence) -> AsyncIterator[aiohttp.ClientSession]:
    """
    A raw HTTP session carrying the demo key.
    """
    headers = {"Authorization": f"ApiKey {server.api_key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        yield session


async def call(
    http: aiohttp.ClientSession,
    server: FakeSequence,
    method: str,
    path: str,
    **kwargs: Any,
) -> tuple[int, Any]:
    """
    Send one request; return the status and the decoded JSON (or the text).
    """
    assert server.url
    async with http.request(method, server.url + path, **kwargs) as response:
        text = await response.text()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text


async def trigger(
    http: aiohttp.ClientSession,
    server: FakeSequence,
    rule_id: str = "rule_0001",
    **headers: str,
) -> str:
    """
    Trigger a rule over HTTP and return the execution id.
    """
    status, body = await call(
        http, server, "POST", f"/rules/{rule_id}/trigger", json={}, headers=headers
    )
    assert 202 == status, body
    return str(body["data"]["execution_id"])


async def test_advance_moves_the_clock_and_ends_due_executions(
    server: FakeSequence, http: aiohttp.ClientSession
) -> None:
    """advance() moves the manual clock, so a run past its duration has ended."""
    server.set_behavior("rule_0001", Behavior(median=5.0, sigma=0.0))
    execution_id = await trigger(http, server)

    server.advance(4.9)
    before = server.executions()[0]["status"]
    server.advance(0.1)
    _, after = await call(http, server, "GET", f"/rule-executions/{execution_id}")

    assert ("in_progress", "executed") == (before, after["data"]["status"])


def test_advance_without_a_manual_clock_says_what_to_change() -> None:
    """On a real-time server advance() raises TypeError naming ManualClock."""
    server = FakeSequence()

    with pytest.raises(TypeError, match=r"serve\(clock=ManualClock\(\)\)"):
        server.advance(1.0)


@pytest.mark.parametrize("seconds", [-1.0, float("nan"), float("inf")])
def test_advance_rejects_negative_or_non_finite_seconds(seconds: float) -> None:
    """Time only moves forward, by a finite amount."""
    server = FakeSequence(clock=ManualClock())

    with pytest.raises(ValueError, match="seconds"):
        server.advance(seconds)


async def test_set_behavior_of_one_rule_leaves_the_others(
    server: FakeSequence, http: aiohttp.ClientSession
) -> None:
    """A rule's behaviour applies to its own runs only."""
    server.set_behavior("rule_0001", Behavior(median=1.0, sigma=0.0, failure_rate=1.0))
    server.set_behavior("rule_0002", Behavior(median=1.0, sigma=0.0))
    await trigger(http, server, "rule_0001")
    await trigger(http, server, "rule_0002")

    server.advance(1.0)

    assert ["failed", "executed"] == [e["status"] for e in server.executions()]


async def test_set_behavior_star_sets_every_rule_and_the_default(
    server: FakeSequence, http: aiohttp.ClientSession
) -> None:
    """rule_id "*" overrides every seeded rule's behaviour."""
    server.set_behavior("*", Behavior(median=3.0, sigma=0.0, partial_rate=1.0))
    for rule_id in server.rule_ids[:3]:
        await trigger(http, server, rule_id)

    server.advance(3.0)

    assert ["partial"] * 3 == [e["status"] for e in server.executions()]


def test_finish_or_retry_later_of_an_unknown_execution_is_a_value_error() -> None:
    """Both controls name the id they never started (no bare KeyError)."""
    server = FakeSequence(clock=ManualClock())

    with pytest.raises(ValueError, match="rex_nope"):
        server.retry_later("rex_nope", 5.0)
    with pytest.raises(ValueError, match="rex_nope"):
        server.finish("rex_nope")


def test_set_behavior_of_an_unknown_rule_is_a_value_error() -> None:
    """A typo in a rule id fails at once instead of steering nothing."""
    server = FakeSequence(clock=ManualClock())

    with pytest.raises(ValueError, match="rule_9999"):
        server.set_behavior("rule_9999", Behavior())


async def test_set_visibility_delay_hides_new_executions_until_it_passes(
    server: FakeSequence, http: aiohttp.ClientSession
) -> None:
    """A new execution answers 404 until the delay has passed."""
    server.set_visibility_delay(2.0)
    execution_id = await trigger(http, server)

    hidden, _ = await call(http, server, "GET", f"/rule-executions/{execution_id}")
    server.advance(2.0)
    shown, _ = await call(http, server, "GET", f"/rule-executions/{execution_id}")

    assert (404, 200) == (hidden, shown)


def test_set_visibility_delay_rejects_negative_seconds() -> None:
    """A negative delay is a ValueError."""
    server = FakeSequence(clock=ManualClock())

    with pytest.raises(ValueError, match="seconds"):
        server.set_visibility_delay(-1.0)


def test_rule_ids_are_the_seeded_rules_in_order() -> None:
    """rule_ids lists the demo seed's rules."""
    server = FakeSequence(clock=ManualClock())

    assert tuple(f"rule_{n:04d}" for n in range(1, 11)) == server.rule_ids


async def test_executions_carry_the_api_json_and_the_idempotency_key(
    server: FakeSequence, http: aiohttp.ClientSession
) -> None:
    """executions() gives each run as the API shows it, plus the key it came with."""
    keyed = await trigger(http, server, **{"Idempotency-Key": "k1"})
    plain = await trigger(http, server)
    _, shown = await call(http, server, "GET", f"/rule-executions/{keyed}")

    executions = server.executions()

    assert [(keyed, "k1"), (plain, None)] == [
        (e["id"], e["idempotency_key"]) for e in executions
    ]
    assert shown["data"] == {
        k: v for k, v in executions[0].items() if k != "idempotency_key"
    }


async def test_executions_are_copies(
    server: FakeSequence, http: aiohttp.ClientSession
) -> None:
    """Changing a returned dict does not change the server."""
    await trigger(http, server)

    server.executions()[0]["status"] = "failed"

    assert "in_progress" == server.executions()[0]["status"]


def test_set_faults_rejects_unknown_routes_listing_the_valid_ones() -> None:
    """An unknown route name is a ValueError naming every valid route."""
    server = FakeSequence(clock=ManualClock())

    with pytest.raises(ValueError, match="unknown route 'trigger'") as caught:
        server.set_faults("trigger", errors_next=1)

    assert "trigger_rule" in str(caught.value)
    assert "list_card_transactions" in str(caught.value)


def test_set_faults_returns_the_faults_it_set() -> None:
    """The keywords become the route's Faults."""
    server = FakeSequence(clock=ManualClock())

    faults = server.set_faults("get_rule_execution", errors_next=2, retry_after=3.0)

    assert (2, 3.0) == (faults.errors_next, faults.retry_after)
    assert faults is server.faults["get_rule_execution"]


async def test_control_works_on_a_served_server_with_a_manual_clock() -> None:
    """serve(clock=ManualClock()) gives a server whose controls all work."""
    async with serve(clock=ManualClock()) as server:
        server.set_behavior("*", Behavior(median=0.0, sigma=0.0))
        server.advance(0.0)

        assert [] == server.executions()


async def test_retry_after_zero_lets_a_client_retry_at_once(
    server: FakeSequence, http: aiohttp.ClientSession
) -> None:
    """An injected 429 with retry_after=0 sends Retry-After: 0."""
    server.set_faults("list_rules", throttles_next=1, retry_after=0)
    assert server.url

    async with http.get(server.url + "/rules") as response:
        header = response.headers["Retry-After"]

    assert (429, "0") == (response.status, header)


async def test_a_paused_route_holds_requests_until_released(
    server: FakeSequence, http: aiohttp.ClientSession
) -> None:
    """pause() holds a trigger before it runs; release() lets it finish."""
    pause = server.pause("trigger_rule")
    pending = asyncio.create_task(trigger(http, server))

    await pause.reached(1)
    held = (pause.held, server.in_flight, server.executions())
    pause.release()
    execution_id = await pending

    assert (1, 1, []) == held
    assert [execution_id] == [e["id"] for e in server.executions()]


async def test_a_pause_does_not_hold_other_routes(
    server: FakeSequence, http: aiohttp.ClientSession
) -> None:
    """Only the paused route waits."""
    pause = server.pause("trigger_rule")

    status, _ = await call(http, server, "GET", "/rules")

    assert 200 == status
    pause.release()


async def test_wait_for_requests_returns_when_the_count_is_reached(
    server: FakeSequence, http: aiohttp.ClientSession
) -> None:
    """wait_for_requests wakes on the Nth arrival, with no polling."""
    waiting = asyncio.create_task(server.wait_for_requests("list_rules", 2))
    await call(http, server, "GET", "/rules")
    first = waiting.done()

    await call(http, server, "GET", "/rules")
    await waiting

    assert (False, 2) == (first, server.counts["list_rules"])


async def test_wait_for_requests_already_satisfied_returns_at_once(
    server: FakeSequence, http: aiohttp.ClientSession
) -> None:
    """A count already reached needs no further request."""
    await call(http, server, "GET", "/rules")

    await server.wait_for_requests("list_rules", 1)

    assert 1 == server.counts["list_rules"]


def test_pause_rejects_unknown_routes() -> None:
    """A typo in a route name fails at once, naming the valid routes."""
    server = FakeSequence(clock=ManualClock())

    with pytest.raises(ValueError, match=r"valid routes: .*trigger_rule"):
        server.pause("trigger")


async def test_wait_for_requests_rejects_unknown_routes() -> None:
    """Waiting on a typo would never return: it fails at once instead."""
    server = FakeSequence(clock=ManualClock())

    with pytest.raises(ValueError, match=r"valid routes: .*trigger_rule"):
        await server.wait_for_requests("trigger")


@pytest.mark.parametrize(
    "setting",
    [
        {"error_rate": 2.0},
        {"drop_rate": -0.1},
        {"errors_next": -1},
        {"throttles_next": 1.5},
        {"latency": float("inf")},
        {"retry_after": -1.0},
    ],
)
def test_set_faults_rejects_settings_out_of_range(setting: dict[str, Any]) -> None:
    """Rates are 0..1, counts whole and >= 0, times finite and >= 0."""
    server = FakeSequence(clock=ManualClock())

    with pytest.raises(ValueError, match=next(iter(setting))):
        server.set_faults("*", **setting)


@pytest.mark.parametrize(
    "setting",
    [
        {"median": -1.0},
        {"sigma": float("nan")},
        {"failure_rate": 1.5},
        {"partial_rate": -0.5},
    ],
)
def test_behaviors_reject_settings_out_of_range(setting: dict[str, Any]) -> None:
    """A behaviour's times are finite and >= 0, its rates 0..1."""
    with pytest.raises(ValueError, match=next(iter(setting))):
        Behavior(**setting)


def test_finish_of_an_unknown_execution_is_a_value_error() -> None:
    """Finishing an id the server never started says so."""
    server = FakeSequence(clock=ManualClock())

    with pytest.raises(ValueError, match="rex_nope"):
        server.finish("rex_nope")
