"""
The command line tried as a new user and an attacker (review of 2026-11-27).

An empty ``--idempotency-key`` is refused, never replaced by a new key; Ctrl-C
in ``transfers create`` says how to find the transfer again; the commands
the CLI prints carry the global options it was given; a token resumes on its
own API; ``serve`` says which API to export; a wait that times out says how
to wait again.
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from sequence_async.testing import Permission

from .test_cli_support import (
    Remote,
    clean_env,
    cli_command,
    interrupted,
    lines,
    quick_seed,
    remote_server,
    run_cli,
    serving,
)


@pytest.fixture
def remote() -> Iterator[Remote]:
    """
    The fake server with ``quick_seed()``, steerable from the test.
    """
    with remote_server(quick_seed()) as remote:
        yield remote


def test_an_empty_idempotency_key_is_refused_not_replaced(remote: Remote) -> None:
    """An unset variable as the key: exit 2, nothing sent (a new key pays twice)."""
    result = run_cli(
        "rules", "trigger", "rule_0001", "--idempotency-key", "", env=remote.env
    )

    assert 2 == result.returncode
    assert "idempotency_key" in result.stderr
    assert [] == remote.call(lambda server: server.requests_to("trigger_rule"))


def test_ctrl_c_in_transfers_create_prints_the_retry_with_its_key(
    remote: Remote,
) -> None:
    """The transfer may have been made: the exact command to find it, key included."""
    pause = remote.call(lambda server: server.pause("create_transfer"))
    env = clean_env() | {"SEQUENCE_API_KEY": remote.env["SEQUENCE_API_KEY"]}
    base_url = remote.env["SEQUENCE_BASE_URL"]
    args = ["--base-url", base_url, "transfers", "create", "--json"]
    args += ["--from", "acc_0001", "--to", "acc_0002", "--amount", "700"]
    try:
        code, stdout, _ = interrupted(
            args, env, lambda: remote.wait(lambda _: pause.reached(1))
        )
    finally:
        remote.call(lambda _: pause.release())
    (held,) = remote.call(lambda server: server.requests_to("create_transfer"))
    key = {k.lower(): v for k, v in held.headers.items()}["idempotency-key"]
    (item,) = [json.loads(line) for line in stdout.splitlines() if line.strip()]

    assert 130 == code
    assert ("in_flight", key) == (item["status"], item["idempotency_key"])
    assert item["retry"].startswith(f"sequence-async --base-url {base_url} transfers")
    assert item["retry"].endswith(f"--idempotency-key {key}")


def test_a_printed_resume_command_reaches_the_same_server_and_api(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """--api and --base-url given on the command line are in the resume line."""
    with serving(tmp_path_factory.mktemp("platform"), "--api", "platform-v1") as env:
        given = clean_env() | {"SEQUENCE_API_KEY": env["SEQUENCE_API_KEY"]}
        base_url = env["SEQUENCE_BASE_URL"]
        started = run_cli(
            "--api",
            "platform-v1",
            "rules",
            "trigger",
            "rule_0001",
            "--base-url",
            base_url,
            env=given,
        )
        shown = dict(
            line.split(None, 1) for line in started.stdout.splitlines() if line.strip()
        )
        token = json.loads(shown["token"])
        waited = run_cli(
            "--base-url",
            base_url,
            "executions",
            "wait",
            json.dumps(token),
            "--json",
            env=given,  # no --api, no SEQUENCE_API: the token names its API
        )

    assert 0 == started.returncode, started.stderr
    assert shown["resume"].startswith(
        f"sequence-async --api platform-v1 --base-url {base_url} executions wait '"
    )
    assert 0 == waited.returncode, waited.stderr
    assert token["id"] == lines(waited)[0]["id"]


def test_serve_says_which_api_to_export() -> None:
    """The export line of a Platform server sets SEQUENCE_API too."""
    argv = cli_command("serve", "--api", "platform-v1", "--port", "0")
    with subprocess.Popen(  # noqa: S603
        argv, stdout=subprocess.PIPE, text=True, env=clean_env()
    ) as process:
        try:
            assert process.stdout is not None
            process.stdout.readline()  # "Fake Sequence API listening on ..."
            export = process.stdout.readline()
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)

    assert export.startswith("export SEQUENCE_BASE_URL=")
    assert export.rstrip().endswith("SEQUENCE_API=platform-v1")


def test_a_trigger_whose_wait_times_out_says_how_to_wait_again(
    remote: Remote,
) -> None:
    """Exit 1 with the id, the key, the token and the status last seen."""
    result = run_cli(
        "rules",
        "trigger",
        "rule_0004",
        "--wait",
        "--timeout",
        "0.2",
        "--json",
        env=remote.env,
    )
    (shown,) = lines(result)
    (held,) = remote.call(lambda server: server.requests_to("trigger_rule"))

    assert 1 == result.returncode
    assert shown["execution_id"] == json.loads(shown["token"])["id"]
    assert {k.lower(): v for k, v in held.headers.items()}["idempotency-key"] == shown[
        "idempotency_key"
    ]
    assert shown["status"] in ("in_progress", "not seen yet")


def test_a_trigger_whose_wait_fails_says_it_was_triggered() -> None:
    """A key that may trigger and not read: the id, key and token, never "refused".

    Printed as a bare 403, a user would run the command again and pay twice.
    """
    seed = quick_seed()
    seed.api_key("sk_trigger_only", [Permission(scope="TRIGGER_RULES")])
    with remote_server(seed) as remote:
        env = remote.env | {"SEQUENCE_API_KEY": "sk_trigger_only"}
        result = run_cli("rules", "trigger", "rule_0001", "--wait", "--json", env=env)
        plain = run_cli("rules", "trigger", "rule_0002", "--wait", env=env)
        executions = remote.call(lambda server: server.executions())
    (shown,) = lines(result)

    assert (1, 1) == (result.returncode, plain.returncode)
    assert executions[0]["id"] == shown["execution_id"]
    assert executions[0]["idempotency_key"] == shown["idempotency_key"]
    assert shown["problem"].startswith("Triggered, but the wait failed: ")
    assert "PermissionDenied" in shown["problem"] or "403" in shown["problem"]
    assert "Triggered, but the wait failed" in plain.stderr
    assert executions[1]["id"] in plain.stdout
    assert "executions wait" in plain.stdout


def test_ctrl_c_in_transfers_create_keeps_an_empty_description(
    remote: Remote,
) -> None:
    """The retry sends the same body: --description '' stays (else a key mismatch)."""
    pause = remote.call(lambda server: server.pause("create_transfer"))
    args = ["transfers", "create", "--json", "--description", ""]
    args += ["--from", "acc_0001", "--to", "acc_0002", "--amount", "700"]
    try:
        code, stdout, _ = interrupted(
            args, remote.env, lambda: remote.wait(lambda _: pause.reached(1))
        )
    finally:
        remote.call(lambda _: pause.release())
    (item,) = [json.loads(line) for line in stdout.splitlines() if line.strip()]

    assert 130 == code
    assert " --description '' " in item["retry"]


def _with_stdout_closed(
    args: list[str], env: dict[str, str], *, after_lines: int
) -> tuple[int, str, str]:
    # Run the CLI; read *after_lines* lines of stdout, then close it (`| head`).
    # Return the exit code, the lines read and stderr.
    with subprocess.Popen(  # noqa: S603
        cli_command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        read = "".join(process.stdout.readline() for _ in range(after_lines))
        process.stdout.close()  # the reader goes away
        stderr = process.stderr.read()
        return process.wait(timeout=60), read, stderr


def test_a_closed_stdout_stops_the_cli_and_loses_no_key(remote: Remote) -> None:
    """`... | head -1`: exit 141, no traceback; what was left went to stderr.

    The outcome being printed when the reader left, and every item stopped in
    flight with its key, are JSON lines on stderr (lines already written to
    the pipe before it closed are the reader's to lose, not the CLI's).
    """
    # 400 lines pass a pipe's 64 KiB: the CLI is still writing when the
    # reader leaves, however late the reader runs (30 fitted, on a slow CI).
    args = ["trigger-many", "rule_0001", "--repeat", "400", "--no-wait", "--json"]
    code, first, stderr = _with_stdout_closed(args, remote.env, after_lines=1)
    made = {e["idempotency_key"] for e in remote.call(lambda s: s.executions())}
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    left = [line for line in lines if "index" in line]  # (not the summary)
    stopped = [item for item in left if item.get("status") == "in_flight"]

    assert 141 == code, stderr
    assert "Traceback" not in stderr
    assert stderr.rstrip().endswith("sequence-async: stdout was closed; stopped")
    assert json.loads(first)["idempotency_key"] in made
    assert left, stderr  # at least the outcome that met the closed pipe
    assert all(item["idempotency_key"] for item in left)
    assert {i["idempotency_key"] for i in left if i["execution_id"]} <= made
    assert len({item["index"] for item in stopped}) == len(stopped)


def test_a_trigger_with_stdout_closed_names_its_execution_on_stderr(
    remote: Remote,
) -> None:
    """The money moved: its id, key and resume line go to stderr, exit 141."""
    code, _, stderr = _with_stdout_closed(
        ["rules", "trigger", "rule_0001"], remote.env, after_lines=0
    )
    (made,) = remote.call(lambda server: server.executions())

    assert 141 == code, stderr
    assert made["id"] in stderr
    assert made["idempotency_key"] in stderr
    assert "executions wait" in stderr


@pytest.mark.parametrize("command", [["rules", "list"], ["journal", "show"]])
def test_a_table_or_journal_with_stdout_closed_goes_to_stderr(
    remote: Remote, tmp_path: Path, command: list[str]
) -> None:
    """Not rich's silent exit 1: the table (or a journal's keys) go to stderr."""
    journal = tmp_path / "run.db"
    if command[0] == "journal":
        run_cli("trigger-many", "rule_0001", "--journal", str(journal), env=remote.env)
        command = [*command, str(journal)]
    code, _, stderr = _with_stdout_closed(command, remote.env, after_lines=0)

    assert 141 == code, stderr
    assert "rule_0001" in stderr or "terminal" in stderr
    assert stderr.rstrip().endswith("sequence-async: stdout was closed; stopped")


def test_a_journal_file_that_cannot_be_used_exits_2(
    remote: Remote, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Bad local input, as journal show says it (it was 1, an API failure)."""
    notes = tmp_path_factory.mktemp("journal") / "notes.txt"
    notes.write_text("my notes\n")

    result = run_cli(
        "trigger-many", "rule_0001", "--journal", str(notes), env=remote.env
    )

    assert 2 == result.returncode
    assert "not a sequence-async journal" in result.stderr
    assert "my notes\n" == notes.read_text()


def test_trigger_many_without_json_names_every_item_that_did_not_succeed(
    remote: Remote,
) -> None:
    """Counts only: an unknown outcome's key was lost (a rerun would pay twice)."""
    remote.call(lambda server: server.set_faults("trigger_rule", errors_next=1))
    args = ["trigger-many", "rule_0002", "rule_0001", "rule_0003", "rule_0004"]
    args += ["--concurrency", "1", "--max-retries", "0", "--timeout", "0.5"]
    result = run_cli(*args, env=remote.env)
    by_rule = {line.split()[1]: line for line in result.stdout.splitlines()}
    sent = remote.call(lambda server: server.requests_to("trigger_rule"))
    executions = {e["rule_id"]: e["id"] for e in remote.call(lambda s: s.executions())}

    assert 1 == result.returncode
    assert ["rule_0002", "rule_0003", "rule_0004"] == sorted(by_rule)
    key = sent[0].headers["Idempotency-Key"]
    assert by_rule["rule_0002"].startswith("-  rule_0002  OutcomeUnknownError  ")
    assert by_rule["rule_0002"].endswith(f"rule_0002 --idempotency-key {key}")
    assert f"{executions['rule_0003']}  rule_0003  failed" == by_rule["rule_0003"]
    assert by_rule["rule_0004"].startswith(
        f"{executions['rule_0004']}  rule_0004  WaitTimeoutError  sequence-async "
        "executions wait '{"
    )


def test_trigger_many_no_wait_without_json_prints_each_execution_it_started(
    remote: Remote,
) -> None:
    """It printed nothing on stdout: the ids of what it had just started were lost."""
    result = run_cli(
        "trigger-many", "rule_0004", "rule_0005", "--no-wait", env=remote.env
    )
    executions = remote.call(lambda server: server.executions())

    assert 0 == result.returncode
    assert sorted(
        f"{e['id']}  {e['rule_id']}  triggered  sequence-async executions wait"
        for e in executions
    ) == sorted(line.split(" '")[0] for line in result.stdout.splitlines())


@pytest.mark.parametrize(
    "args",
    [
        ["rules", "trigger", "rule_0004", "--wait"],
        ["transfers", "create", "--from", "acc_0001", "--to", "acc_0002", "--amount=7"],
    ],
    ids=["rules trigger", "transfers create"],
)
def test_sigterm_stops_a_single_command_as_ctrl_c_does(
    remote: Remote, args: list[str]
) -> None:
    """A SIGTERM (docker stop) killed it silently, exit 143: the key was lost."""
    route = "trigger_rule" if args[0] == "rules" else "create_transfer"
    pause = remote.call(lambda server: server.pause(route))
    try:
        code, stdout, _ = interrupted(
            args,
            remote.env,
            lambda: remote.wait(lambda _: pause.reached(1)),
            stop=signal.SIGTERM,
        )
    finally:
        remote.call(lambda _: pause.release())
    key = remote.call(lambda server: server.requests_to(route))[0].headers[
        "Idempotency-Key"
    ]

    assert 130 == code
    assert f"--idempotency-key {key}" in stdout


def test_a_bad_sequence_redis_url_is_a_usage_error_naming_the_variable(
    remote: Remote,
) -> None:
    """It exited 1 without naming SEQUENCE_REDIS_URL (--redis gave 2)."""
    env = remote.env | {"SEQUENCE_REDIS_URL": "http://example.invalid"}
    result = run_cli("rules", "list", env=env)

    assert 2 == result.returncode
    assert result.stderr.startswith("sequence-async: SEQUENCE_REDIS_URL: ")
    assert [] == remote.call(lambda server: server.requests_to("list_rules"))


@pytest.mark.parametrize(
    ("seed", "said"),
    [
        ('{"accounts": [], "keys": {}}', "has no API key"),
        ('{"bad": 1}', "unknown fields"),
        ('{"keys": {"": []}}', "printable ASCII, without spaces"),
        ('{"keys": {"k; touch pwned #": []}}', "printable ASCII, without spaces"),
    ],
    ids=["no key", "not a seed", "empty key", "a shell command as key"],
)
def test_serve_refuses_a_seed_it_cannot_serve(
    tmp_path_factory: pytest.TempPathFactory, seed: str, said: str
) -> None:
    """It started, and printed SEQUENCE_API_KEY= (every command then failed)."""
    path = tmp_path_factory.mktemp("seed") / "seed.json"
    path.write_text(seed)
    result = run_cli("serve", "--port", "0", "--seed", str(path), env=clean_env())

    assert 2 == result.returncode
    assert said in result.stderr


def test_an_items_line_shows_control_characters_escaped(remote: Remote) -> None:
    """A rule id (or a server's error text) must not drive the terminal."""
    result = run_cli("trigger-many", "rule\x1b[2J", env=remote.env)

    assert 1 == result.returncode
    assert "\x1b" not in result.stdout
    assert result.stdout.startswith("-  rule\\x1b[2J  ValueError: ")
