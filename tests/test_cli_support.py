"""
Helpers of the command-line tests: run the CLI, serve the fake server.

No tests here. Every CLI test runs ``python -m sequence_async`` in a
subprocess against a ``sequence-async serve`` subprocess, as a user would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from sequence_async.testing import Behavior, FakeSequence, Seed, demo_seed, serve


T = TypeVar("T")


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


def interrupted(
    args: list[str],
    env: dict[str, str],
    ready: Callable[[], object],
    *,
    stop: signal.Signals = signal.SIGINT,
) -> tuple[int, str, str]:
    """
    Run the CLI, call *ready* (it returns at the moment to hit), send *stop*.

    Returns the exit code, stdout and stderr.
    """
    with subprocess.Popen(  # noqa: S603
        cli_command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    ) as process:
        ready()
        process.send_signal(stop)
        stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout, stderr


def clean_env() -> dict[str, str]:
    """
    The environment without any ``SEQUENCE_*`` variable.
    """
    return {k: v for k, v in os.environ.items() if not k.startswith("SEQUENCE_")}


@contextlib.contextmanager
def serving(directory: Path, *extra: str) -> Iterator[dict[str, str]]:
    """
    Run ``sequence-async serve`` with ``quick_seed()``; yield the env that targets it.
    """
    path = directory / "seed.json"
    path.write_text(quick_seed().to_json())
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


class Remote:
    """
    A fake server running on its own event loop in a thread, steered from sync tests.
    """

    def __init__(self, server: FakeSequence, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop

    @property
    def env(self) -> dict[str, str]:
        """
        The environment that points the CLI at this server.
        """
        assert self.server.url is not None
        return clean_env() | {
            "SEQUENCE_API_KEY": self.server.api_key,
            "SEQUENCE_BASE_URL": self.server.url,
        }

    def call(self, step: Callable[[FakeSequence], T]) -> T:
        """
        Run *step* with the server on the server's loop; return its result.
        """

        async def on_loop() -> T:
            return step(self.server)

        return asyncio.run_coroutine_threadsafe(on_loop(), self.loop).result(30)

    def wait(self, until: Callable[[FakeSequence], Awaitable[object]]) -> None:
        """
        Wait (30 s at most) until *until* returns, run on the server's loop.
        """

        async def on_loop() -> None:
            async with asyncio.timeout(30):
                await until(self.server)

        asyncio.run_coroutine_threadsafe(on_loop(), self.loop).result(60)


@contextlib.contextmanager
def remote_server(seed: Seed) -> Iterator[Remote]:
    """
    Run the fake server with *seed* in a thread; yield its ``Remote``.
    """
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    stack = contextlib.AsyncExitStack()
    try:
        server = asyncio.run_coroutine_threadsafe(
            stack.enter_async_context(serve(seed, record=True)), loop
        ).result(30)
        yield Remote(server, loop)
    finally:
        asyncio.run_coroutine_threadsafe(stack.aclose(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


@contextlib.contextmanager
def serving_api(directory: Path, api: str) -> Iterator[dict[str, str]]:
    """
    ``serving`` with ``--api API``; the env it yields sets ``SEQUENCE_API`` too.
    """
    with serving(directory, "--api", api) as env:
        yield env | {"SEQUENCE_API": api}


def quick_seed() -> Seed:
    """
    Five rules: 1 and 2 finish at once, 3 always fails, 4 and 5 take a day.
    """
    seed = demo_seed(rules=5)
    for rule_id in ("rule_0001", "rule_0002"):
        seed.behaviors[rule_id] = Behavior(median=0.0, sigma=0.0)
    seed.behaviors["rule_0003"] = Behavior(median=0.0, sigma=0.0, failure_rate=1.0)
    for rule_id in ("rule_0004", "rule_0005"):
        seed.behaviors[rule_id] = Behavior(median=86_400.0, sigma=0.0)
    return seed
