"""
Tests of the command line, run as subprocesses against ``sequence-async serve``.

Each test that uses ``served`` runs once per API: the server is started with
``--api`` and the commands get ``SEQUENCE_API``.
"""

from __future__ import annotations

import pytest

from .test_cli_support import lines, run_cli


def test_accounts_list_json(served: dict[str, str]) -> None:
    """Accounts list --json prints the accounts as one JSON array."""
    result = run_cli("accounts", "list", "--json", env=served)

    (accounts,) = lines(result)
    assert 0 == result.returncode
    assert "acc_0001" == accounts[0]["id"]


def test_accounts_get_and_rules_get(served: dict[str, str]) -> None:
    """Get commands print one object; tables print for people."""
    account = run_cli("accounts", "get", "acc_0001", "--json", env=served)
    rule = run_cli("rules", "get", "rule_0001", "--json", env=served)
    table = run_cli("rules", "list", env=served)

    assert 50_000_000 == lines(account)[0]["balance"]["balance_in_cents"]
    assert "MANUAL" == lines(rule)[0]["trigger"]["type"]
    assert "rule_0003" in table.stdout


def test_trigger_with_wait_prints_the_result(served: dict[str, str]) -> None:
    """Rules trigger --wait --json prints the finished execution and exits 0."""
    result = run_cli(
        "rules",
        "trigger",
        "rule_0001",
        "--amount",
        "2500",
        "--wait",
        "--json",
        env=served,
    )

    (execution,) = lines(result)
    assert (0, "executed") == (result.returncode, execution["status"])


def test_failed_execution_exits_1(served: dict[str, str]) -> None:
    """A failed execution exits 1."""
    result = run_cli("rules", "trigger", "rule_0003", "--wait", "--json", env=served)

    assert (1, "failed") == (result.returncode, lines(result)[0]["status"])


def test_trigger_without_wait_prints_a_resume_token(served: dict[str, str]) -> None:
    """Without --wait the id and a token come back; executions wait resumes from it."""
    triggered = lines(
        run_cli(
            "rules",
            "trigger",
            "rule_0002",
            "--idempotency-key",
            "cli-1",
            "--json",
            env=served,
        )
    )[0]
    waited = run_cli("executions", "wait", triggered["token"], "--json", env=served)
    # Platform names an execution under its rule: --rule-id (api-v1 ignores it).
    by_id, got = (
        run_cli(
            "executions",
            command,
            triggered["execution_id"],
            "--rule-id",
            "rule_0002",
            "--json",
            env=served,
        )
        for command in ("wait", "get")
    )
    listed = run_cli(
        "executions",
        "list",
        "--rule-id",
        "rule_0002",
        "--limit",
        "1",
        "--json",
        env=served,
    )

    assert "cli-1" == triggered["idempotency_key"]
    assert ["executed"] * 3 == [lines(r)[0]["status"] for r in (waited, by_id, got)]
    assert 1 == len(lines(listed)[0])


def test_api_errors_are_one_line_exit_1(served: dict[str, str]) -> None:
    """An API error prints one readable line, no traceback, and exits 1."""
    result = run_cli("rules", "get", "rule_nope", env=served)

    code = {"api-v1": "resource_not_found", "platform-v1": "RULE_NOT_FOUND"}
    assert 1 == result.returncode
    assert (
        f"sequence-async: NotFoundError: 404 {code[served['SEQUENCE_API']]}: "
        "Rule with id 'rule_nope' was not found." == result.stderr.strip()
    )


def test_missing_key_is_a_usage_error(served: dict[str, str]) -> None:
    """Without SEQUENCE_API_KEY the command exits 2 and says what to set."""
    env = {k: v for k, v in served.items() if k != "SEQUENCE_API_KEY"}

    result = run_cli("accounts", "list", env=env)

    assert 2 == result.returncode
    assert "SEQUENCE_API_KEY" in result.stderr


@pytest.mark.parametrize(
    "args",
    [[], ["nope"], ["rules", "trigger"], ["trigger-many", "r", "--concurrency", "0"]],
)
def test_bad_arguments_exit_2(served: dict[str, str], args: list[str]) -> None:
    """Argparse usage errors exit 2."""
    assert 2 == run_cli(*args, env=served).returncode


def test_trigger_many_json(served: dict[str, str]) -> None:
    """trigger-many prints one line per outcome and a summary; a failure exits 1."""
    ok = run_cli(
        "trigger-many", "rule_0001", "rule_0002", "--repeat", "3", "--json", env=served
    )
    mixed = run_cli(
        "trigger-many", "-", "--json", env=served, stdin="rule_0001\nrule_0003\n"
    )

    *outcomes, summary = lines(ok)
    assert 0 == ok.returncode
    assert ["executed"] * 6 == [o["status"] for o in outcomes]
    assert (6, 6) == (summary["summary"]["executed"], summary["summary"]["total"])
    assert 1 == mixed.returncode
    assert {"executed", "failed"} == {o["status"] for o in lines(mixed)[:-1]}


def test_trigger_many_shows_progress_and_summary(served: dict[str, str]) -> None:
    """Without --json, the progress line (drawn once) and the summary go to stderr."""
    result = run_cli(
        "trigger-many", "rule_0001", "--repeat", "5", "--no-wait", env=served
    )

    assert 0 == result.returncode
    assert 5 == result.stdout.count("  rule_0001  triggered  ")  # not waited for
    assert 1 == result.stderr.count("5/5")
    assert "Summary" in result.stderr


def test_transfers_commands(served: dict[str, str]) -> None:
    """Transfers create, get and list work end to end."""
    created = lines(
        run_cli(
            "transfers",
            "create",
            "--from",
            "acc_0001",
            "--to",
            "acc_0002",
            "--amount",
            "700",
            "--idempotency-key",
            "t-1",
            "--json",
            env=served,
        )
    )[0]
    got = lines(run_cli("transfers", "get", created["id"], "--json", env=served))[0]
    listed = run_cli(
        "transfers", "list", "--account-id", "acc_0002", "--json", env=served
    )
    table = run_cli("transfers", "list", "--account-id", "acc_0002", env=served)

    assert ("processing", 700) == (created["status"], got["amount_in_cents"])
    assert created["id"] in [t["id"] for t in lines(listed)[0]]
    assert "Transfers" in table.stdout


def test_demo_runs_and_summarises() -> None:
    """The demo bulk-triggers against its own fake server and prints a summary."""
    result = run_cli("demo", "--count", "40", "--median", "0.05", "--json")

    summary = lines(result)[-1]["summary"]
    assert 0 == result.returncode
    assert 40 == summary["total"]
    assert summary["requests_per_execution"] < 2


def test_help_of_module_entry_point() -> None:
    """Python -m sequence_async --help lists the commands."""
    result = run_cli("--help")

    assert 0 == result.returncode
    for command in (
        "demo",
        "serve",
        "accounts",
        "rules",
        "executions",
        "transfers",
        "trigger-many",
    ):
        assert command in result.stdout
