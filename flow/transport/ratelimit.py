"""Rate limits per session: a token bucket, so one flooding client gets `rate_limited` instead of
the CPU, and a watch on how long a client has been over its limits, so one that never slows down
is disconnected instead of being refused forever (each refused packet still costs its parsing)."""

from __future__ import annotations

import time

FLOOD_GAP_S = 1.0
"""A client refused nothing for this long has slowed down: its time over the limits starts afresh."""


class TokenBucket:
    """Allows `rate` units per second on average and bursts of up to `burst` units."""

    def __init__(self, rate: float, burst: float, clock=time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._last = clock()

    def take(self, n: float = 1.0) -> bool:
        """Spend `n` units if available; False means the caller is over its limit."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= n:
            self._tokens -= n
            return True
        return False


class FloodWatch:
    """How long a client has been over its rate limits without a break.

    Each refused event is `refused()`; refusals less than `gap_s` apart are one spell over the
    limits. `refused()` says True once a spell has lasted `bound_s` (0: never). A client that
    bursts and is told `rate_limited` stops or slows, and its spell ends; a flooder's never does.
    """

    def __init__(self, bound_s: float, gap_s: float = FLOOD_GAP_S, clock=time.monotonic) -> None:
        self.bound_s = bound_s
        self.gap_s = gap_s
        self._clock = clock
        self._since: float | None = None
        self._last = 0.0
        self.count = 0
        """Events refused in the current spell."""

    def refused(self) -> bool:
        now = self._clock()
        if self._since is None or now - self._last > self.gap_s:
            self._since, self.count = now, 0
        self._last = now
        self.count += 1
        return self.bound_s > 0 and now - self._since >= self.bound_s

    @property
    def spell_s(self) -> float:
        """Seconds the current spell has lasted (0 when there is none)."""
        return 0.0 if self._since is None else self._last - self._since
