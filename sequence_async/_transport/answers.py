"""
Reading an answer whole, its connection then released.

At most ``max_response_bytes`` of it, counted decompressed: gzip and deflate
are inflated here (aiohttp's own decompression is off).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import aiohttp

from sequence_async import errors
from sequence_async._wire import Request, Response


_CHUNK = 64 * 1024


async def whole(
    response: aiohttp.ClientResponse,
    request: Request,
    *,
    limit: int,
    redact: Callable[[str], str],
) -> Response:
    """
    The answer read (at most *limit* bytes), its connection released.

    Raises:
        errors.ResponseTooLargeError: The body passed *limit*.
        errors.ResponseValidationError: An encoding we cannot read.
    """
    try:
        length = response.content_length
        try:
            if (
                length is not None
                and length <= limit
                and "Content-Encoding" not in response.headers
            ):
                body = await response.read()  # framed, small and plain
            else:
                body = await _capped(response, request, limit, redact)
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


async def _capped(
    response: aiohttp.ClientResponse,
    request: Request,
    limit: int,
    redact: Callable[[str], str],
) -> bytes:
    # A body without a length, or encoded: read in chunks, counted as
    # decompressed.
    request_id = request.headers.get("X-Request-ID")
    given = response.headers.get("Content-Encoding", "identity").strip()
    encoding = given.lower()
    length = response.content_length
    if length is not None and length > limit:
        raise _too_large(response.status, limit, request_id)
    if encoding == "identity" and length is not None:
        return await response.read()  # framed and small
    if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
        raise errors.ResponseValidationError(
            f"cannot read Content-Encoding {redact(given)[:40]!r}",
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


def _too_large(
    status: int, limit: int, request_id: str | None
) -> errors.ResponseTooLargeError:
    return errors.ResponseTooLargeError(
        f"the answer's body is over max_response_bytes ({limit:,} bytes); "
        "not read further",
        status=status,
        request_id=request_id,
    )
