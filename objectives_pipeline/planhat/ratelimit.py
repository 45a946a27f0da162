"""A client-side rate limit shared by every thread of a client."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """At most `requests` requests in any window of `period` seconds.

    A sliding window: each caller reserves the earliest moment at which sending
    keeps every window of `period` seconds at or below `requests` sends, then
    sleeps until that moment (outside the lock, so threads queue in order).
    Thread-safe. Memory grows with `requests`, not with time.
    """

    def __init__(
        self,
        requests: int,
        period: float = 60.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if isinstance(requests, bool) or not isinstance(requests, int) or requests < 1:
            raise ValueError(f"requests must be a positive integer, got {requests!r}")
        if not period > 0:
            raise ValueError(f"period must be positive seconds, got {period!r}")
        self.requests = requests
        self.period = float(period)
        self._clock = clock
        self._sleep = sleep
        self._sends: deque[float] = deque(maxlen=requests)
        self._lock = threading.Lock()

    @classmethod
    def per_minute(cls, requests: int) -> RateLimiter:
        return cls(requests, 60.0)

    def acquire(self) -> float:
        """Wait for a turn to send; return the seconds waited."""
        with self._lock:
            now = self._clock()
            at = now
            if len(self._sends) == self.requests:
                at = max(now, self._sends[0] + self.period)
            self._sends.append(at)
        wait = at - now
        if wait > 0:
            self._sleep(wait)
        return wait

    def __repr__(self) -> str:
        return f"RateLimiter(requests={self.requests}, period={self.period})"
