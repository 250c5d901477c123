"""
How the CLI's output reads: whole tokens, key/value objects, counts at any width.

Results go to stdout; progress and human summaries to stderr, so ``--json``
output can be piped.
"""

from __future__ import annotations

import json
import shlex

import pytest

import sequence_async as sq
from sequence_async.cli._output import Output
from sequence_async.cli._progress import progress_text

from .test_cli_support import run_cli


def pairs(stdout: str) -> dict[str, str]:
    """
    The ``key  value`` lines of a result, as a dict.
    """
    return dict(line.split(maxsplit=1) for line in stdout.splitlines())


def test_trigger_prints_the_token_whole_at_any_width(served: dict[str, str]) -> None:
    """At 40 columns the token is one line that pastes back into executions wait."""
    result = run_cli("rules", "trigger", "rule_0002", env=served | {"COLUMNS": "40"})
    shown = pairs(result.stdout)
    waited = run_cli("executions", "wait", shown["token"], "--json", env=served)

    assert 0 == result.returncode
    assert shown["execution_id"] == json.loads(shown["token"])["id"]
    assert (
        f"sequence-async executions wait {shlex.quote(shown['token'])}"
        == shown["resume"]
    )
    assert "executed" == json.loads(waited.stdout)["status"]


def test_get_prints_key_value_lines(served: dict[str, str]) -> None:
    """An object prints as aligned key/value lines, nested keys dotted, no repr."""
    result = run_cli("accounts", "get", "acc_0001", env=served)
    shown = pairs(result.stdout)

    assert 0 == result.returncode
    assert ("acc_0001", "50000000") == (
        shown["id"],
        shown["balance.balance_in_cents"],
    )
    assert "{" not in result.stdout


def test_progress_keeps_its_counts_at_60_columns(served: dict[str, str]) -> None:
    """At 60 columns the progress line, on stderr, still shows every count."""
    result = run_cli(
        "trigger-many",
        "rule_0001",
        "--repeat",
        "3",
        "--no-wait",
        env=served | {"COLUMNS": "60"},
    )
    (progress,) = [line for line in result.stderr.splitlines() if "3/3" in line]

    assert 0 == result.returncode
    assert progress.startswith("3/3  3 ok  0 failed  0 triggering  0 waiting")
    assert len(progress) <= 60


def progress(**counts: int) -> sq.BulkProgress:
    """
    A BulkProgress with *counts*, zero elsewhere.
    """
    fields = ("started", "triggering", "waiting", "succeeded", "failed", "not_started")
    return sq.BulkProgress(**dict.fromkeys(fields, 0) | counts, elapsed=0.0)


@pytest.mark.parametrize("width", [60, 70, 80, 120])
def test_progress_text_drops_rate_and_bar_before_counts(width: int) -> None:
    """A large run's counts fit at 60 to 120 columns; the bar takes what is left."""
    counts = progress(succeeded=12_345, failed=678, triggering=16, waiting=4_321)

    line, bar, filled = progress_text(counts, 50_000, 754.0, width)

    assert line.startswith("13023/50000")
    for part in ("12345 ok", "678 failed", "16 triggering", "4321 waiting"):
        assert part in line
    assert len(line) + (bar + 1 if bar else 0) <= width
    assert (bar == 0) == (width - len(line) - 1 < 10)
    assert round(bar * 13_023 / 50_000) == filled


def test_progress_text_names_unstarted_items() -> None:
    """Items not started (max_failures) are counted apart from failures."""
    line, _, _ = progress_text(progress(failed=2, not_started=5), 7, 1.0, 120)

    assert "7/7  0 ok  2 failed  5 not started  0 triggering  0 waiting" in line


def test_server_text_is_shown_escaped_never_forging_lines_or_driving_the_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A nickname with a line break and escape sequences prints as one escaped line."""
    hostile = "x\nstatus      active\x1b[2J\x1b]0;pwned\x07"
    output = Output(as_json=False)

    output.data({"id": "rule_1", "nick\nname": hostile})
    output.table([{"id": hostile, "name": "[red]boo[/red]"}], ["id", "name"], "rules")

    shown = capsys.readouterr().out
    assert "\x1b" not in shown
    assert "\x07" not in shown
    assert ["id", "nick\\nname"] == [line.split()[0] for line in shown.splitlines()[:2]]
    assert "x\\nstatus      active\\x1b[2J" in shown.splitlines()[1]
    assert "[red]boo[/red]" in shown  # not read as markup
