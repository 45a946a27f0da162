"""Fault 1: 429 storms and a falling X-Rate-Limit-Remaining, through real Dagster runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from objectives_pipeline.sandbox import Faults, SandboxServer

from .dagster_helpers import materialization_metadata
from .fault_matrix import extract, extract_config, faults_in, figures, landed

DAY = "2026-10-01"
# Pages of 40 (16 requests for 600 objectives), enough to run into the server's limits.
SMALL_PAGES = extract_config(page_size=40, concurrency=4)


@pytest.fixture(scope="module")
def server(sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return sandbox(objectives=600, companies=40, seed=21)


@pytest.fixture(autouse=True)
def _reset(server: SandboxServer) -> Iterator[None]:
    yield
    server.faults = Faults()


def assert_complete(server: SandboxServer, db: Path) -> None:
    rows, duplicates, ids = landed(db, DAY)
    assert (rows, duplicates) == (server.store.count(), 0)
    assert ids == set(server.store.ids())


def test_a_429_storm_with_retry_after_is_waited_out_to_a_complete_snapshot(
    server: SandboxServer, tmp_path: Path
) -> None:
    server.faults = Faults(rate_limit_per_second=10, retry_after=0.1)
    first = len(server.request_log)
    result = extract(server, tmp_path / "o.duckdb", DAY, run_config=SMALL_PAGES, max_attempts=12)
    run_log = server.request_log[first:]

    assert result.success
    assert_complete(server, tmp_path / "o.duckdb")
    throttled = faults_in(run_log)["rate_limit_per_second"]
    meta = materialization_metadata(result, "planhat_objectives")
    assert throttled > 0 and meta["retries"] == throttled
    assert meta["requests"] == len(run_log)
    # every retry waited exactly the Retry-After the server asked for
    assert meta["retry_wait_seconds"] == pytest.approx(0.1 * throttled, abs=0.01)
    figures(
        "429 storm, Retry-After 0.1 s (server allows 10 req/s)",
        requests=meta["requests"],
        faults_429=throttled,
        retries=meta["retries"],
        retry_wait_s=meta["retry_wait_seconds"],
        expected=server.store.count(),
        landed=meta["rows"],
        duplicates=0,
    )


def test_a_429_storm_without_retry_after_backs_off_exponentially(
    server: SandboxServer, tmp_path: Path
) -> None:
    server.faults = Faults(burst_429=4, rate_limit_per_second=10)
    first = len(server.request_log)
    result = extract(
        server,
        tmp_path / "o.duckdb",
        DAY,
        run_config=SMALL_PAGES,
        max_attempts=12,
        retry_initial_backoff_seconds=0.05,
    )
    run_log = server.request_log[first:]

    assert result.success
    assert_complete(server, tmp_path / "o.duckdb")
    injected = faults_in(run_log)
    throttled = injected["burst_429"] + injected["rate_limit_per_second"]
    assert injected["burst_429"] == 4
    meta = materialization_metadata(result, "planhat_objectives")
    assert meta["retries"] == throttled
    # no Retry-After and nothing learned yet: the burst's retries waited at least the initial
    # backoff, doubling from there (later ones may wait less: until the learned window frees a slot)
    assert meta["retry_wait_seconds"] >= 0.05 * injected["burst_429"]
    figures(
        "429 storm, no Retry-After (4 in a row, then 10 req/s)",
        requests=meta["requests"],
        faults_429=throttled,
        retries=meta["retries"],
        retry_wait_s=meta["retry_wait_seconds"],
        expected=server.store.count(),
        landed=meta["rows"],
        duplicates=0,
    )


def test_a_one_second_server_limit_is_paced_to_with_few_429s(
    server: SandboxServer, tmp_path: Path
) -> None:
    server.faults = Faults(rate_limit_per_second=5)  # 429 without Retry-After
    first = len(server.request_log)
    result = extract(
        server,
        tmp_path / "o.duckdb",
        DAY,
        run_config=SMALL_PAGES,
        max_attempts=12,
    )
    run_log = server.request_log[first:]

    assert result.success
    assert_complete(server, tmp_path / "o.duckdb")
    meta = materialization_metadata(result, "planhat_objectives")
    throttled = faults_in(run_log)["rate_limit_per_second"]
    assert meta["retries"] == throttled
    # 429s while the client learns the window, then none: not one per page
    assert throttled <= 15 < len(run_log)
    assert meta["paced_seconds"] > 0
    assert meta["in_flight_limit_reductions"] >= 1
    figures(
        "server limit 5 requests per rolling second, 429 without Retry-After",
        requests=meta["requests"],
        faults_429=throttled,
        retries=meta["retries"],
        paced_s=meta["paced_seconds"],
        in_flight_cuts=meta["in_flight_limit_reductions"],
        expected=server.store.count(),
        landed=meta["rows"],
        duplicates=0,
    )


def test_the_client_never_exceeds_its_configured_rate(
    server: SandboxServer, tmp_path: Path
) -> None:
    limit, window = 4, 1.0  # 240 per minute, enforced over 1-second windows
    first = len(server.request_log)
    result = extract(
        server,
        tmp_path / "o.duckdb",
        DAY,
        run_config=SMALL_PAGES,
        rate_limit_per_minute=240,
        rate_limit_window_seconds=window,
    )
    sent = sorted(r.time for r in server.request_log[first:])

    assert result.success
    assert_complete(server, tmp_path / "o.duckdb")
    assert len(sent) > 3 * limit  # enough requests for the limit to bind
    # The server logs when it answers, not when the client sent: allow 0.2 s of skew.
    tightest = min(sent[i + limit] - sent[i] for i in range(len(sent) - limit))
    assert tightest >= window - 0.2, f"{limit + 1} requests within {tightest:.2f} s"
    meta = materialization_metadata(result, "planhat_objectives")
    assert meta["rate_limit_wait_seconds"] > 0
    figures(
        "client rate limit 240/min as 4 requests per 1 s window",
        requests=len(sent),
        tightest_5_requests_s=round(tightest, 2),
        rate_limit_wait_s=meta["rate_limit_wait_seconds"],
        expected=server.store.count(),
        landed=meta["rows"],
        duplicates=0,
    )
