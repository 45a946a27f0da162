"""Fault knobs for the sandbox and the engine that applies them.

`Faults` is a plain mutable dataclass: change its fields while the server runs
and the next request sees the new behaviour. Knobs described as "since set"
restart their count whenever their value changes.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from dataclasses import dataclass, field

from objectives_pipeline.sandbox.store import ListOrder, PageMangle

# Quota advertised in X-Rate-Limit-* headers when no window quota is configured.
UNLIMITED_QUOTA = 1_000_000


@dataclass
class Faults:
    """What the sandbox does wrong, on purpose. All knobs are off by default."""

    latency_ms: float = 0.0
    """Delay added to every request."""
    latency_jitter_ms: float = 0.0
    """A random extra delay of up to this much per request (answers then cross)."""
    error_rate: float = 0.0
    """Share of requests answered 500, 502 or 503."""
    drop_rate: float = 0.0
    """Share of requests whose connection is closed with no response."""
    rate_limit_per_second: float | None = None
    """More accepted requests than this within any rolling second get 429. Without a window
    quota, the X-Rate-Limit-* headers advertise this limit and what is left of it."""
    rate_limit_window_requests: int | None = None
    """Quota per window (X-Rate-Limit-Limit); 429 once exhausted."""
    rate_limit_window_seconds: float = 60.0
    burst_429: int = 0
    """The next N requests get 429 (counts down as they are served)."""
    retry_after: float | None = None
    """When set, every 429 carries ``Retry-After: <seconds>`` (may be fractional)."""
    retry_after_window_reset: bool = False
    """429s for an exhausted window quota carry ``Retry-After``: the whole seconds until the
    window resets (rounded up). Takes precedence over `retry_after` for those 429s."""
    page_cap: int | None = None
    """List responses hold at most this many records, whatever limit was asked."""
    page_cap_min: int | None = None
    """With `page_cap`: each list response's cap is drawn between this and `page_cap`."""
    list_order: ListOrder = "sort"
    """``sort`` honours ``sort``; ``insertion`` ignores it and lists objectives in insertion
    order (not their _id order); ``page_sorted`` sorts each insertion-order page by _id."""
    page_mangle: PageMangle | None = None
    """``two_pages_back``: the middle record of each list page is replaced by the record two
    pages earlier; ``repeat``: by the record before it (a record twice in one page)."""
    empty_pages_from_request: int | None = None
    """From the Nth list request since set on, every list page is ``[]``."""
    trickle_bytes_per_second: float | None = None
    """List bodies are sent this slowly (a chunk every 0.1 s)."""
    truncate_rate: float = 0.0
    """Share of 200 list responses whose JSON body is cut in half."""
    non_json_rate: float = 0.0
    """Share of 200 list responses with an HTML body instead of JSON."""
    churn_per_list_request: int = 0
    """Before each list response: delete N objectives early in _id order, create N."""
    churn_anywhere: bool = False
    """Churn deletes anywhere in _id order and creates with random ids anywhere in it."""
    bulk_item_error_source_ids: set[str] = field(default_factory=set)
    """Bulk items with these sourceIds fail (createdErrors/updatedErrors, status 206); for
    companies an item also fails when its own or its matched company's _id is listed."""
    bulk_item_permission_source_ids: set[str] = field(default_factory=set)
    """Bulk items with these sourceIds (companies: or _ids) fail with a permission error (206)."""
    bulk_500_on_request: int | None = None
    """The Nth bulk PUT since set applies `bulk_500_after_items` items then answers 500; once."""
    bulk_500_after_items: int = 0
    expire_token_after_requests: int | None = None
    """After this many authorised requests since set, every request gets 401."""
    seed: int = 0
    """Seed of the random choices behind the *_rate knobs."""


class FaultEngine:
    """Applies a `Faults` to requests; used from the server's event loop thread only."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self._seed = faults.seed
        self._rng = random.Random(faults.seed)
        self._recent: deque[float] = deque()
        self._window_quota: int | None = None
        self._window_start = 0.0
        self._window_used = 0
        self._expiry_setting: int | None = None
        self._authorised = 0
        self._bulk_setting: int | None = None
        self._bulk_seen = 0
        self._empty_setting: int | None = None
        self._lists_seen = 0

    @property
    def rng(self) -> random.Random:
        if self.faults.seed != self._seed:
            self._seed = self.faults.seed
            self._rng = random.Random(self._seed)
        return self._rng

    def roll(self, rate: float) -> bool:
        """True for a share `rate` of calls."""
        return rate > 0 and self.rng.random() < rate

    def error_status(self) -> int:
        return self.rng.choice((500, 502, 503))

    def token_expired(self) -> bool:
        """Count one authorised request; True once the configured number is used up."""
        limit = self.faults.expire_token_after_requests
        if limit != self._expiry_setting:
            self._expiry_setting = limit
            self._authorised = 0
        if limit is None:
            return False
        if self._authorised >= limit:
            return True
        self._authorised += 1
        return False

    def throttle(self) -> str | None:
        """Why this request must get 429, or None (then it counts against the quotas)."""
        faults = self.faults
        if faults.burst_429 > 0:
            faults.burst_429 -= 1
            return "burst_429"
        now = time.monotonic()
        per_second = faults.rate_limit_per_second
        if per_second is not None:
            while self._recent and now - self._recent[0] >= 1.0:
                self._recent.popleft()
            if len(self._recent) >= per_second:
                return "rate_limit_per_second"
        self._roll_window(now)
        if self._window_used >= self.quota:
            return "rate_limit_window"
        self._window_used += 1
        if per_second is not None:
            self._recent.append(now)
        return None

    @property
    def quota(self) -> int:
        configured = self.faults.rate_limit_window_requests
        return UNLIMITED_QUOTA if configured is None else configured

    def rate_limit_headers(self) -> list[tuple[bytes, bytes]]:
        now = time.monotonic()
        self._roll_window(now)
        limit, used = self.quota, self._window_used
        per_second = self.faults.rate_limit_per_second
        if per_second is not None and self.faults.rate_limit_window_requests is None:
            limit = math.ceil(per_second)
            used = sum(1 for sent in self._recent if now - sent < 1.0)
        return [
            (b"x-rate-limit-limit", str(limit).encode()),
            (b"x-rate-limit-remaining", str(max(0, limit - used)).encode()),
        ]

    def retry_after_header(self, reason: str | None = None) -> list[tuple[bytes, bytes]]:
        """The Retry-After header of a 429 given for `reason` (see `throttle`), if any."""
        seconds = self.faults.retry_after
        if reason == "rate_limit_window" and self.faults.retry_after_window_reset:
            left = self._window_start + self.faults.rate_limit_window_seconds - time.monotonic()
            seconds = float(max(1, math.ceil(left)))
        if seconds is None:
            return []
        text = str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"
        return [(b"retry-after", text.encode())]

    def list_page_cap(self, limit: int) -> int:
        """The records this list response may hold, given the `limit` asked."""
        cap = self.faults.page_cap
        if cap is None:
            return limit
        low = self.faults.page_cap_min
        if low is not None and low < cap:
            cap = self.rng.randint(max(low, 0), cap)
        return min(limit, max(cap, 0))

    def list_comes_back_empty(self) -> bool:
        """Count one list request; True once `empty_pages_from_request` is reached."""
        start = self.faults.empty_pages_from_request
        if start != self._empty_setting:
            self._empty_setting = start
            self._lists_seen = 0
        self._lists_seen += 1
        return start is not None and self._lists_seen >= start

    def bulk_crash_after(self) -> int | None:
        """Count one bulk PUT; the number of items to apply before a 500, or None."""
        target = self.faults.bulk_500_on_request
        if target != self._bulk_setting:
            self._bulk_setting = target
            self._bulk_seen = 0
        if target is None:
            return None
        self._bulk_seen += 1
        if self._bulk_seen != target:
            return None
        self.faults.bulk_500_on_request = None
        self._bulk_setting = None
        return max(0, self.faults.bulk_500_after_items)

    def _roll_window(self, now: float) -> None:
        quota = self.faults.rate_limit_window_requests
        if quota != self._window_quota:
            self._window_quota = quota
            self._window_start = now
            self._window_used = 0
        elif now - self._window_start >= self.faults.rate_limit_window_seconds:
            self._window_start = now
            self._window_used = 0
