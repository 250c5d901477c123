"""
Tests of the client's request path with aioresponses: headers, retries, errors.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import re
import time
import traceback
import warnings
from typing import Any

import aiohttp
import pytest
from aioresponses import CallbackResult
from aioresponses import aioresponses as Aioresponses  # noqa: N812
from yarl import URL

from sequence_async import RetryPolicy, SequenceClient, errors

from .conftest import (
    API_KEY,
    BASE_URL,
    FakeTransport,
    envelope,
    requester,
    status,
    url,
)


def sent(mock: Aioresponses, method: str, path: str) -> list[dict[str, Any]]:
    """
    The kwargs of every request sent to one path.
    """
    return [
        call.kwargs
        for (m, u), calls in mock.requests.items()
        if m == method and u.path == URL(url(path)).path
        for call in calls
    ]


async def test_headers_of_a_get(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """A GET carries the ApiKey header, a uuid4 request id and the user agent."""
    mock_http.get(url("/accounts"), payload=envelope([]))

    await client.accounts.list()

    (kwargs,) = sent(mock_http, "GET", "/accounts")
    headers = kwargs["headers"]
    assert f"ApiKey {API_KEY}" == headers["Authorization"]
    assert re.fullmatch(r"[0-9a-f-]{36}", headers["X-Request-ID"])
    assert headers["User-Agent"].startswith("sequence-async/")
    assert "Idempotency-Key" not in headers


async def test_caller_request_id_is_sent(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """request_id= is sent as X-Request-ID."""
    mock_http.get(url("/rules/r1"), payload=envelope({"id": "r1"}))

    await client.rules.get("r1", request_id="my-req")

    (kwargs,) = sent(mock_http, "GET", "/rules/r1")
    assert "my-req" == kwargs["headers"]["X-Request-ID"]


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_retryable_statuses_are_retried(
    client: SequenceClient, mock_http: Aioresponses, status: int
) -> None:
    """Each retryable status is retried, and the retry succeeds."""
    mock_http.get(url("/accounts/a1"), status=status, headers={"Retry-After": "0"})
    mock_http.get(url("/accounts/a1"), payload=envelope({"id": "a1"}))

    account = await client.accounts.get("a1")

    assert "a1" == account.id
    assert 2 == len(sent(mock_http, "GET", "/accounts/a1"))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_client_errors_are_not_retried(
    client: SequenceClient, mock_http: Aioresponses, status: int
) -> None:
    """4xx other than 408 and 429 fail at once."""
    mock_http.get(
        url("/accounts/a1"),
        status=status,
        payload={"error": {"code": "c", "message": "m"}},
    )

    with pytest.raises(errors.APIStatusError) as info:
        await client.accounts.get("a1")

    assert status == info.value.status
    assert 1 == len(sent(mock_http, "GET", "/accounts/a1"))


async def test_retries_run_out(client: SequenceClient, mock_http: Aioresponses) -> None:
    """After max_retries, the last error is raised (1 + 3 attempts)."""
    mock_http.get(url("/accounts/a1"), status=503, repeat=True)

    with pytest.raises(errors.ServerError):
        await client.accounts.get("a1")

    assert 4 == len(sent(mock_http, "GET", "/accounts/a1"))


async def test_connection_errors_are_retried_and_mapped(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """Aiohttp errors become APIConnectionError, and are retried."""
    mock_http.get(
        url("/accounts/a1"),
        exception=aiohttp.ClientConnectionError("reset"),
        repeat=True,
    )

    with pytest.raises(errors.APIConnectionError, match="reset"):
        await client.accounts.get("a1")

    assert 4 == len(sent(mock_http, "GET", "/accounts/a1"))


async def test_timeouts_are_mapped(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """A timeout becomes APITimeoutError (a kind of APIConnectionError)."""
    mock_http.get(url("/accounts/a1"), exception=TimeoutError(), repeat=True)

    with pytest.raises(errors.APITimeoutError):
        await client.accounts.get("a1")


async def test_trigger_reuses_its_idempotency_key_and_request_id_on_retries(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """One logical trigger sends one key and one request id on every attempt."""
    mock_http.post(url("/rules/r1/trigger"), status=503)
    mock_http.post(
        url("/rules/r1/trigger"), exception=aiohttp.ServerDisconnectedError()
    )
    mock_http.post(
        url("/rules/r1/trigger"),
        status=202,
        payload=envelope({"execution_id": "rex_1"}),
    )

    execution = await client.rules.trigger("r1")

    calls = sent(mock_http, "POST", "/rules/r1/trigger")
    keys = {c["headers"]["Idempotency-Key"] for c in calls}
    ids = {c["headers"]["X-Request-ID"] for c in calls}
    assert 3 == len(calls)
    assert {execution.idempotency_key} == keys
    assert 1 == len(ids)
    assert ("rex_1", "r1", "req_srv_1") == (
        execution.id,
        execution.rule_id,
        execution.request_id,
    )


async def test_trigger_sends_caller_key_and_amount(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """The caller's key and manual_execute_amount are sent as given."""
    mock_http.post(
        url("/rules/r1/trigger"), payload=envelope({"execution_id": "rex_1"})
    )

    execution = await client.rules.trigger(
        "r1", manual_execute_amount=150_000, idempotency_key="order-42"
    )

    (call,) = sent(mock_http, "POST", "/rules/r1/trigger")
    assert b'{"manual_execute_amount":150000}' == call["data"]
    assert "order-42" == call["headers"]["Idempotency-Key"]
    assert "order-42" == execution.idempotency_key


async def test_trigger_sends_empty_object_without_amount(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """A trigger without amount sends {}."""
    mock_http.post(
        url("/rules/r1/trigger"), payload=envelope({"execution_id": "rex_1"})
    )

    await client.rules.trigger("r1")

    (call,) = sent(mock_http, "POST", "/rules/r1/trigger")
    assert b"{}" == call["data"]


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
    client: SequenceClient,
    mock_http: Aioresponses,
    kwargs: dict[str, object],
    exc: type[Exception],
) -> None:
    """Bad amounts and keys raise locally; nothing is sent."""
    with pytest.raises(exc):
        await client.rules.trigger("r1", **kwargs)  # type: ignore[arg-type]

    assert {} == mock_http.requests


@pytest.mark.parametrize("request_id", ["", "has space", "x" * 129, "line\nbreak"])
async def test_bad_request_ids_fail_before_sending(
    client: SequenceClient, mock_http: Aioresponses, request_id: str
) -> None:
    """A request id that is not 1 to 128 printable ASCII characters raises locally."""
    with pytest.raises(ValueError, match="request_id"):
        await client.accounts.list(request_id=request_id)

    assert {} == mock_http.requests


async def test_empty_rule_id_fails_before_sending(client: SequenceClient) -> None:
    """An empty id is a ValueError, not a request to /rules//trigger."""
    with pytest.raises(ValueError, match="rule_id"):
        await client.rules.trigger("")


async def test_ids_are_escaped_in_paths(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """An id with a slash cannot reach another path."""
    mock_http.get(url("/rules/a%2F..%2Fb"), payload=envelope({"id": "x"}))

    await client.rules.get("a/../b")

    assert 1 == len(mock_http.requests)


async def test_trigger_answer_without_execution_id_keeps_the_key(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """A 2xx trigger answer without execution_id: outcome unknown, with the key."""
    mock_http.post(url("/rules/r1/trigger"), payload=envelope({"id": 3}))

    with pytest.raises(errors.OutcomeUnknownError) as info:
        await client.rules.trigger("r1", idempotency_key="k-lost")

    assert "k-lost" == info.value.idempotency_key
    assert isinstance(info.value.__cause__, errors.ResponseValidationError)


async def test_lost_trigger_responses_raise_outcome_unknown(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """A trigger whose retries all fail on the network may have run: outcome unknown."""
    mock_http.post(
        url("/rules/r1/trigger"),
        exception=aiohttp.ServerDisconnectedError(),
        repeat=True,
    )

    with pytest.raises(errors.OutcomeUnknownError) as info:
        await client.rules.trigger("r1", idempotency_key="k-1")

    assert "k-1" == info.value.idempotency_key
    assert "k-1" in str(info.value)


async def test_conflict_after_a_lost_trigger_is_outcome_unknown(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """A 409 after a lost attempt means the first is still running: outcome unknown."""
    mock_http.post(url("/rules/r1/trigger"), exception=TimeoutError())
    mock_http.post(
        url("/rules/r1/trigger"),
        status=409,
        payload={"error": {"code": "request_in_progress", "message": "m"}},
    )

    with pytest.raises(errors.OutcomeUnknownError) as info:
        await client.rules.trigger("r1", idempotency_key="k-2")

    assert isinstance(info.value.__cause__, errors.ConflictError)


async def test_a_plain_rejected_trigger_is_not_outcome_unknown(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """A 403 on the first attempt is a PermissionDeniedError: nothing ran."""
    mock_http.post(
        url("/rules/r1/trigger"),
        status=403,
        payload={"error": {"code": "forbidden", "message": "no"}},
    )

    with pytest.raises(errors.PermissionDeniedError) as info:
        await client.rules.trigger("r1", idempotency_key="k-3")

    assert "k-3" == info.value.idempotency_key


async def test_retry_after_seconds_is_honoured(mock_http: Aioresponses) -> None:
    """A 429's Retry-After sets the sleep before the retry."""
    sleeps: list[float] = []
    mock_http.get(url("/accounts"), status=429, headers={"Retry-After": "2"})
    mock_http.get(url("/accounts"), payload=envelope([]))
    real_sleep = asyncio.sleep

    async def fake_sleep(delay: float) -> None:
        sleeps.append(delay)
        await real_sleep(0)

    async with SequenceClient(API_KEY, base_url=BASE_URL) as c:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(asyncio, "sleep", fake_sleep)
            await c.accounts.list()

    assert [2.0] == sleeps


async def test_retry_after_http_date_is_honoured(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """Retry-After as an HTTP date in the past retries at once."""
    mock_http.get(url("/accounts"), status=503)
    mock_http.get(
        url("/accounts"),
        status=429,
        headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"},
    )
    mock_http.get(url("/accounts"), payload=envelope([]))

    assert [] == await client.accounts.list()


async def test_retry_after_beyond_the_deadline_raises_at_once() -> None:
    """When Retry-After would pass the caller's deadline, the 429 is raised now."""
    transport = FakeTransport(status(429, headers={"Retry-After": "30"}))

    with pytest.raises(errors.RateLimitError) as info:
        await requester(transport).request(
            "GET", "/accounts", deadline=time.monotonic() + 5
        )

    assert 30.0 == info.value.retry_after
    assert 1 == len(transport.sent)


async def test_max_retries_zero_sends_once(mock_http: Aioresponses) -> None:
    """max_retries=0 turns retries off."""
    mock_http.get(url("/accounts"), status=503, repeat=True)

    async with SequenceClient(API_KEY, base_url=BASE_URL, max_retries=0) as c:
        with pytest.raises(errors.ServerError):
            await c.accounts.list()

    assert 1 == len(sent(mock_http, "GET", "/accounts"))


async def test_with_options_shares_the_session(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """A view with other options sends through the same session and stays usable."""
    mock_http.get(url("/accounts"), status=503)
    mock_http.get(url("/accounts"), payload=envelope([]), repeat=True)
    view = client.with_options(timeout=5.0, max_retries=0)

    with pytest.raises(errors.ServerError):
        await view.accounts.list()
    await client.accounts.list()
    await client.aclose()

    assert view.closed
    with pytest.raises(errors.ClientClosedError):
        await view.accounts.list()


async def test_cancellation_is_never_retried_or_swallowed(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """Cancelling a request during its backoff ends it with CancelledError."""
    slow = client.with_options(
        retry=RetryPolicy(max_retries=3, wait_initial=30.0, wait_max=30.0)
    )
    mock_http.get(url("/accounts"), status=503, repeat=True)
    task = asyncio.create_task(slow.accounts.list())
    while not mock_http.requests:
        await asyncio.sleep(0)
    await asyncio.sleep(0)

    task.cancel()

    with pytest.raises(asyncio.CancelledError):
        await task
    assert 1 == len(sent(mock_http, "GET", "/accounts"))


def test_missing_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key and no SEQUENCE_API_KEY raises ValueError naming both."""
    monkeypatch.delenv("SEQUENCE_API_KEY", raising=False)

    with pytest.raises(ValueError, match="SEQUENCE_API_KEY"):
        SequenceClient()


async def test_key_and_base_url_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, mock_http: Aioresponses
) -> None:
    """SEQUENCE_API_KEY and SEQUENCE_BASE_URL are used when not passed."""
    monkeypatch.setenv("SEQUENCE_API_KEY", "sk_env")
    monkeypatch.setenv("SEQUENCE_BASE_URL", "https://env.test/api/v1/")
    mock_http.get("https://env.test/api/v1/accounts", payload=envelope([]))

    async with SequenceClient() as c:
        await c.accounts.list()

    (kwargs,) = [k.kwargs for calls in mock_http.requests.values() for k in calls]
    assert "ApiKey sk_env" == kwargs["headers"]["Authorization"]


async def test_closed_client_raises_clear_error(client: SequenceClient) -> None:
    """A call after aclose() raises ClientClosedError."""
    await client.aclose()

    with pytest.raises(errors.ClientClosedError, match="closed"):
        await client.accounts.list()
    with pytest.raises(errors.ClientClosedError):
        async with client:
            pass
    assert client.closed


async def test_borrowed_session_is_not_closed(mock_http: Aioresponses) -> None:
    """A caller's session stays open after the client closes."""
    mock_http.get(url("/accounts"), payload=envelope([]))
    async with aiohttp.ClientSession() as session:
        async with SequenceClient(API_KEY, base_url=BASE_URL, session=session) as c:
            await c.accounts.list()

        assert not session.closed


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


async def test_api_key_never_appears_in_repr_errors_or_logs(
    client: SequenceClient, mock_http: Aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    """The key is absent from reprs, log lines, errors and traceback locals."""
    caplog.set_level(logging.DEBUG, logger="sequence_async")
    mock_http.get(url("/accounts"), status=503)
    mock_http.get(
        url("/accounts"),
        status=401,
        payload={
            "error": {"code": "unauthorized", "message": "Missing or invalid API key."}
        },
    )

    with pytest.raises(errors.AuthenticationError) as info:
        await client.accounts.list()

    with_locals = "".join(
        traceback.TracebackException.from_exception(
            info.value, capture_locals=True
        ).format()
    )
    seen = [repr(client), str(info.value), repr(info.value), caplog.text, with_locals]
    assert caplog.records
    assert not [s for s in seen if API_KEY in s]


async def test_debug_log_lines_carry_method_path_status_attempt_and_request_id(
    client: SequenceClient, mock_http: Aioresponses, caplog: pytest.LogCaptureFixture
) -> None:
    """One DEBUG line per attempt says what was sent and what came back."""
    caplog.set_level(logging.DEBUG, logger="sequence_async")
    mock_http.get(url("/accounts"), payload=envelope([]))

    await client.accounts.list(request_id="rid-9")

    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert re.fullmatch(
        r"GET /accounts -> 200 in [\d.]+ ms \(attempt 1, request id rid-9\)", line
    )


async def test_callback_sees_the_json_body(
    client: SequenceClient, mock_http: Aioresponses
) -> None:
    """transfers.create sends the documented body with an idempotency key."""
    seen: dict[str, object] = {}

    def callback(_: URL, **kwargs: object) -> CallbackResult:
        seen.update(kwargs)
        return CallbackResult(
            status=201,
            payload=envelope(
                {"id": "txr_1", "amount_in_cents": 500, "status": "processing"}
            ),
        )

    mock_http.post(url("/transfers"), callback=callback)

    transfer = await client.transfers.create(
        source_account_id="acc_1",
        destination_account_id="acc_2",
        amount_in_cents=500,
        description="rent",
    )

    assert (
        b'{"source_account_id":"acc_1","destination_account_id":"acc_2","amount_in_cents":500,"description":"rent"}'
        == seen["data"]
    )
    assert seen["headers"]["Idempotency-Key"]  # type: ignore[index]
    assert ("txr_1", 500, "req_srv_1") == (
        transfer.id,
        transfer.amount_in_cents,
        transfer.request_id,
    )
