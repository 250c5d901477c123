"""
Tests of the client's request path: headers, retries, errors, outcomes.

The request path is tested at its seam, the ``FakeTransport``: the exact
``Request`` each call builds, and canned answers or failures. The client's
own settings run against the fake server over loopback. aioresponses is kept
for what the real aiohttp transport does: mapping aiohttp's failures, putting
requests on the wire, proxies, and owning or borrowing the session.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import logging
import re
import time
import traceback
import uuid
import warnings
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses as Aioresponses  # noqa: N812
from yarl import URL

from sequence_async import RetryPolicy, SequenceClient, errors
from sequence_async._resources import Accounts
from sequence_async._rules import Rules
from sequence_async._secret import Secret
from sequence_async._transfers import Transfers
from sequence_async._wire import Request, Response
from sequence_async.testing import FakeSequence

from .conftest import (
    API_KEY,
    BASE_URL,
    NO_WAIT_RETRIES,
    FakeTransport,
    Wire,
    api_error,
    envelope,
    status,
    url,
)


def sent(mock: Aioresponses, method: str, path: str) -> list[dict[str, Any]]:
    """
    The kwargs of every request aiohttp was asked to send to one path.
    """
    return [
        call.kwargs
        for (m, u), calls in mock.requests.items()
        if m == method and u.path == URL(url(path)).path
        for call in calls
    ]


def body_of(request: Request) -> Any:
    """
    The decoded JSON body of *request*.
    """
    assert request.body is not None
    return json.loads(request.body)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """
    Every retry sleep asked for, in order; none of them waits.
    """
    asked: list[float] = []
    real_sleep = asyncio.sleep

    async def no_sleep(delay: float) -> None:
        asked.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    return asked


# -- the request each call builds ---------------------------------------------


async def test_a_get_carries_the_key_and_a_uuid4_request_id(wire: Wire) -> None:
    """A GET carries the key (ApiKey or Bearer) and a uuid4 request id."""
    transport = FakeTransport(wire.ok({"id": "a1"}))

    await Accounts(wire.requester(transport)).get("a1")

    (request,) = transport.sent
    headers = request.headers
    assert ("GET", "/accounts/a1", None, None, None) == (
        request.method,
        request.path,
        request.params,
        request.body,
        request.idempotency_key,
    )
    assert wire.authorization == headers["Authorization"]
    assert 4 == uuid.UUID(headers["X-Request-ID"]).version
    assert re.fullmatch(r"[0-9a-f-]{36}", headers["X-Request-ID"])
    assert "Idempotency-Key" not in headers
    assert "Content-Type" not in headers


async def test_caller_request_id_is_sent(wire: Wire) -> None:
    """request_id= is sent as X-Request-ID."""
    transport = FakeTransport(wire.ok({"id": "r1"}))

    await Rules(wire.requester(transport)).get("r1", request_id="my-req")

    (request,) = transport.sent
    assert ("/rules/r1", "my-req") == (request.path, request.headers["X-Request-ID"])


async def test_trigger_sends_caller_key_and_amount(wire: Wire) -> None:
    """The caller's key and manual_execute_amount are sent as given."""
    transport = FakeTransport(wire.ok({"execution_id": "rex_1"}))

    execution = await Rules(wire.requester(transport)).trigger(
        "r1", manual_execute_amount=150_000, idempotency_key="order-42"
    )

    (request,) = transport.sent
    assert ("POST", "/rules/r1/trigger") == (request.method, request.path)
    assert {"manual_execute_amount": 150_000} == wire.body_of(request, "trigger_rule")
    assert "application/json" == request.headers["Content-Type"]
    assert "order-42" == request.headers["Idempotency-Key"]
    assert "order-42" == request.idempotency_key
    assert "order-42" == execution.idempotency_key


async def test_trigger_sends_empty_object_without_amount(wire: Wire) -> None:
    """A trigger without amount sends {}, with a new uuid4 key it keeps."""
    transport = FakeTransport(wire.ok({"execution_id": "rex_1"}))

    execution = await Rules(wire.requester(transport)).trigger("r1")

    (request,) = transport.sent
    assert b"{}" == request.body
    assert execution.idempotency_key == request.headers["Idempotency-Key"]
    assert 4 == uuid.UUID(request.headers["Idempotency-Key"]).version


async def test_transfers_create_sends_the_documented_body_with_a_key(
    wire: Wire,
) -> None:
    """transfers.create sends the documented body with an idempotency key.

    The exact snake_case bytes are ``test_the_request_is_put_on_the_wire_as_built``'s
    (api-v1) and ``test_platform.py``'s (camelCase).
    """
    transport = FakeTransport(
        wire.ok({"id": "txr_1", "amount_in_cents": 500, "status": "processing"}, 201)
    )

    transfer = await Transfers(wire.requester(transport)).create(
        source_account_id="acc_1",
        destination_account_id="acc_2",
        amount_in_cents=500,
        description="rent",
    )

    (request,) = transport.sent
    assert ("POST", "/transfers") == (request.method, request.path)
    assert {
        "source_account_id": "acc_1",
        "destination_account_id": "acc_2",
        "amount_in_cents": 500,
        "description": "rent",
    } == wire.body_of(request, "create_transfer")
    assert request.headers["Idempotency-Key"]
    assert request.idempotency_key == request.headers["Idempotency-Key"]
    assert ("txr_1", 500, "req_srv_1") == (
        transfer.id,
        transfer.amount_in_cents,
        transfer.request_id,
    )


async def test_ids_are_escaped_in_paths(wire: Wire) -> None:
    """An id with a slash cannot reach another path."""
    transport = FakeTransport(wire.ok({"id": "a/../b"}))

    await Rules(wire.requester(transport)).get("a/../b")

    assert ["/rules/a%2F..%2Fb"] == [r.path for r in transport.sent]


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"manual_execute_amount": -1}, ValueError),
        ({"manual_execute_amount": 1.5}, TypeError),
        ({"manual_execute_amount": True}, TypeError),
        ({"idempotency_key": ""}, ValueError),
        ({"idempotency_key": "a b"}, ValueError),
    ],
)
async def test_bad_trigger_input_fails_before_sending(
    kwargs: dict[str, object],
    exc: type[Exception],
    wire: Wire,
) -> None:
    """Bad amounts and keys raise locally; nothing is sent."""
    transport = FakeTransport(wire.ok({"execution_id": "rex_1"}))

    with pytest.raises(exc):
        await Rules(wire.requester(transport)).trigger("r1", **kwargs)  # type: ignore[arg-type]

    assert [] == transport.sent


@pytest.mark.parametrize("request_id", ["", "has space", "x" * 129, "line\nbreak"])
async def test_bad_request_ids_fail_before_sending(request_id: str, wire: Wire) -> None:
    """A request id that is not 1 to 128 printable ASCII characters raises locally."""
    transport = FakeTransport(wire.listing([]))

    with pytest.raises(ValueError, match="request_id"):
        await Accounts(wire.requester(transport)).list(request_id=request_id)

    assert [] == transport.sent


async def test_empty_rule_id_fails_before_sending(wire: Wire) -> None:
    """An empty id is a ValueError, not a request to /rules//trigger."""
    transport = FakeTransport(wire.ok({"execution_id": "rex_1"}))

    with pytest.raises(ValueError, match="rule_id"):
        await Rules(wire.requester(transport)).trigger("")

    assert [] == transport.sent


# -- retries --------------------------------------------------------------------


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504])
async def test_retryable_statuses_are_retried(code: int, wire: Wire) -> None:
    """Each retryable status is retried with the same request; the retry succeeds."""
    transport = FakeTransport(
        status(code, headers={"Retry-After": "0"}), wire.ok({"id": "a1"})
    )

    account = await Accounts(wire.requester(transport)).get("a1")

    first, second = transport.sent
    assert "a1" == account.id
    assert first is second


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 422])
async def test_client_errors_are_not_retried(code: int, wire: Wire) -> None:
    """4xx other than 408 and 429 fail at once, with the API's code and message."""
    transport = FakeTransport(api_error(code, "c", "m"))

    with pytest.raises(errors.APIStatusError) as info:
        await Accounts(wire.requester(transport)).get("a1")

    assert (code, "c", "m") == (info.value.status, info.value.code, info.value.message)
    assert 1 == len(transport.sent)


async def test_retries_run_out(wire: Wire) -> None:
    """After max_retries, the last error is raised (1 + 3 attempts)."""
    transport = FakeTransport(status(502), status(503))

    with pytest.raises(errors.ServerError) as info:
        await Accounts(wire.requester(transport)).get("a1")

    assert 503 == info.value.status
    assert 4 == len(transport.sent)


async def test_connection_errors_are_retried(wire: Wire) -> None:
    """A transport's APIConnectionError is retried, and the last one raised."""
    transport = FakeTransport(errors.APIConnectionError("reset"))

    with pytest.raises(errors.APIConnectionError, match="reset"):
        await Accounts(wire.requester(transport)).get("a1")

    assert 4 == len(transport.sent)


async def test_max_retries_zero_sends_once(wire: Wire) -> None:
    """A policy of max_retries=0 turns retries off."""
    transport = FakeTransport(status(503))

    with pytest.raises(errors.ServerError):
        await Accounts(
            wire.requester(transport, retry=RetryPolicy(max_retries=0))
        ).list()

    assert 1 == len(transport.sent)


async def test_trigger_reuses_its_idempotency_key_and_request_id_on_retries(
    wire: Wire,
) -> None:
    """One logical trigger sends one key and one request id on every attempt."""
    transport = FakeTransport(
        status(503),
        errors.APIConnectionError("server disconnected"),
        wire.ok({"execution_id": "rex_1"}, 202),
    )

    execution = await Rules(wire.requester(transport)).trigger("r1")

    keys = {r.headers["Idempotency-Key"] for r in transport.sent}
    ids = {r.headers["X-Request-ID"] for r in transport.sent}
    assert 3 == len(transport.sent)
    assert {execution.idempotency_key} == keys
    assert 1 == len(ids)
    assert {b"{}"} == {r.body for r in transport.sent}
    assert ("rex_1", "r1", "req_srv_1") == (
        execution.id,
        execution.rule_id,
        execution.request_id,
    )


async def test_retry_after_seconds_is_honoured(sleeps: list[float], wire: Wire) -> None:
    """A 429's Retry-After sets the sleep before the retry."""
    transport = FakeTransport(
        status(429, headers={"Retry-After": "2"}), wire.listing([])
    )

    await Accounts(wire.requester(transport, retry=RetryPolicy())).list()

    assert [2.0] == sleeps
    assert 2 == len(transport.sent)


async def test_retry_after_http_date_in_the_past_retries_at_once(
    sleeps: list[float],
    wire: Wire,
) -> None:
    """Retry-After as an HTTP date in the past retries at once, not after backoff."""
    transport = FakeTransport(
        status(503),
        status(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        wire.listing([]),
    )
    slow = RetryPolicy(max_retries=3, wait_initial=30.0, wait_max=30.0)

    assert [] == await Accounts(wire.requester(transport, retry=slow)).list()

    backoff, after_429 = sleeps
    assert 15.0 <= backoff <= 30.0
    assert 0.0 == after_429


async def test_retry_after_beyond_the_deadline_raises_at_once(wire: Wire) -> None:
    """When Retry-After would pass the caller's deadline, the 429 is raised now."""
    transport = FakeTransport(status(429, headers={"Retry-After": "30"}))

    with pytest.raises(errors.RateLimitError) as info:
        await wire.requester(transport).request(
            "GET", "/accounts", deadline=time.monotonic() + 5
        )

    assert 30.0 == info.value.retry_after
    assert 1 == len(transport.sent)


async def test_cancellation_is_never_retried_or_swallowed(wire: Wire) -> None:
    """Cancelling a request during its backoff ends it with CancelledError."""
    answered = asyncio.Event()

    def unavailable(_: Request) -> Response:
        answered.set()
        return status(503)

    transport = FakeTransport(unavailable)
    slow = wire.requester(
        transport, retry=RetryPolicy(max_retries=3, wait_initial=30.0, wait_max=30.0)
    )
    task = asyncio.create_task(Accounts(slow).list())
    # The task runs on from the answer into its 15-30 s backoff before this wakes.
    await answered.wait()

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert 1 == len(transport.sent)


# -- outcome unknown ------------------------------------------------------------


async def test_trigger_answer_without_execution_id_keeps_the_key(wire: Wire) -> None:
    """A 2xx trigger answer without execution_id: outcome unknown, with the key."""
    transport = FakeTransport(wire.ok({"id": 3}))

    with pytest.raises(errors.OutcomeUnknownError) as info:
        await Rules(wire.requester(transport)).trigger("r1", idempotency_key="k-lost")

    assert "k-lost" == info.value.idempotency_key
    assert isinstance(info.value.__cause__, errors.ResponseValidationError)
    assert 1 == len(transport.sent)


async def test_lost_trigger_responses_raise_outcome_unknown(wire: Wire) -> None:
    """A trigger whose retries all fail on the network may have run: outcome unknown."""
    transport = FakeTransport(errors.APIConnectionError("server disconnected"))

    with pytest.raises(errors.OutcomeUnknownError) as info:
        await Rules(wire.requester(transport)).trigger("r1", idempotency_key="k-1")

    assert "k-1" == info.value.idempotency_key
    assert "k-1" in str(info.value)
    assert isinstance(info.value.__cause__, errors.APIConnectionError)
    assert 4 == len(transport.sent)


async def test_conflict_after_a_lost_trigger_is_outcome_unknown(wire: Wire) -> None:
    """A 409 after a lost attempt means the first is still running: outcome unknown."""
    transport = FakeTransport(
        errors.APITimeoutError("timed out"),
        wire.error(409, "request_in_progress"),
    )

    with pytest.raises(errors.OutcomeUnknownError) as info:
        await Rules(wire.requester(transport)).trigger("r1", idempotency_key="k-2")

    assert "k-2" == info.value.idempotency_key
    assert isinstance(info.value.__cause__, errors.ConflictError)
    assert 2 == len(transport.sent)


async def test_a_plain_rejected_trigger_is_not_outcome_unknown(wire: Wire) -> None:
    """A 403 on the first attempt is a PermissionDeniedError: nothing ran."""
    transport = FakeTransport(wire.error(403, "forbidden", "no"))

    with pytest.raises(errors.PermissionDeniedError) as info:
        await Rules(wire.requester(transport)).trigger("r1", idempotency_key="k-3")

    assert errors.PermissionDeniedError is type(info.value)
    assert "k-3" == info.value.idempotency_key
    assert 1 == len(transport.sent)


# -- logs and secrets -----------------------------------------------------------


async def test_api_key_never_appears_in_repr_errors_or_logs(
    client: SequenceClient,
    caplog: pytest.LogCaptureFixture,
    wire: Wire,
) -> None:
    """The key is absent from reprs, log lines, errors and traceback locals."""
    caplog.set_level(logging.DEBUG, logger="sequence_async")
    transport = FakeTransport(
        status(503), wire.error(401, "unauthorized", "Missing or invalid API key.")
    )
    request = wire.requester(transport)

    with pytest.raises(errors.AuthenticationError) as info:
        await Accounts(request).list()

    with_locals = "".join(
        traceback.TracebackException.from_exception(
            info.value, capture_locals=True
        ).format()
    )
    seen = [
        repr(client),
        repr(request),
        repr(transport.sent),
        str(info.value),
        repr(info.value),
        caplog.text,
        with_locals,
    ]
    assert wire.authorization == transport.sent[0].headers["Authorization"]
    assert caplog.records
    assert not [s for s in seen if API_KEY in s]


async def test_debug_log_lines_carry_method_path_status_attempt_and_request_id(
    caplog: pytest.LogCaptureFixture,
    wire: Wire,
) -> None:
    """One DEBUG line per attempt says what was sent and what came back."""
    caplog.set_level(logging.DEBUG, logger="sequence_async")
    transport = FakeTransport(wire.listing([]))

    await Accounts(wire.requester(transport)).list(request_id="rid-9")

    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert re.fullmatch(
        r"GET /accounts -> 200 in [\d.]+ ms \(attempt 1, request id rid-9\)", line
    )


# -- the client's settings, against the fake server -----------------------------


async def test_client_max_retries_zero_sends_once(server: FakeSequence) -> None:
    """SequenceClient(max_retries=0) turns retries off."""
    server.set_faults("list_accounts", errors_next=2)

    async with SequenceClient(server.api_key, base_url=server.url, max_retries=0) as c:
        with pytest.raises(errors.ServerError):
            await c.accounts.list()

    assert 1 == server.counts["list_accounts"]


async def test_with_options_shares_the_session(
    live: SequenceClient, server: FakeSequence
) -> None:
    """A view with other options sends through the same client and closes with it."""
    server.set_faults("list_accounts", errors_next=1)
    view = live.with_options(timeout=5.0, max_retries=0)

    with pytest.raises(errors.ServerError):
        await view.accounts.list()
    await live.accounts.list()
    await live.aclose()

    assert 2 == server.counts["list_accounts"]
    assert view.closed
    with pytest.raises(errors.ClientClosedError):
        await view.accounts.list()
    assert 2 == server.counts["list_accounts"]


async def test_key_and_base_url_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, server: FakeSequence
) -> None:
    """SEQUENCE_API_KEY and SEQUENCE_BASE_URL are used when not passed."""
    assert server.url is not None
    monkeypatch.setenv("SEQUENCE_API_KEY", server.api_key)
    monkeypatch.setenv("SEQUENCE_BASE_URL", server.url + "/")

    async with SequenceClient(retry=NO_WAIT_RETRIES) as c:
        await c.accounts.list()  # the server refuses any other key (401)

    assert server.url == c.base_url
    assert 1 == server.counts["list_accounts"]
    assert {200: 1} == dict(server.statuses)


def test_missing_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key and no SEQUENCE_API_KEY raises ValueError naming both."""
    monkeypatch.delenv("SEQUENCE_API_KEY", raising=False)

    with pytest.raises(ValueError, match="SEQUENCE_API_KEY"):
        SequenceClient()


@pytest.mark.parametrize("key", ["", " ", "   "])
def test_a_blank_api_key_is_no_key(key: str) -> None:
    """A key of spaces is refused like no key (it made every message unreadable)."""
    with pytest.raises(ValueError, match="no API key"):
        SequenceClient(key)


def test_redacting_with_no_key_leaves_the_text_alone() -> None:
    """A secret with an empty token never rewrites messages."""
    assert "abc" == Secret("ApiKey ").redact("abc")
    assert "x <redacted> y" == Secret("ApiKey sk_1").redact("x sk_1 y")
    # A key pasted with a trailing space is still sent, and still redacted.
    assert "x <redacted> y" == Secret("ApiKey sk_1 ").redact("x sk_1 y")


async def test_closed_client_raises_clear_error(client: SequenceClient) -> None:
    """A call after aclose() raises ClientClosedError."""
    await client.aclose()

    with pytest.raises(errors.ClientClosedError, match="closed"):
        await client.accounts.list()
    with pytest.raises(errors.ClientClosedError):
        async with client:
            pass
    assert client.closed


# -- the aiohttp transport (aioresponses) ---------------------------------------


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (
            aiohttp.ClientConnectionError("reset"),
            (errors.APIConnectionError, True, "failed: ClientConnectionError: reset"),
        ),
        (
            aiohttp.ServerDisconnectedError(),
            (errors.APIConnectionError, True, "failed: ServerDisconnectedError"),
        ),
        (TimeoutError(), (errors.APITimeoutError, True, "timed out after 30s")),
        (
            aiohttp.ConnectionTimeoutError(),
            (errors.APITimeoutError, False, "could not connect within 30s"),
        ),
    ],
)
async def test_aiohttp_failures_become_connection_errors_and_are_retried(
    client: SequenceClient,
    mock_http: Aioresponses,
    failure: BaseException,
    expected: tuple[type[errors.APIConnectionError], bool, str],
) -> None:
    """Aiohttp's failures and timeouts become typed errors saying if sent, retried."""
    kind, was_sent, message = expected
    mock_http.get(url("/accounts/a1"), exception=failure, repeat=True)

    with pytest.raises(errors.APIConnectionError, match=message) as info:
        await client.accounts.get("a1")

    assert kind is type(info.value)
    assert was_sent is info.value.sent
    assert info.value.request_id
    assert 4 == len(sent(mock_http, "GET", "/accounts/a1"))


async def test_the_request_is_put_on_the_wire_as_built(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """Method, URL and query, headers and body reach aiohttp as built; no redirects."""
    mock_http.post(
        url("/rules/a%2F..%2Fb/trigger"), payload=envelope({"execution_id": "rex_1"})
    )
    mock_http.get(
        url("/transfers?account_id=acc_1&first=100"), payload=envelope([]), repeat=True
    )

    execution = await client.rules.trigger(
        "a/../b",
        manual_execute_amount=5,
        idempotency_key="order-7",
        request_id="rid-7",
    )
    [t async for t in client.transfers.list(account_id="acc_1")]

    ((post_url, (post,)), (get_url, (get,))) = [
        (u, [c.kwargs for c in calls]) for (_, u), calls in mock_http.requests.items()
    ]
    assert "/api/v1/rules/a%2F..%2Fb/trigger" == post_url.raw_path
    assert b'{"manual_execute_amount":5}' == post["data"]
    headers = post["headers"]
    assert (f"ApiKey {API_KEY}", "rid-7", "order-7", "application/json") == (
        headers["Authorization"],
        headers["X-Request-ID"],
        headers["Idempotency-Key"],
        headers["Content-Type"],
    )
    assert (False, False) == (post["allow_redirects"], post["auto_decompress"])
    assert "order-7" == execution.idempotency_key
    assert URL(url("/transfers?account_id=acc_1&first=100")) == get_url
    assert {"account_id": "acc_1", "first": "100"} == get["params"]
    assert get["data"] is None


def proxy_credentials(kwargs: dict[str, Any]) -> tuple[str, str] | None:
    """
    The proxy login and password aiohttp was given, as a header.
    """
    assert kwargs.get("proxy_auth") is None  # deprecated in aiohttp 3.14
    header = (kwargs.get("proxy_headers") or {}).get("Proxy-Authorization")
    if header is None:
        return None
    login, _, password = base64.b64decode(header.split()[1]).decode().partition(":")
    return login, password


@pytest.mark.parametrize(
    ("proxy_env", "no_proxy", "expected"),
    [
        ("http://proxy.test:3128", "", (URL("http://proxy.test:3128"), None)),
        (
            "http://user:p%40ss@proxy.test:3128",
            "",
            (URL("http://proxy.test:3128"), ("user", "p@ss")),
        ),
        ("http://proxy.test:3128", "api.test", (None, None)),
    ],
)
async def test_the_proxy_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
    mock_http: Aioresponses,
    proxy_env: str,
    no_proxy: str,
    expected: tuple[URL | None, tuple[str, str] | None],
) -> None:
    """HTTPS_PROXY is used, credentials split off, unless NO_PROXY names the host."""
    for name in ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy_env)
    monkeypatch.setenv("NO_PROXY", no_proxy)
    mock_http.get(url("/accounts"), payload=envelope([]))

    async with SequenceClient(API_KEY, base_url=BASE_URL) as c:
        await c.accounts.list()

    (kwargs,) = sent(mock_http, "GET", "/accounts")
    assert expected == (kwargs["proxy"], proxy_credentials(kwargs))


@pytest.mark.parametrize("borrowed", [False, True], ids=["own session", "caller's"])
async def test_every_request_carries_the_user_agent_and_accepted_encodings(
    server: FakeSequence, borrowed: bool
) -> None:
    """User-Agent, Accept and Accept-Encoding reach the server on either session.

    On a session the client makes they are the session's own headers; on a
    caller's session (whose own defaults lose to them) they go per request.
    A caller's default headers of the same names, in any case, lose too.
    """
    async with aiohttp.ClientSession(
        headers={"User-Agent": "callers-app/1", "Accept": "text/html"}
    ) as session:
        for default_headers in (
            {"X-Team": "payroll", "user-agent": "theirs/1", "accept": "text/html"},
            None,
        ):
            async with SequenceClient(
                server.api_key,
                api=server.api,
                base_url=server.url,
                session=session if borrowed else None,
                default_headers=default_headers,
            ) as c:
                await c.rules.trigger(server.rule_ids[0])

    for received in server.received:
        assert received.headers["User-Agent"].startswith("sequence-async/")
        assert ("application/json", "gzip, deflate") == (
            received.headers["Accept"],
            received.headers["Accept-Encoding"],
        )
    assert ["payroll", None] == [r.headers.get("X-Team") for r in server.received]


async def test_borrowed_session_is_not_closed(mock_http: Aioresponses) -> None:
    """A caller's session stays open after the client closes."""
    mock_http.get(url("/accounts"), payload=envelope([]))
    async with aiohttp.ClientSession() as session:
        async with SequenceClient(API_KEY, base_url=BASE_URL, session=session) as c:
            await c.accounts.list()

        assert not session.closed
    assert 1 == len(sent(mock_http, "GET", "/accounts"))


async def test_a_callers_session_closed_first_is_a_typed_error(
    server: FakeSequence,
) -> None:
    """APIConnectionError (not sent), not aiohttp's bare RuntimeError."""
    session = aiohttp.ClientSession()
    await session.close()
    async with SequenceClient(
        server.api_key,
        api=server.api,
        base_url=server.url,
        session=session,
        max_retries=0,
    ) as c:
        with pytest.raises(errors.APIConnectionError, match="session= is closed") as e:
            await c.rules.trigger(server.rule_ids[0])

    assert not e.value.sent

    assert [] == server.executions()


async def test_owned_session_is_closed(mock_http: Aioresponses) -> None:
    """The session the client made is closed by aclose()."""
    mock_http.get(url("/accounts"), payload=envelope([]))
    c = SequenceClient(API_KEY, base_url=BASE_URL)
    await c.accounts.list()

    await c.aclose()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an unclosed session warns when collected
        gc.collect()

    assert c.closed
