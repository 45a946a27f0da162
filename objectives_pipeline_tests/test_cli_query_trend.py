"""`objectives-pipeline query` and `health --trend` through the real command, on real DuckDB files."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from objectives_pipeline.warehouse import SnapshotStager, Warehouse, load_snapshot

from .dagster_helpers import query
from .test_cli import cli
from .test_faults_readers import REPO_ROOT, write_lock
from .test_health_alerts import build_alerts, day, load_history


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("query") / "objectives.duckdb"
    build_alerts(load_history(path))
    return path


def test_query_prints_a_table_csv_and_json(db: Path) -> None:
    sql = "SELECT company_id, avg_health, snapshot_date FROM company_objective_health ORDER BY company_id"
    expected = query(db, sql)

    table = cli("query", sql, "--db", str(db))
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["company_id", "avg_health", "snapshot_date"]
    assert lines[2].split() == ["at_risk_before", "1.50", "2026-11-28"]
    assert lines[-1] == f"({len(expected)} rows)"

    as_csv = cli("query", sql, "--db", str(db), "--format", "csv")
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))
    assert rows[0] == ["company_id", "avg_health", "snapshot_date"]
    assert [(r[0], float(r[1]) if r[1] else None, r[2]) for r in rows[1:]] == [
        (c, a, str(d)) for c, a, d in expected
    ]

    as_json = json.loads(cli("query", sql, "--db", str(db), "--format", "json").stdout)
    assert as_json[0] == {
        "company_id": "at_risk_before",
        "avg_health": 1.5,
        "snapshot_date": "2026-11-28",
    }
    assert len(as_json) == len(expected)


def test_query_table_is_capped_but_csv_is_complete(db: Path) -> None:
    sql = "SELECT * FROM raw.planhat_objectives"
    [(total,)] = query(db, "SELECT count(*) FROM raw.planhat_objectives")
    capped = cli("query", sql, "--db", str(db), "--max-rows", "3")
    assert capped.returncode == 0
    assert (
        capped.stdout.splitlines()[-1] == "(3 rows (more not shown: --max-rows, or --format csv))"
    )
    full = cli("query", sql, "--db", str(db), "--format", "csv")
    assert len(list(csv.reader(io.StringIO(full.stdout)))) == total + 1


def test_describe_show_and_summarize_are_reads(db: Path) -> None:
    shown = cli("query", "SHOW TABLES", "--db", str(db), "--format", "json")
    assert shown.returncode == 0, shown.stderr
    assert {"company_health_alerts", "company_objective_health"} <= {
        r["name"] for r in json.loads(shown.stdout)
    }
    described = cli("query", "DESCRIBE company_health_alerts", "--db", str(db), "--format", "csv")
    assert described.returncode == 0 and "health_drop,DOUBLE" in described.stdout


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM company_objective_health",
        "CREATE TABLE stolen AS SELECT 1",
        "COPY company_objective_health TO 'out.csv'",
        "EXPLAIN ANALYZE COPY company_objective_health TO 'out.csv'",
        "ATTACH 'other.duckdb'",
        "SELECT 1; DROP TABLE company_objective_health",
        "SET threads = 1",
    ],
)
def test_query_refuses_anything_but_one_read(db: Path, sql: str, tmp_path: Path) -> None:
    before = query(db, "SELECT count(*) FROM company_objective_health")
    result = subprocess.run(
        [sys.executable, "-m", "objectives_pipeline.cli", "query", sql, "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.returncode == 2
    assert result.stderr.startswith("error: ")
    assert "refused" in result.stderr or "exactly one statement" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert query(db, "SELECT count(*) FROM company_objective_health") == before
    assert list(tmp_path.iterdir()) == []


def test_bad_sql_says_what_is_wrong(db: Path, tmp_path: Path) -> None:
    typo = cli("query", "SELEC 1", "--db", str(db))
    assert typo.returncode == 2 and typo.stderr.startswith("error: the query does not parse:")
    unknown = cli("query", "SELECT nope FROM company_objective_health", "--db", str(db))
    assert unknown.returncode == 2
    assert unknown.stderr.startswith("error: the query failed: Binder Error")
    assert '"nope" not found' in unknown.stderr
    missing = cli("query", "SELECT 1", "--db", str(tmp_path / "none.duckdb"))
    assert missing.returncode == 2 and "There is no DuckDB database at" in missing.stderr
    for result in (typo, unknown, missing):
        assert "Traceback" not in result.stderr


def test_query_waits_for_a_writer_then_answers(db: Path) -> None:
    with write_lock(db) as holder:
        reader = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "objectives_pipeline.cli",
                "query",
                "SELECT count(*) AS n FROM company_objective_health",
                "--db",
                str(db),
                "--lock-timeout",
                "60",
                "--format",
                "json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:  # still waiting while the writer holds on
            assert reader.poll() is None, reader.communicate()
            time.sleep(0.1)
        assert holder.stdin is not None
        holder.stdin.close()
        out, err = reader.communicate(timeout=60)
    assert reader.returncode == 0, err
    assert json.loads(out) == [{"n": 11}]


def test_trend_by_name_with_a_sparkline_and_a_day_without_health(db: Path) -> None:
    result = cli("health", "--db", str(db), "--trend", "NULL BASELINE")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Null Baseline (null_baseline): average objective health by snapshot"
    assert lines[1].split() == [
        "snapshot_date",
        "avg_health",
        "objective_count",
        "objectives_with_health",
        "at_risk_share",
    ]
    assert [line.split()[:2] for line in lines[3:6]] == [
        [str(day(9)), "4.00"],
        [str(day(7)), "-"],
        [str(day(0)), "2.50"],
    ]
    assert lines[-1] == (
        "█·▁  2026-11-19 .. 2026-11-28, 3 snapshots, min 2.50, max 4.00"
        " (· = no objective with a health)"
    )

    by_id = json.loads(cli("health", "--db", str(db), "--trend", "gap", "--format", "json").stdout)
    assert [(r["snapshot_date"], r["avg_health"]) for r in by_id] == [
        ("2026-11-19", 4.5),
        ("2026-11-25", 3.0),
        ("2026-11-28", 3.0),
    ]


def test_trend_of_a_single_day_an_unknown_and_an_ambiguous_company(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "one_day.duckdb")
    records = [
        {"_id": "o1", "name": "A", "health": 3.0, "companyId": "t1", "companyName": "Twin"},
        {"_id": "o2", "name": "B", "health": 4.0, "companyId": "t2", "companyName": "Twin"},
    ]
    with SnapshotStager() as stager:
        stager.add_page(json.dumps(records).encode())
        load_snapshot(warehouse, stager, day(0), datetime.now(UTC))
    build_alerts(warehouse)
    db = str(warehouse.database)

    single = cli("health", "--db", db, "--trend", "t1")
    assert single.returncode == 0, single.stderr
    assert single.stdout.splitlines()[-1] == (
        "▄  2026-11-28 .. 2026-11-28, 1 snapshot, min 3.00, max 3.00"
    )
    unknown = cli("health", "--db", db, "--trend", "Nobody")
    assert unknown.returncode == 1 and "No company has the id or name 'Nobody'" in unknown.stderr
    twins = cli("health", "--db", db, "--trend", "twin")
    assert twins.returncode == 1
    assert (
        "2 companies are named 'twin': t1 (Twin), t2 (Twin). Pass the id instead." in twins.stderr
    )
