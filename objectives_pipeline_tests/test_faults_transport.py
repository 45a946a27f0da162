"""Faults 2, 3 and 6: 5xx, dropped connections, unusable 200 bodies and timeouts, in real runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from objectives_pipeline.sandbox import Faults, SandboxServer

from .dagster_helpers import materialization_metadata
from .fault_matrix import (
    extract,
    extract_config,
    failure_text,
    faults_in,
    figures,
    landed,
    partition_rows,
)

DAY = "2026-10-02"


@pytest.fixture(scope="module")
def small(sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return sandbox(objectives=5000, companies=50, seed=31)


@pytest.fixture(autouse=True)
def _reset(small: SandboxServer) -> Iterator[None]:
    yield
    small.faults = Faults()


def test_5xx_and_dropped_connections_at_20_percent_over_50000_objectives(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox(objectives=50_000, companies=500, seed=32)
    server.faults = Faults(error_rate=0.2, drop_rate=0.2, seed=5)
    db = tmp_path / "o.duckdb"
    result = extract(server, db, DAY, max_attempts=12)
    run_log = server.request_log[:]

    assert result.success
    rows, duplicates, ids = landed(db, DAY)
    assert (rows, duplicates) == (50_000, 0)
    assert ids == set(server.store.ids())
    injected = faults_in(run_log)
    errors = sum(n for fault, n in injected.items() if fault.startswith("error_"))
    drops = injected["drop"]
    assert errors > 0 and drops > 0
    meta = materialization_metadata(result, "planhat_objectives")
    assert meta["retries"] == errors + drops  # every failed attempt retried, nothing else
    assert meta["requests"] == len(run_log)
    assert meta["duplicates_removed"] == 0 and meta["boundaries_repaired"] == 0
    figures(
        "5xx 20% + dropped connections 20%, 50,000 objectives",
        requests=meta["requests"],
        faults_5xx=errors,
        faults_dropped=drops,
        retries=meta["retries"],
        expected=50_000,
        landed=rows,
        duplicates=duplicates,
        seconds=meta["seconds"],
    )


@pytest.mark.parametrize("knob", ["truncate_rate", "non_json_rate"])
def test_truncated_or_non_json_bodies_are_retried_to_a_complete_snapshot(
    small: SandboxServer, tmp_path: Path, knob: str
) -> None:
    setattr(small.faults, knob, 0.3)
    small.faults.seed = 7
    first = len(small.request_log)
    result = extract(
        small, tmp_path / "o.duckdb", DAY, run_config=extract_config(page_size=500), max_attempts=10
    )
    run_log = small.request_log[first:]

    assert result.success
    rows, duplicates, ids = landed(tmp_path / "o.duckdb", DAY)
    assert (rows, duplicates, ids) == (small.store.count(), 0, set(small.store.ids()))
    bad = faults_in(run_log)["truncate" if knob == "truncate_rate" else "non_json"]
    meta = materialization_metadata(result, "planhat_objectives")
    assert bad > 0 and meta["retries"] == bad
    figures(
        f"{knob.removesuffix('_rate')} 200 bodies at 30%",
        requests=meta["requests"],
        faults=bad,
        retries=meta["retries"],
        expected=small.store.count(),
        landed=rows,
        duplicates=duplicates,
    )


@contextmanager
def after_first_page(server: SandboxServer, **knobs: object) -> Iterator[None]:
    """Set `knobs` once the first list page has been answered (the sandbox's latency leaves
    time to do so before the next request is served)."""
    first = len(server.request_log)
    stop = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            if any(r.status == 200 for r in server.request_log[first:]):
                for name, value in knobs.items():
                    setattr(server.faults, name, value)
                return
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


@pytest.mark.parametrize(
    ("knob", "problem"), [("truncate_rate", "not valid JSON"), ("non_json_rate", "not valid JSON")]
)
def test_persistently_unusable_bodies_fail_the_run_naming_the_page(
    small: SandboxServer, tmp_path: Path, knob: str, problem: str
) -> None:
    db = tmp_path / "o.duckdb"
    assert extract(small, db, DAY).success
    before = partition_rows(db, DAY)

    small.faults.latency_ms = 300
    with after_first_page(small, **{knob: 1.0}):
        failed = extract(
            small, db, DAY, run_config=extract_config(page_size=2000, concurrency=1), max_attempts=3
        )

    assert not failed.success
    text = failure_text(failed)
    assert "GET /objectives offset=1999 limit=2000 after 3 attempts" in text
    assert problem in text and "keeps its previous contents" in text
    assert partition_rows(db, DAY) == before
    figures(
        f"{knob.removesuffix('_rate')} 200 bodies, persistent from page 2",
        attempts_on_page=3,
        outcome="run failed naming offset=1999; partition unchanged",
        rows_before=len(before),
        rows_after=len(partition_rows(db, DAY)),
    )


def test_timeouts_are_retried_then_fail_the_run_naming_the_timeout(
    small: SandboxServer, tmp_path: Path
) -> None:
    db = tmp_path / "o.duckdb"
    assert extract(small, db, DAY).success
    before = partition_rows(db, DAY)

    small.faults.latency_ms = 1500
    first = len(small.request_log)
    failed = extract(small, db, DAY, timeout_seconds=0.2, max_attempts=3)
    small.faults.latency_ms = 0

    assert not failed.success
    text = failure_text(failed)
    assert "did not answer in time" in text and "Raise the client's timeout" in text
    assert "GET /objectives offset=0 limit=2000 after 3 attempts" in text
    assert partition_rows(db, DAY) == before
    deadline = time.monotonic() + 10  # the server logs a request once its latency has passed
    while len(small.request_log) - first < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(small.request_log) - first == 3  # every attempt reached the server
    figures(
        "timeouts (1.5 s latency, 0.2 s timeout)",
        attempts=3,
        outcome="run failed: did not answer in time, offset=0; partition unchanged",
        rows_before=len(before),
        rows_after=len(partition_rows(db, DAY)),
    )
