"""Counters of what a client did: requests, retries and time spent waiting."""

from __future__ import annotations

import threading
from collections import Counter

from pydantic import BaseModel, ConfigDict


class ClientStats(BaseModel):
    """A snapshot of a client's counters (e.g. for run metadata).

    `requests` counts every HTTP attempt, retries included;
    `rate_limit_wait_seconds` is time spent in the client-side rate limit and in
    pauses for another request's ``Retry-After``; `retry_wait_seconds` is backoff
    between attempts. `paced_seconds` is time spent keeping to the server's
    learned allowance (`server_rate_limit` requests per `server_window_seconds`,
    None while unknown); `in_flight_limit_reductions` counts the 429s that
    halved the requests allowed in flight, `min_in_flight_limit` is the lowest
    that allowance fell to (None: never cut).
    `rate_limit_remaining` is the last ``X-Rate-Limit-Remaining`` Planhat sent
    (None before any, or when it sends none).
    """

    model_config = ConfigDict(frozen=True)

    requests: int = 0
    retries: int = 0
    retry_wait_seconds: float = 0.0
    rate_limit_wait_seconds: float = 0.0
    rate_limited_count: int = 0
    transport_errors: int = 0
    bad_responses: int = 0
    responses_by_status: dict[int, int] = {}
    paced_seconds: float = 0.0
    in_flight_limit_reductions: int = 0
    min_in_flight_limit: int | None = None
    server_rate_limit: int | None = None
    server_window_seconds: float | None = None
    rate_limit_remaining: int | None = None


class StatsRecorder:
    """Thread-safe mutable counters behind `ClientStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._requests = 0
        self._retries = 0
        self._retry_wait = 0.0
        self._rate_limit_wait = 0.0
        self._paced = 0.0
        self._in_flight_cuts = 0
        self._in_flight_min: int | None = None
        self._server_limit: int | None = None
        self._server_window: float | None = None
        self._transport_errors = 0
        self._bad_responses = 0
        self._statuses: Counter[int] = Counter()
        self._remaining: int | None = None

    def request_sent(self) -> int:
        """Count a request; return its 1-based number."""
        with self._lock:
            self._requests += 1
            return self._requests

    def response(self, status: int) -> None:
        with self._lock:
            self._statuses[status] += 1

    def quota_remaining(self, remaining: int | None) -> None:
        """Record the latest ``X-Rate-Limit-Remaining`` (ignored when absent)."""
        if remaining is not None:
            with self._lock:
                self._remaining = remaining

    def retry(self, wait: float) -> None:
        with self._lock:
            self._retries += 1
            self._retry_wait += wait

    def rate_limit_wait(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._rate_limit_wait += seconds

    def paced(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._paced += seconds

    def in_flight_cut(self, limit: int) -> None:
        with self._lock:
            self._in_flight_cuts += 1
            if self._in_flight_min is None or limit < self._in_flight_min:
                self._in_flight_min = limit

    def server_allowance(self, limit: int | None, window: float | None) -> None:
        with self._lock:
            self._server_limit = limit
            self._server_window = window

    def transport_error(self) -> None:
        with self._lock:
            self._transport_errors += 1

    def bad_response(self) -> None:
        with self._lock:
            self._bad_responses += 1

    def snapshot(self, *, reset: bool = False) -> ClientStats:
        with self._lock:
            stats = ClientStats(
                requests=self._requests,
                retries=self._retries,
                retry_wait_seconds=round(self._retry_wait, 6),
                rate_limit_wait_seconds=round(self._rate_limit_wait, 6),
                rate_limited_count=self._statuses[429],
                transport_errors=self._transport_errors,
                bad_responses=self._bad_responses,
                responses_by_status=dict(sorted(self._statuses.items())),
                paced_seconds=round(self._paced, 6),
                in_flight_limit_reductions=self._in_flight_cuts,
                min_in_flight_limit=self._in_flight_min,
                server_rate_limit=self._server_limit,
                server_window_seconds=(
                    None if self._server_window is None else round(self._server_window, 3)
                ),
                rate_limit_remaining=self._remaining,
            )
            if reset:
                self._reset()
            return stats
