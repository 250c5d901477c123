"""
The one seam to the network: send a ``_wire.Request``, get a ``_wire.Response``.

Owns the ``aiohttp.ClientSession`` (created lazily inside the running loop,
or borrowed from the caller and then never closed), the per-attempt timeout,
and the mapping of aiohttp and timeout failures to ``APIConnectionError`` /
``APITimeoutError``, done once, here.

May import: ``_wire``, ``errors``. The only module that imports aiohttp.
"""

from __future__ import annotations

import asyncio
import ssl as _ssl

import aiohttp
import yarl
from aiohttp.helpers import get_env_proxy_for_url

from . import errors
from ._wire import Request, Response


ClientSession = aiohttp.ClientSession


class _Session:
    """
    The session behind a transport and its views, opened on first use.
    """

    __slots__ = ("owned", "proxy", "proxy_auth", "session", "ssl")

    def __init__(
        self, session: aiohttp.ClientSession | None, ssl: _ssl.SSLContext | bool | None
    ) -> None:
        self.session = session
        self.owned = session is None
        self.ssl = ssl
        self.proxy: yarl.URL | None = None
        self.proxy_auth: aiohttp.BasicAuth | None = None

    def open(self, base_url: str) -> aiohttp.ClientSession:
        # The proxy environment variables are read once, here, not through
        # trust_env: that costs two thread hops per request and reads ~/.netrc,
        # whose credentials would clash with our Authorization header.
        try:
            self.proxy, self.proxy_auth = get_env_proxy_for_url(yarl.URL(base_url))
        except LookupError:
            self.proxy = self.proxy_auth = None
        connector = aiohttp.TCPConnector(
            limit=100, ttl_dns_cache=300, ssl=self.ssl if self.ssl is not None else True
        )
        self.session = aiohttp.ClientSession(connector=connector)
        return self.session


class Transport:
    """
    Sends requests through one aiohttp session.

    Args:
        base_url: Prefix of every path.
        timeout: Seconds per attempt.
        session: A caller's session, used as is and never closed here.
        ssl: An SSL context (or ``False``) for a session made here.
    """

    __slots__ = ("_base_url", "_shared", "_timeout")

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float,
        session: aiohttp.ClientSession | None = None,
        ssl: _ssl.SSLContext | bool | None = None,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._shared = _Session(session, ssl)

    def with_timeout(self, timeout: float) -> Transport:
        """
        Return a transport sharing this one's session, with another timeout.
        """
        view = Transport(self._base_url, timeout=timeout)
        view._shared = self._shared
        return view

    async def send(self, request: Request) -> Response:
        """
        Send *request* once and read the whole answer.

        Raises:
            errors.APITimeoutError: The attempt ran past the timeout.
            errors.APIConnectionError: No HTTP answer was had.
        """
        shared = self._shared
        session = shared.session or shared.open(self._base_url)
        try:
            async with session.request(
                request.method,
                self._base_url + request.path,
                params=request.params,
                data=request.body,
                headers=request.headers,
                timeout=self._timeout,
                proxy=shared.proxy,
                proxy_auth=shared.proxy_auth,
            ) as response:
                body = await response.read()
                return Response(response.status, response.headers, body)
        except TimeoutError:
            raise errors.APITimeoutError(
                f"{request.method} {request.path} timed out after "
                f"{self._timeout.total:g}s",
                request_id=request.headers.get("X-Request-ID"),
            ) from None
        except aiohttp.ClientError as exc:
            raise errors.APIConnectionError(
                f"{request.method} {request.path} failed: {type(exc).__name__}: {exc}",
                request_id=request.headers.get("X-Request-ID"),
            ) from None

    async def aclose(self) -> None:
        """
        Close the session if this transport created it.
        """
        shared = self._shared
        session, shared.session = shared.session, None
        if session is not None and shared.owned and not session.closed:
            await session.close()
            # Let the connector's transports finish closing (aiohttp's advice).
            await asyncio.sleep(0)
