"""
Exit codes and one-line errors: 1 for API and server failures, 2 for bad input.

Bad local input exits 2 like a usage error, whether argparse or the SDK
catches it, and nothing is sent.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from .test_cli_support import run_cli, serving


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """
    A ``sequence-async serve`` process (see ``serving``); yields its env.
    """
    with serving(tmp_path_factory.mktemp("errors")) as env:
        yield env


@pytest.mark.parametrize(
    "args",
    [
        ["rules", "trigger", "rule_0001", "--amount", "-5"],
        ["rules", "trigger", "rule_0001", "--amount", "1.5"],
        ["rules", "trigger", "rule_0001", "--timeout", "nan"],
        ["trigger-many", "rule_0001", "--amount", "-5"],
        ["rules", "trigger", "rule_0001", "--amount", "\u0661\u0665\u0660"],
        ["rules", "trigger", "rule_0001", "--amount", "1_5"],
        ["rules", "trigger", "rule_0001", "--amount", str(2**53)],
        ["trigger-many", "rule_0001", "--amount", str(2**53)],
        ["trigger-many", "rule_0001", "--timeout", "inf"],
        ["transfers", "create", "--from", "a", "--to", "b", "--amount", "0"],
        ["demo", "--failure-rate", "2"],
        ["serve", "--error-rate", "1.5"],
        ["serve", "--port", "70000"],
        ["executions", "list", "--rule-id", "rule_0001", "--limit", "0"],
    ],
    ids=" ".join,
)
def test_bad_numbers_are_usage_errors(served: dict[str, str], args: list[str]) -> None:
    """An out-of-range number exits 2 with argparse's message."""
    result = run_cli(*args, env=served)

    assert 2 == result.returncode
    assert "error: argument" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["rules", "trigger", "rule_0001", "--idempotency-key", "has space"],
        ["rules", "trigger", "rule_0001", "--idempotency-key", "k" * 256],
        [
            "transfers",
            "create",
            "--from",
            "a",
            "--to",
            "b",
            "--amount",
            "5",
            "--idempotency-key",
            "tab\there",
        ],
        ["rules", "get", ".."],
        ["executions", "wait", '{"v": 1, "id": "../accounts"}'],
        ["executions", "wait", "not a token{"],
        ["executions", "wait", '{"v":1,"id":"rex_0000000001"'],
    ],
    ids=[
        "key with a space",
        "key too long",
        "transfer key",
        "dot id",
        "bad token",
        "a token's brace",
        "a cut token",
    ],
)
def test_bad_local_input_exits_2_in_one_line(
    served: dict[str, str], args: list[str]
) -> None:
    """Input the SDK rejects before sending exits 2 with one line, no traceback."""
    result = run_cli(*args, env=served)

    assert 2 == result.returncode
    assert 1 == len(result.stderr.splitlines()), result.stderr
    assert result.stderr.startswith("sequence-async: ")


def test_serve_on_a_busy_port_is_one_line() -> None:
    """Serve on a port in use exits 1 with one line that says what to do."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        result = run_cli("serve", "--port", str(port))

    assert 1 == result.returncode
    assert (
        f"sequence-async: cannot listen on 127.0.0.1:{port}: the port is in use; "
        "pick another with --port (0: any free port)\n" == result.stderr
    )


def test_serve_with_a_missing_seed_is_a_usage_error(tmp_path: Path) -> None:
    """A seed file that cannot be read exits 2 in one line."""
    result = run_cli("serve", "--port", "0", "--seed", str(tmp_path / "nope.json"))

    assert 2 == result.returncode
    assert 1 == len(result.stderr.splitlines())
    assert "cannot read the seed" in result.stderr
