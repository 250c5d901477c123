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


SPEAKS_PLATFORM = """
import pytest


@pytest.mark.asyncio
async def test_both_speak_platform(sequence_api, sequence_server, sequence_client):
    apis = (sequence_api, sequence_server.api, sequence_client.api)
    assert ("platform-v1",) * 3 == apis
    assert sequence_server.url.endswith("/platform/v1")
    execution = await sequence_client.rules.trigger("rule_0001", simulation=True)
    sequence_server.finish(execution.id)
    result = await execution.wait(timeout=10)
    assert ("executed", "simulation") == (result.status, result.execution_mode)
    assert 1 == sequence_server.counts["get_rule_execution"]
"""

EACH_API_CONFTEST = """
import pytest


@pytest.fixture(params=["api-v1", "platform-v1"])
def sequence_api(request):
    return request.param
"""

EACH_API_TEST = """
import pytest

seen = []


@pytest.mark.asyncio
async def test_runs_once_per_api(sequence_server, sequence_client):
    execution = await sequence_client.rules.trigger("rule_0001")
    sequence_server.finish(execution.id)
    assert "executed" == (await execution.wait(timeout=10)).status
    seen.append((sequence_server.api, sequence_client.api))


def test_saw_both():
    assert [("api-v1",) * 2, ("platform-v1",) * 2] == seen
"""

DEFAULT_API = """
import pytest


@pytest.mark.asyncio
async def test_default_is_api_v1(sequence_server, sequence_client):
    assert ("api-v1", "api-v1") == (sequence_server.api, sequence_client.api)
    assert [] != await sequence_client.rules.list()
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
    """With pytest-asyncio absent, requesting a fixture says to install it."""
    pytester.makepyfile(test_user=SYNC_TEST)
    pytester.makeconftest("import sys\nsys.modules['pytest_asyncio'] = None\n")

    result = pytester.runpytest_subprocess(*FAST, "-p", "no:asyncio", timeout=120)

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*install pytest-asyncio (pip install*"])


def test_with_pytest_asyncio_not_loaded_the_fixtures_say_how_to_load_it(
    pytester: pytest.Pytester,
) -> None:
    """Autoloading off, it said to install what was installed."""
    pytester.makepyfile(test_user=SYNC_TEST)

    result = pytester.runpytest_subprocess(*FAST, "-p", "no:asyncio", timeout=120)

    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*installed but not loaded*add -p asyncio*"])


@pytest.mark.parametrize(
    ("ini", "args"),
    [
        ("sequence_api = platform-v1\n", ()),
        ("sequence_api = api-v1\n", ("--sequence-api", "platform-v1")),
    ],
    ids=["ini", "command-line-over-ini"],
)
def test_a_suite_chooses_platform_v1_by_option(
    pytester: pytest.Pytester, ini: str, args: tuple[str, ...]
) -> None:
    """The sequence_api ini option, or --sequence-api over it, picks Platform."""
    pytester.makepyfile(test_user=SPEAKS_PLATFORM)
    pytester.makeini(
        "[pytest]\nasyncio_mode = strict\n"
        "asyncio_default_fixture_loop_scope = function\n" + ini
    )

    result = pytester.runpytest_subprocess(*FAST, "-W", "error", *args, timeout=120)

    result.assert_outcomes(passed=1)


def test_a_suite_runs_each_test_on_both_apis_through_fixture_params(
    pytester: pytest.Pytester,
) -> None:
    """A conftest giving sequence_api params runs each test once per API."""
    pytester.makeconftest(EACH_API_CONFTEST)

    result = run_suite(pytester, "strict", EACH_API_TEST)

    result.assert_outcomes(passed=3)


def test_sequence_client_speaks_its_servers_api_whatever_sequence_api_says(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SEQUENCE_API=platform-v1 in the environment leaves the fixtures on api-v1."""
    monkeypatch.setenv("SEQUENCE_API", "platform-v1")

    result = run_suite(pytester, "strict", DEFAULT_API)

    result.assert_outcomes(passed=1)


def test_an_unknown_sequence_api_fails_naming_the_choices(
    pytester: pytest.Pytester,
) -> None:
    """A bad ini value fails the test at setup; a bad flag is a usage error."""
    pytester.makepyfile(test_user=DEFAULT_API)
    pytester.makeini("[pytest]\nasyncio_mode = strict\nsequence_api = v2\n")

    by_ini = pytester.runpytest_subprocess(*FAST, timeout=120)
    by_flag = pytester.runpytest_subprocess(*FAST, "--sequence-api", "v2", timeout=120)

    by_ini.assert_outcomes(errors=1)
    by_ini.stdout.fnmatch_lines(["*sequence_api must be one of api-v1, platform-v1*"])
    assert pytest.ExitCode.USAGE_ERROR == by_flag.ret
    by_flag.stderr.fnmatch_lines(["*--sequence-api*invalid choice*'v2'*"])
