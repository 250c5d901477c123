"""
The fake server's manual clock: time that moves only when a test says so.

Owns ``ManualClock``. Any ``() -> float`` of epoch seconds can drive the
server; this one makes tests deterministic without sleeping.

May import: nothing from the package.
"""

from __future__ import annotations

import time


class ManualClock:
    """
    A clock that moves only when told: ``advance(seconds)``.

    It starts at the real time (or *start*), so timestamps look current.
    """

    def __init__(self, start: float | None = None) -> None:
        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        """
        The current time, in epoch seconds.
        """
        return self.now

    def advance(self, seconds: float) -> None:
        """
        Move time forward.
        """
        self.now += seconds
