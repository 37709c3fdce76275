"""A token bucket per session, so one flooding client gets `rate_limited` instead of the CPU."""

from __future__ import annotations

import time


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
