"""
Every program of examples/ runs against the fake server, as a user runs it.

Each example runs in its own Python process, configured as a user would
(``SEQUENCE_BASE_URL``, ``SEQUENCE_API_KEY``), against a fake server on
loopback: in this process (``serve()``, with a real clock and short
executions) so the tests can read what reached it, or as ``python -m
sequence_async serve`` where a separate server process is the point. The
tests check the examples' real output and their effects on the server.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import signal
import socket
import sys
import tomllib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import pytest_asyncio

from sequence_async import SequenceClient
from sequence_async.testing import Behavior, FakeSequence, Permission, demo_seed, serve


ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TESTED = {
    "aiohttp_service.py",
    "otel_console.py",
    "payout_worker.py",
    "resume_tokens.py",
    "test_payouts_with_plugin.py",
}
DEADLINE = 90.0  # seconds for one example's process (they take a few)


class Ran:
    """
    What a finished example process left: exit code and output.
    """

    def __init__(self, code: int, stdout: bytes, stderr: bytes) -> None:
        self.code = code
        self.stdout = stdout.decode()
        self.stderr = stderr.decode()

    def __repr__(self) -> str:  # shown by a failing assert
        return f"<exit {self.code}\n{self.stdout}\n--- stderr\n{self.stderr}>"


def env_for(url: str, api_key: str, **extra: str) -> dict[str, str]:
    """
    The environment of an example process pointed at a fake server.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEQUENCE_")}
    return env | {
        "SEQUENCE_BASE_URL": url,
        "SEQUENCE_API_KEY": api_key,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


async def run(env: Mapping[str, str], *args: str | Path, cwd: Path = ROOT) -> Ran:
    """
    Run ``python ARGS`` to the end (within DEADLINE) and collect its output.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *map(str, args),
        env=dict(env),
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(DEADLINE):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Ran(process.returncode, stdout, stderr)


@pytest_asyncio.fixture
async def live() -> AsyncIterator[FakeSequence]:
    """
    The fake server with a real clock; executions take 0.1 s and succeed.
    """
    async with serve() as server:
        server.set_behavior("*", Behavior(median=0.1, sigma=0.0))
        yield server


def env_of(server: FakeSequence, **extra: str) -> dict[str, str]:
    assert server.url is not None
    return env_for(server.url, server.api_key, **extra)


def by_key(server: FakeSequence) -> dict[str | None, list[dict[str, Any]]]:
    """
    The server's executions grouped by idempotency key.
    """
    grouped: dict[str | None, list[dict[str, Any]]] = {}
    for execution in server.executions():
        grouped.setdefault(execution["idempotency_key"], []).append(execution)
    return grouped


# -- the folder itself ---------------------------------------------------------


def test_every_example_is_run_here_and_has_a_docstring_and_a_main() -> None:
    found = {path.name for path in EXAMPLES.glob("*.py")}
    assert TESTED == found
    for name in sorted(found):
        tree = ast.parse((EXAMPLES / name).read_text(encoding="utf-8"))
        assert ast.get_docstring(tree), f"{name} has no module docstring"
        functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        assert "main" in functions, f"{name} has no main()"


def test_pytest_collects_the_tests_folder_only() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert ["tests"] == config["tool"]["pytest"]["ini_options"]["testpaths"]


# -- payout_worker.py ----------------------------------------------------------


async def test_payout_worker_resends_an_unknown_outcome_with_its_key(
    live: FakeSequence, tmp_path: Path
) -> None:
    # The first payout's answer is lost four times (1 + 3 retries) after the
    # server started it: its outcome is unknown, and the worker sends it again
    # with the key the outcome carries.
    live.set_faults("trigger_rule", drops_next=4)
    journal = tmp_path / "payouts.db"
    worker = (EXAMPLES / "payout_worker.py", "--concurrency", "1")

    ran = await run(env_of(live), *worker, "--journal", journal)

    assert 0 == ran.code, ran
    lines = ran.stdout.splitlines()
    assert "unknown payout-p-1001: sending again with the same key" == lines[0]
    assert lines[1].startswith("recovered payout-p-1001: executed rex_"), ran
    assert lines[2].startswith("paid payout-p-1002: executed rex_"), ran
    assert lines[3].startswith("paid payout-p-1003: executed rex_"), ran
    assert "summary: 3 paid, 0 failed, 0 unknown" == lines[4]
    executions = by_key(live)
    assert {"payout-p-1001", "payout-p-1002", "payout-p-1003"} == set(executions)
    assert all(1 == len(same) for same in executions.values())  # paid once each
    assert lines[1].endswith(executions["payout-p-1001"][0]["id"])
    assert [150_000, 42_50, 9_999] == [
        executions[f"payout-p-{n}"][0]["trigger_details"]["amount_in_cents"]
        for n in (1001, 1002, 1003)
    ]
    assert journal.exists()

    # The same command again resumes from the journal: nothing is paid twice.
    again = await run(env_of(live), *worker, "--journal", journal)

    assert 0 == again.code, again
    assert "(from the journal)" in again.stdout
    assert "summary: 3 paid, 0 failed, 0 unknown" in again.stdout
    assert executions == by_key(live)


async def test_payout_worker_reads_a_csv_and_reports_failures(
    live: FakeSequence, tmp_path: Path
) -> None:
    live.set_behavior("rule_0004", Behavior(median=0.1, sigma=0.0, failure_rate=1.0))
    payouts = tmp_path / "payouts.csv"
    payouts.write_text(
        "payout_id,rule_id,amount_cents\nrent,rule_0001,185000\nbad,rule_0004,100\n",
        encoding="utf-8",
    )

    ran = await run(env_of(live), EXAMPLES / "payout_worker.py", payouts)

    assert 1 == ran.code, ran
    assert "paid payout-rent: executed rex_" in ran.stdout
    assert "failed payout-bad: ExecutionFailedError: " in ran.stdout
    assert "summary: 1 paid, 1 failed, 0 unknown" in ran.stdout
    assert {"payout-rent", "payout-bad"} == set(by_key(live))


async def test_payout_worker_reports_a_payout_still_running_as_pending(
    live: FakeSequence, tmp_path: Path
) -> None:
    live.set_behavior("rule_0001", Behavior(median=600.0, sigma=0.0))
    payouts = tmp_path / "payouts.csv"
    payouts.write_text(
        "payout_id,rule_id,amount_cents\nslow,rule_0001,100\n", encoding="utf-8"
    )

    ran = await run(
        env_of(live), EXAMPLES / "payout_worker.py", payouts, "--timeout", "0.5"
    )

    assert 1 == ran.code, ran
    (execution,) = live.executions()
    assert f"pending payout-slow: {execution['id']} still in_progress" in ran.stdout
    assert "summary: 0 paid, 0 failed, 1 unknown" in ran.stdout


async def test_payout_worker_never_reports_a_started_payout_as_failed(
    tmp_path: Path,
) -> None:
    # A key that may trigger but not read: every payout starts (and is
    # paid), then every wait ends in a 403. Reported "failed", an operator
    # would pay them again under new payout ids.
    seed = demo_seed()
    seed.api_key("sk_trigger_only", [Permission(scope="TRIGGER_RULES")])
    payouts = tmp_path / "payouts.csv"
    payouts.write_text(
        "payout_id,rule_id,amount_cents\nrent,rule_0001,185000\n", encoding="utf-8"
    )
    async with serve(seed) as server:
        assert server.url is not None
        ran = await run(
            env_for(server.url, "sk_trigger_only"),
            EXAMPLES / "payout_worker.py",
            payouts,
        )
        (execution,) = server.executions()

    assert 1 == ran.code, ran
    assert "failed" not in ran.stdout.split("summary")[0], ran
    assert f"started payout-rent: {execution['id']}, its end not seen " in ran.stdout
    assert "do not pay it again" in ran.stdout
    assert "summary: 0 paid, 0 failed, 1 unknown" in ran.stdout


# -- aiohttp_service.py --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_aiohttp_service_triggers_and_answers_the_token(
    live: FakeSequence,
) -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "aiohttp_service.py"),
        env=env_of(live, PORT=str(port)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(DEADLINE):
            line = await process.stdout.readline()  # run_app's "Running on"
            assert f"127.0.0.1:{port}" in line.decode()
            service = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession(service) as http:
                headers = {"Idempotency-Key": "order-42"}
                payout = {"amount_cents": 1500}
                async with http.post(
                    "/payouts/rule_0001", json=payout, headers=headers
                ) as answer:
                    assert 202 == answer.status
                    body = await answer.json()
                async with http.post(  # the caller retries: no second payout
                    "/payouts/rule_0001", json=payout, headers=headers
                ) as answer:
                    assert 202 == answer.status
                    assert body["execution_id"] == (await answer.json())["execution_id"]
                async with http.post("/payouts/rule_nope") as answer:
                    assert 404 == answer.status
                async with http.post(
                    "/payouts/rule_0001", json={"amount_cents": "15.00"}
                ) as answer:
                    assert 400 == answer.status
                # Another process resumes the wait from the token.
                async with SequenceClient(live.api_key, base_url=live.url) as client:
                    execution = client.execution_from_token(body["token"])
                    result = await execution.wait(timeout=30)
                assert "executed" == result.status
                async with http.get(f"/executions/{body['execution_id']}") as answer:
                    status = await answer.json()
                assert {
                    "execution_id": body["execution_id"],
                    "status": "executed",
                    "done": True,
                } == status
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        async with asyncio.timeout(DEADLINE):
            _, stderr = await process.communicate()
    assert 0 == process.returncode, stderr.decode()
    assert "Unclosed" not in stderr.decode()  # the session closed, once
    (execution_json,) = live.executions()
    assert "order-42" == execution_json["idempotency_key"]
    assert body["execution_id"] == execution_json["id"]
    assert 1500 == execution_json["trigger_details"]["amount_in_cents"]


# -- resume_tokens.py ----------------------------------------------------------


async def test_resume_tokens_waits_in_another_process(
    live: FakeSequence, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens.txt"
    live.set_behavior("rule_0004", Behavior(median=0.1, sigma=0.0, failure_rate=1.0))
    script = EXAMPLES / "resume_tokens.py"

    triggered = await run(
        env_of(live), script, "trigger", tokens, "rule_0001", "rule_0004"
    )

    assert 0 == triggered.code, triggered
    started = {e["id"]: e["rule_id"] for e in live.executions()}
    assert ["rule_0001", "rule_0004"] == sorted(started.values())
    assert sorted(f"triggered {i} {r}" for i, r in started.items()) == sorted(
        triggered.stdout.splitlines()
    )
    saved = tokens.read_text(encoding="utf-8").splitlines()
    assert sorted(started) == sorted(json.loads(token)["id"] for token in saved)
    assert live.api_key not in tokens.read_text(encoding="utf-8")

    resumed = await run(env_of(live), script, "resume", tokens)

    assert 1 == resumed.code, resumed  # rule_0004's execution failed
    statuses = {e["id"]: e["status"] for e in live.executions()}
    assert sorted(f"{i} {started[i]} {statuses[i]}" for i in started) == sorted(
        resumed.stdout.splitlines()
    )
    assert {"executed", "failed"} == set(statuses.values())
    assert started.keys() == statuses.keys()  # no trigger from the resume


async def test_resume_tokens_demo_against_sequence_async_serve() -> None:
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sequence_async",
        "serve",
        "--port",
        "0",
        "--median",
        "0.1",
        "--json",
        env=env_for("http://unused.invalid/api/v1", "unused", PYTHONUNBUFFERED="1"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert server.stdout is not None
    try:
        async with asyncio.timeout(DEADLINE):
            where = json.loads(await server.stdout.readline())
        ran = await run(
            env_for(where["url"], where["api_key"]),
            EXAMPLES / "resume_tokens.py",
            "demo",
            "rule_0001",
            "rule_0002",
            "rule_0003",
        )
    finally:
        server.send_signal(signal.SIGTERM)
        async with asyncio.timeout(DEADLINE):
            await server.communicate()

    assert 0 == ran.code, ran
    lines = ran.stdout.splitlines()
    assert "resuming in another process" == lines[3]
    triggered = [line.split()[1:] for line in lines[:3]]
    assert ["rule_0001", "rule_0002", "rule_0003"] == sorted(r for _, r in triggered)
    assert sorted(f"{i} {r} executed" for i, r in triggered) == sorted(lines[4:])
    assert 0 == server.returncode


# -- test_payouts_with_plugin.py -----------------------------------------------


async def test_pytest_example_passes_with_the_plugin_in_strict_mode(
    live: FakeSequence,
) -> None:
    ran = await run(
        env_of(live),
        "-m",
        "pytest",
        EXAMPLES / "test_payouts_with_plugin.py",
        "-p",
        "sequence_async",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:schemathesis",  # not needed here, and slow to import
        "-o",
        "asyncio_mode=strict",
        "-q",
    )

    assert 0 == ran.code, ran
    assert "3 passed" in ran.stdout
    assert not live.executions()  # the plugin's own servers, not this one


async def test_pytest_example_needs_its_mark_outside_this_repo(
    live: FakeSequence, tmp_path: Path
) -> None:
    # Copied to a folder with no pytest configuration: strict mode is
    # pytest-asyncio's default there. Without the module's mark, the plugin
    # fails each test saying what to change.
    source = (EXAMPLES / "test_payouts_with_plugin.py").read_text(encoding="utf-8")
    mark = "pytestmark = pytest.mark.asyncio"
    assert mark in source
    (tmp_path / "test_marked.py").write_text(source, encoding="utf-8")
    (tmp_path / "test_unmarked.py").write_text(
        source.replace(mark, "pytestmark: list[pytest.MarkDecorator] = []"),
        encoding="utf-8",
    )
    flags = (
        *("-p", "sequence_async", "-p", "no:cacheprovider", "-p", "no:schemathesis"),
        *("-o", "asyncio_default_fixture_loop_scope=function", "-W", "error", "-q"),
    )

    ran = await run(env_of(live), "-m", "pytest", *flags, ".", cwd=tmp_path)

    assert 1 == ran.code, ran
    assert "3 passed, 3 errors" in ran.stdout, ran
    assert "test_unmarked.py::test_rent_is_paid" in ran.stdout
    assert "mark it @pytest.mark.asyncio" in ran.stdout


# -- otel_console.py -----------------------------------------------------------


def json_objects(text: str) -> list[dict[str, Any]]:
    """
    The JSON objects printed one after another (pretty-printed) in *text*.
    """
    decoder = json.JSONDecoder()
    found: list[dict[str, Any]] = []
    at = 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        value, at = decoder.raw_decode(text, at)
        found.append(value)
    return found


async def test_otel_console_prints_one_trace_and_the_metrics(
    live: FakeSequence,
) -> None:
    ran = await run(env_of(live), EXAMPLES / "otel_console.py", "rule_0001")

    assert 0 == ran.code, ran
    (execution,) = live.executions()
    assert f"{execution['id']} executed" == ran.stderr.strip()
    printed = json_objects(ran.stdout)
    spans = {s["name"]: s for s in printed if "context" in s}
    assert {
        "pay rent",
        "sequence rules.trigger",
        "sequence execution.wait",
        "sequence rule_executions.get",
    } <= spans.keys()
    root = spans["pay rent"]
    assert root["parent_id"] is None
    assert {root["context"]["trace_id"]} == {
        s["context"]["trace_id"] for s in spans.values()
    }
    trigger = spans["sequence rules.trigger"]
    assert root["context"]["span_id"] == trigger["parent_id"]
    assert "rule_0001" == trigger["attributes"]["sequence.rule_id"]
    assert "POST" == trigger["attributes"]["http.request.method"]
    assert 202 == trigger["attributes"]["http.response.status_code"]
    assert (
        execution["idempotency_key"]
        == (trigger["attributes"]["sequence.idempotency_key"])
    )
    wait = spans["sequence execution.wait"]
    assert root["context"]["span_id"] == wait["parent_id"]
    assert execution["id"] == wait["attributes"]["sequence.execution_id"]
    assert "executed" == wait["attributes"]["sequence.status"]
    assert "executed" == wait["events"][-1]["attributes"]["sequence.status"]
    (metrics,) = [m for m in printed if "resource_metrics" in m]
    names = {
        metric["name"]
        for resource in metrics["resource_metrics"]
        for scope in resource["scope_metrics"]
        for metric in scope["metrics"]
    }
    assert {"sequence.client.requests", "sequence.execution.duration"} <= names
    assert live.api_key not in ran.stdout + ran.stderr
