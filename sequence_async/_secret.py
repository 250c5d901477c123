"""
The API key as a value that never shows itself.

Owns ``Secret``: its repr is redacted, it refuses to be pickled or copied,
and it takes the key out of any text or body a server or proxy echoed it in.
"""

from __future__ import annotations

from typing import Any


class Secret:
    """
    A value that never shows itself: its repr is redacted (the API key).

    It refuses to be pickled or copied, so a pickled client fails loudly
    instead of writing the key to disk.
    """

    __slots__ = ("_key", "_token", "value")

    def __init__(self, value: str) -> None:
        self.value = value
        _, space, key = value.strip().rpartition(" ")  # the key: after the scheme
        self._key = key if space else ""
        self._token = self._key.encode()  # (encoded once: read on every answer)

    def __repr__(self) -> str:
        return "Secret('<redacted>')"

    def redact(self, text: str) -> str:
        """*text* without the key (a server or proxy may echo it in a message)."""
        return text.replace(self._key, "<redacted>") if self._key else text

    def redact_body(self, body: bytes) -> bytes:
        """*body* without the key: no model, message or log keeps an echo."""
        token = self._token
        return body.replace(token, b"<redacted>") if token and token in body else body

    def __reduce_ex__(self, protocol: object) -> Any:
        raise TypeError("the API key cannot be pickled or copied")

    __reduce__ = __reduce_ex__  # type: ignore[assignment]
