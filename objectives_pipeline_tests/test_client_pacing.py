"""Pacing to the server's rate limit: learned from its headers, over real HTTP to the sandbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from objectives_pipeline.planhat import PlanhatClient, RateLimitedError, RetryPolicy
from objectives_pipeline.planhat.ratelimit import InFlightLimit, Pacer
from objectives_pipeline.sandbox import Faults, SandboxServer

from .fault_matrix import figures

# Retries as quick as they go: the only thing between a 429 and the next attempt is the pacing.
QUICK = RetryPolicy(initial_backoff=0.001, max_backoff=0.01, jitter=0.001, max_attempts=20)
PAGE = 100  # 2,500 objectives: 26 requests, enough to hit each limit several times


@pytest.fixture(scope="module")
def server(sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return sandbox(objectives=2500, companies=20, seed=13)


@pytest.fixture(autouse=True)
def _reset(server: SandboxServer) -> Iterator[None]:
    yield
    server.faults = Faults()


def page_all(server: SandboxServer, retry: RetryPolicy = QUICK) -> tuple[list[str], PlanhatClient]:
    with PlanhatClient(
        server.base_url, server.token, retry=retry, rate_limit_per_minute=None
    ) as api:
        ids = [r["_id"] for p in api.iter_pages(limit=PAGE, concurrency=4) for r in p.records]
    return ids, api


def test_a_one_second_limit_is_learned_and_kept_to(server: SandboxServer) -> None:
    server.faults = Faults(rate_limit_per_second=5)  # 429 without Retry-After
    first = len(server.request_log)
    ids, api = page_all(server)
    stats = api.stats
    throttled = [r for r in server.request_log[first:] if r.status == 429]

    assert ids == server.store.ids()
    assert stats.server_rate_limit == 5
    assert stats.server_window_seconds is not None
    assert 0.8 <= stats.server_window_seconds <= 1.5
    # 429s come while the window is being learned, not once per page
    assert stats.rate_limited_count == len(throttled) <= 15
    assert stats.paced_seconds > 0
    # the pager's 4 pages in flight were cut down by the 429s
    assert stats.in_flight_limit_reductions >= 1
    assert stats.min_in_flight_limit is not None and stats.min_in_flight_limit <= 2
    figures(
        "client pacing: 5 requests per rolling second, 429 without Retry-After",
        requests=stats.requests,
        faults_429=stats.rate_limited_count,
        learned=f"{stats.server_rate_limit} per {stats.server_window_seconds} s",
        in_flight_cuts=stats.in_flight_limit_reductions,
        paced_s=round(stats.paced_seconds, 2),
    )


def test_without_pacing_the_same_limit_exhausts_the_retries(server: SandboxServer) -> None:
    server.faults = Faults(rate_limit_per_second=5)
    with pytest.raises(RateLimitedError, match="after 20 attempts"):
        page_all(server, QUICK.model_copy(update={"pace_to_server": False}))


def test_a_quota_window_with_retry_after_is_learned_and_kept_to(server: SandboxServer) -> None:
    # a per-minute quota scaled down: 10 requests per fixed 2 s window
    server.faults = Faults(
        rate_limit_window_requests=10, rate_limit_window_seconds=2.0, retry_after_window_reset=True
    )
    first = len(server.request_log)
    ids, api = page_all(server)
    stats = api.stats
    log = server.request_log[first:]

    assert ids == server.store.ids()
    assert stats.server_rate_limit == 10
    assert stats.server_window_seconds is not None
    assert 1.0 <= stats.server_window_seconds <= 3.0
    windows = len(log) // 10 + 1
    # the 4 pages in flight when the quota first runs out, then about one 429 per window
    assert stats.rate_limited_count <= 4 + windows
    figures(
        "client pacing: quota 10 per fixed 2 s window, Retry-After until it resets",
        requests=stats.requests,
        faults_429=stats.rate_limited_count,
        learned=f"{stats.server_rate_limit} per {stats.server_window_seconds} s",
        retry_wait_s=round(stats.retry_wait_seconds, 2),
        paced_s=round(stats.paced_seconds, 2),
    )


def test_the_pacer_learns_a_rolling_window_from_remaining_alone() -> None:
    """A sequential client against a simulated 5-per-second rolling window, in simulated time."""
    now = [0.0]
    pacer = Pacer(clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    accepted: list[float] = []
    throttled = 0
    for _ in range(200):
        pacer.acquire()
        arrived = now[0]
        now[0] += 0.01  # the round trip
        in_window = [t for t in accepted if arrived - t < 1.0]
        if len(in_window) >= 5:
            throttled += 1
            pacer.observe(5, 0, throttled=True)
            now[0] += 0.3  # a retry backoff
        else:
            accepted.append(arrived)
            pacer.observe(5, 5 - len(in_window) - 1, throttled=False)
    assert pacer.limit == 5
    assert pacer.window == pytest.approx(1.0, abs=0.05)
    assert throttled <= 5
    # once learned, the client sends at the server's rate: 5 per second, within the margin
    assert len(accepted) / now[0] >= 4.5


def test_a_quota_reset_does_not_leave_a_tiny_window_behind() -> None:
    """Just after a quota window resets, two quick answers both say one request is used: their
    span (10 ms) looks like a bound on the window. A 429 a second later proves the window is
    longer; the pacer must then drop the 10 ms, not pace to it."""
    now = [0.0]
    pacer = Pacer(clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    for answered_at in (0.0, 0.01):
        now[0] = answered_at
        pacer.acquire()
        pacer.observe(10, 9, throttled=False)
    assert pacer.window == pytest.approx(0.01)
    now[0] = 1.0
    pacer.acquire()
    pacer.observe(10, 0, throttled=True)
    assert pacer.window is not None and pacer.window >= 1.0


def test_the_in_flight_limit_halves_once_per_burst_and_grows_back() -> None:
    limit = InFlightLimit(8)
    tickets = [limit.acquire() for _ in range(4)]
    assert limit.release(tickets[0], throttled=True)  # 4 in flight: cut to 2
    assert limit.limit == 2
    assert not limit.release(tickets[1], throttled=True)  # same burst: no second cut
    for ticket in tickets[2:]:
        limit.release(ticket, throttled=False)
    for _ in range(20):
        limit.release(limit.acquire(), throttled=False)
    assert limit.limit > 2
