"""
Tests of the sans-I/O wire module: plain values in, plain values out.
"""

from __future__ import annotations

import datetime as dt
import json
from datetime import UTC, datetime, timedelta

import pytest

from sequence_async import SequenceClient, _checks, _json, _wire, errors, models
from sequence_async._secret import Secret


NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def response(status: int, body: object = b"", **headers: str) -> _wire.Response:
    """
    Build a response value.
    """
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return _wire.Response(status, headers, raw)


def test_build_request_sets_documented_headers() -> None:
    """Requests carry auth, request id and user agent; POSTs a JSON body and key."""
    req = _wire.build_request(
        "POST",
        "/rules/r/trigger",
        auth=Secret("ApiKey k"),
        request_id="rid",
        json_body={"a": 1},
        idempotency_key="idem",
        default_headers={"X-Extra": "1"},
    )

    assert {
        "Authorization": "ApiKey k",
        "X-Request-ID": "rid",
        "User-Agent": _wire.USER_AGENT,
        "Content-Type": "application/json",
        "Idempotency-Key": "idem",
        "X-Extra": "1",
        "Accept": "application/json",
        "Accept-Encoding": "gzip, deflate",
    } == req.headers
    assert b'{"a":1}' == req.body


def test_request_repr_hides_the_key() -> None:
    """Neither the request nor the secret shows the key in its repr."""
    secret = Secret("ApiKey sk_live_abc")
    req = _wire.build_request("GET", "/x", auth=secret, request_id="r")

    assert "sk_live_abc" not in repr(req) + repr(secret) + str(req.headers)
    assert "ApiKey sk_live_abc" == req.headers["Authorization"]


def test_default_headers_cannot_override_auth() -> None:
    """A caller's default header never replaces the Authorization header."""
    req = _wire.build_request(
        "GET",
        "/x",
        auth=Secret("ApiKey k"),
        request_id="r",
        default_headers={"Authorization": "x"},
    )

    assert "ApiKey k" == req.headers["Authorization"]


@pytest.mark.parametrize("key", ["a", "x" * 255, "order:42/retry|1", "~!"])
def test_valid_idempotency_keys_pass(key: str) -> None:
    """Keys of 1 to 255 printable ASCII characters are accepted as they are."""
    assert key == _checks.check_idempotency_key(key)


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "tab\t", "é"])
def test_invalid_idempotency_keys_raise_value_error(key: str) -> None:
    """Empty, too long, spaced or non-ASCII keys are rejected locally."""
    with pytest.raises(ValueError, match="idempotency_key"):
        _checks.check_idempotency_key(key)


def test_non_string_idempotency_key_raises_type_error() -> None:
    """A key that is not a string is a TypeError."""
    with pytest.raises(TypeError):
        _checks.check_idempotency_key(42)


def test_query_drops_none_and_formats_values() -> None:
    """None is dropped, from_ becomes from, datetimes become UTC ISO with Z."""
    when = datetime(2024, 4, 23, 11, 15, tzinfo=UTC) + timedelta()

    assert {"from": "2024-04-23T11:15:00Z", "status": "executed"} == _checks.query(
        from_=when, to=None, status=models.ExecutionStatus.EXECUTED
    )


def test_a_datetime_whose_zone_gives_no_offset_is_naive() -> None:
    """A tzinfo whose utcoffset() is None makes no aware time: refused, not shifted."""

    class NoOffset(dt.tzinfo):
        def utcoffset(self, _: datetime | None) -> dt.timedelta | None:
            return None

        def dst(self, _: datetime | None) -> dt.timedelta | None:
            return None

        def tzname(self, _: datetime | None) -> str | None:
            return None

    with pytest.raises(ValueError, match="aware"):
        _checks.query(from_=datetime(2024, 1, 2, 12, tzinfo=NoOffset()))


def test_a_date_filter_is_sent_as_its_day() -> None:
    """A date (not a datetime) is sent as it always was: YYYY-MM-DD."""
    assert {"from": "2020-01-01"} == _checks.query(from_=dt.date(2020, 1, 1))


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("", ValueError),
        (" ", ValueError),
        (True, TypeError),
        (b"acc", TypeError),
        (["acc_1"], TypeError),
        (3, TypeError),
    ],
)
def test_a_filter_that_would_filter_on_nothing_is_refused(
    value: object, error: type[Exception]
) -> None:
    """An unset variable ("") or a non-string would list everything: refused."""
    with pytest.raises(error, match="source_id"):
        _checks.query(source_id=value)


def test_query_rejects_naive_datetimes() -> None:
    """A naive datetime is ambiguous and raises."""
    with pytest.raises(ValueError, match="aware"):
        _checks.query(to=datetime(2024, 1, 1))  # noqa: DTZ001


@pytest.mark.parametrize("size", [0, 101, True, 2.5, "10"])
def test_bad_page_sizes_raise(size: object) -> None:
    """page_size must be an int from 1 to 100, checked when the list is made."""
    client = SequenceClient("sk_test")

    with pytest.raises((TypeError, ValueError), match="page_size"):
        client.transfers.list(account_id="a", page_size=size)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("-4", 0.0),
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
        ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),
        ("soon", None),
        ("nan", None),
        (None, None),
        ("", None),
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    """Retry-After is read as seconds or an HTTP date; nonsense gives None."""
    assert expected == _wire.parse_retry_after(value, now=NOW)


def test_decode_success_envelope() -> None:
    """The envelope's data, request id and page info are returned."""
    env = _wire.decode_response(
        response(
            200, {"request_id": "req_1", "data": [1], "page_info": {"end_cursor": "c"}}
        ),
        request_id="mine",
    )

    assert _wire.Envelope([1], "req_1", {"end_cursor": "c"}) == env


def test_decode_empty_204() -> None:
    """A 204 has no data."""
    assert None is _wire.decode_response(response(204), request_id="r").data


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"a":1}', {"a": 1}),
        (b' \r\n{"a": [1, "x"]}\n ', {"a": [1, "x"]}),
        ('"text"', "text"),
        (b"null", None),
    ],
)
def test_loads_reads_one_value_with_or_without_whitespace_around(
    body: bytes | str, expected: object
) -> None:
    """A JSON value is read whether or not whitespace surrounds it."""
    assert expected == _json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"  ",
        b'{"a":1} x',
        b'{"a":1}{"b":2}',
        b"[1]]",
        b"NaN",
        b'{"a":-Infinity}',
        b'{"amount_gt":1e400}',
        b"[-1e309]",
        b"\xff",
        b"[" * 100_000,
        b'{"a":',
    ],
)
def test_loads_refuses_anything_but_exactly_one_strict_value(body: bytes) -> None:
    """Extra data, no value, NaN or infinity, bad UTF-8, runaway nesting: not JSON."""
    assert _json.loads(body) is _json.NOT_JSON


@pytest.mark.parametrize(
    "body", [b"<html>proxy</html>", b'{"no": "envelope"}', b"[1, 2]", b"\xff\xfe"]
)
def test_decode_rejects_bodies_that_are_not_the_envelope(body: bytes) -> None:
    """A 2xx body that is not the envelope raises ResponseValidationError."""
    with pytest.raises(errors.ResponseValidationError) as info:
        _wire.decode_response(
            response(200, body, **{"X-Request-ID": "srv"}), request_id="r"
        )

    assert "srv" == info.value.request_id


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.BadRequestError),
        (401, errors.AuthenticationError),
        (403, errors.PermissionDeniedError),
        (404, errors.NotFoundError),
        (409, errors.ConflictError),
        (422, errors.BadRequestError),
        (429, errors.RateLimitError),
        (500, errors.ServerError),
        (502, errors.ServerError),
        (503, errors.ServerError),
        (418, errors.APIStatusError),
    ],
)
def test_each_status_maps_to_its_error_class(status: int, cls: type[Exception]) -> None:
    """The one status-to-class map picks the documented class."""
    body = {"error": {"code": "some_code", "message": "Some message."}}
    exc = _wire.error_for(
        response(status, body), request_id="r", idempotency_key="k", now=NOW
    )

    assert cls is type(exc)
    assert (status, "some_code", "Some message.", "r", "k") == (
        exc.status,
        exc.code,
        exc.message,
        exc.request_id,
        exc.idempotency_key,
    )


def test_plain_text_error_body_keeps_its_class_and_first_200_chars() -> None:
    """A non-envelope body (text, HTML) still maps by status, message cut to 200."""
    exc = _wire.error_for(
        response(404, b"x" * 500), request_id=None, idempotency_key=None, now=NOW
    )

    assert (errors.NotFoundError, None, "x" * 200) == (type(exc), exc.code, exc.message)


def test_empty_error_body_has_a_readable_message() -> None:
    """An empty 502 body gives 'HTTP 502'."""
    exc = _wire.error_for(response(502), request_id=None, idempotency_key=None, now=NOW)

    assert "HTTP 502" == exc.message


def test_rate_limit_error_carries_retry_after() -> None:
    """A 429's Retry-After is parsed onto the error."""
    exc = _wire.error_for(
        response(
            429,
            {"error": {"code": "rate_limit_exceeded", "message": "m"}},
            **{"Retry-After": "7"},
        ),
        request_id=None,
        idempotency_key=None,
        now=NOW,
    )

    assert isinstance(exc, errors.RateLimitError)
    assert 7.0 == exc.retry_after


def test_error_body_request_id_wins() -> None:
    """When an error body carries a request_id, the error keeps it."""
    exc = _wire.error_for(
        response(
            400, {"request_id": "req_body", "error": {"code": 5, "message": None}}
        ),
        request_id="hdr",
        idempotency_key=None,
        now=NOW,
    )

    assert ("req_body", None) == (exc.request_id, exc.code)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (errors.APIConnectionError("x"), True),
        (errors.APITimeoutError("x"), True),
        (errors.ServerError("x", status=503), True),
        (errors.RateLimitError("x", status=429), True),
        (errors.APIStatusError("x", status=408), True),
        (errors.BadRequestError("x", status=400), False),
        (errors.NotFoundError("x", status=404), False),
        (errors.ConflictError("x", status=409), False),
        (errors.ResponseValidationError("x"), False),
        (ValueError("x"), False),
    ],
)
def test_is_retryable(exc: BaseException, expected: bool) -> None:
    """Only connection errors, timeouts, 408, 429 and 5xx are retried."""
    assert expected is _wire.is_retryable(exc)


@pytest.mark.parametrize(
    ("page_info", "items", "expected"),
    [
        (None, 100, None),
        ({"end_cursor": "c", "has_next_page": True}, 1, "c"),
        ({"end_cursor": "c", "has_next_page": False}, 100, None),
        ({"end_cursor": "c"}, 100, "c"),
        ({"end_cursor": "c"}, 99, None),
        ({"end_cursor": None, "has_next_page": True}, 100, None),
    ],
)
def test_next_cursor(
    page_info: dict[str, object] | None, items: int, expected: str | None
) -> None:
    """has_next_page decides; without it, a full page with a cursor goes on."""
    assert expected == _wire.next_cursor(page_info, items=items, page_size=100)
