"""
The fake server's idempotency keys.

Owns the rule of the API reference: a request repeated with the same
``Idempotency-Key`` (per API key and path) within 24 hours gets the first
answer and creates nothing; the same key with another body is a 400
``idempotency_key_mismatch``; a duplicate arriving while the first request
still runs is a 409 ``request_in_progress``; a first request that failed is
forgotten, so it may be retried.

May import: ``testing.api``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import attrs

from .api import ApiError, printable


IDEMPOTENCY_TTL = 24 * 3600.0
MAX_KEY_LENGTH = 255

Slot = tuple[str, str, str]  # (API key, path, idempotency key)
Answer = tuple[int, Any]  # (status, data) of the first request


@attrs.define(eq=False)
class _Entry:
    fingerprint: str
    created: float
    answer: Answer | None = None  # None while the first request runs


class Idempotency:
    """
    The idempotency keys seen, with their first answers, for 24 hours.

    Args:
        clock: Epoch seconds (the server's clock).

    Attributes:
        keys: Every key that started a request, in order (a test's record).
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.keys: list[str] = []
        self._entries: dict[Slot, _Entry] = {}

    def begin(self, slot: Slot, body: Any) -> Answer | None:
        """
        Start a request: the first answer when it is a replay, else ``None``.

        Raises:
            ApiError: 400 for a bad key or a replay with another body; 409
                while the first request with this key still runs.
        """
        idem_key = slot[2]
        if not printable(idem_key, MAX_KEY_LENGTH):
            raise ApiError(
                400,
                "invalid_request",
                "Idempotency-Key must be 1 to 255 printable ASCII characters.",
            )
        now = self.clock()
        fingerprint = hashlib.sha256(
            json.dumps(body, sort_keys=True).encode()
        ).hexdigest()
        entry = self._entries.get(slot)
        if entry is not None and now - entry.created > IDEMPOTENCY_TTL:
            entry = None
        if entry is None:
            self._entries[slot] = _Entry(fingerprint, now)
            self.keys.append(idem_key)
            return None
        if entry.fingerprint != fingerprint:
            raise ApiError(
                400,
                "idempotency_key_mismatch",
                "This Idempotency-Key was used with another request body.",
            )
        if entry.answer is None:
            raise ApiError(
                409,
                "request_in_progress",
                "A request with this Idempotency-Key is still in progress.",
            )
        return entry.answer

    def end(self, slot: Slot, answer: Answer | None) -> None:
        """
        Keep the first answer of *slot* (``None``: it failed, forget the key).
        """
        if answer is None:
            self._entries.pop(slot, None)
        elif (entry := self._entries.get(slot)) is not None:
            entry.answer = answer
