"""
From ``SequenceClient``'s keywords to its first ``Requester``.

Owns the resolution and checks of the client's settings, all before any
request: the API profile (``api=``, else ``SEQUENCE_API``), the key (from
``SEQUENCE_API_KEY`` when not given; it never stays in a frame that can
raise), the base URL (``base_url=``, else ``SEQUENCE_BASE_URL``, else the
profile's production URL; an empty one is an error), the transport, the
rate limiter (or a coordinator's), the poller, the observer and the
policies.
"""

from __future__ import annotations

import os
import ssl as _ssl
from collections.abc import Mapping, Sequence
from typing import Literal

from ._checks import api_key_problem, check_base_url, check_headers, check_timeout
from ._coordinator import Coordinator, from_environment, key_digest, scoped
from ._observe import Hook, Hooks, Observer
from ._otel import telemetry
from ._poller import Poller
from ._profiles import Profile, profile_named
from ._ratelimit import Limiter, TokenBucket
from ._requester import Requester, Shared
from ._resources import called_reason_of
from ._retry import PollPolicy, RetryPolicy, check_poll, resolve_retry
from ._secret import Secret
from ._transport import AiohttpTransport, ClientSession
from ._waits import PollShare
from ._wire import Headers


def credentials(api_key: str | None, api: str | None) -> tuple[Secret, str, Profile]:
    """
    Return the ``Authorization`` secret, the key's digest and the profile.

    Raises:
        ValueError: No key, a key unfit for a header, or an unknown API.
    """
    profile = profile_named(  # (an empty variable is an unset one)
        api if api is not None else os.environ.get("SEQUENCE_API") or None
    )
    if api_key is not None and not isinstance(api_key, str):
        raise TypeError(f"api_key must be a str, not {type(api_key).__name__}")
    key = api_key if api_key is not None else os.environ.get("SEQUENCE_API_KEY")
    del api_key
    if isinstance(key, str):  # a pasted key's spaces are not part of it
        key = key.strip()  # (a leading one made "ApiKey  sk_..." and a 401)
    problem = api_key_problem(key)
    auth = Secret(profile.authorization(key)) if key and problem is None else None
    digest = key_digest(key) if key and problem is None else ""  # never the key
    del key
    if auth is None:
        raise ValueError(problem)
    return auth, digest, profile


def requester(
    auth: Secret,
    digest: str,
    profile: Profile,
    *,
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
    event_hooks: Mapping[str, Sequence[Hook]] | None,
    tracer_provider: object,
    meter_provider: object,
    coordinator: Coordinator | Literal[False] | None,
    called_reason: str | None,
) -> tuple[Requester, str]:
    """
    Return the client's first ``Requester`` and its base URL.

    Raises:
        ValueError, TypeError: A bad setting.
    """
    url = check_base_url(
        base_url
        if base_url is not None
        else os.environ.get("SEQUENCE_BASE_URL", profile.default_base_url)
    )
    if rate_limit is None and rate_limit_burst is not None:
        raise ValueError("rate_limit_burst needs a rate_limit")
    limiter: Limiter | None = (
        TokenBucket(rate_limit, burst=rate_limit_burst)  # checks both
        if rate_limit is not None
        else None
    )
    # Every setting checked before a coordinator attaches this client.
    transport = AiohttpTransport(
        url,
        session=session,
        ssl=ssl,
        max_response_bytes=max_response_bytes,
        secret=auth,
    )
    seconds = check_timeout(timeout)
    observer = Observer(
        Hooks(event_hooks), telemetry(tracer_provider, meter_provider), auth
    )
    settings = (
        Headers(check_headers(default_headers)),
        seconds,
        resolve_retry(retry, max_retries),
        check_poll(poll) or PollPolicy(),
        profile,
        called_reason_of(called_reason, profile),
    )
    share: PollShare | None = None
    if coordinator is None:
        coordinator = from_environment()
    elif coordinator is not False and not callable(
        getattr(coordinator, "attach", None)
    ):
        raise TypeError(
            "coordinator must be a RedisCoordinator (RedisCoordinator.from_url(url)) "
            f"or False, not {type(coordinator).__name__}"
        )
    if coordinator:
        limiter, share = coordinator.attach(  # Redis names: key, API and URL
            scoped(digest, api=profile.name, base_url=url),
            rate_limit=rate_limit,
            burst=rate_limit_burst,
        )
    shared = Shared(
        transport,
        limiter=limiter,
        poller=Poller(share=share),
        observer=observer,
        base_url=url,
    )
    built = Requester(shared, auth, *settings)
    return built, url
