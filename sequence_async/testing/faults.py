"""
The fake server's injected faults and its per-key rate limit.

Owns ``Faults`` (what a test asks a route to suffer), the draws that decide
whether this request suffers them (seeded RNG, ``*_next`` counts first), and
``RateLimit``, the per-key token bucket the API reference describes. The
pipeline decides where in a request each applies.

May import: ``testing.api``, ``testing.seed`` (its validators).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import attrs

from .api import ApiError
from .seed import rate, seconds


def _count(_: object, field: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{field.name} must be an integer >= 0, not {value!r}")


@attrs.define(kw_only=True)
class Faults:
    """
    Faults injected on one route (or every route, under ``"*"``).

    Rates are probabilities drawn from the server's seeded RNG; ``*_next``
    counts hit the next requests for certain, then run out.

    Args:
        latency: Seconds added before the answer (after the write, if any).
        error_rate: Answer 500 before doing anything.
        errors_next: Answer the next N requests with 503.
        throttle_rate: Answer 429 with ``Retry-After: retry_after``.
        throttles_next: Answer the next N requests with 429.
        retry_after: Seconds sent in ``Retry-After`` (rounded up; 0 lets a
            client retry at once).
        drop_rate: Close the connection after the write commits (the
            response is lost).
        drops_next: Drop the next N responses after their write commits.
        malformed_rate: Answer 200 with an HTML page instead of JSON.
        malformed_next: Answer the next N requests with HTML.

    Raises:
        ValueError: A negative or non-finite time, a rate outside 0..1, or
            a count that is not an integer >= 0.
    """

    latency: float = attrs.field(default=0.0, validator=seconds)
    error_rate: float = attrs.field(default=0.0, validator=rate)
    errors_next: int = attrs.field(default=0, validator=_count)
    throttle_rate: float = attrs.field(default=0.0, validator=rate)
    throttles_next: int = attrs.field(default=0, validator=_count)
    retry_after: float = attrs.field(default=1.0, validator=seconds)
    drop_rate: float = attrs.field(default=0.0, validator=rate)
    drops_next: int = attrs.field(default=0, validator=_count)
    malformed_rate: float = attrs.field(default=0.0, validator=rate)
    malformed_next: int = attrs.field(default=0, validator=_count)

    def refusal(self, rng: random.Random) -> ApiError | None:
        """
        Draw the answer that refuses this request before it runs, if any.

        A 503 (``errors_next``), a 500 (``error_rate``) or a 429
        (``throttles_next``, ``throttle_rate``), in that order.
        """
        if self.errors_next > 0:
            self.errors_next -= 1
            return ApiError(503, "service_unavailable", "Injected outage.")
        if self.error_rate and rng.random() < self.error_rate:
            return ApiError(500, "internal_error", "Injected failure.")
        if self.throttles_next > 0 or (
            self.throttle_rate and rng.random() < self.throttle_rate
        ):
            self.throttles_next = max(0, self.throttles_next - 1)
            return ApiError(
                429,
                "rate_limit_exceeded",
                "Too many requests.",
                retry_after=self.retry_after,
            )
        return None

    def drops(self, rng: random.Random) -> bool:
        """
        Draw whether this answer is lost after its write commits.
        """
        if self.drops_next > 0:
            self.drops_next -= 1
            return True
        return bool(self.drop_rate) and rng.random() < self.drop_rate

    def malforms(self, rng: random.Random) -> bool:
        """
        Draw whether this answer is replaced by an HTML page.
        """
        if self.malformed_next > 0:
            self.malformed_next -= 1
            return True
        return bool(self.malformed_rate) and rng.random() < self.malformed_rate


class RateLimit:
    """
    Per-key token bucket refilled at *per_minute*.

    It holds *burst* tokens: by default a minute's worth, like the 100-token
    bucket the reference describes.
    """

    def __init__(
        self, per_minute: int, burst: int | None, clock: Callable[[], float]
    ) -> None:
        self.per_minute = per_minute
        self.burst = float(burst or per_minute)
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float | None:
        """
        Take a token for *key*; return seconds to wait when there is none.
        """
        now = self.clock()
        rate = self.per_minute / 60.0
        tokens, then = self.buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * rate)
        if tokens >= 1:
            self.buckets[key] = (tokens - 1, now)
            return None
        self.buckets[key] = (tokens, now)
        return (1 - tokens) / rate
