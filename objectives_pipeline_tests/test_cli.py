"""The `objectives-pipeline` command: help, and the health view over a real snapshot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from objectives_pipeline.sandbox import SandboxServer

from .dagster_helpers import defs_for, query, run_elt

SUBCOMMANDS = ["demo", "health", "sandbox", "push", "query"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "objectives_pipeline.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_every_subcommand_has_help() -> None:
    top = cli("--help")
    assert top.returncode == 0
    for name in SUBCOMMANDS:
        assert name in top.stdout
        sub = cli(name, "--help")
        assert sub.returncode == 0, sub.stderr
        assert "usage: objectives-pipeline " + name in sub.stdout


def test_health_says_there_is_no_data_yet(tmp_path: Path) -> None:
    result = cli("health", "--db", str(tmp_path / "none.duckdb"))
    assert result.returncode == 1
    assert "No health data yet" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def loaded_db(sandbox, tmp_path_factory) -> tuple[SandboxServer, Path]:  # type: ignore[no-untyped-def]
    server = sandbox(objectives=600, companies=40, seed=3)
    db = tmp_path_factory.mktemp("health") / "objectives.duckdb"
    assert run_elt(defs_for(server, db), "2026-11-27").success
    assert run_elt(defs_for(server, db), "2026-11-28").success
    return server, db


def test_health_json_lists_every_company_worst_first(loaded_db: tuple[SandboxServer, Path]) -> None:
    _, db = loaded_db
    result = cli("health", "--db", str(db), "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert len(rows) == query(db, "SELECT count(*) FROM company_objective_health")[0][0]
    averages = [r["avg_health"] for r in rows if r["avg_health"] is not None]
    assert averages == sorted(averages)
    assert {r["snapshot_date"] for r in rows} == {"2026-11-28"}


def test_health_filters_by_threshold_company_and_date(
    loaded_db: tuple[SandboxServer, Path],
) -> None:
    _, db = loaded_db
    below = json.loads(cli("health", "--db", str(db), "--below", "3", "--format", "json").stdout)
    assert below and all(r["avg_health"] < 3 for r in below)

    company = below[0]["company_id"]
    one = cli("health", "--db", str(db), "--company", company, "--format", "csv")
    lines = one.stdout.strip().splitlines()
    assert lines[0].startswith("company_id,company_name,objective_count")
    assert len(lines) == 2 and lines[1].startswith(company)

    dated = json.loads(
        cli("health", "--db", str(db), "--date", "2026-11-27", "--format", "json").stdout
    )
    assert {r["snapshot_date"] for r in dated} == {"2026-11-27"}

    nobody = cli(
        "health", "--db", str(db), "--company", "x' OR '1'='1; DROP TABLE raw.planhat_objectives"
    )
    assert nobody.returncode == 1 and "No company matches" in nobody.stderr
    assert query(db, "SELECT count(*) > 0 FROM raw.planhat_objectives") == [(True,)]


def test_health_table_shows_worst_and_best(loaded_db: tuple[SandboxServer, Path]) -> None:
    _, db = loaded_db
    result = cli("health", "--db", str(db), "--limit", "3")
    assert result.returncode == 0
    assert "Worst 3 companies" in result.stdout and "Best 3 companies" in result.stdout
    assert "avg_health" in result.stdout
