"""Security: the token never shows, config values reach SQL as data, the sandbox stays local."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest

from objectives_pipeline.cli import build_parser
from objectives_pipeline.definitions import build_defs
from objectives_pipeline.resources import (
    SqlModelsResource,
    WarehouseResource,
    planhat_resource_from_env,
)
from objectives_pipeline.sandbox import SandboxServer

from .dagster_helpers import defs_for, query, run_elt
from .fault_matrix import failure_text, figures
from .test_reverse_etl import make_source

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKEN = "tok-SECRET-5e3b1f9c0a7d"
DAY = "2026-10-12"


def run_everything(server: SandboxServer, db: Path, home: Path) -> tuple[list[str], int]:
    """Extract, models and push as configured from the environment, then the same failing;
    returns every text the runs left in the instance and how many runs there were."""
    defs = build_defs(
        {
            "planhat": planhat_resource_from_env(),
            "warehouse": WarehouseResource(path=str(db)),
            "sql_models": SqlModelsResource(),
        }
    )
    push = defs.resolve_job_def("push_objectives_to_planhat")
    push_config = {"ops": {"push_objectives": {"config": {"source": "push_source", "enabled": True}}}}
    texts: list[str] = []
    home.mkdir()
    with dg.DagsterInstance.local_temp(tempdir=str(home)) as instance:
        results = [run_elt(defs, DAY, instance=instance)]
        make_source(db, 30, table="push_source")
        results.append(
            push.execute_in_process(run_config=push_config, instance=instance, raise_on_error=False)
        )
        server.faults.expire_token_after_requests = 0  # every request now gets 401
        results.append(run_elt(defs, DAY, instance=instance))
        make_source(db, 40, table="push_source")
        results.append(
            push.execute_in_process(run_config=push_config, instance=instance, raise_on_error=False)
        )
        assert [r.success for r in results] == [True, True, False, False]
        for result in results:
            texts.extend(str(event) for event in result.all_events)
            texts.extend(str(entry) for entry in instance.all_logs(result.run_id))
            if not result.success:
                texts.append(failure_text(result))
            for event in result.get_asset_materialization_events():
                materialization = event.materialization
                texts.extend(str(v.value) for v in materialization.metadata.values())
    return texts, len(results)


def test_the_token_appears_in_no_log_event_metadata_error_file_or_cli_output(
    sandbox: Callable[..., SandboxServer],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    server = sandbox(objectives=500, companies=20, seed=111, token=TOKEN)
    monkeypatch.setenv("PLANHAT_API_TOKEN", TOKEN)
    monkeypatch.setenv("PLANHAT_BASE_URL", server.base_url)
    db = tmp_path / "objectives.duckdb"
    caplog.set_level(logging.DEBUG)

    texts, runs = run_everything(server, db, tmp_path / "dagster_home")
    (tmp_path / "cli_home").mkdir()
    cli = subprocess.run(
        [sys.executable, "-m", "objectives_pipeline.cli", "push", "--source", "push_source"],
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "OBJECTIVES_DUCKDB_PATH": str(db),
            "DAGSTER_HOME": str(tmp_path / "cli_home"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    server.faults.expire_token_after_requests = None

    assert cli.returncode != 0 and "401" in cli.stdout + cli.stderr  # the failure is explained
    captured = capfd.readouterr()
    logged = [caplog.text] + [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".db" for p in (tmp_path / "cli_home").rglob("*")) and db in files
    sources: dict[str, list[str]] = {
        "log records": logged,
        "dagster events, metadata and errors": texts,
        "stdout/stderr": [captured.out, captured.err],
        "CLI output": [cli.stdout, cli.stderr],
    }
    hits = {name: sum(TOKEN in t for t in found) for name, found in sources.items()}
    hits["files (instance storage, DuckDB)"] = sum(TOKEN.encode() in p.read_bytes() for p in files)
    assert hits == dict.fromkeys(hits, 0)
    assert len(caplog.records) > 50 and len(texts) > 100  # the scan saw real output
    figures(
        "token scan over a full flow (extract, models, push, 2 failing runs, failing push CLI)",
        runs=runs + 1,
        texts_scanned=sum(len(v) for v in sources.values()),
        files_scanned=len(files),
        token_hits=sum(hits.values()),
    )


def test_a_config_value_with_a_quote_and_a_semicolon_is_data_not_sql(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox(objectives=100, companies=5, seed=112)
    db = tmp_path / "objectives.duckdb"
    assert run_elt(defs_for(server, db), DAY).success
    hostile = "x'; DROP TABLE company_objective_health; --"

    health = subprocess.run(
        [sys.executable, "-m", "objectives_pipeline.cli", "health", "--company", hostile],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "OBJECTIVES_DUCKDB_PATH": str(db)},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert health.returncode == 1 and "No company matches" in health.stderr
    assert "Traceback" not in health.stderr
    assert query(db, "SELECT count(*) FROM company_objective_health")[0][0] > 0


def test_the_sandbox_listens_on_loopback_and_wants_its_token() -> None:
    args = build_parser("sandbox").parse_args(["sandbox"])
    assert args.host == "127.0.0.1"
    with SandboxServer(objectives=5, companies=1, token=TOKEN) as server:
        assert server.base_url.startswith("http://127.0.0.1:")
        answers: dict[str, Any] = {}
        for name, headers in {
            "none": {},
            "wrong": {"Authorization": "Bearer tok-guess"},
            "right": {"Authorization": f"Bearer {TOKEN}"},
        }.items():
            answers[name] = httpx.get(f"{server.base_url}/objectives", headers=headers).status_code
    assert answers == {"none": 401, "wrong": 401, "right": 200}
