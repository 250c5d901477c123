"""
The one seam to the network: send a ``_wire.Request``, get a ``_wire.Response``.

Owns the ``aiohttp.ClientSession`` (made lazily inside the running loop and
never again after ``aclose()``, or borrowed from the caller and then never
closed), the headers every request carries (``_wire.CONSTANT_HEADERS``: the
session's own, or added per request on a caller's session), the proxy read
once from the environment, the per-attempt timeout, the capped read of every
answer (decompressed bytes counted, redirects never followed), and the
mapping of aiohttp and timeout failures to ``APIConnectionError`` /
``APITimeoutError``, done once, here.

aiohttp's frames hold the plain ``Authorization`` header in their locals, so
every exception leaves ``send`` without them: its traceback starts here, and
the tracebacks of its cause and context are dropped (their type and message
stay).
"""

from __future__ import annotations

import asyncio
import re
import ssl as _ssl
import urllib.request
import zlib

import aiohttp
import yarl

from . import errors
from ._checks import check_count
from ._secret import Secret
from ._wire import CONSTANT_HEADERS, Request, Response


ClientSession = aiohttp.ClientSession
_CHUNK = 64 * 1024
# A bytes literal as repr() writes it, in either quote.
_QUOTED_BYTES = re.compile(r"b'(?:[^'\\]|\\.)*'" + r'|b"(?:[^"\\]|\\.)*"')


def _text(exc: BaseException) -> str:
    # An aiohttp answer error's text, its message not repr'd a second time
    # (which would escape the quote of the server's bytes).
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"{exc.status}, message={exc.message}"
    return str(exc)


def _bytes_shown(quoted: re.Match[str]) -> str:
    return f"<{len(quoted.group())} characters of the answer>"


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
        "_base_url",
        "_closed",
        "_limit",
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

    def __repr__(self) -> str:
        return f"<AiohttpTransport {self._base_url}>"

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise errors.ClientClosedError("this SequenceClient is closed")
        # The proxy environment is read once, here, not through trust_env:
        # that costs two thread hops per request and reads ~/.netrc, whose
        # credentials would clash with our Authorization header.
        url = yarl.URL(self._base_url)
        raw = urllib.request.getproxies().get(url.scheme)
        if raw and not urllib.request.proxy_bypass(url.host or ""):
            proxy = yarl.URL(raw if "://" in raw else f"http://{raw}")
            if proxy.user is not None:
                # aiohttp 3.14 deprecates proxy_auth= for this header.
                self._proxy_headers = {
                    "Proxy-Authorization": aiohttp.encode_basic_auth(
                        proxy.user, proxy.password or ""
                    )
                }
            self._proxy = proxy.with_user(None)
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
        return self._session

    def _new_timeout(self, seconds: float) -> aiohttp.ClientTimeout:
        # One not in self._timeouts (send looks there first). A connect that
        # stalls ends just before the total, as aiohttp's
        # ConnectionTimeoutError: then nothing was sent (not "unknown").
        timeout = aiohttp.ClientTimeout(total=seconds, sock_connect=seconds * 0.95)
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
        if not self._owned:  # a caller's session: its defaults are not ours
            headers = {**CONSTANT_HEADERS, **headers}
        try:
            response = await session.request(
                request.method,
                self._base_url + request.path,
                params=request.params,
                data=request.body,
                headers=headers,
                timeout=self._timeouts.get(timeout) or self._new_timeout(timeout),
                proxy=self._proxy,
                proxy_headers=self._proxy_headers,
                allow_redirects=False,
                auto_decompress=False,
                raise_for_status=False,
            )
            try:
                length = response.content_length
                try:
                    if (
                        length is not None
                        and length <= self._limit
                        and "Content-Encoding" not in response.headers
                    ):
                        body = await response.read()  # framed, small and plain
                    else:
                        body = await self._read(response, request)
                except errors.ResponseValidationError:
                    if response.status < 400:
                        raise
                    # An error's body only gives its message: its status
                    # decides, so an unreadable one is never worth failing on.
                    body = b""
                return Response(response.status, response.headers, body)
            finally:
                # (What leaving ``async with`` does, once: the answer is read,
                # or its connection is closed, not pooled, mid-body.)
                response.release()
        except BaseException as exc:  # noqa: BLE001 (mapped or re-raised below)
            failure = self._failure(exc, request, timeout)
        # Raised outside the except block, so that the original exception is
        # not kept as the implicit __context__ either.
        raise failure

    def _failure(
        self, exc: BaseException, request: Request, timeout: float
    ) -> BaseException:
        what = f"{request.method} {request.path}"
        request_id = request.headers.get("X-Request-ID")
        # aiohttp's parse errors quote the server's bytes (cut at 100, so a
        # key may be cut too): shown as their length, never their content.
        told = self._redact(_QUOTED_BYTES.sub(_bytes_shown, _text(exc)))
        error: BaseException
        if isinstance(exc, aiohttp.ClientConnectorError):
            error = errors.APIConnectionError(
                f"{what} could not connect: {told}", request_id=request_id, sent=False
            )
        elif isinstance(exc, aiohttp.ConnectionTimeoutError):
            error = errors.APITimeoutError(
                f"{what} could not connect within {timeout:g}s",
                request_id=request_id,
                sent=False,
            )
        elif isinstance(exc, TimeoutError | aiohttp.ClientError) and self._closed:
            error = errors.ClientClosedError(
                "the SequenceClient was closed during the request"
            )
        elif isinstance(exc, TimeoutError):
            error = errors.APITimeoutError(
                f"{what} timed out after {timeout:g}s", request_id=request_id
            )
        elif (
            isinstance(exc, RuntimeError)
            and self._session is not None
            and self._session.closed
        ):
            # A caller's session closed before the client: nothing was sent.
            error = errors.APIConnectionError(
                f"{what} not sent: the aiohttp session given as session= is closed",
                request_id=request_id,
                sent=False,
            )
        elif isinstance(exc, aiohttp.ClientError):
            error = errors.APIConnectionError(
                f"{what} failed: {type(exc).__name__}: {told}", request_id=request_id
            )
        else:
            # Cancellation (a caller's asyncio.timeout too) and our own typed
            # errors pass unchanged, but without aiohttp's frames.
            return _scrubbed(exc, None)
        if told != str(exc) or hasattr(exc, "request_info"):
            # Keep the cause's type and message, but neither the key nor
            # aiohttp's request_info (its headers hold the key too).
            exc = aiohttp.ClientError(f"{type(exc).__name__}: {told}")
        return _scrubbed(error, exc)

    async def _read(self, response: aiohttp.ClientResponse, request: Request) -> bytes:
        request_id = request.headers.get("X-Request-ID")
        limit = self._limit
        given = response.headers.get("Content-Encoding", "identity").strip()
        encoding = given.lower()
        length = response.content_length
        if length is not None and length > limit:
            raise _too_large(response.status, limit, request_id)
        if encoding == "identity" and length is not None:
            return await response.read()  # framed and small
        if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
            raise errors.ResponseValidationError(
                f"cannot read Content-Encoding {self._redact(given)[:40]!r}",
                status=response.status,
                request_id=request_id,
            )
        inflate = (
            None
            if encoding == "identity"
            else zlib.decompressobj(31 if "gzip" in encoding else 15)
        )
        parts: list[bytes] = []
        size = 0
        try:
            async for chunk in response.content.iter_chunked(_CHUNK):
                data = chunk
                while data:
                    if inflate is None:
                        out, data = data, b""
                    elif inflate.eof:
                        # Bytes after the end of the stream: zlib would keep
                        # every one of them (unused_data), counted nowhere.
                        raise errors.ResponseValidationError(
                            f"data after the end of the {encoding} body",
                            status=response.status,
                            request_id=request_id,
                        )
                    else:
                        out = inflate.decompress(data, limit - size + 1)
                        data = inflate.unconsumed_tail or inflate.unused_data
                    size += len(out)
                    if size > limit:
                        raise _too_large(response.status, limit, request_id)
                    parts.append(out)
        except zlib.error as exc:
            raise errors.ResponseValidationError(
                f"the {encoding} body does not inflate: {exc}",
                status=response.status,
                request_id=request_id,
            ) from None
        return b"".join(parts)

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


def _too_large(
    status: int, limit: int, request_id: str | None
) -> errors.ResponseTooLargeError:
    return errors.ResponseTooLargeError(
        f"the answer's body is over max_response_bytes ({limit:,} bytes); "
        "not read further",
        status=status,
        request_id=request_id,
    )


def _scrubbed(error: BaseException, cause: BaseException | None) -> BaseException:
    # Keep the cause, but none of the frames (aiohttp's locals hold the
    # plain key).
    seen: set[int] = set()
    link = cause or error.__cause__ or error.__context__
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        link.__traceback__ = None
        link = link.__cause__ or link.__context__
    error.__traceback__ = None
    if cause is not None:
        error.__cause__ = cause
        error.__suppress_context__ = True
    return error
