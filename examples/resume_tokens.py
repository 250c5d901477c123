"""
Trigger in one process, wait in another: resuming waits from tokens.

A web request, a cron job or a deploy should not sit waiting for an
execution that takes minutes. Trigger, save ``execution.to_token()`` (a small
JSON string: the ids and the trigger time, no secret), and let another
process, later, rebuild the handle with ``client.execution_from_token(token)``
and wait on it. Waits on the same rule share their polls.

Three commands::

    python examples/resume_tokens.py trigger tokens.txt rule_0001 rule_0004
    python examples/resume_tokens.py resume tokens.txt
    python examples/resume_tokens.py demo     # both, resume in a child process

``trigger`` writes one token per line; ``resume`` prints one line per
execution (``rex_… rule_… executed``) and exits 1 when one failed. Both read
``SEQUENCE_API_KEY`` and ``SEQUENCE_BASE_URL`` (see ``sequence-async serve``).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sequence_async import SequenceClient, WaitTimeoutError


async def trigger(rule_ids: Sequence[str]) -> list[str]:
    """
    Trigger each rule without waiting; return the executions' tokens.
    """
    async with SequenceClient() as client:
        # wait=False: each outcome is ready once its trigger is accepted.
        outcomes = await client.trigger_all(rule_ids, wait=False)
    tokens = []
    for outcome in outcomes:
        if outcome.execution is None:
            print(f"not triggered {outcome.request.rule_id}: {outcome.error}")
            continue
        print(f"triggered {outcome.execution.id} {outcome.execution.rule_id}")
        tokens.append(outcome.execution.to_token())
    return tokens


async def resume(tokens: Sequence[str], timeout: float) -> int:
    """
    Rebuild a handle from every token and wait on them all; print each end.
    """
    async with SequenceClient() as client:
        executions = [client.execution_from_token(token) for token in tokens]
        results = await asyncio.gather(
            *(e.wait(timeout, raise_on_failure=False) for e in executions),
            return_exceptions=True,
        )
    failed = 0
    for execution, result in zip(executions, results, strict=True):
        if isinstance(result, WaitTimeoutError):
            # Still running: the token stays valid, resume again later.
            print(f"{execution.id} {execution.rule_id} still {result.last_status}")
            failed += 1
        elif isinstance(result, BaseException):
            print(f"{execution.id} {execution.rule_id} error {result!r}")
            failed += 1
        else:
            print(f"{result.id} {result.rule_id} {result.status}")
            failed += result.status == "failed"
    return 1 if failed else 0


def save(path: Path, rule_ids: Sequence[str]) -> int:
    """
    Trigger the rules and write their tokens to *path*, one a line.
    """
    tokens = asyncio.run(trigger(rule_ids))
    path.write_text("".join(f"{token}\n" for token in tokens), encoding="utf-8")
    return 0 if len(tokens) == len(rule_ids) else 1


def load(path: Path, timeout: float) -> int:
    """
    Read the tokens in *path* and wait on their executions.
    """
    return asyncio.run(resume(path.read_text(encoding="utf-8").split(), timeout))


def demo(rule_ids: Sequence[str]) -> int:
    """
    Trigger here, then resume the waits in a child Python process.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "tokens.txt"
        code = save(path, rule_ids or ["rule_0001", "rule_0004"])
        if code:
            return code
        print("resuming in another process", flush=True)
        child = subprocess.run(  # noqa: S603 (our own script, no shell)
            [sys.executable, __file__, "resume", str(path)], check=False
        )
        return child.returncode


def main(argv: Sequence[str] | None = None) -> int:
    """
    Parse the command line and run ``trigger``, ``resume`` or ``demo``.
    """
    parser = argparse.ArgumentParser(description="Resume waits from tokens.")
    commands = parser.add_subparsers(dest="command", required=True)
    run_trigger = commands.add_parser("trigger", help="trigger, save the tokens")
    run_trigger.add_argument("tokens", type=Path)
    run_trigger.add_argument("rule_ids", nargs="+")
    run_resume = commands.add_parser("resume", help="wait on the saved tokens")
    run_resume.add_argument("tokens", type=Path)
    run_resume.add_argument("--timeout", type=float, default=300.0)
    run_demo = commands.add_parser("demo", help="trigger, then resume elsewhere")
    run_demo.add_argument("rule_ids", nargs="*")
    args = parser.parse_args(argv)
    if args.command == "trigger":
        return save(args.tokens, args.rule_ids)
    if args.command == "resume":
        return load(args.tokens, args.timeout)
    return demo(args.rule_ids)


if __name__ == "__main__":
    sys.exit(main())
