"""
A minimal, fast HTTP/1.1 server for benchmark 1 (run as a child process).

It answers ``POST .../rules/{id}/trigger`` with a canned ``202`` envelope
naming a new execution id, and anything else (or a trigger without an
``Idempotency-Key``) with a ``400``. It parses just enough HTTP (the head,
``Content-Length``, keep-alive) to serve aiohttp and httpx clients, on a raw
``asyncio.Protocol`` (on uvloop when installed), so that it costs a small
fraction of what a client spends per request. Several processes share one
port with ``SO_REUSEPORT``: the kernel spreads the client's connections over
them.

Usage: ``python trigger_server.py [PORT]``; prints ``{"port": N}`` on stdout
once listening and serves until stdin closes or SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys


_HEAD_END = b"\r\n\r\n"
_TEMPLATE = (
    b"HTTP/1.1 %d %s\r\n"
    b"Content-Type: application/json\r\n"
    b"X-Request-ID: %s\r\n"
    b"Content-Length: %d\r\n"
    b"\r\n"
)


class TriggerProtocol(asyncio.Protocol):
    """
    One client connection: split requests, answer each at once.
    """

    prefix = f"rex_{os.getpid()}_".encode()
    served = 0

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        replies = []
        while True:
            end = buffer.find(_HEAD_END)
            if end < 0:
                break
            head = buffer[:end].lower()
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else None])
            if len(buffer) < end + 4 + length:
                break
            buffer = buffer[end + 4 + length :]
            replies.append(self.reply(head))
        self.buffer = buffer
        if replies and self.transport is not None:
            self.transport.write(b"".join(replies))

    def reply(self, head: bytes) -> bytes:
        line = head[: head.find(b"\r\n")]
        at = head.find(b"\r\nx-request-id:")
        request_id = b"req_bench"
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            request_id = head[at + 15 : stop if stop >= 0 else None].strip()
        if (
            line.startswith(b"post ")
            and b"/trigger " in line
            and b"\r\nidempotency-key:" in head
        ):
            TriggerProtocol.served += 1
            body = b'{"request_id":"%s","data":{"execution_id":"%s%d"}}' % (
                request_id,
                self.prefix,
                TriggerProtocol.served,
            )
            status, reason = 202, b"Accepted"
        else:
            body = b'{"error":{"code":"invalid_request","message":"not a trigger"}}'
            status, reason = 400, b"Bad Request"
        return _TEMPLATE % (status, reason, request_id, len(body)) + body


def listening_socket(port: int) -> socket.socket:
    """
    A loopback socket on *port* (0: a free one) that other processes may share.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(1024)
    sock.setblocking(False)  # noqa: FBT003
    return sock


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    sock = listening_socket(port)
    server = await loop.create_server(TriggerProtocol, sock=sock)
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_reader(sys.stdin.fileno(), stop.set)  # stdin closed: the parent left
    await stop.wait()
    server.close()


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(port))
    else:
        uvloop.run(serve(port))


if __name__ == "__main__":
    main()
