"""Client-side pacing: a fixed rate limit, pacing to the server's allowance, an in-flight limit."""

from __future__ import annotations

import bisect
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


class Pacer:
    """Paces requests to the allowance a server advertises, learning its window.

    The server says how many requests a window allows (``X-Rate-Limit-Limit``)
    and how many are left (``X-Rate-Limit-Remaining``), but not how long the
    window is. Each answer bounds it, given the times at which this client sent
    its accepted requests: ``used = limit - remaining`` of them fall in the
    window, so it is longer than the span of the last `used` sends, and (for a
    rolling window) no longer than the span of the last ``used + 1``; a 429
    means the last `limit` accepted sends all still count. Once a window is
    known, sends keep to `limit` per window (plus `margin`), in a sliding window
    like `RateLimiter`; until then they are not paced. Requests answered 429
    are assumed not to count against the server's quota.

    Limits above `max_tracked` are not paced (no server needs pacing there).
    Thread-safe; the clock and sleep can be replaced in tests.
    """

    def __init__(
        self,
        *,
        margin: float = 0.05,
        max_tracked: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not margin >= 0:
            raise ValueError(f"margin must be non-negative, got {margin!r}")
        self._margin = margin
        self._max_tracked = max_tracked
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._limit: int | None = None
        self._reset()

    def _reset(self) -> None:
        self._accepted: list[float] = []
        self._sends: deque[float] = deque(maxlen=self._limit or 1)
        self._lower = 0.0
        self._upper: float | None = None

    @property
    def limit(self) -> int | None:
        """The server's last advertised ``X-Rate-Limit-Limit``."""
        return self._limit

    @property
    def window(self) -> float | None:
        """The learned window in seconds, or None while unknown."""
        with self._lock:
            return self._window()

    def _window(self) -> float | None:
        if self._upper is not None:
            return self._upper
        return self._lower if self._lower > 0 else None

    def acquire(self) -> tuple[float, float]:
        """Wait for a turn to send; return (seconds waited, the send time to report back)."""
        with self._lock:
            now = self._clock()
            at = now
            window = self._window()
            sends = self._sends
            if window is not None and sends.maxlen is not None and len(sends) == sends.maxlen:
                at = max(now, sends[0] + window * (1 + self._margin))
            sends.append(at)
        wait = at - now
        if wait > 0:
            self._sleep(wait)
        return wait, at

    def observe(
        self, sent_at: float, limit: int | None, remaining: int | None, *, throttled: bool
    ) -> None:
        """Learn from the answer to the request sent at `sent_at` (429: `throttled`)."""
        if limit is None or limit < 1:
            return
        with self._lock:
            if limit != self._limit:
                self._limit = limit
                self._reset()
            if limit > self._max_tracked:
                return
            accepted = self._accepted
            if throttled:
                index = bisect.bisect_right(accepted, sent_at)
                if index >= limit:
                    self._raise_lower(sent_at - accepted[index - limit])
                return
            bisect.insort(accepted, sent_at)
            if len(accepted) > limit + 1:
                del accepted[: len(accepted) - limit - 1]
            if remaining is None:
                return
            index = bisect.bisect_right(accepted, sent_at)
            used = min(limit, max(1, limit - remaining))
            # The server may count sends that followed this one before it answers.
            later = sum(1 for at in self._sends if at > sent_at)
            counted = max(1, used - later)
            if index >= counted:
                self._raise_lower(sent_at - accepted[index - counted])
            if index > used:
                bound = sent_at - accepted[index - used - 1]
                if bound >= self._lower and (self._upper is None or bound < self._upper):
                    self._upper = bound

    def _raise_lower(self, bound: float) -> None:
        if bound > self._lower:
            self._lower = bound
            if self._upper is not None and self._upper < bound:
                self._upper = None  # that answer contradicts the rolling-window bound

    def __repr__(self) -> str:
        return f"Pacer(limit={self._limit}, window={self.window})"


class InFlightLimit:
    """How many requests may be in flight at once: halved on 429, grown back on success.

    A 429 halves the limit (down to 1) from the number in flight at the time,
    once per burst: further 429s to requests sent before that cut do not cut
    again. Every `limit` successes in a row raise it by one, up to `ceiling`.
    Thread-safe; `acquire` blocks until a slot is free.
    """

    def __init__(self, ceiling: int) -> None:
        if ceiling < 1:
            raise ValueError(f"ceiling must be a positive integer, got {ceiling!r}")
        self.ceiling = ceiling
        self._limit = ceiling
        self._in_flight = 0
        self._issued = 0
        self._cut_after = 0
        self._successes = 0
        self._free = threading.Condition()

    @property
    def limit(self) -> int:
        return self._limit

    def acquire(self) -> int:
        """Wait for a free slot; return the ticket to pass to `release`."""
        with self._free:
            while self._in_flight >= self._limit:
                self._free.wait()
            self._in_flight += 1
            self._issued += 1
            return self._issued

    def release(self, ticket: int, *, throttled: bool) -> bool:
        """Free the slot of `ticket`; True when its 429 cut the limit."""
        with self._free:
            cut = False
            if throttled:
                self._successes = 0
                if ticket > self._cut_after:
                    self._limit = max(1, min(self._limit, self._in_flight) // 2)
                    self._cut_after = self._issued
                    cut = True
            elif self._limit < self.ceiling:
                self._successes += 1
                if self._successes >= self._limit:
                    self._limit += 1
                    self._successes = 0
            self._in_flight -= 1
            self._free.notify_all()
            return cut

    def __repr__(self) -> str:
        return f"InFlightLimit(limit={self._limit}, ceiling={self.ceiling})"
