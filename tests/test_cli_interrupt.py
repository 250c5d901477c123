"""
Ctrl-C during a bulk run: the summary, every item in flight, exit 130.

Each test sends a real SIGINT to a ``python -m sequence_async`` subprocess,
at a moment read from the CLI's own output or the fake server's state (no
sleeps), with a pseudo-terminal where the terminal matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import io
import json
import os
import pty
import random
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sequence_async import SequenceClient, TriggerRequest
from sequence_async.cli._bulk import run_bulk
from sequence_async.cli._output import Output
from sequence_async.testing import FakeSequence, serve

from .test_cli_support import (
    Remote,
    clean_env,
    cli_command,
    interrupted,
    quick_seed,
    remote_server,
)


ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


@pytest.fixture
def remote() -> Iterator[Remote]:
    """
    The fake server with ``quick_seed()``, steerable from the test.
    """
    with remote_server(quick_seed()) as remote:
        yield remote


@contextlib.contextmanager
def in_terminal(
    args: list[str], env: dict[str, str], *, pipe_stdout: bool
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """
    Start the CLI with stdin and stderr (and stdout unless piped) on an 80-column pty.
    """
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    with subprocess.Popen(  # noqa: S603
        cli_command(*args),
        stdin=slave,
        stdout=subprocess.PIPE if pipe_stdout else slave,
        stderr=slave,
        env=env | {"TERM": "xterm-256color", "COLUMNS": "80"},
    ) as process:
        os.close(slave)
        try:
            yield process, master
        finally:
            if process.poll() is None:
                process.kill()
            os.close(master)


def read_until(master: int, pattern: str, timeout: float = 60) -> str:
    """
    Read the terminal until *pattern* shows (ANSI codes left out), or EOF.
    """
    seen = ""
    deadline = time.monotonic() + timeout
    while not re.search(pattern, ANSI.sub("", seen)):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"never saw {pattern!r} in {ANSI.sub('', seen)[-800:]!r}"
        ready, _, _ = select.select([master], [], [], remaining)
        try:
            chunk = os.read(master, 65536) if ready else b""
        except OSError:  # EIO: the process closed the terminal
            break
        if ready and not chunk:
            break
        seen += chunk.decode(errors="replace")
    return ANSI.sub("", seen)


def read_to_end(master: int) -> str:
    """
    Read the terminal until the process closes it (ANSI codes left out).
    """
    return read_until(master, r"(?!)")


def json_lines(text: str) -> list[Any]:
    """
    The JSON lines in *text*.
    """
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_lists_each_awaited_execution_with_its_token(
    remote: Remote, stop: signal.Signals
) -> None:
    """With --json, Ctrl-C (or a SIGTERM) prints the outcomes, waits, the summary."""
    args = ["trigger-many", "rule_0001", "rule_0004", "rule_0004", "--json"]
    with in_terminal(args, remote.env, pipe_stdout=True) as (process, terminal):
        read_until(terminal, r"1/3\s+1 ok\s+0 failed\s+0 triggering\s+2 waiting")
        process.send_signal(stop)
        read_to_end(terminal)
        assert process.stdout is not None
        outcome, *in_flight, summary = json_lines(process.stdout.read().decode())
        code = process.wait(timeout=30)
    on_server = remote.call(FakeSequence.executions)

    assert 130 == code
    assert ("rule_0001", "executed") == (outcome["rule_id"], outcome["status"])
    assert [
        {"index": index, "rule_id": "rule_0004", "status": "in_flight"}
        for index in (1, 2)
    ] == [{k: item[k] for k in ("index", "rule_id", "status")} for item in in_flight]
    assert [(e["id"], e["idempotency_key"]) for e in on_server[1:]] == [
        (item["execution_id"], item["idempotency_key"]) for item in in_flight
    ]
    assert [item["execution_id"] for item in in_flight] == [
        json.loads(item["token"])["id"] for item in in_flight
    ]
    assert {"executed": 1, "in_flight": 2, "total": 3} == {
        k: summary["summary"][k] for k in ("executed", "in_flight", "total")
    }


@pytest.mark.parametrize("as_json", [False, True])
def test_ctrl_c_while_triggering_gives_the_idempotency_key(
    remote: Remote, as_json: bool
) -> None:
    """A trigger still in flight at Ctrl-C comes back with its key, ready to retry."""
    pause = remote.call(lambda server: server.pause("trigger_rule"))
    args = ["trigger-many", "rule_0001", "--amount", "250", *(["--json"] * as_json)]
    try:
        code, stdout, stderr = interrupted(
            args, remote.env, lambda: remote.wait(lambda _: pause.reached(1))
        )
    finally:
        remote.call(lambda _: pause.release())
    (held,) = remote.call(lambda server: server.requests_to("trigger_rule"))
    key = {k.lower(): v for k, v in held.headers.items()}["idempotency-key"]

    assert 130 == code
    if as_json:
        item, summary = json_lines(stdout)
        assert {
            "index": 0,
            "rule_id": "rule_0001",
            "status": "in_flight",
            "execution_id": None,
            "token": None,
            "idempotency_key": key,
        } == item
        assert {"in_flight": 1, "total": 1} == {
            k: summary["summary"][k] for k in ("in_flight", "total")
        }
    else:
        retry = "sequence-async rules trigger rule_0001 --amount 250 --idempotency-key"
        assert f"(triggering)  rule_0001  {retry} {key}\n" == stdout
        assert 1 == len(re.findall(r"0/1\s+0 ok\s+0 failed\s+1 triggering", stderr))
        assert "Summary" in stderr


def test_ctrl_c_during_demo_in_a_terminal() -> None:
    """In a terminal, Ctrl-C stops the demo: what was in flight, summary, 130."""
    args = ["demo", "--count", "8", "--concurrency", "4", "--median", "3600"]
    with in_terminal(args, clean_env(), pipe_stdout=False) as (process, terminal):
        # All eight started: as many triggering and waiting as items.
        all_started = "|".join(f"{n} triggering\\s+{8 - n}" for n in range(5))
        read_until(terminal, rf"0/8\s+0 ok\s+0 failed\s+({all_started}) waiting")
        process.send_signal(signal.SIGINT)
        shown = read_to_end(terminal)
        code = process.wait(timeout=30)
    flat = " ".join(shown.split())  # (lines wrapped at the terminal's width)

    assert 130 == code
    # Its server stopped with it: no command that could not find them.
    assert "Interrupted; 8 were in flight on the demo's own server" in flat
    assert "sequence-async executions wait" not in shown
    assert "Summary" in shown
    assert re.search(r"in flight\s*│\s*8", shown)


@pytest.mark.parametrize("phase", ["triggering", "waiting"])
def test_ctrl_c_in_rules_trigger_says_how_to_find_the_execution(
    remote: Remote, phase: str
) -> None:
    """Ctrl-C in rules trigger --wait prints the key, or the id and token; exits 130."""
    pause = remote.call(lambda server: server.pause("trigger_rule"))
    if phase == "waiting":
        remote.call(lambda _: pause.release())
    args = ["rules", "trigger", "rule_0004", "--wait", "--json"]
    reached: Callable[[FakeSequence], Awaitable[object]] = (
        (lambda _: pause.reached(1))
        if phase == "triggering"
        else (lambda s: s.wait_for_requests("get_rule_execution"))
    )
    try:
        code, stdout, _ = interrupted(args, remote.env, lambda: remote.wait(reached))
    finally:
        remote.call(lambda _: pause.release())
    (held,) = remote.call(lambda server: server.requests_to("trigger_rule"))
    key = {k.lower(): v for k, v in held.headers.items()}["idempotency-key"]
    (item,) = json_lines(stdout)

    assert 130 == code
    assert ("in_flight", key) == (item["status"], item["idempotency_key"])
    if phase == "triggering":
        assert (None, None) == (item["execution_id"], item["token"])
    else:
        assert item["execution_id"] == json.loads(item["token"])["id"]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_second_stop_never_cuts_the_list_of_items_in_flight_short(
    remote: Remote, stop: signal.Signals
) -> None:
    """The list blocks on a full pipe, a second signal comes: all 600, the summary."""
    args = ["trigger-many", "rule_0004", "--repeat", "600", "--json"]
    with in_terminal(args, remote.env, pipe_stdout=True) as (process, terminal):
        read_until(terminal, r"0/600\s+0 ok\s+0 failed\s+0 triggering\s+600 waiting")
        process.send_signal(stop)
        assert process.stdout is not None
        first = process.stdout.readline()  # the list has begun; the pipe fills
        process.send_signal(stop)
        rest = process.stdout.read().decode()
        read_to_end(terminal)
        code = process.wait(timeout=30)
    lines = json_lines(first.decode() + rest)

    assert 130 == code
    assert 600 == sum(line.get("status") == "in_flight" for line in lines)
    assert 600 == lines[-1]["summary"]["in_flight"]


async def test_every_trigger_the_server_ran_is_printed_after_a_stop() -> None:
    """The list is read once the run has stopped: a worker may start one till then."""
    rng = random.Random(5)
    async with serve(quick_seed()) as server:
        for _ in range(8):
            before = len(server.executions())
            printed = io.StringIO()
            async with SequenceClient(server.api_key, base_url=server.url) as client:
                items = [TriggerRequest(r) for r in ("rule_0001", "rule_0004") * 150]
                loop = asyncio.get_running_loop()
                # (A stop at a seeded moment: fault injection, not a wait.)
                timer = loop.call_later(
                    rng.uniform(0.01, 0.3), os.kill, os.getpid(), signal.SIGTERM
                )
                with contextlib.redirect_stdout(printed):
                    summary = await run_bulk(
                        client,
                        items,
                        out=Output(as_json=True),
                        concurrency=32,
                        wait=True,
                        timeout=30,
                        max_failures=None,
                    )
                timer.cancel()
            keys = {
                line.get("idempotency_key") for line in json_lines(printed.getvalue())
            }
            ran = [e["idempotency_key"] for e in server.executions()[before:]]

            assert summary.interrupted
            assert [] == [key for key in ran if key not in keys]


def test_a_line_above_the_progress_keeps_its_token_whole(remote: Remote) -> None:
    """At 80 columns the resume command was wrapped, breaking its token."""
    args = ["trigger-many", "rule_0004", "--no-wait"]
    with in_terminal(args, remote.env, pipe_stdout=False) as (process, terminal):
        text = read_to_end(terminal)
        code = process.wait(timeout=30)
    (execution,) = remote.call(lambda server: server.executions())

    assert 0 == code
    assert re.search(
        rf"{execution['id']}  rule_0004  triggered  "
        r"sequence-async executions wait '\{[^\n]*\}'\n",
        text,
    )


def _reading_stdin(pid: int) -> bool:
    # Whether the process sleeps in a read of a pipe (its stdin, here), as
    # Linux's /proc tells.
    return Path(f"/proc/{pid}/wchan").read_text().endswith("pipe_read")


def test_sigterm_while_ids_are_read_from_stdin_stops_at_once_sending_nothing(
    remote: Remote,
) -> None:
    """The loop took the signal, and the run began once stdin ended."""
    with subprocess.Popen(  # noqa: S603
        cli_command("trigger-many", "-", "--no-wait"),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=remote.env,
    ) as process:
        assert process.stdin is not None
        process.stdin.write(b"rule_0001\n")
        process.stdin.flush()
        deadline = time.monotonic() + 60
        while not _reading_stdin(process.pid):  # the moment to hit, read off /proc
            assert time.monotonic() < deadline, "never read stdin"
            select.select([], [], [], 0.01)
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        process.stdin.close()

    assert 130 == code
    assert [] == remote.call(lambda server: server.requests_to("trigger_rule"))


# A SIGTERM that lands once a bulk run has ended (as the client closes).
_LATE_SIGTERM = """
import os, signal, sys
import sequence_async as sq
from sequence_async.cli import main

closing = sq.SequenceClient.aclose

async def aclose(self):
    os.kill(os.getpid(), signal.SIGTERM)
    await closing(self)

sq.SequenceClient.aclose = aclose
sys.exit(main(sys.argv[1:]))
"""


def test_a_sigterm_after_a_bulk_run_ended_is_a_ctrl_c_not_a_kill(
    remote: Remote,
) -> None:
    """The run's handlers, removed, left SIGTERM's default: killed, signal 15."""
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-c", _LATE_SIGTERM, "trigger-many", "rule_0001", "--no-wait"],
        env=remote.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert 130 == done.returncode
    assert "Traceback" not in done.stderr


def test_stops_while_the_cli_exits_change_nothing(remote: Remote) -> None:
    """Stops after the summary, as it exited, killed it: signal 15, not 130."""
    args = ["trigger-many", "rule_0004", "--repeat", "3", "--json"]
    with subprocess.Popen(  # noqa: S603
        cli_command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=remote.env,
    ) as process:
        remote.wait(lambda server: server.wait_for_requests("trigger_rule", 3))
        process.send_signal(signal.SIGTERM)
        assert process.stdout is not None
        for line in process.stdout:  # the list in flight, then the summary
            if line.startswith('{"summary"'):
                break
        deadline = time.monotonic() + 30
        while process.poll() is None:  # stops all along its teardown and exit
            assert time.monotonic() < deadline, "never exited"
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            select.select([], [], [], 0.001)
        code = process.wait()

    assert 130 == code
