"""Client-side pacing: a fixed rate limit, pacing to the server's allowance, an in-flight limit."""

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


PROBE_FACTOR = 1.5


class Pacer:
    """Paces requests to the allowance a server advertises, learning its window.

    The server says how many requests a window allows (``X-Rate-Limit-Limit``)
    and how many are left (``X-Rate-Limit-Remaining``), but not how long the
    window is. Each answer bounds it, given when this client received the
    answers to its accepted requests: ``used = limit - remaining`` of them fall
    in the window (fewer when requests still in flight were counted already),
    so it is longer than the span of the last `used` answers, and (for a
    rolling window) no longer than the span of the last ``used + 1``; a 429
    means the last `limit` accepted requests (or all this client knows of)
    still count, and that no slot freed since the first 429 in a row. Answer times,
    not send times, because a busy server counts a request when it gets to it.

    Sends keep to `limit` per window (plus `margin`) in a sliding window like
    `RateLimiter`: the upper bound once known, `PROBE_FACTOR` times the lower
    bound while only that is known (so that each 429 of the learning widens the
    spacing by that factor), no pacing before the first bound. Requests answered 429 are
    assumed not to count against the server's quota.

    Limits above `max_tracked` are not paced (no server needs pacing there).
    Call `observe` or `cancel` once after each `acquire`. Thread-safe; the
    clock and sleep can be replaced in tests.
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
        self._pending = 0
        self._reset()

    def _reset(self) -> None:
        tracked = min(self._limit or 1, self._max_tracked)
        self._answers: deque[float] = deque(maxlen=tracked + 1)
        self._sends: deque[float] = deque(maxlen=tracked)
        self._lower = 0.0
        self._upper: float | None = None
        self._throttled_since: float | None = None

    @property
    def limit(self) -> int | None:
        """The server's last advertised ``X-Rate-Limit-Limit``."""
        return self._limit

    @property
    def window(self) -> float | None:
        """The learned window in seconds (the tightest bound known), or None while unknown."""
        with self._lock:
            if self._upper is not None:
                return self._upper
            return self._lower if self._lower > 0 else None

    def acquire(self) -> float:
        """Wait for a turn to send; return the seconds waited."""
        with self._lock:
            self._pending += 1
            now = self._clock()
            at = now
            window = self._pace_window()
            sends = self._sends
            if window is not None and sends.maxlen is not None and len(sends) == sends.maxlen:
                at = max(now, sends[0] + window)
            if self._limit is None or self._limit <= self._max_tracked:
                sends.append(at)
        wait = at - now
        if wait > 0:
            self._sleep(wait)
        return wait

    def _pace_window(self) -> float | None:
        if self._upper is not None:
            return self._upper * (1 + self._margin)
        if self._lower > 0:
            return self._lower * PROBE_FACTOR * (1 + self._margin)
        return None

    def retry_hint(self) -> float | None:
        """Seconds until the learned window frees a slot for a request answered 429, if known."""
        with self._lock:
            window = self._pace_window()
            limit = self._limit
            if window is None or limit is None or len(self._answers) < limit:
                return None
            return max(0.0, self._answers[-limit] + window - self._clock())

    def cancel(self) -> None:
        """The request of the last `acquire` got no answer."""
        with self._lock:
            self._pending = max(0, self._pending - 1)

    def observe(self, limit: int | None, remaining: int | None, *, throttled: bool) -> None:
        """Learn from an answer just received (429: `throttled`)."""
        with self._lock:
            self._pending = max(0, self._pending - 1)
            if limit is None or limit < 1:
                return
            if limit != self._limit:
                self._limit = limit
                self._reset()
            if limit > self._max_tracked:
                return
            now = self._clock()
            answers = self._answers
            if throttled:
                if self._throttled_since is None:
                    self._throttled_since = now
                # all of the last `limit` accepted, or all this client knows of, still count
                oldest = (
                    answers[-limit] if len(answers) >= limit else answers[0] if answers else now
                )
                self._raise_lower(now - min(oldest, self._throttled_since))
                return
            self._throttled_since = None
            answers.append(now)
            if remaining is None:
                return
            used = min(limit, max(1, limit - remaining))
            counted = max(1, used - self._pending)
            if len(answers) >= counted:
                self._raise_lower(now - answers[-counted])
            if len(answers) > used:
                bound = now - answers[-used - 1]
                if bound >= self._lower and (self._upper is None or bound < self._upper):
                    self._upper = bound

    def _raise_lower(self, bound: float) -> None:
        if bound > self._lower:
            self._lower = bound
            if self._upper is not None and self._upper < bound:
                # The span that gave it was no bound: a window that resets all at once
                # (a quota) frees every slot at its reset, not one per request.
                self._upper = None
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
