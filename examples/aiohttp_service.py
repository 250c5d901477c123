"""
An aiohttp.web service that triggers Sequence rules with its own session.

The service already has an ``aiohttp.ClientSession`` (its connection pool,
its timeouts, its tracing): the ``SequenceClient`` borrows it with
``session=``, uses it as is and never closes it. Both live as long as the
application, set up and torn down by one cleanup context.

Routes:

- ``POST /payouts/{rule_id}`` with ``{"amount_cents": 1500}`` (optional)
  triggers the rule and answers 202 with the execution's id and its resume
  token. The caller's ``Idempotency-Key`` header is passed on, so a client of
  this service that retries never pays twice. A trigger whose outcome is
  unknown answers 503 with the key to send again.
- ``GET /executions/{execution_id}`` answers the execution's current status.

Try it against the fake server::

    sequence-async serve --port 8799 &
    export SEQUENCE_BASE_URL=http://127.0.0.1:8799/api/v1
    export SEQUENCE_API_KEY=sk_demo_fake_sequence_key
    PORT=8080 python examples/aiohttp_service.py &
    curl -X POST -d '{"amount_cents": 1500}' localhost:8080/payouts/rule_0001
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from sequence_async import (
    NotFoundError,
    OutcomeUnknownError,
    SequenceClient,
    SequenceError,
)


SEQUENCE = web.AppKey("sequence", SequenceClient)


async def sequence_client(app: web.Application) -> AsyncIterator[None]:
    """
    Open the service's session and a ``SequenceClient`` borrowing it.

    The client reads ``SEQUENCE_API_KEY`` and ``SEQUENCE_BASE_URL``. On
    shutdown the client closes first (it leaves the borrowed session open),
    then the session closes with its own ``async with``.
    """
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        SequenceClient(session=session) as client,
    ):
        app[SEQUENCE] = client
        yield


async def trigger_payout(request: web.Request) -> web.Response:
    """
    ``POST /payouts/{rule_id}``: trigger the rule, answer its resume token.
    """
    client = request.app[SEQUENCE]
    body = await request.json() if request.can_read_body else {}
    try:
        execution = await client.rules.trigger(
            request.match_info["rule_id"],
            manual_execute_amount=body.get("amount_cents"),
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
    except (ValueError, TypeError) as exc:  # bad input, refused before sending
        return web.json_response({"error": str(exc)}, status=400)
    except NotFoundError:
        return web.json_response({"error": "no such rule"}, status=404)
    except OutcomeUnknownError as exc:
        # It may have started: the caller must send again with this key.
        return web.json_response(
            {"error": "outcome unknown", "idempotency_key": exc.idempotency_key},
            status=503,
        )
    except SequenceError as exc:
        return web.json_response({"error": type(exc).__name__}, status=502)
    return web.json_response(
        {
            "execution_id": execution.id,
            "idempotency_key": execution.idempotency_key,
            # Hand this to a worker: client.execution_from_token(token).wait()
            "token": execution.to_token(),
        },
        status=202,
    )


async def execution_status(request: web.Request) -> web.Response:
    """
    ``GET /executions/{execution_id}``: the execution's current status.
    """
    client = request.app[SEQUENCE]
    try:
        result = await client.rule_executions.get(request.match_info["execution_id"])
    except NotFoundError:
        return web.json_response({"error": "no such execution"}, status=404)
    return web.json_response(
        {"execution_id": result.id, "status": str(result.status), "done": result.done}
    )


def make_app() -> web.Application:
    """
    The service: its routes and the client's lifetime.
    """
    app = web.Application()
    app.cleanup_ctx.append(sequence_client)
    app.router.add_post("/payouts/{rule_id}", trigger_payout)
    app.router.add_get("/executions/{execution_id}", execution_status)
    return app


def main() -> None:
    """
    Serve on ``HOST:PORT`` (127.0.0.1:8080 by default) until interrupted.
    """
    web.run_app(
        make_app(),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8080")),
    )


if __name__ == "__main__":
    main()
