"""
Checks of local arguments, and endpoint paths: pure functions, no I/O.

Owns what makes bad input a clear ``TypeError``/``ValueError`` before
anything is sent: ids and keys, numbers and counts (no bool, NaN or
infinity), instants (two days inside datetime's range: ``instant`` refuses
the rest, ``clamp`` brings a server's in), base URLs and default headers;
and ``path``, the one builder of endpoint paths (every id a quoted segment,
dot segments refused), and ``query``, the one builder of query strings.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Final


MAX_ID_CHARS: Final = 255
# The instants the client accepts (from a token, a journal or a filter) or
# computes with (a server's, clamped): two days inside datetime's range, so
# that no margin added or taken (a minute of clock skew, minutes around a
# send) overflows, in UTC or in the fields of any offset.
FIRST_INSTANT: Final = datetime.min.replace(tzinfo=UTC) + timedelta(days=2)
LAST_INSTANT: Final = datetime.max.replace(tzinfo=UTC) - timedelta(days=2)
# Characters a path segment carries as they are (RFC 3986 unreserved).
_PLAIN: Final = re.compile(rf"[A-Za-z0-9_.~-]{{1,{MAX_ID_CHARS}}}")
# The largest amount in cents that JSON carries exactly (2**53 - 1).
MAX_CENTS: Final = 2**53 - 1
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers the client or the HTTP layer owns; a default header may not set them.
_OWN_HEADERS: Final = frozenset(
    {
        "authorization",
        "idempotency-key",
        "x-request-id",
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "accept-encoding",
    }
)


def check_idempotency_key(key: object) -> str:
    """
    Return *key* when it is 1 to 255 printable ASCII characters, else raise.

    Raises:
        ValueError: The key is empty, too long or not printable ASCII.
        TypeError: The key is not a string.
    """
    return _check_token(key, "idempotency_key", 255)


def check_request_id(request_id: object) -> str:
    """
    Return *request_id* when it is 1 to 128 printable ASCII characters.

    Raises:
        ValueError: The id is empty, too long or not printable ASCII.
        TypeError: The id is not a string.
    """
    return _check_token(request_id, "request_id", 128)


def segment(value: object, name: str) -> str:
    """
    Return *value* quoted as one path segment.

    Raises:
        TypeError: The value is not a string.
        ValueError: The value is empty, ``.`` or ``..``: it would leave its
            segment.
    """
    if type(value) is str and _PLAIN.fullmatch(value) and value not in (".", ".."):
        return value  # nothing to quote (the common case, and the fast one)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if value in ("", ".", ".."):
        raise ValueError(f"{name} must be a non-empty id, not {value!r}")
    if len(value) > MAX_ID_CHARS or not value.isprintable():
        raise ValueError(f"{name} must be at most {MAX_ID_CHARS} printable characters")
    return urllib.parse.quote(value, safe="")


def is_segment(value: object) -> bool:
    """
    Whether *value* passes ``segment``: an id that can be asked for again.
    """
    try:
        segment(value, "id")
    except (TypeError, ValueError):
        return False
    return True


def path(*parts: str | tuple[object, str]) -> str:
    """
    Build an endpoint path: literal parts as they are, ``(value, name)`` quoted.

    ``path("rules", (rule_id, "rule_id"), "trigger")`` is
    ``/rules/{rule_id}/trigger`` with the id quoted and checked by
    ``segment``: no id can reach another endpoint.
    """
    built = ""
    for part in parts:
        built += "/" + (part if isinstance(part, str) else segment(*part))
    return built


def check_number(
    value: object,
    name: str,
    *,
    allow_none: bool = False,
    minimum: float = 0.0,
    maximum: float = math.inf,
) -> float | None:
    """
    Return *value* when it is a finite number above *minimum* (or allowed None).

    Raises:
        TypeError: Not a number (a bool is not one).
        ValueError: NaN, infinite, not above *minimum*, or above *maximum*.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an int past a float's range
        number = math.inf
    if not math.isfinite(number) or number <= minimum:
        above = f" above {minimum:g}" if minimum > -math.inf else ""
        raise ValueError(f"{name} must be a finite number{above}")
    if number > maximum:
        raise ValueError(f"{name} must be at most {maximum:g}")
    return number


def instant(value: datetime, name: str) -> datetime:
    """
    Return the aware *value*, if within ``FIRST_INSTANT`` and ``LAST_INSTANT``.

    Raises:
        ValueError: It is not (year 1 in an offset west of UTC, say, which
            is before year 1 in UTC).
    """
    if not FIRST_INSTANT <= value <= LAST_INSTANT:  # (compared as instants)
        raise ValueError(f"{name} {value.isoformat()} is out of range")
    return value


def clamp(value: datetime) -> datetime:
    """
    The aware *value*, or the nearer of ``FIRST_INSTANT`` and ``LAST_INSTANT``.

    For a server's times the client computes with (Go's zero time is year 1).
    """
    return max(FIRST_INSTANT, min(LAST_INSTANT, value))


MAX_KEY_CHARS = 1024  # Sequence's keys (sk_...) are a few dozen


def api_key_problem(key: object) -> str | None:
    """
    Say what is wrong with *key*, or ``None`` when it is fit for a header.

    It returns rather than raises, so that no raising frame holds the key.
    """
    if not isinstance(key, str) or not key.strip():
        return "no API key: pass SequenceClient(api_key=...) or set SEQUENCE_API_KEY"
    if not key.isprintable() or not key.isascii() or " " in key.strip():
        return "the API key must be printable ASCII without spaces"
    if len(key) > MAX_KEY_CHARS:  # a server's "header too long" would quote it
        return f"the API key is longer than {MAX_KEY_CHARS} characters: not a key"
    return None


def check_timeout(timeout: object) -> float:
    """
    Return a per-attempt timeout: a finite number of seconds above 0.

    A non-positive or NaN timeout would turn the timeout off: a silent server
    would hang the call for ever.
    """
    return check_number(timeout, "timeout") or 0.0


def check_count(
    value: object, name: str, *, minimum: int, allow_none: bool = False
) -> int | None:
    """
    Return *value* when it is an int of at least *minimum* (or allowed None).

    Raises:
        TypeError: Not an int (a bool or a float is not one).
        ValueError: Below *minimum*.
    """
    if value is None and allow_none:
        return None
    if not is_int(value):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:  # type: ignore[operator]
        raise ValueError(f"{name} must be at least {minimum}")
    return value  # type: ignore[return-value]


def check_text(value: object, name: str, *, allow_none: bool = True) -> str | None:
    """
    Return *value* when it is a string (or an allowed None), else raise TypeError.
    """
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


def check_base_url(value: str) -> str:
    """
    Return *value* without a trailing slash when it is an http(s) URL.

    Spaces around it are dropped (a quoted ``.env`` value), as from a key.

    Raises:
        ValueError: No ``http://`` or ``https://`` scheme, no host, a space
            or control character inside (``urlsplit`` would drop some and
            aiohttp quote others: a request to another path), a query or a
            fragment (the endpoint's path would follow them).
    """
    if not isinstance(value, str):
        raise TypeError(f"base_url must be a str, not {type(value).__name__}")
    value = value.strip()
    if not value.isprintable() or " " in value:
        raise ValueError("base_url must not hold spaces or control characters")
    parts = urllib.parse.urlsplit(value)
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError("base_url must not have a query (?) or a fragment (#)")
    if "@" in parts.netloc:  # (never echoed: it may hold a password)
        raise ValueError(
            "base_url must not hold credentials (user:password@): the API key "
            "authenticates"
        )
    try:
        parts.port  # noqa: B018 (read to check it: "99999" or "abc" raise)
    except ValueError as exc:
        raise ValueError(f"base_url has a bad port: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"base_url must be an http:// or https:// URL, not {value[:100]!r}"
        )
    return value.rstrip("/")


def _check_token(value: object, name: str, longest: int) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not (
        1 <= len(value) <= longest
        and value.isascii()
        and value.isprintable()
        and " " not in value
    ):
        raise ValueError(
            f"{name} must be 1 to {longest} printable ASCII characters without spaces"
        )
    return value


def query(**params: object) -> dict[str, str]:
    """
    Build a query mapping of filters: ``None`` dropped, datetimes as ISO 8601 UTC.

    A trailing underscore is dropped from names (``from_`` is sent as
    ``from``). Every filter is a string (an enum member is one), an aware
    datetime, or a date.

    Raises:
        TypeError: A value of another type (a bool, bytes, a list) would be
            sent as its Python spelling and filter on nothing.
        ValueError: An empty string (an unset variable) would be sent and
            filter on nothing, listing everything; or a naive datetime.
    """
    out: dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        key = name.rstrip("_")
        if isinstance(value, datetime):
            if value.utcoffset() is None:  # naive, whatever its tzinfo
                raise ValueError(f"{name} must be an aware datetime")
            out[key] = (
                instant(value, name).astimezone(UTC).isoformat().replace("+00:00", "Z")
            )
        elif isinstance(value, date):
            out[key] = value.isoformat()  # a day, as it always was sent
        elif not isinstance(value, str):
            raise TypeError(f"{name} must be a str, not {type(value).__name__}")
        elif not value.strip():
            raise ValueError(
                f"{name} must not be empty (leave it out to not filter by it)"
            )
        else:
            out[key] = str(value)
    return out


def is_int(value: object) -> bool:
    """
    Whether *value* is an ``int`` and not a ``bool``.
    """
    return isinstance(value, int) and not isinstance(value, bool)


def check_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """
    Return *headers* when every name and value is a safe header string.

    Raises:
        TypeError: Not strings.
        ValueError: A bad name, a line break in a value, or a header the
            client sets itself.
    """
    checked: dict[str, str] = {}
    if headers is not None and not isinstance(headers, Mapping):
        raise TypeError("default_headers must be a mapping of str to str")
    items: Iterable[tuple[object, object]] = (headers or {}).items()
    for name, value in items:
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("default_headers must map str to str")
        if not _TOKEN.fullmatch(name):  # RFC 9110's token: no "", ":" or space
            raise ValueError(f"bad header name {name[:40]!r}")
        if any((c < " " and c != "\t") or c == "\x7f" for c in value):
            raise ValueError(f"header {name} holds a control character")
        if name.lower() in _OWN_HEADERS:
            raise ValueError(f"{name} is set by the client; not a default header")
        if name.lower() in {n.lower() for n in checked}:
            raise ValueError(f"header {name} is given twice")
        checked[name] = value
    return checked
