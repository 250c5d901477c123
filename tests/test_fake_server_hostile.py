"""
The fake server under hostile input: it never answers 5xx.

``sequence-async serve`` exposes the server on a port, so garbage bodies,
headers, paths, queries and methods must get a 4xx (JSON where the API
answers JSON), never a 500 or a dropped connection. Requests go as raw bytes
over a socket, so nothing a client library would refuse to send is left out.
"""

from __future__ import annotations

import asyncio
import base64
import json
from urllib.parse import urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sequence_async.testing import (
    DEMO_API_KEY,
    FakeSequence,
    ManualClock,
    Seed,
    demo_seed,
    serve,
)


# Requests are written in api-v1's prefix and auth scheme; send_raw speaks
# Platform's to a Platform server. The POST routes, bodies and headers are
# the same on both, so those tests run on both; paths, queries and methods
# are api-v1's own (test_platform.py has Platform's plain-text 404s).
AUTH = f"Authorization: ApiKey {DEMO_API_KEY}\r\n".encode()


async def send_raw(server: FakeSequence, head: bytes, body: bytes = b"") -> int:
    """
    Send one raw HTTP/1.1 request; return the status the server answered.

    A request the HTTP parser refuses gets aiohttp's own ``HTTP/1.0 400``.
    To a Platform server, *head*'s ``/api/v1`` and ``ApiKey`` are sent as
    ``/platform/v1`` and ``Bearer``.
    """
    assert server.url
    if server.api == "platform-v1":
        head = head.replace(b" /api/v1/", b" /platform/v1/", 1)
        head = head.replace(b"Authorization: ApiKey ", b"Authorization: Bearer ", 1)
    url = urlsplit(server.url)
    assert url.hostname
    assert url.port
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(head + b"Connection: close\r\n\r\n" + body)
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1."), answer[:200]
    return int(status_line.split()[1])


def post(path: bytes, body: bytes, *headers: bytes) -> tuple[bytes, bytes]:
    """
    The head and body of a POST with the demo key.
    """
    length = b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    head = b"POST /api/v1" + path + b" HTTP/1.1\r\nHost: x\r\n" + AUTH + length
    return head + b"".join(headers), body


def get(target: bytes, *headers: bytes) -> bytes:
    """
    The head of a GET of an ``/api/v1`` target with the demo key.
    """
    return (
        b"GET /api/v1" + target + b" HTTP/1.1\r\nHost: x\r\n" + AUTH + b"".join(headers)
    )


JSON = b"Content-Type: application/json\r\n"

NOT_JSON = [b"{", b"\xff\xfe\x00garbage", b"[" * 100_000, b'{"a":' * 50_000]
GARBAGE_BODIES = [
    b"{",
    b"\xff\xfe\x00garbage",
    b"[" * 100_000,
    b'{"a":' * 50_000,
    b"[" * 900 + b"]" * 900,
    b'{"manual_execute_amount": ' + b"9" * 5000 + b"}",
    b'{"manual_execute_amount": NaN}',
    b'{"manual_execute_amount": 1e400}',
    b'{"manual_execute_amount": -Infinity}',
    b'"just a string"',
    b"null",
    b"[]",
    b"",
    b'{"\\ud800": "lone surrogate"}',
]


@pytest.mark.parametrize("body", GARBAGE_BODIES)
@pytest.mark.parametrize(
    "path", [b"/rules/rule_0001/trigger", b"/transfers"], ids=["trigger", "transfer"]
)
async def test_garbage_bodies_never_5xx(
    server: FakeSequence, path: bytes, body: bytes
) -> None:
    """Odd, absurd or missing bodies get an answer below 500."""
    status = await send_raw(server, *post(path, body, JSON))

    assert status < 500, status


@pytest.mark.parametrize("body", NOT_JSON)
async def test_bodies_that_are_not_json_are_400(
    server: FakeSequence, body: bytes
) -> None:
    """Broken, binary or absurdly nested JSON is a 400 invalid_request."""
    status = await send_raw(server, *post(b"/rules/rule_0001/trigger", body, JSON))

    assert 400 == status


@pytest.mark.parametrize("body", GARBAGE_BODIES)
async def test_garbage_bodies_with_an_idempotency_key_never_5xx(
    server: FakeSequence, body: bytes
) -> None:
    """A key does not change that, even when the key's fingerprint is taken."""
    key = b"Idempotency-Key: k1\r\n"
    status = await send_raw(server, *post(b"/rules/rule_0001/trigger", body, key))

    assert status < 500, status


@pytest.mark.parametrize(
    "header",
    [
        b"Content-Type: application/json; charset=no-such-charset\r\n",
        b"Content-Type: application/json; charset=utf-16\r\n",
        b"X-Request-ID: \xff\xfe\r\n",
        b"X-Request-ID: " + b"x" * 200 + b"\r\n",
        b"Idempotency-Key: \xe2\x98\x83\r\n",
        b"Idempotency-Key: \r\n",
        b"Idempotency-Key: " + b"k" * 300 + b"\r\n",
    ],
)
async def test_garbage_headers_on_a_valid_trigger_never_5xx(
    server: FakeSequence, header: bytes
) -> None:
    """Odd charsets, request ids and idempotency keys get an answer below 500."""
    status = await send_raw(server, *post(b"/rules/rule_0001/trigger", b"{}", header))

    assert status < 500, status


@pytest.mark.parametrize(
    "authorization",
    [b"ApiKey \xff\xfe", b"ApiKey", b"", b"ApiKey " + b"k" * 4000, b"\x00\x01"],
)
async def test_garbage_authorization_is_401_or_400(
    server: FakeSequence, authorization: bytes
) -> None:
    """A garbage key is refused, not crashed on."""
    head = b"GET /api/v1/accounts HTTP/1.1\r\nHost: x\r\nAuthorization: "
    status = await send_raw(server, head + authorization + b"\r\n")

    assert status in {400, 401}, status  # 400: the HTTP parser refused it


@pytest.mark.parametrize(
    "target",
    [
        b"/accounts/%00",
        b"/accounts/%ZZ",
        b"/rules/%C3%28",
        b"/rules/%F0%9F%92%A9/trigger",
        b"/rule-executions/" + b"x" * 4000,
        b"/cards/%2F..%2F..%2Fetc%2Fpasswd/transactions",
        b"/rule-executions?rule_id=rule_0001&first=%D9%A3",
        b"/rule-executions?rule_id=rule_0001&first=" + b"9" * 5000,
        b"/rule-executions?rule_id=rule_0001&after=%FF%FE",
        b"/rule-executions?rule_id=rule_0001&after=",
        b"/rule-executions?rule_id=rule_0001&after="
        + base64.urlsafe_b64encode(b"c:" + b"9" * 5000),
        b"/rule-executions?rule_id=rule_0001&from=2024-01-01T00:00:00%2B99:00",
        b"/rule-executions?rule_id=rule_0001&from=%00&to=%FF",
        b"/rule-executions?rule_id=%00&status=%FF",
        b"/transfers?account_id=acc_0001&account_role=%00&from=9999-99-99",
        b"/cards/card_0001/transactions?from=2024-01-01&to=2024-01-01T00:00:00Z",
        b"/accounts?type=pod&type=pod&type=%FF",
        b"/%%%",
        b"/../../etc/passwd",
    ],
)
@pytest.mark.apis("api-v1")
async def test_garbage_paths_and_queries_never_5xx(
    server: FakeSequence, target: bytes
) -> None:
    """Odd ids, encodings, cursors, page sizes and timestamps get below 500."""
    status = await send_raw(server, get(target))

    assert status < 500, status


@pytest.mark.parametrize(
    "method", [b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"HEAD", b"FOO", b"TRACE"]
)
@pytest.mark.apis("api-v1")
async def test_other_methods_are_refused_plainly(
    server: FakeSequence, method: bytes
) -> None:
    """Unlisted methods get a plain 405 (400 when not even a method token)."""
    head = method + b" /api/v1/rules/rule_0001/trigger HTTP/1.1\r\nHost: x\r\n" + AUTH

    status = await send_raw(server, head)

    assert status in {400, 405}, status


async def test_a_body_over_the_size_limit_is_413(server: FakeSequence) -> None:
    """A body over aiohttp's 1 MiB limit is refused before it is read."""
    body = b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}'

    status = await send_raw(server, *post(b"/transfers", body, JSON))

    assert 413 == status


async def test_deep_json_near_the_recursion_limit_is_400(
    server: FakeSequence,
) -> None:
    """Bodies nested just under what the JSON parser takes are refused cleanly."""
    key = b"Idempotency-Key: deep\r\n"
    statuses = set()
    for depth in range(900, 1000, 3):
        body = b'{"x":' + b"[" * depth + b"]" * depth + b"}"
        statuses.add(
            await send_raw(server, *post(b"/rules/rule_0001/trigger", body, key))
        )

    assert {400} == statuses


async def test_json_nested_64_deep_is_accepted(server: FakeSequence) -> None:
    """The depth limit leaves room for any body the API takes."""
    body = b'{"x":' + b"[" * 63 + b"]" * 63 + b"}"

    status = await send_raw(server, *post(b"/rules/rule_0001/trigger", body, JSON))

    assert 202 == status


async def test_the_server_still_answers_after_the_garbage(
    server: FakeSequence,
) -> None:
    """After every kind of garbage, a valid request still succeeds."""
    for body in GARBAGE_BODIES:
        await send_raw(server, *post(b"/rules/rule_0001/trigger", body, JSON))

    status = await send_raw(server, *post(b"/rules/rule_0001/trigger", b"{}", JSON))

    assert 202 == status


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=20), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    body=json_values,
    extra=st.dictionaries(
        st.sampled_from(["manual_execute_amount", "amount_in_cents", "description"]),
        json_values,
    ),
    key=st.none() | st.text(max_size=300),
)
@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
async def test_any_json_body_and_key_never_5xx(
    server: FakeSequence, body: object, extra: dict[str, object], key: str | None
) -> None:
    """Generated JSON bodies and idempotency keys, sent to both POST routes."""
    payload = json.dumps(extra if isinstance(body, dict) else body).encode()
    headers = [JSON]
    if key is not None:
        headers.append(b"Idempotency-Key: " + key.encode("utf-8", "replace") + b"\r\n")
    for path in (b"/rules/rule_0001/trigger", b"/transfers"):
        status = await send_raw(server, *post(path, payload, *headers))

        assert status < 500, (status, payload, key)


def seed_json(**changes: object) -> str:
    """
    The demo seed's JSON with top-level or first-record changes.
    """
    raw = json.loads(demo_seed(rules=2).to_json())
    for path, value in changes.items():
        kind, _, field = path.partition("__")
        if field:
            raw[kind][0][field] = value
        else:
            raw[kind] = value
    return json.dumps(raw)


@pytest.mark.parametrize(
    "text",
    [
        seed_json(rules__steps=None),
        seed_json(rules__steps=[{"actions": [{"amount_in_cents": "5"}]}]),
        seed_json(rules__steps=[{"actions": [{"destination": None}]}]),
        seed_json(rules__trigger="MANUAL"),
        seed_json(accounts__id=7),
        seed_json(cards__account_id=None),
        seed_json(card_transactions__created_at="yesterday"),
        seed_json(rules=["not a rule"]),
        seed_json(
            keys={"k": [{"scope": "MANUAL_TRANSFER", "transfers": ["acc_0001"]}]}
        ),
        seed_json(
            keys={
                "k": [
                    {
                        "scope": "MANUAL_TRANSFER",
                        "transfers": [{"source": "a", "max_amount": "10"}],
                    }
                ]
            }
        ),
    ],
)
def test_seed_files_the_server_could_not_serve_are_refused(text: str) -> None:
    """A seed file with records the server would crash on is a ValueError."""
    with pytest.raises(ValueError, match="not a fake-server seed"):
        Seed.from_json(text)


async def test_a_rule_without_steps_runs_and_moves_nothing() -> None:
    """A seeded rule with no steps ends executed, with no transfers."""
    seed = demo_seed(rules=1)
    seed.rules[0]["steps"] = []
    async with serve(seed, clock=ManualClock()) as server:
        head, body = post(b"/rules/rule_0001/trigger", b"{}", JSON)
        status = await send_raw(server, head, body)
        server.advance(3600)

        (execution,) = server.executions()

    assert (202, "executed", []) == (
        status,
        execution["status"],
        execution["transfer_ids"],
    )
