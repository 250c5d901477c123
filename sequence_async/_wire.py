"""
Sans-I/O wire logic: plain functions over plain values.

Owns the request and response values, the headers every request carries,
decoding of the ``{request_id, data}`` envelope (strict JSON, from
``_json``), the one mapping from status and error code to
exception class, and the one cap on every delay a server asks for
(``Retry-After``). No event loop, no sockets: every function here is tested
with plain values.
"""

from __future__ import annotations

import email.utils
import importlib.metadata
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from . import errors
from ._json import NOT_JSON, encode, loads
from ._profiles import DEFAULT, Profile
from ._secret import Secret


VERSION: Final = importlib.metadata.version("sequence-async")
USER_AGENT: Final = f"sequence-async/{VERSION}"
# Headers every request carries, whatever the call: the transport sets them
# once on a session it makes (aiohttp then merges fewer headers per request)
# and per request on a caller's session. Accept-Encoding names only what the
# transport can inflate under its size cap.
CONSTANT_HEADERS: Final[Mapping[str, str]] = {
    "User-Agent": USER_AGENT,
    "Accept": "application/json",
    "Accept-Encoding": "gzip, deflate",
}
_CONSTANT_NAMES: Final = frozenset(name.lower() for name in CONSTANT_HEADERS)
DEFAULT_BASE_URL: Final = "https://api.getsequence.io/api/v1"
RETRYABLE_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})
# The longest a server may make us wait (Retry-After, a 429's drain).
MAX_SERVER_DELAY: Final = 60.0
MAX_PAGE_SIZE: Final = 100
# The most bytes of one answer read, decompressed: more is an error, not an OOM.
DEFAULT_MAX_RESPONSE_BYTES: Final = 4 * 1024 * 1024
_MESSAGE_CHARS: Final = 200

_STATUS_ERRORS: Final[Mapping[int, type[errors.APIStatusError]]] = {
    400: errors.BadRequestError,
    401: errors.AuthenticationError,
    403: errors.PermissionDeniedError,
    404: errors.NotFoundError,
    409: errors.ConflictError,
    422: errors.BadRequestError,
    429: errors.RateLimitError,
}


class Headers(dict[str, str]):
    """
    Request headers whose repr hides the ``Authorization`` values.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(
            {
                k: "<redacted>" if k.lower().endswith("authorization") else v
                for k, v in self.items()
            }
        )


class Request(NamedTuple):
    """
    One HTTP request, ready to send.
    """

    method: str
    path: str
    params: Mapping[str, str] | list[tuple[str, str]] | None
    body: bytes | None
    headers: Mapping[str, str]
    idempotency_key: str | None


class Response(NamedTuple):
    """
    One HTTP answer: status, headers (case-insensitive mapping) and raw body.
    """

    status: int
    headers: Mapping[str, str]
    body: bytes

    def __repr__(self) -> str:
        # Never the body nor a header's value: an error reporter keeping a
        # frame's locals (Sentry does) would show a key the server echoed.
        sizes = f"headers=<{len(self.headers)}>, body=<{len(self.body)} bytes>"
        return f"Response(status={self.status}, {sizes})"


class Envelope(NamedTuple):
    """
    A decoded success body.
    """

    data: Any
    request_id: str | None
    page_info: Mapping[str, Any] | None
    # A success's ``Retry-After`` (capped): no poll of that rule before it.
    retry_after: float | None = None


def build_request(
    method: str,
    path: str,
    *,
    auth: Secret,
    request_id: str,
    params: Mapping[str, str | tuple[str, ...]] | None = None,
    json_body: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    default_headers: Mapping[str, str] | None = None,
    called_reason: str | None = None,
) -> Request:
    """
    Build the request for one logical call (reused unchanged by its retries).

    ``auth`` is the whole ``Authorization`` value; it is never put anywhere
    but the headers, whose repr hides it. A query value that is a tuple is
    sent once per item (``accountIds[]=a&accountIds[]=b``). The headers are
    the call's own: ``CONSTANT_HEADERS`` are the transport's to add, except
    that a default header of the same name is overridden here, as it always
    was.
    """
    if default_headers:
        headers = Headers(
            (name, value)
            for name, value in default_headers.items()
            if name.lower() not in _CONSTANT_NAMES  # ours win, in any case
        )
        headers.update(CONSTANT_HEADERS)
    else:
        headers = Headers()
    headers["Authorization"] = auth.value
    headers["X-Request-ID"] = request_id
    body = None
    if json_body is not None:
        headers["Content-Type"] = "application/json"
        body = encode(json_body).encode() if json_body else b"{}"
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    if called_reason is not None:
        headers["x-called-reason"] = called_reason
    sent: Mapping[str, str] | list[tuple[str, str]] | None = params  # type: ignore[assignment]
    if params and any(isinstance(v, tuple) for v in params.values()):
        sent = [
            (k, item)
            for k, v in params.items()
            for item in (v if isinstance(v, tuple) else (v,))
        ]
    return Request(method, path, sent, body, headers, idempotency_key)


def cap_delay(seconds: float | None) -> float | None:
    """
    Return a server-given delay cut to ``[0, MAX_SERVER_DELAY]``.

    NaN gives ``None`` (no hint); infinity and huge values give the cap: no
    server can make the client wait longer than that.
    """
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(0.0, seconds), MAX_SERVER_DELAY)


def parse_retry_after(value: str | None, *, now: datetime) -> float | None:
    """
    Return ``Retry-After`` (seconds or an HTTP date) as seconds from *now*.

    Unparseable values give ``None``; dates in the past give ``0.0``; the
    result is capped by ``cap_delay``.
    """
    if not value:
        return None
    value = value.strip()[:100]
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        try:
            seconds = (when - now).total_seconds()
        except OverflowError:
            seconds = math.inf
    return cap_delay(seconds)


def decode_response(
    response: Response,
    *,
    request_id: str,
    idempotency_key: str | None = None,
    now: datetime | None = None,
    profile: Profile = DEFAULT,
    secret: Secret | None = None,
) -> Envelope:
    """
    Decode a success envelope, or raise the error the response stands for.

    Raises:
        errors.APIStatusError: A subclass chosen by the status (and code).
        errors.ResponseValidationError: A 2xx body that is not the envelope.
    """
    status = response.status
    server_request_id = response.headers.get("X-Request-ID") or request_id
    if secret is not None:  # a proxy may echo the key in any header
        server_request_id = secret.redact(server_request_id)
    if status >= 400:
        raise error_for(
            response,
            request_id=server_request_id,
            idempotency_key=idempotency_key,
            now=now or datetime.now(UTC),
            profile=profile,
            secret=secret,
        )
    if not 200 <= status < 300:
        # An API client follows no redirect: a 3xx (JSON body or not) could
        # send a trigger to another rule, or the key to another host.
        raise errors.ResponseValidationError(
            f"unexpected HTTP {status} (redirects are not followed): "
            f"{_snippet(response.body, secret)!r}",
            status=status,
            request_id=server_request_id,
        )
    hint = response.headers.get("Retry-After")
    retry_after = (
        None if hint is None else parse_retry_after(hint, now=now or datetime.now(UTC))
    )
    if status == 204 or not response.body:
        return Envelope(None, server_request_id, None, retry_after)
    payload = loads(
        response.body if secret is None else secret.redact_body(response.body)
    )
    if payload is NOT_JSON:
        raise errors.ResponseValidationError(
            f"expected a JSON body, got {_snippet(response.body, secret)!r}",
            status=status,
            request_id=server_request_id,
        )
    if secret is not None and _BACKSLASH in response.body:
        payload = secret.redact_value(payload)  # escapes hid the key from bytes
    if not isinstance(payload, dict) or "data" not in payload:
        raise errors.ResponseValidationError(
            "expected a {request_id, data} envelope, got "
            f"{_snippet(response.body, secret)!r}",
            status=status,
            request_id=server_request_id,
        )
    body_request_id = payload.get("requestId" if profile.camel_case else "request_id")
    page_info = payload.get("page_info")
    return Envelope(
        payload["data"],
        body_request_id if isinstance(body_request_id, str) else server_request_id,
        page_info if isinstance(page_info, dict) else None,
        retry_after,
    )


def error_for(
    response: Response,
    *,
    request_id: str | None,
    idempotency_key: str | None,
    now: datetime,
    profile: Profile = DEFAULT,
    secret: Secret | None = None,
) -> errors.APIStatusError:
    """
    Return the exception for an error response (the one status-to-class map).

    The envelope's ``error.code`` and ``error.message`` are used when present;
    any other body (plain text, HTML, empty) gives its first 200 characters as
    the message. The status chooses the class; a status the table lacks
    falls back on the profile's error codes (below 500 only: a 5xx whose body
    says ACCESS_DENIED is still a server error), then on 5xx or not.
    """
    status = response.status
    code: str | None = None
    message = _snippet(response.body, secret) or f"HTTP {status}"
    payload = loads(response.body)
    if secret is not None:  # no field of the error keeps an echo of the key
        payload = secret.redact_value(payload)
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict):
            raw_code, raw_message = error.get("code"), error.get("message")
            code = raw_code if isinstance(raw_code, str) else None
            if isinstance(raw_message, str):
                message = _redacted(raw_message[:_MESSAGE_CHARS], secret)
        body_request_id = payload.get(
            "requestId" if profile.camel_case else "request_id"
        )
        if isinstance(body_request_id, str):
            request_id = body_request_id
    cls = _STATUS_ERRORS.get(status)
    if cls is None and code is not None and status < 500:  # a 5xx stays one
        cls = profile.code_errors.get(code)
    if cls is None:
        cls = errors.ServerError if status >= 500 else errors.APIStatusError
    kwargs: dict[str, Any] = {
        "status": status,
        "code": code,
        "request_id": request_id,
        "idempotency_key": idempotency_key,
    }
    if status in (429, 503):
        kwargs["retry_after"] = parse_retry_after(
            response.headers.get("Retry-After"), now=now
        )
    return cls(message, **kwargs)


def is_retryable(exc: BaseException) -> bool:
    """
    Whether a failed attempt may be retried (never for 4xx but 408 and 429).
    """
    if isinstance(exc, errors.APIConnectionError):
        return True
    return isinstance(exc, errors.APIStatusError) and exc.status in RETRYABLE_STATUSES


def may_have_acted(exc: errors.SequenceError) -> bool:
    """
    Whether a failed attempt may have been carried out by the server.
    """
    # An answer that does not say "not done": a 5xx, a timeout (408), "the
    # same key is still running" (409), a 2xx without a usable body, a 303
    # ("done, see there") or a 301/302 (which frameworks send after a POST
    # they carried out, as they would a 303). A 429, another 4xx, or a
    # 307/308 ("send it there instead, unchanged") says this attempt was not
    # carried out.
    if isinstance(exc, errors.APIStatusError):
        return exc.status >= 500 or exc.status in (408, 409)
    if isinstance(exc, errors.ResponseValidationError) and 300 <= exc.status < 400:
        return exc.status not in (307, 308)
    return True


def next_cursor(
    page_info: Mapping[str, Any] | None, *, items: int, page_size: int
) -> str | None:
    """
    Return the cursor of the next page, or ``None`` when this was the last.

    ``has_next_page`` decides when the server sends it; otherwise a full page
    with an ``end_cursor`` means there may be more.
    """
    if not page_info:
        return None
    cursor = page_info.get("end_cursor")
    if not isinstance(cursor, str) or not cursor:
        return None
    has_next = page_info.get("has_next_page")
    if isinstance(has_next, bool):
        return cursor if has_next else None
    return cursor if items >= page_size else None


# A body with one may hide the key behind JSON escapes (an int: 10x faster
# to look for in bytes than b"\\").
_BACKSLASH: Final = ord("\\")


def _snippet(body: bytes, secret: Secret | None = None) -> str:
    if (
        secret is not None
        and _BACKSLASH in body
        and (value := loads(body)) is not NOT_JSON
    ):
        # JSON escapes may hide the key from the bytes: show the value, cleaned.
        body = encode(secret.redact_value(value)).encode()
    # Redacted, then cut: a key across the cut would leave its head.
    text = _redacted(body.decode("utf-8", "replace"), secret, keep=_MESSAGE_CHARS)
    return text[:_MESSAGE_CHARS].strip()


def _redacted(text: str, secret: Secret | None, *, keep: int | None = None) -> str:
    # An error's text: a server may quote the key's head (a header cut at a
    # length), so every spelling of it goes.
    return text if secret is None else secret.redact_quoted(text, keep=keep)
