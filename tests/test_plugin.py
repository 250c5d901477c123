"""
Tests of the pytest plugin, as a user's test suite would use it.
"""

from __future__ import annotations

import pytest


pytest_plugins = ["pytester"]

USER_TESTS = """
import aiohttp
import pytest

pytestmark = pytest.mark.asyncio


async def test_raw_http_trigger_finishes(sequence_server):
    headers = {"Authorization": f"ApiKey {sequence_server.api_key}"}
    trigger = sequence_server.url + "/rules/rule_0001/trigger"
    async with aiohttp.ClientSession(headers=headers) as http:
        async with http.post(trigger, json={}) as r:
            execution_id = (await r.json())["data"]["execution_id"]
        sequence_server.advance(60)
        execution_url = sequence_server.url + "/rule-executions/" + execution_id
        async with http.get(execution_url) as r:
            body = await r.json()
    assert body["data"]["status"] in {"executed", "partial", "failed"}


async def test_client_fixture_waits(sequence_server, sequence_client):
    execution = await sequence_client.rules.trigger("rule_0002")
    sequence_server.finish(execution.id)
    result = await execution.wait(timeout=10)
    assert "executed" == result.status
"""


def test_plugin_fixtures_work_in_a_users_suite(pytester: pytest.Pytester) -> None:
    """A user's suite gets sequence_server and sequence_client from the entry point."""
    pytester.makepyfile(test_user=USER_TESTS)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")

    result.assert_outcomes(passed=2)
