"""
``executions list --limit N``: pages of at most N, no page past N, no endless paging.

Issue 8 item 13: against a server that repeats its cursor, the command sent
14,282 requests in 15 s. Here a loopback server that lies about its pages
counts what the CLI asks.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web

from sequence_async.testing import FakeSequence

from .test_cli_support import (
    Remote,
    clean_env,
    lines,
    quick_seed,
    remote_server,
    run_cli,
)


@pytest.fixture(scope="module")
def remote() -> Iterator[Remote]:
    """
    The fake server with seven finished executions of rule_0001.
    """
    with remote_server(quick_seed()) as remote:
        triggered = run_cli(
            "trigger-many", "rule_0001", "--repeat", "7", "--no-wait", env=remote.env
        )
        assert 0 == triggered.returncode, triggered.stderr
        yield remote


@contextlib.contextmanager
def lying_server(page_info: dict[str, Any], items: list[Any]) -> Iterator[list[Any]]:
    """
    Answer every execution list with *items* and *page_info*; yield the queries seen.
    """
    seen: list[Any] = []

    async def listing(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.json_response(
            {"request_id": "req", "data": items, "page_info": page_info}
        )

    app = web.Application()
    app.router.add_get("/api/v1/rule-executions", listing)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    runner = web.AppRunner(app)

    async def start() -> str:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}/api/v1"

    try:
        url = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
        seen.append(url)
        yield seen
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def _list_with_limit(remote: Remote, limit: int) -> tuple[Any, list[Any]]:
    # `executions list --limit N --json`: the CLI's result, and the list
    # requests the server saw from it.
    before = len(remote.call(lambda s: s.requests_to("list_rule_executions")))
    result = run_cli(
        "executions",
        "list",
        "--rule-id",
        "rule_0001",
        "--limit",
        str(limit),
        "--json",
        env=remote.env,
    )
    asked = remote.call(lambda s: s.requests_to("list_rule_executions"))[before:]
    return result, asked


def test_limit_asks_for_one_page_of_that_size(remote: Remote) -> None:
    """--limit 5 sends first=5 once and shows five executions."""
    result, asked = _list_with_limit(remote, 5)

    assert (0, 5) == (result.returncode, len(lines(result)[0]))
    assert [{"rule_id": "rule_0001", "first": "5"}] == [dict(r.query) for r in asked]


def test_large_limit_pages_by_one_hundred_at_most(remote: Remote) -> None:
    """A limit above the API's largest page asks for pages of 100."""
    result, asked = _list_with_limit(remote, 500)

    assert (0, 7) == (result.returncode, len(lines(result)[0]))
    assert ["100"] == [r.query["first"] for r in asked]


@pytest.mark.parametrize(
    "page_info",
    [
        {"has_next_page": True, "end_cursor": "same"},
        {"has_next_page": True, "end_cursor": None},
    ],
    ids=["repeated cursor", "no cursor"],
)
@pytest.mark.parametrize("many", [False, True], ids=["empty pages", "short pages"])
def test_lying_pages_end_the_list(
    remote: Remote, page_info: dict[str, Any], many: bool
) -> None:
    """A server repeating its cursor, or sending empty pages, does not keep the CLI."""
    execution = remote.call(FakeSequence.executions)[0]
    execution.pop("idempotency_key")
    items = [execution, execution] if many else []

    with lying_server(page_info, items) as seen:
        url = seen.pop(0)
        result = run_cli(
            "executions",
            "list",
            "--rule-id",
            "rule_0001",
            "--limit",
            "5",
            "--json",
            env=clean_env() | {"SEQUENCE_API_KEY": "sk_test", "SEQUENCE_BASE_URL": url},
        )

    assert 0 == result.returncode, result.stderr
    assert len(items) == len(lines(result)[0])  # a page sent again: not again
    assert len(seen) <= 2
