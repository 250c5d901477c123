"""
The API key as a value that never shows itself.

Owns ``Secret``: its repr is redacted, it refuses to be pickled or copied,
and it takes the key out of any text or body a server or proxy echoed it in.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Secret:
    """
    A value that never shows itself: its repr is redacted (the API key).

    It refuses to be pickled or copied, so a pickled client fails loudly
    instead of writing the key to disk.
    """

    __slots__ = ("_escaped", "_key", "_token", "value")

    def __init__(self, value: str) -> None:
        self.value = value
        _, space, key = value.strip().rpartition(" ")  # the key: after the scheme
        self._key = key if space else ""
        self._token = self._key.encode()  # (encoded once: read on every answer)
        # The key as a repr spells it (a backslash doubled), if it differs.
        quoted = repr(self._key)[1:-1]
        self._escaped = quoted if quoted != self._key else ""

    def __repr__(self) -> str:
        return "Secret('<redacted>')"

    def redact(self, text: str) -> str:
        """
        *text* without the key (a server or proxy may echo it in a message).

        As a repr spells it too (a library quoting the server's bytes).
        """
        if not self._key:
            return text
        text = text.replace(self._key, "<redacted>")
        return text.replace(self._escaped, "<redacted>") if self._escaped else text

    def redact_quoted(self, text: str, *, keep: int | None = None) -> str:
        """
        *text* without the key, however a quote of the server's bytes spells it.

        For errors that quote what a server sent (an HTTP parser's): a repr
        may double its backslashes, once or twice, and a quote cut at a fixed
        length may keep only the key's head (any 12 characters or more of
        it are taken out), and a proxy may have lowercased or uppercased it.
        Slower than ``redact``: for errors, hooks and captures only. With
        *keep*, only the first *keep* characters of the result are wanted:
        the rest is cut before the work (a 4 MiB error page costs no more
        than its head).
        """
        if not self._key:
            return text
        if keep is not None:  # every spelling begun in the kept part, whole
            text = text[: keep + 4 * len(self._key) + 12]
        once = self._escaped or self._key  # as one repr spells it
        key = self._key  # (and as a proxy may case it)
        for spelling in {key, once, repr(once)[1:-1], key.lower(), key.upper()}:
            if spelling[:12] not in text:
                continue  # no head of it here: the common case
            for end in range(len(spelling), min(len(spelling), 12) - 1, -1):
                text = text.replace(spelling[:end], "<redacted>")
        return text if keep is None else text[:keep]

    def redact_body(self, body: bytes) -> bytes:
        """*body* without the key: no model, message or log keeps an echo."""
        token = self._token
        # (replace() hands back the same object when there is nothing to
        # replace, in a third of the time of a ``token in body`` test first)
        return body.replace(token, b"<redacted>") if token else body

    def redact_value(self, value: Any) -> Any:
        """
        *value* (freshly decoded JSON, changed in place) without the key.

        For a body whose JSON escapes (a backslash) hid the key from
        ``redact_body``. Walked without recursion: the value may be nested as
        deep as the parser allowed.
        """
        if isinstance(value, str):
            return self.redact(value)
        stack = [value] if self._key and isinstance(value, dict | list) else []
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                pairs = [(self.redact(k), v) for k, v in node.items()]
                node.clear()
                node.update(pairs)
            for index, item in (
                node.items() if isinstance(node, dict) else enumerate(node)
            ):
                if isinstance(item, str):
                    node[index] = self.redact(item)
                elif isinstance(item, dict | list):
                    stack.append(item)
        return value

    def redact_headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """
        *headers* as a dict: ``Authorization`` hidden, the key out of the rest.

        What hooks and captured answers see: a proxy may echo the key in any
        header, its name included, whole or cut, in any case
        (``redact_quoted``).
        """
        return {
            self.redact_quoted(name): "<redacted>"
            if name.lower() == "authorization"
            else self.redact_quoted(value)
            for name, value in headers.items()
        }

    def __reduce_ex__(self, protocol: object) -> Any:
        raise TypeError("the API key cannot be pickled or copied")

    __reduce__ = __reduce_ex__  # type: ignore[assignment]
