"""
The command line's long runs: ``--journal``, ``journal show`` and ``--redis``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from sequence_async import ItemState, JournalEntry, SqliteJournal
from sequence_async._resume import derive_key

from .test_cli_support import clean_env, lines, run_cli, serving


def test_the_same_command_resumes_without_sending_again(
    served: dict[str, str], tmp_path: Path
) -> None:
    """A journalled run done twice: the second replays each outcome from the journal."""
    journal = str(tmp_path / "run.db")
    argv = ["trigger-many", "rule_0001", "rule_0002", "--repeat", "2", "--json"]

    first = run_cli(*argv, "--journal", journal, env=served)
    again = run_cli(*argv, "--journal", journal, env=served)

    *done, _ = lines(first)
    *replayed, summary = lines(again)
    assert (0, 0) == (first.returncode, again.returncode)
    assert [False] * 4 == [o["from_journal"] for o in done]
    assert [True] * 4 == [o["from_journal"] for o in replayed]
    assert sorted((o["index"], o["execution_id"]) for o in done) == sorted(
        (o["index"], o["execution_id"]) for o in replayed
    )
    assert 4 == summary["summary"]["executed"]


def test_a_changed_input_is_a_usage_error(
    served: dict[str, str], tmp_path: Path
) -> None:
    """Resuming with other rules exits 2 and sends nothing."""
    journal = str(tmp_path / "run.db")
    run_cli("trigger-many", "rule_0001", "--no-wait", "--journal", journal, env=served)

    changed = run_cli(
        "trigger-many", "rule_0002", "--no-wait", "--journal", journal, env=served
    )

    assert 2 == changed.returncode
    assert "not the same input" in changed.stderr


def test_journal_show_counts_states_and_lists_items_for_a_person(
    served: dict[str, str], tmp_path: Path
) -> None:
    """Journal show gives counts, the failed items' keys and the run's age."""
    journal = str(tmp_path / "run.db")
    run_cli("trigger-many", "rule_0001", "rule_0003", "--journal", journal, env=served)

    shown = run_cli("journal", "show", journal, "--json", env=served)
    human = run_cli("journal", "show", journal, env=served)

    (report,) = lines(shown)
    assert 0 == shown.returncode
    assert {"terminal": 2} == report["counts"]
    assert 2 == report["items"]
    assert report["age_seconds"] >= 0
    assert "terminal" in human.stdout
    assert 0 == human.returncode


def test_journal_show_of_a_foreign_file_is_one_line(tmp_path: Path) -> None:
    """A file that is not a journal: one line on stderr, exit 2, file untouched."""
    path = tmp_path / "notes.txt"
    path.write_text("hello\n")

    shown = run_cli("journal", "show", str(path))

    assert 2 == shown.returncode
    assert 1 == len(shown.stderr.strip().splitlines())
    assert "not a sequence-async journal" in shown.stderr
    assert "hello\n" == path.read_text()


def test_trigger_many_shares_a_budget_through_redis(
    served: dict[str, str], redis_url: str
) -> None:
    """--redis and --rate-limit coordinate the run; a bad URL is a usage error."""
    shared = run_cli(
        "trigger-many",
        "rule_0001",
        "--repeat",
        "3",
        "--redis",
        redis_url,
        "--rate-limit",
        "600",
        "--json",
        env=served,
    )
    bad = run_cli("trigger-many", "rule_0001", "--redis", "http://nope", env=served)

    *outcomes, _ = lines(shared)
    assert 0 == shared.returncode
    assert ["executed"] * 3 == [o["status"] for o in outcomes]
    assert 2 == bad.returncode
    assert "--redis" in bad.stderr


def test_the_platform_api_from_the_command_line(tmp_path: Path) -> None:
    """--api platform-v1 works before and after the command, and on serve."""
    with serving(tmp_path, "--api", "platform-v1") as env:
        before = run_cli(
            "--api",
            "platform-v1",
            "rules",
            "trigger",
            "rule_0001",
            "--wait",
            "--json",
            env=env,
        )
        after = run_cli(
            "rules",
            "trigger",
            "rule_0001",
            "--wait",
            "--json",
            "--api",
            "platform-v1",
            env=env,
        )
        wrong = run_cli("rules", "trigger", "rule_0001", "--wait", "--json", env=env)

    assert (0, 0) == (before.returncode, after.returncode)
    assert ["executed", "executed"] == [lines(r)[0]["status"] for r in (before, after)]
    assert 0 != wrong.returncode


def _recorded(path: Path, items: Sequence[tuple[ItemState, str | None, str]]) -> str:
    """A journal at *path* of items (state, error type, message); its run id."""

    async def record() -> str:
        journal = SqliteJournal(path)
        run_id, _ = await journal.open()
        await journal.write(
            [
                JournalEntry(
                    position=n,
                    identity=f"position:{n}",
                    rule_id="rule_0001",
                    amount=None,
                    idempotency_key=derive_key(run_id, n),
                    state=state,
                    sent_at=1.0,
                    error_type=error,
                    error_message=message,
                    updated_at=1.0,
                )
                for n, (state, error, message) in enumerate(items)
            ]
        )
        await journal.close()
        return run_id

    return asyncio.run(record())


def test_journal_show_gives_each_key_for_a_person_whole(tmp_path: Path) -> None:
    """Items that need a person: one line each, the key never cut nor folded."""
    path = tmp_path / "run.db"
    unsure = (ItemState.UNKNOWN, None, "answer lost\x1b[2J")
    key = derive_key(_recorded(path, [unsure]), 0)

    shown = run_cli("journal", "show", str(path), env={**clean_env(), "COLUMNS": "60"})

    (line,) = [line for line in shown.stdout.splitlines() if key in line]
    assert line.split() == ["0", "unknown", "rule_0001", key, "answer", "lost\\x1b[2J"]
    assert 0 == shown.returncode


def test_journal_show_tells_the_failed_items_never_sent_apart(tmp_path: Path) -> None:
    """Failed items that never left (a run stopped early): told apart, and why."""
    path = tmp_path / "run.db"
    failed = [
        (ItemState.FAILED, e, "...") for e in ("NotStartedError", "BadRequestError")
    ]
    _recorded(path, failed * 2)
    (report,) = lines(run_cli("journal", "show", str(path), "--json"))
    human = run_cli("journal", "show", str(path))
    folder = run_cli("journal", "show", str(tmp_path))

    assert ({"failed": 4}, 2) == (report["counts"], report["never_sent"])
    assert "4 (2 never sent: a resume sends them)" in human.stdout
    assert f"{tmp_path}: a directory, not a journal" in folder.stderr
