"""
Answers that echo the key, run long, or are unusable after money moved.

Found by attacking the Platform and observability paths: a transfer's 2xx
whose body is unusable, the key echoed inside an execution's fields, huge
unknown statuses, and a 5xx whose body names an authorisation code.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from aiohttp import web

from sequence_async import (
    ExecutionFailedError,
    OutcomeUnknownError,
    ResponseValidationError,
    SequenceClient,
    SequenceError,
    ServerError,
    _convert,
    _wire,
    capture_responses,
    models,
)
from sequence_async._observe import Hooks, Observer
from sequence_async._profiles import PROFILES
from sequence_async._requester import Shared
from sequence_async._secret import Secret
from sequence_async._transfers import Transfers
from sequence_async._wire import Response
from sequence_async.testing import FakeSequence

from .conftest import API_KEY, FakeTransport, hostile, ok, requester, status


@pytest.mark.parametrize(
    "answer",
    [
        status(201, b""),
        ok(None, 201),
        ok({}, 201),
        ok({"id": 5, "amount_in_cents": 500}, 201),
        ok({"id": "t1", "amount_in_cents": "500"}, 201),
        # An id that cannot be asked for again (transfers.get refuses it).
        ok({"id": "", "amount_in_cents": 500}, 201),
        ok({"id": "..", "amount_in_cents": 500}, 201),
        ok({"id": "a\nb", "amount_in_cents": 500}, 201),
        ok({"id": "\ud800", "amount_in_cents": 500}, 201),
    ],
)
async def test_a_transfer_whose_2xx_is_unusable_keeps_its_key(answer: Response) -> None:
    """The server acted: OutcomeUnknownError with the key, never 'nothing ran'."""
    transfers = Transfers(requester(FakeTransport(answer)))

    with pytest.raises(OutcomeUnknownError) as raised:
        await transfers.create(
            source_account_id="acc_1",
            destination_account_id="acc_2",
            amount_in_cents=500,
            idempotency_key="pay-7",
        )

    assert "pay-7" == raised.value.idempotency_key


def test_a_key_echoed_in_a_success_body_reaches_no_field() -> None:
    """Redacted before the body is read: no model, message, log or span holds it."""
    secret = Secret(PROFILES["api-v1"].authorization(API_KEY))
    body = {
        "id": "rex_1",
        "status": "failed",
        "error_message": f"denied for ApiKey {API_KEY}",
    }
    response = Response(200, {}, json.dumps({"data": body}).encode())

    envelope = _wire.decode_response(response, request_id="r", secret=secret)

    assert API_KEY not in json.dumps(envelope.data)
    assert "denied for ApiKey <redacted>" == envelope.data["error_message"]


@pytest.mark.parametrize("unknown", ["x" * 65, "settling\x1b[2J", "a\nb"])
def test_an_unknown_status_must_be_a_name(unknown: str) -> None:
    """A status this version does not know is kept only if it is a short name."""
    execution = {"id": "rex_1", "status": unknown}

    with pytest.raises(ResponseValidationError, match="status"):
        _convert.structure(execution, models.RuleExecution)
    kept = _convert.structure(
        {"id": "rex_1", "status": "settling"}, models.RuleExecution
    )
    assert "settling" == kept.status


def test_a_failed_executions_error_message_is_cut_in_the_errors_text() -> None:
    """The whole message stays on `result`; the error's own text is short."""
    result = _convert.structure(
        {"id": "rex_1", "status": "failed", "error_message": "boom " * 10_000},
        models.RuleExecution,
    )

    error = ExecutionFailedError(result)

    assert len(str(error)) < 300
    assert result.error_message == error.result.error_message


@pytest.mark.parametrize("code", ["ACCESS_DENIED", "UNAUTHORIZED", "INVALID_RULE"])
def test_a_5xx_is_a_server_error_whatever_code_its_body_names(code: str) -> None:
    """A 500 saying ACCESS_DENIED is retried and never ends a wait as a 403 would."""
    body = {"requestId": "r", "error": {"code": code, "message": "m"}}
    response = Response(500, {}, json.dumps(body).encode())

    error = _wire.error_for(
        response,
        request_id="r",
        idempotency_key=None,
        now=datetime.now(UTC),
        profile=PROFILES["platform-v1"],
    )

    assert type(error) is ServerError
    assert 500 == error.status


# The key as a JSON escape spells it: no byte of the body matches the key.
_ESCAPED_KEY = API_KEY.replace("_", "\\u005f")


def _api_v1_secret() -> Secret:
    return Secret(PROFILES["api-v1"].authorization(API_KEY))


def test_a_key_hidden_by_json_escapes_in_a_success_body_reaches_no_field() -> None:
    """Escapes hide the key from the bytes; the decoded value is cleaned too."""
    body = (
        '{"data": {"id": "rex_1", "error_message": "denied for %s",'
        ' "%s": ["%s"]}, "request_id": "%s"}' % ((_ESCAPED_KEY,) * 4)
    ).encode()
    assert API_KEY.encode() not in body

    envelope = _wire.decode_response(
        Response(200, {}, body), request_id="r", secret=_api_v1_secret()
    )

    assert API_KEY not in json.dumps(envelope.data)
    assert API_KEY not in str(envelope.request_id)
    assert "denied for <redacted>" == envelope.data["error_message"]


@pytest.mark.parametrize(
    "answer",
    [
        Response(400, {}, b'{"error": {"code": "x"}, "request_id": "%s"}'),
        Response(400, {}, b'{"error": {"code": "x", "message": "no %s"}}'),
        Response(502, {}, b'["%s"]'),
        Response(200, {}, b'["%s"]'),
        Response(303, {}, b'{"to": "%s"}'),
        Response(400, {"X-Request-ID": API_KEY}, b""),
    ],
)
def test_an_error_never_spells_an_echoed_key(answer: Response) -> None:
    """Escaped in the body, or echoed in a header: the error shows neither."""
    body = answer.body.replace(b"%s", _ESCAPED_KEY.encode())
    response = Response(answer.status, answer.headers, body)

    with pytest.raises(Exception) as raised:
        _wire.decode_response(response, request_id="r", secret=_api_v1_secret())

    error = raised.value
    shown = f"{error} {error!r} {vars(error)}"
    assert API_KEY not in shown.replace("\\", "").replace("u005f", "_")


async def test_hooks_and_captured_answers_never_see_a_key_echoed_in_a_header() -> None:
    """A proxy that echoes the key in any header: hooks and captures hide it."""
    seen: list[object] = []
    echoing = Response(
        200,
        {"X-Echo": f"ApiKey {API_KEY}", "X-Request-ID": API_KEY, API_KEY: "name"},
        json.dumps({"data": []}).encode(),
    )
    transport = FakeTransport(echoing)
    base = requester(transport)
    hooked = attrs.evolve(
        base,
        shared=Shared(
            transport,
            observer=Observer(
                Hooks({"request": [seen.append], "response": [seen.append]}),
                None,
                base.auth,
            ),
        ),
    )

    with capture_responses() as answers:
        envelope = await hooked.request("GET", "/rules", operation="rules.list")

    assert 2 == len(seen)
    shown = f"{seen} {answers} {envelope}"
    assert API_KEY not in shown
    assert "ApiKey <redacted>" == answers[0].headers["X-Echo"]


async def stuck(_: object) -> None:
    """A hook that never returns."""
    await asyncio.Event().wait()


@pytest.mark.parametrize("kind", ["request", "response"])
async def test_a_hook_that_never_returns_is_cancelled_and_the_request_goes_on(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A hook gets the client's timeout, no more: never a hang of the call."""
    transport = FakeTransport(ok([]))
    base = requester(transport, timeout=0.05)
    hooked = attrs.evolve(
        base,
        shared=Shared(transport, observer=Observer(Hooks({kind: [stuck]}), None)),
    )

    with caplog.at_level(logging.WARNING, logger="sequence_async"):
        envelope = await hooked.request("GET", "/rules", operation="rules.list")

    assert [] == envelope.data
    said = [r.getMessage() for r in caplog.records]
    warning = f"a {kind} hook took over 0.05s, the request's time: cancelled;"
    assert [f"{warning} the request goes on"] == said


async def test_a_view_s_timeout_is_what_its_hooks_get(
    server: FakeSequence, caplog: pytest.LogCaptureFixture
) -> None:
    """with_options(timeout=...) bounds the hooks of the view's requests too."""
    async with SequenceClient(
        server.api_key,
        api=server.api,
        base_url=server.url,
        timeout=3600,
        event_hooks={"response": [stuck]},
    ) as client:
        with caplog.at_level(logging.WARNING, logger="sequence_async"):
            async with asyncio.timeout(30):  # (held by the hook: a failure)
                rules = await client.with_options(timeout=0.05).rules.list()

    assert rules
    assert ["a response hook took over 0.05s"] == [
        r.getMessage().split(",")[0] for r in caplog.records
    ]


@pytest.mark.parametrize(
    "echo",
    [
        f"Bearer {API_KEY[:23]}",  # a proxy's header, cut at 30 characters
        f"apikey {API_KEY.lower()}",
        f"APIKEY {API_KEY.upper()}",
    ],
)
async def test_hooks_and_captures_never_see_a_cut_or_recased_key(echo: str) -> None:
    """A head of the key (12 characters or more), or the key in another case."""
    seen: list[Any] = []
    transport = FakeTransport(Response(200, {"X-Upstream": echo}, b'{"data": []}'))
    base = requester(transport)
    hooked = attrs.evolve(
        base,
        shared=Shared(
            transport,
            observer=Observer(Hooks({"response": [seen.append]}), None, base.auth),
        ),
    )

    with capture_responses() as answers:
        await hooked.request("GET", "/rules", operation="rules.list")

    shown = f"{seen[0].headers} {answers[0].headers}".lower()
    assert API_KEY[:12].lower() not in shown
    assert "<redacted>" in answers[0].headers["X-Upstream"]


@pytest.mark.parametrize(
    ("status_code", "body", "header"),
    [
        (503, "upstream said: %s", ""),
        (500, '{"error": {"code": "x", "message": "token %s"}}', ""),
        (200, "<html>%s</html>", ""),
        (200, '{"request_id": "r", "data": {"id": 5}}', "%s"),  # not an Account
    ],
)
async def test_a_traceback_with_its_locals_never_shows_an_echoed_key(
    status_code: int, body: str, header: str
) -> None:
    """What an error reporter keeps of the frames (Sentry does) shows no key."""

    async def echo(_: web.Request) -> web.Response:
        return web.Response(
            status=status_code,
            text=body.replace("%s", API_KEY),
            headers={"X-Upstream": header.replace("%s", API_KEY)},
        )

    async with (
        hostile({("GET", "/accounts/a1"): echo}) as base_url,
        SequenceClient(API_KEY, base_url=base_url, max_retries=0) as client,
    ):
        with pytest.raises(SequenceError) as raised:
            await client.accounts.get("a1")

    text = "".join(
        traceback.TracebackException.from_exception(
            raised.value, capture_locals=True
        ).format()
    )
    assert API_KEY not in text


@pytest.mark.parametrize("status_code", [400, 502, 200])
def test_a_key_across_the_cut_of_an_errors_text_leaves_no_part(
    status_code: int,
) -> None:
    """Redacted, then cut at 200 characters: never the key less its last ones."""
    body = b"x" * 190 + API_KEY.encode() + b" trailing"

    with pytest.raises(Exception) as raised:
        _wire.decode_response(
            Response(status_code, {}, body), request_id="r", secret=_api_v1_secret()
        )

    assert API_KEY[:8] not in f"{raised.value} {raised.value!r}"


async def _answering(
    answer: Callable[[bytes], bytes],
) -> tuple[asyncio.Server, str]:
    # A raw HTTP server that gives each request *answer(its key)*.
    async def handle(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.lower().split(b"\r\n")
        (auth,) = [
            line for line in head.split(b"\r\n") if line.lower().startswith(b"auth")
        ]
        length = [
            int(line.split(b":")[1])
            for line in lines
            if line.startswith(b"content-length")
        ]
        await reader.readexactly(sum(length))  # the body, if any
        writer.write(answer(auth.split()[-1]))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/api/v1"


@pytest.mark.parametrize(
    "answer",
    [
        lambda key: (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\n" % key
        ),
        lambda key: b"HTTP/1.1 2x0 %s\r\n\r\n" % key,
        lambda key: b"HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\n" % key,
        lambda key: (
            b"HTTP/1.1 200 OK\r\nContent-Encoding: %s\r\n"
            b"Connection: close\r\nContent-Length: 2\r\n\r\n{}" % key
        ),
        lambda key: (
            b"HTTP/1.1 200 OK\r\nX-Echo: %s%s%s\r\n\r\n" % (b"a" * 80, key, b"a" * 8200)
        ),
        lambda key: (
            b"HTTP/1.1 200 OK\r\nX-Echo: \"'%s%s%s\r\n\r\n"
            % (b"a" * 70, key, b"a" * 9000)
        ),
    ],
    ids=[
        "chunk size",
        "status line",
        "content length",
        "content encoding",
        "line too long (cut inside the key)",
        "line too long, quoted bytes with both quotes",
    ],
)
async def test_a_key_echoed_in_malformed_http_is_in_no_error(
    answer: Callable[[bytes], bytes],
) -> None:
    """The bad line quoted by aiohttp: the error, its cause and reprs hide the key."""
    server, url = await _answering(answer)
    async with server, SequenceClient(API_KEY, base_url=url, max_retries=0) as client:
        for call in (client.accounts.get("acc_1"), client.rules.trigger("rule_1")):
            with pytest.raises(SequenceError) as raised:
                await call
            chain: list[str] = []
            link: BaseException | None = raised.value
            while link is not None:
                chain.append(f"{link} {link!r} {getattr(link, 'args', '')}")
                link = link.__cause__ or link.__context__

            shown = " ".join(chain)
            assert API_KEY[:12] not in shown.replace("\\", "")
            assert "<redacted>" in shown or "characters of the answer>" in shown


@pytest.mark.parametrize(
    "answer",
    [
        lambda key: (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%s\r\n" % key
        ),
        lambda key: b'HTTP/1.1 2x0 "%s\r\n\r\n' % key,
    ],
    ids=["chunk size", "status line with a quote"],
)
async def test_a_key_with_a_backslash_echoed_in_malformed_http_is_in_no_error(
    answer: Callable[[bytes], bytes],
) -> None:
    """A repr doubles the backslash (twice, quoted again); never shown."""
    key = "sk_live_SECRET\\0123456789abcdef"
    server, url = await _answering(answer)
    async with server, SequenceClient(key, base_url=url, max_retries=0) as client:
        with pytest.raises(SequenceError) as raised:
            await client.accounts.get("acc_1")

    shown = f"{raised.value} {raised.value!r} {raised.value.__cause__!r}"
    assert "SECRET" not in shown


def test_a_quoted_key_is_taken_out_however_spelled_or_cut() -> None:
    """Whole, repr'd once or twice, or its head of 12 characters or more."""
    key = "sk_live_SECRET\\0123456789"
    secret = Secret(f"ApiKey {key}")
    once = repr(key)[1:-1]
    for text in (key, once, repr(once)[1:-1], key[:12], once[:20] + "..."):
        assert "SECRET" not in secret.redact_quoted(f"got b'{text}' here")
    assert "sk_live_" in secret.redact_quoted("sk_live_ is the prefix")


async def test_a_set_cookie_echoing_the_key_is_neither_kept_nor_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No cookie jar: aiohttp's jar logged a cookie it could not parse, key and all."""
    server, url = await _answering(
        lambda key: (
            b"HTTP/1.1 200 OK\r\nSet-Cookie: %s,x=1\r\n"
            b"Content-Length: 28\r\n\r\n" % key + b'{"data": {"id": "acc_1"}}   '
        )
    )
    caplog.set_level(logging.DEBUG)
    async with (
        server,
        SequenceClient(
            API_KEY, base_url=url.replace("127.0.0.1", "localhost"), max_retries=0
        ) as client,
    ):
        with contextlib.suppress(SequenceError):
            await client.accounts.get("acc_1")

    assert API_KEY not in caplog.text
