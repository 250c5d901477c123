"""
The client's settings and namespaces: from arguments to a ``Requester``.

Owns the resolution and checks of ``SequenceClient``'s keywords, all before
any request: the API profile (``api=``, else ``SEQUENCE_API``, else
``api-v1``), the key (``SEQUENCE_API_KEY``), the base URL (``base_url=``,
else ``SEQUENCE_BASE_URL``, else the profile's production URL), the
transport, the limiter, the poller and the policies. Also ``Namespace``,
the read-only descriptor of each ``client.<namespace>``.
"""

from __future__ import annotations

import os
import ssl as _ssl
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from ._checks import check_base_url, check_count, check_headers, check_number
from ._poller import Poller
from ._profiles import profile_named
from ._ratelimit import TokenBucket
from ._requester import Requester, Shared
from ._resources import called_reason_of
from ._retry import PollPolicy, RetryPolicy, check_poll, resolve_retry
from ._transport import AiohttpTransport, ClientSession
from ._wire import Headers, Secret


T = TypeVar("T")


class Namespace(Generic[T]):
    """
    A read-only, documented attribute of the client holding a namespace.
    """

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self._slot = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = "_" + name

    def __get__(self, obj: object, owner: Any = None) -> T:
        if obj is None:
            return self  # type: ignore[return-value]
        value: T = getattr(obj, self._slot)
        return value


def build_requester(
    api_key: str | None,
    *,
    api: str | None,
    base_url: str | None,
    timeout: float,
    max_retries: int,
    retry: RetryPolicy | None,
    rate_limit: float | None,
    rate_limit_burst: float | None,
    session: ClientSession | None,
    default_headers: Mapping[str, str] | None,
    ssl: _ssl.SSLContext | bool | None,
    poll: PollPolicy | None,
    max_response_bytes: int,
    called_reason: str | None,
) -> tuple[Requester, str]:
    """
    Return the client's first ``Requester`` and its base URL.

    Raises:
        ValueError, TypeError: No API key, or a bad setting.
    """
    key = api_key if api_key is not None else os.environ.get("SEQUENCE_API_KEY")
    if not key or not isinstance(key, str):
        raise ValueError(
            "no API key: pass SequenceClient(api_key=...) or set SEQUENCE_API_KEY"
        )
    if not key.isprintable() or not key.isascii():
        raise ValueError("the API key must be printable ASCII")
    profile = profile_named(api if api is not None else os.environ.get("SEQUENCE_API"))
    url = check_base_url(
        base_url or os.environ.get("SEQUENCE_BASE_URL") or profile.default_base_url
    )
    limiter = (
        TokenBucket(rate_limit, burst=rate_limit_burst)  # checks both
        if rate_limit is not None
        else None
    )
    shared = Shared(
        AiohttpTransport(
            url,
            session=session,
            ssl=ssl,
            max_response_bytes=check_count(
                max_response_bytes, "max_response_bytes", minimum=1
            )
            or 1,
        ),
        limiter=limiter,
        poller=Poller(),
    )
    requester = Requester(
        shared,
        Secret(profile.authorization(key)),
        Headers(check_headers(default_headers)),
        checked_timeout(timeout),
        resolve_retry(retry, max_retries),
        check_poll(poll) or PollPolicy(),
        profile,
        called_reason_of(called_reason, profile),
    )
    return requester, url


def checked_timeout(timeout: object) -> float:
    """
    Return a per-attempt timeout: a finite number above 0.
    """
    # A non-positive or NaN timeout would turn the per-attempt timeout off.
    return check_number(timeout, "timeout") or 0.0
