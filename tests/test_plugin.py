"""
Tests of the pytest plugin, as a user's test suite would use it.

Each case runs a small user suite in a pytest subprocess (pytester), in
pytest-asyncio's strict and auto modes, with a timeout so that a hang fails.
"""

from __future__ import annotations

import pytest


pytest_plugins = ["pytester"]

MODES = ["strict", "auto"]
# schemathesis's plugin takes seconds to import and has no part in these suites.
FAST = ("-p", "no:cacheprovider", "-p", "no:schemathesis")

README_SNIPPET = """
import pytest


@pytest.mark.asyncio
async def test_payout_runs(sequence_server, sequence_client):
    execution = await sequence_client.rules.trigger("rule_0001")
    sequence_server.finish(execution.id, "executed")  # or sequence_server.advance(60)
    result = await execution.wait(timeout=10)
    assert "executed" == result.status
"""

RAW_AND_CLIENT = """
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

WIDER_LOOPS = """
import pytest


async def run(sequence_server, sequence_client):
    execution = await sequence_client.rules.trigger("rule_0001")
    sequence_server.advance(3600)
    result = await execution.wait(timeout=5)
    return result.status in {"executed", "partial", "failed"}


@pytest.mark.asyncio(loop_scope="module")
async def test_module_loop(sequence_server, sequence_client):
    assert await run(sequence_server, sequence_client)


@pytest.mark.asyncio(loop_scope="session")
async def test_session_loop(sequence_server, sequence_client):
    assert await run(sequence_server, sequence_client)


@pytest.mark.asyncio(loop_scope="class")
class TestOnAClassLoop:
    async def test_class_loop(self, sequence_server, sequence_client):
        assert await run(sequence_server, sequence_client)

    async def test_same_loop_new_server(self, sequence_server):
        assert [] == sequence_server.executions()
"""

NO_SLEEP_RETRIES = """
import time

import pytest


@pytest.mark.asyncio
async def test_client_retries_without_sleeping(sequence_server, sequence_client):
    sequence_server.set_faults("list_rules", errors_next=3)
    started = time.monotonic()
    rules = await sequence_client.rules.list()
    elapsed = time.monotonic() - started
    assert 4 == sequence_server.counts["list_rules"]
    assert rules
    # The default policy sleeps at least 1.75 s over three retries.
    assert elapsed < 1.0, elapsed
"""

OWN_SEED_CONFTEST = """
import pytest_asyncio

from sequence_async.testing import ManualClock, Seed, serve


@pytest_asyncio.fixture
async def sequence_server():
    seed = Seed()
    payroll = seed.account("Payroll", type="income_source")
    savings = seed.account("Savings", type="pod")
    seed.rule("Save", source=payroll, destinations=[(savings, 10_000)], id="rule_save")
    seed.api_key("sk_test")
    async with serve(seed, clock=ManualClock()) as server:
        yield server
"""

OWN_SEED_TEST = """
import pytest


@pytest.mark.asyncio
async def test_client_talks_to_the_overridden_server(sequence_server, sequence_client):
    assert ("rule_save",) == sequence_server.rule_ids
    execution = await sequence_client.rules.trigger("rule_save")
    sequence_server.finish(execution.id)
    assert "executed" == (await execution.wait(timeout=10)).status
"""

UNMARKED = """
async def test_forgot_the_mark(sequence_client):
    await sequence_client.rules.list()
"""

ANYIO_TEST = """
import pytest


@pytest.mark.anyio
async def test_on_anyio(sequence_server):
    pass
"""

SYNC_TEST = """
def test_sync_test_gets_a_server(sequence_server):
    assert sequence_server.url.startswith("http://127.0.0.1:")
    assert "rule_0001" == sequence_server.rule_ids[0]
"""


def run_suite(
    pytester: pytest.Pytester, mode: str, source: str, *args: str
) -> pytest.RunResult:
    """
    Run *source* as a user's test module in a subprocess, in asyncio *mode*.
    """
    pytester.makepyfile(test_user=source)
    pytester.makeini(
        f"[pytest]\nasyncio_mode = {mode}\n"
        "asyncio_default_fixture_loop_scope = function\n"
    )
    return pytester.runpytest_subprocess(*FAST, "-W", "error", *args, timeout=120)


@pytest.mark.parametrize("mode", MODES)
def test_readme_snippet_passes_as_written(pytester: pytest.Pytester, mode: str) -> None:
    """The README's pytest snippet passes in strict and in auto mode."""
    result = run_suite(pytester, mode, README_SNIPPET)

    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("mode", MODES)
def test_plugin_fixtures_work_in_a_users_suite(
    pytester: pytest.Pytester, mode: str
) -> None:
    """A user's suite gets sequence_server and sequence_client from the entry point."""
    result = run_suite(pytester, mode, RAW_AND_CLIENT)

    result.assert_outcomes(passed=2)


@pytest.mark.parametrize("mode", MODES)
def test_wider_loop_scopes_get_fixtures_on_their_own_loop(
    pytester: pytest.Pytester, mode: str
) -> None:
    """Tests on module, session and class loops use the fixtures without hanging."""
    result = run_suite(pytester, mode, WIDER_LOOPS)

    result.assert_outcomes(passed=4)


@pytest.mark.parametrize("mode", MODES)
def test_the_client_fixture_retries_without_sleeping(
    pytester: pytest.Pytester, mode: str
) -> None:
    """sequence_client retries injected 503s at once (RetryPolicy with no wait)."""
    result = run_suite(pytester, mode, NO_SLEEP_RETRIES)

    result.assert_outcomes(passed=1)


@pytest.mark.parametrize("mode", MODES)
def test_sequence_client_follows_an_overridden_sequence_server(
    pytester: pytest.Pytester, mode: str
) -> None:
    """A suite's own sequence_server (another seed) gets the client bound to it."""
    pytester.makeconftest(OWN_SEED_CONFTEST)

    result = run_suite(pytester, mode, OWN_SEED_TEST)

    result.assert_outcomes(passed=1)


def test_unmarked_async_test_in_strict_mode_says_to_add_the_mark(
    pytester: pytest.Pytester,
) -> None:
    """In strict mode an unmarked async test fails at setup naming the mark."""
    result = run_suite(pytester, "strict", UNMARKED)

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*mark it @pytest.mark.asyncio*"])


def test_an_anyio_test_is_told_to_use_the_asyncio_mark(
    pytester: pytest.Pytester,
) -> None:
    """The fixtures need pytest-asyncio's loop; an anyio test fails saying so."""
    result = run_suite(pytester, "strict", ANYIO_TEST)

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*not anyio: mark this test @pytest.mark.asyncio*"])


@pytest.mark.parametrize("mode", MODES)
def test_sync_tests_get_a_server(pytester: pytest.Pytester, mode: str) -> None:
    """A plain test may use sequence_server for its control handle."""
    result = run_suite(pytester, mode, SYNC_TEST)

    result.assert_outcomes(passed=1)


def test_without_pytest_asyncio_the_fixtures_say_to_install_it(
    pytester: pytest.Pytester,
) -> None:
    """With pytest-asyncio disabled, requesting a fixture says to install it."""
    pytester.makepyfile(test_user=SYNC_TEST)

    result = pytester.runpytest_subprocess(*FAST, "-p", "no:asyncio", timeout=120)

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*install pytest-asyncio*"])
