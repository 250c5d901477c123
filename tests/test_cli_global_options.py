"""
Global options work before and after the command, for every command.

Issue 8 item 1: written before the command, ``--base-url`` was overwritten by
the subparser's default and the trigger went to production. Here
``SEQUENCE_BASE_URL`` points where nothing listens, so a command that drops
``--base-url`` fails instead of reaching anything real.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from sequence_async.cli import build_parser

from .test_cli_support import (
    DEAD_URL,
    cli_command,
    lines,
    quick_seed,
    remote_server,
    run_cli,
    serving,
)


COMMANDS = {
    "accounts list": ["accounts", "list"],
    "accounts get": ["accounts", "get", "acc_0001"],
    "rules list": ["rules", "list"],
    "rules get": ["rules", "get", "rule_0001"],
    "rules trigger": ["rules", "trigger", "rule_0001", "--amount", "100"],
    "executions list": ["executions", "list", "--rule-id", "rule_0001"],
    "executions get": ["executions", "get", "{execution}"],
    "executions wait": ["executions", "wait", "{execution}"],
    "transfers list": ["transfers", "list", "--account-id", "acc_0001"],
    "transfers get": ["transfers", "get", "{transfer}"],
    "transfers create": [
        "transfers",
        "create",
        "--from",
        "acc_0001",
        "--to",
        "acc_0002",
        "--amount",
        "100",
    ],
    "trigger-many": ["trigger-many", "rule_0001", "rule_0002"],
    "demo": ["demo", "--count", "3", "--median", "0.01"],
}


WORDS = {"accounts", "rules", "executions", "transfers", "list", "get", "trigger"}
WORDS |= {"wait", "create", "trigger-many", "demo", "serve"}


@pytest.fixture(scope="module")
def target(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """
    The env of a served fake, and one execution id and one transfer id in it.
    """
    with serving(tmp_path_factory.mktemp("globals")) as env:
        execution = lines(run_cli("rules", "trigger", "rule_0001", "--json", env=env))
        transfer = lines(run_cli(*COMMANDS["transfers create"], "--json", env=env))
        ids = {"execution": execution[0]["execution_id"], "transfer": transfer[0]["id"]}
        yield env, ids


@pytest.mark.parametrize("position", ["before", "after"])
@pytest.mark.parametrize("name", list(COMMANDS))
def test_global_options_apply_in_either_position(
    target: tuple[dict[str, str], dict[str, str]], name: str, position: str
) -> None:
    """--base-url, --json and --debug take effect before and after every command."""
    env, ids = target
    command = [arg.format(**ids) for arg in COMMANDS[name]]
    options = ["--base-url", env["SEQUENCE_BASE_URL"], "--json", "--debug"]
    argv = [*options, *command] if position == "before" else [*command, *options]

    result = run_cli(*argv, env=env | {"SEQUENCE_BASE_URL": DEAD_URL})

    assert 0 == result.returncode, result.stderr[-2000:]
    assert all(isinstance(line, dict | list) for line in lines(result))
    assert "DEBUG:sequence_async" in result.stderr


@pytest.mark.parametrize("position", ["before", "after"])
def test_serve_takes_global_options_in_either_position(position: str) -> None:
    """Serve honours --json and --debug before and after the command."""
    options = ["--json", "--debug"]
    command = ["serve", "--port", "0"]
    argv = [*options, *command] if position == "before" else [*command, *options]

    with subprocess.Popen(  # noqa: S603
        cli_command(*argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        info = json.loads(process.stdout.readline())
        process.terminate()
        _, stderr = process.communicate(timeout=30)

    assert {"url", "api_key"} <= info.keys()
    assert "DEBUG:sequence_async" in stderr


# Each global option, the words that give it, and the value it parses to.
OPTIONS: dict[str, tuple[list[str], object]] = {
    "--json": (["--json"], True),
    "--debug": (["--debug"], True),
    "--base-url": (["--base-url", "http://x.test/api/v1"], "http://x.test/api/v1"),
    "--api": (["--api", "platform-v1"], "platform-v1"),
    "--request-timeout": (["--request-timeout", "2.5"], 2.5),
    "--max-retries": (["--max-retries", "0"], 0),
}


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("name", [*COMMANDS, "serve"])
def test_parser_keeps_a_global_option_wherever_it_is_written(
    name: str, option: str
) -> None:
    """A global option parses the same before, between and after the command words."""
    words = ["serve"] if name == "serve" else COMMANDS[name]
    command = [w.format(execution="rex_1", transfer="txr_1") for w in words]
    given, expected = OPTIONS[option]
    attribute = option.removeprefix("--").replace("-", "_")
    names = len([w for w in command if w in WORDS])

    parsed = [
        getattr(
            build_parser().parse_args([*command[:at], *given, *command[at:]]),
            attribute,
        )
        for at in sorted({0, 1, names, len(command)})
    ]

    assert [expected] * len(parsed) == parsed


@pytest.mark.parametrize("position", ["before", "after"])
def test_request_timeout_and_max_retries_bound_a_stalled_server(
    position: str,
) -> None:
    """Without them a stalled server held a command for two minutes in silence."""
    with remote_server(quick_seed()) as remote:
        pause = remote.call(lambda server: server.pause("list_accounts"))
        options = ["--request-timeout", "0.3", "--max-retries", "0"]
        command = ["accounts", "list"]
        argv = [*options, *command] if position == "before" else [*command, *options]
        try:
            result = run_cli(*argv, env=remote.env)
        finally:
            remote.call(lambda _: pause.release())
        asked = remote.call(lambda server: server.requests_to("list_accounts"))

    assert 1 == result.returncode
    assert "APITimeoutError" in result.stderr
    assert 1 == len(asked)
