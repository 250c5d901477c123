"""
``AiohttpTransport``: the aiohttp session, and one attempt sent through it.

Owns the ``aiohttp.ClientSession`` (made lazily inside the running loop and
never again after ``aclose()``, or borrowed from the caller and then never
closed), the headers every request carries (``_wire.CONSTANT_HEADERS``: the
session's own, or added per request), the proxy read once from the
environment, and the per-attempt timeout. ``send`` goes below
``ClientSession.request`` on a session of its own (``direct``), reads the
answer (``answers``) and maps a failure (``failures``).
"""

from __future__ import annotations

import asyncio
import math
import ssl as _ssl
import urllib.request

import aiohttp
import yarl

from sequence_async import errors
from sequence_async._checks import check_count
from sequence_async._secret import Secret
from sequence_async._wire import CONSTANT_HEADERS, Headers, Request, Response

from . import answers, direct, failures


ClientSession = aiohttp.ClientSession


def _spelled(url: yarl.URL) -> yarl.URL:
    # *url*, once its host is known to be one IDNA can spell (not "a..b", no
    # label over 63 characters): else the UnicodeError (a ValueError) that
    # aiohttp would raise from inside a request.
    (url.host or "").encode("idna")
    return url


def _environment_proxy(url: yarl.URL) -> tuple[yarl.URL | None, str | None]:
    # The proxy the environment names for *url*, if any, without its login,
    # and that login as a Proxy-Authorization value. Checked whole here (a
    # ValueError), so that a bad one fails before any request, not inside
    # aiohttp, and from a frame whose locals no error keeps.
    raw = urllib.request.getproxies().get(url.scheme)
    if not raw or urllib.request.proxy_bypass(url.host or ""):
        return None, None
    proxy = _spelled(yarl.URL(raw if "://" in raw else f"http://{raw}"))
    if proxy.scheme not in ("http", "https") or not proxy.host or proxy.port is None:
        raise ValueError("not an http(s) URL with a host")
    login = None
    if proxy.user is not None:  # (a ":" in the user: a ValueError)
        login = aiohttp.encode_basic_auth(proxy.user, proxy.password or "")
    return proxy.with_user(None), login


class AiohttpTransport:
    """
    Sends requests through one aiohttp session.

    Args:
        base_url: Prefix of every path.
        session: A caller's session, used as is and never closed here.
        ssl: An SSL context (or ``False``) for a session made here.
        max_response_bytes: The most bytes of one answer read, decompressed.
        secret: The key, taken out of every message made here: aiohttp's
            parse errors quote what the server sent (a status line, a
            header, a chunk size), which may echo it.
    """

    __slots__ = (
        "_added",
        "_base_url",
        "_closed",
        "_direct",
        "_limit",
        "_loop",
        "_merge",
        "_owned",
        "_proxy",
        "_proxy_headers",
        "_redact",
        "_session",
        "_ssl",
        "_timeouts",
    )

    def __init__(
        self,
        base_url: str,
        *,
        session: aiohttp.ClientSession | None = None,
        ssl: _ssl.SSLContext | bool | None = None,
        max_response_bytes: int,
        secret: Secret | None = None,
    ) -> None:
        try:  # as aiohttp will use it (urlsplit, which checked it, is lenient)
            _spelled(yarl.URL(base_url + "/x"))
        except ValueError as exc:  # (a base URL holds no secret: refused so)
            raise ValueError(f"base_url is not a usable URL: {exc}") from None
        self._base_url = base_url
        self._redact = secret.redact_quoted if secret is not None else str
        given: object = session
        if given is not None and not isinstance(given, aiohttp.ClientSession):
            raise TypeError("session must be an aiohttp.ClientSession")
        if not isinstance(ssl, _ssl.SSLContext | bool | None):
            raise TypeError("ssl must be an ssl.SSLContext, a bool or None")
        self._session = session
        self._owned = session is None
        self._ssl = ssl
        self._limit = (
            check_count(max_response_bytes, "max_response_bytes", minimum=1) or 1
        )
        self._closed = False
        self._proxy: yarl.URL | None = None
        self._proxy_headers: dict[str, str] | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}
        self._direct = False
        self._loop: asyncio.AbstractEventLoop  # (set by _open, read if _direct)
        # The headers added to each request's (not the session's defaults):
        # on a caller's session, or below ClientSession.request.
        self._added = CONSTANT_HEADERS
        self._merge = not self._owned

    def __repr__(self) -> str:
        return f"<AiohttpTransport {self._base_url}>"

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise errors.ClientClosedError("this SequenceClient is closed")
        # The proxy environment is read once, here, not through trust_env:
        # that costs two thread hops per request and reads ~/.netrc, whose
        # credentials would clash with our Authorization header.
        url = yarl.URL(self._base_url)
        try:
            proxy, login = _environment_proxy(url)
        except ValueError:
            proxy = login = None
            bad = True  # (raised below, out of this block: no secret kept)
        else:
            bad = False
        if bad:
            name = f"{url.scheme.upper()}_PROXY"
            raise errors.APIConnectionError(
                f"not sent: {name} (or {name.lower()}) is not a usable proxy URL",
                sent=False,
            )
        if proxy is not None:
            self._proxy = proxy
            self._proxy_headers = dict(CONSTANT_HEADERS)  # (as aiohttp sends it)
            if login is not None:
                # aiohttp 3.14 deprecates proxy_auth= for this header, and
                # sends proxy headers only in a CONNECT (an https target):
                # to an http one, the login goes with every request.
                self._proxy_headers["Proxy-Authorization"] = login
                if url.scheme == "http":
                    self._added = {**CONSTANT_HEADERS, "Proxy-Authorization": login}
        connector = aiohttp.TCPConnector(
            limit=100,
            ttl_dns_cache=300,
            ssl=self._ssl if self._ssl is not None else True,
        )
        # The headers every request carries are the session's own: aiohttp
        # then merges three fewer headers per request.
        # No cookie jar: an API client keeps no cookies, and aiohttp's jar
        # logs a Set-Cookie it cannot parse, which may echo the key.
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=CONSTANT_HEADERS,
            cookie_jar=aiohttp.DummyCookieJar(),
        )
        # Sent below ClientSession.request (see direct) when this aiohttp
        # allows it and nothing watches the session (checked per request).
        self._loop = asyncio.get_running_loop()
        self._direct = direct.FITS
        self._merge = self._direct or self._added is not CONSTANT_HEADERS
        return self._session

    def _timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        return self._timeouts.get(seconds) or self._new_timeout(seconds)

    def _new_timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        # One not in self._timeouts. The connect phase (pool wait, DNS, TCP,
        # TLS) that stalls ends just before the total, as aiohttp's
        # ConnectionTimeoutError: then nothing was sent (not "unknown").
        connect = seconds * 0.95
        timeout = aiohttp.ClientTimeout(
            total=seconds,
            connect=connect,
            sock_connect=connect,
            ceil_threshold=math.inf,  # to the millisecond: never past the total
        )
        if len(self._timeouts) < 8:  # (the settings' few, not each deadline's)
            self._timeouts[seconds] = timeout
        return timeout

    async def send(self, request: Request, *, timeout: float) -> Response:
        """
        Send *request* once and read the whole answer (at most the byte cap).

        Raises:
            errors.APITimeoutError: The attempt ran past *timeout* seconds.
            errors.APIConnectionError: No HTTP answer was had; ``sent`` says
                whether the request may have reached the server.
            errors.ResponseTooLargeError: The body passed the byte cap.
            errors.ResponseValidationError: An encoding we cannot read.
            errors.ClientClosedError: The transport was closed.
        """
        session = self._session or self._open()
        headers = request.headers
        if self._merge:
            headers = Headers({**self._added, **headers})  # (its repr: no key)
        try:
            if self._direct and not direct.watched(session):
                # (aiohttp's answer is never a local here: its repr shows
                # the headers, which may echo the key, and this frame is in
                # every traceback that leaves send.)
                limit = direct.Limit(self._loop, timeout)
                try:
                    answer = await answers.whole(
                        await direct.start(
                            session,
                            yarl.URL(self._base_url + request.path),
                            request,
                            headers,
                            loop=self._loop,
                            timeout=self._timeout(timeout),
                            proxy=self._proxy,
                            proxy_headers=self._proxy_headers,
                        ),
                        request,
                        limit=self._limit,
                        redact=self._redact,
                    )
                except BaseException as exc:
                    limit.end(exc)  # a TimeoutError if the limit cut it
                    raise
                limit.end(None)
                return answer
            return await answers.whole(
                await session.request(
                    request.method,
                    self._base_url + request.path,
                    params=request.params,
                    data=request.body,
                    headers=headers,
                    timeout=self._timeout(timeout),
                    proxy=self._proxy,
                    proxy_headers=self._proxy_headers,
                    allow_redirects=False,
                    auto_decompress=False,
                    raise_for_status=False,
                ),
                request,
                limit=self._limit,
                redact=self._redact,
            )
        except BaseException as exc:  # noqa: BLE001 (mapped or re-raised below)
            failure = failures.failure(
                exc,
                request,
                timeout,
                redact=self._redact,
                closed=self._closed,
                session=self._session,
            )
        # Raised outside the except block, so that the original exception is
        # not kept as the implicit __context__ either.
        raise failure

    async def aclose(self) -> None:
        """
        Close the session if this transport made it; never open another.
        """
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owned and not session.closed:
            await session.close()
            # Let the connector's transports finish closing (aiohttp's advice).
            await asyncio.sleep(0)
