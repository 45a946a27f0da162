"""Parts of the benchmark on their own: the retrying pager, the survivors check, the targets.

The pager runs against a real sandbox over HTTP; the survivors check reads a real DuckDB
file. The targets are judged from measurements as a run would record them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import httpx
import pytest

from bench.common import SNAPSHOT_DATE
from bench.rows import Measurement, summarise
from bench.scenarios import (
    FLOOR_A,
    FLOOR_B,
    OURS,
    OURS_CALM,
    OURS_CHURN,
    SEQUENTIAL_RETRYING,
    scenarios,
)
from bench.sequential import extract as sequential_extract
from bench.survivors import check_survivors
from bench.targets import evaluate_targets
from bench.worker import TOKEN_ENV, RunSpec
from objectives_pipeline.sandbox import Faults, SandboxServer

TOKEN = "bench-parts-token-0123456789"


def _pager_spec(base_url: str, workdir: Path, objectives: int, *, retry_429: bool) -> RunSpec:
    return RunSpec(
        task="extract",
        implementation="sequential",
        workdir=str(workdir),
        result=str(workdir / "outcome.json"),
        base_url=base_url,
        objectives=objectives,
        retry_429=retry_429,
    )


def test_retrying_pager_waits_out_429s_and_loads_everything(
    sandbox: Callable[..., SandboxServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = sandbox(objectives=3000, companies=30, seed=1, token=TOKEN)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    server.faults = Faults(burst_429=2, retry_after=0)
    outcome = sequential_extract(_pager_spec(server.base_url, tmp_path, 3000, retry_429=True))
    assert outcome.records == 3000
    assert outcome.details["throttled"] == 2
    assert outcome.client_requests == 2 + 1 + 2  # two pages, the empty page, two retries


def test_plain_pager_fails_on_429(
    sandbox: Callable[..., SandboxServer], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = sandbox(objectives=100, companies=5, seed=1, token=TOKEN)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    server.faults = Faults(burst_429=1)
    with pytest.raises(httpx.HTTPStatusError, match="429"):
        sequential_extract(_pager_spec(server.base_url, tmp_path, 100, retry_429=False))


def test_survivor_check_counts_missing_and_repeated_objectives(tmp_path: Path) -> None:
    database = tmp_path / "snap.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE TABLE t (snapshot_date DATE, objective_id VARCHAR)")
        con.executemany(
            "INSERT INTO t VALUES (?, ?)",
            [
                (SNAPSHOT_DATE, "a"),
                (SNAPSHOT_DATE, "b"),
                (SNAPSHOT_DATE, "b"),
                (SNAPSHOT_DATE, "new"),
            ],
        )
    check = check_survivors(database, "t", {"a", "b", "c"})
    assert (check.survivors, check.missing, check.repeated, check.ok) == (3, 1, 1, False)
    assert check.describe() == "1 of 3 survivors missing, 1 repeated"
    assert check_survivors(database, "t", {"a"}).ok


def _run(scenario: str, label: str, seconds: float, requests: int, **extra: object) -> Measurement:
    measurement = Measurement(
        scenario=scenario, label=label, round=1, seconds=seconds, records=100_000,
        expected_records=100_000, requests=requests, peak_rss_bytes=200 * 2**20,
    )  # fmt: skip
    for name, value in extra.items():
        setattr(measurement, name, value)
    return measurement


def _judged(measurements: list[Measurement]) -> dict[str, tuple[str, str]]:
    keys = sorted({(m.scenario, m.label) for m in measurements})
    rows = [
        summarise(s, label, [m for m in measurements if (m.scenario, m.label) == (s, label)])
        for s, label in keys
    ]
    targets = evaluate_targets(scenarios(quick=False), rows, measurements)
    return {t.name: (t.status, t.detail) for t in targets}


def test_targets_are_judged_from_the_measured_figures() -> None:
    judged = _judged(
        [
            _run("extract_0ms", OURS.label, 3.0, 53),
            _run("extract_0ms", FLOOR_A.label, 0.5, 53),
            _run("extract_0ms", FLOOR_B.label, 1.0, 0),
            _run("rate_limited", OURS.label, 6.0, 30, throttled=6, expected_records=20_000),
            _run("rate_limited", SEQUENTIAL_RETRYING.label, 9.0, 15, throttled=3),
            _run("churn", OURS_CALM.label, 2.0, 24, expected_records=None, survivors=20_000),
            _run("churn", OURS_CHURN.label, 7.0, 30, expected_records=None, survivors=19_000),
        ]
    )
    assert judged["calm requests <= ceil(N / 1999) + 2 (extract_0ms)"][0] == "PASS"  # 53 allowed
    assert judged["0 ms: ours <= 1.5x (floor (a) + floor (b)) (extract_0ms)"][0] == "FAIL"  # 2.0x
    # 24 accepted requests at 5/s: 4.8 s, 6.24 s with the slack
    assert judged["rate-limited: wall <= 1.3x (accepted requests / rate)"][0] == "PASS"
    assert judged["rate-limited: ours no slower than the pager that retries 429"][0] == "PASS"
    assert judged["churn: requests <= 1.3x calm"][0] == "PASS"  # 1.25x
    assert judged["churn: wall <= 3x calm"][0] == "FAIL"  # 3.5x
    assert judged["churn: every survivor exactly once"][0] == "PASS"
    assert judged["calm requests <= ceil(N / 1999) + 2 (extract_large)"][0] == "NOT MEASURED"
    assert judged["quota: ours no slower than the pager that retries 429"][0] == "NOT MEASURED"


def test_a_missing_survivor_or_one_request_too_many_fails() -> None:
    judged = _judged(
        [
            _run("extract_0ms", OURS.label, 3.0, 54),
            _run("churn", OURS_CALM.label, 2.0, 24, expected_records=None, survivors=20_000),
            _run(
                "churn",
                OURS_CHURN.label,
                3.0,
                24,
                expected_records=None,
                survivors=19_000,
                problem="1 of 19,000 survivors missing, 0 repeated",
            ),
        ]
    )
    status, detail = judged["calm requests <= ceil(N / 1999) + 2 (extract_0ms)"]
    assert status == "FAIL" and "54 requests (at most 53)" in detail
    status, detail = judged["churn: every survivor exactly once"]
    assert status == "FAIL" and "1 of 19,000 survivors missing" in detail
