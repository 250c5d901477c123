"""
Helpers of the command-line tests: run the CLI, serve the fake server.

No tests here. Every CLI test runs ``python -m sequence_async`` in a
subprocess against a ``sequence-async serve`` subprocess, as a user would.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sequence_async.testing import Behavior, demo_seed


# Where SEQUENCE_BASE_URL points in the tests: nothing listens there, so a
# command that ignores --base-url fails instead of reaching production.
DEAD_URL = "http://127.0.0.1:9/api/v1"


def cli_command(*args: str) -> list[str]:
    """
    The argv of ``python -m sequence_async ARGS``.
    """
    return [sys.executable, "-m", "sequence_async", *args]


def run_cli(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """
    Run ``python -m sequence_async ARGS`` and capture its output.
    """
    return subprocess.run(  # noqa: S603
        cli_command(*args),
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=120,
        check=False,
    )


def clean_env() -> dict[str, str]:
    """
    The environment without any ``SEQUENCE_*`` variable.
    """
    return {k: v for k, v in os.environ.items() if not k.startswith("SEQUENCE_")}


@contextlib.contextmanager
def serving(directory: Path, *extra: str) -> Iterator[dict[str, str]]:
    """
    Run ``sequence-async serve`` with quick rules; yield the env that targets it.

    rule_0001 and rule_0002 finish at once, rule_0003 always fails; rules
    from rule_0004 on take a day (they stay in flight).
    """
    seed = demo_seed(rules=5)
    for rule_id in ("rule_0001", "rule_0002"):
        seed.behaviors[rule_id] = Behavior(median=0.0, sigma=0.0)
    seed.behaviors["rule_0003"] = Behavior(median=0.0, sigma=0.0, failure_rate=1.0)
    for rule_id in ("rule_0004", "rule_0005"):
        seed.behaviors[rule_id] = Behavior(median=86_400.0, sigma=0.0)
    path = directory / "seed.json"
    path.write_text(seed.to_json())
    argv = cli_command("serve", "--port", "0", "--seed", str(path), "--json", *extra)
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as process:  # noqa: S603
        try:
            assert process.stdout is not None
            info = json.loads(process.stdout.readline())
            yield clean_env() | {
                "SEQUENCE_API_KEY": info["api_key"],
                "SEQUENCE_BASE_URL": info["url"],
            }
        finally:
            process.terminate()
            process.wait(timeout=30)


def lines(result: subprocess.CompletedProcess[str]) -> list[Any]:
    """
    The JSON lines a --json command printed.
    """
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
