"""Issue 11, item 7: the deployment in deploy/ (Dagster's Helm/Docker shape) on one machine.

A real PostgreSQL server (Debian's, in a temp folder on 127.0.0.1) holds the instance's runs,
event logs and schedules; `dagster code-server start` serves the code location over gRPC; the
webserver and the daemon are separate processes that only know deploy/dagster.yaml,
deploy/workspace.yaml and the environment. Through the webserver's GraphQL API the test
launches one `objectives_elt` run and a 3-day backfill of the job against a sandbox that
stands in for Planhat (PLANHAT_BASE_URL/PLANHAT_API_TOKEN set, as in production), then reads
the runs back from PostgreSQL and the snapshots from DuckDB.

The single run uses the default executor (a process per step, as in production); the backfill
runs use the in-process executor (run config, as the launchpad allows) so that three runs fit a
small shared CI machine: each is still its own process, launched by the code server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from objectives_pipeline.sandbox import SandboxServer

from .dagster_helpers import (
    BIN,
    DONE,
    IN_PROCESS,
    LAUNCH_BACKFILL,
    LAUNCH_RUN,
    REPO_ROOT,
    RUNS,
    GraphQL,
    free_port,
    loaded_location,
    process_group,
    query,
    runs_finished,
    wait_for,
)
from .postgres_server import PostgresServer, postgres_server

DEPLOY = REPO_ROOT / "deploy"
SINGLE_RUN_DAY = "2026-11-20"
BACKFILL_DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]
OBJECTIVES = 250
LOCATION = "objectives_pipeline"
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}
MODEL_TABLES = {"stg_objectives", "company_objective_health", "company_objective_health_daily"}


def logs(*paths: Path) -> str:
    return "\n".join(f"--- {p.name}:\n{p.read_text(errors='replace')[-2500:]}" for p in paths)


def backfill_status(pg: PostgresServer, backfill_id: str) -> object:
    found = pg.query("SELECT status FROM bulk_actions WHERE key = %s", (backfill_id,))
    return found[0][0] if found else None


def launch_elt_and_backfill(
    gql: GraphQL, check: Callable[[Callable[[], Any]], Callable[[], Any]], log: Path
) -> tuple[str, str, list[dict[str, Any]]]:
    """Launch one `objectives_elt` run, then a 3-day backfill of it, each waited for; returns
    the run's id, the backfill's id and the backfill's finished runs."""
    entry = wait_for("the code location", check(lambda: loaded_location(gql)), 150, log)
    location = entry["locationOrLoadError"]
    assert entry["name"] == LOCATION
    assert location["__typename"] == "RepositoryLocation", location
    repository = {
        "repositoryLocationName": LOCATION,
        "repositoryName": location["repositories"][0]["name"],
    }

    launched = gql(
        LAUNCH_RUN,
        params={
            "selector": {**repository, "jobName": "objectives_elt"},
            "executionMetadata": {"tags": [{"key": "dagster/partition", "value": SINGLE_RUN_DAY}]},
        },
    )["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id: str = launched["run"]["runId"]

    def run_done() -> list[dict[str, Any]] | None:
        runs: list[dict[str, Any]] = gql(RUNS, filter={"runIds": [run_id]})["runsOrError"][
            "results"
        ]
        return runs if runs and runs[0]["status"] in DONE else None

    single = wait_for("the objectives_elt run", check(run_done), 240, log)
    assert single[0]["status"] == "SUCCESS", single

    backfill = gql(
        LAUNCH_BACKFILL,
        params={
            "selector": {
                "partitionSetName": "objectives_elt_partition_set",
                "repositorySelector": repository,
            },
            "partitionNames": BACKFILL_DAYS,
            "runConfigData": IN_PROCESS,
        },
    )["launchPartitionBackfill"]
    assert backfill["__typename"] == "LaunchBackfillSuccess", backfill
    backfill_id: str = backfill["backfillId"]
    finished: list[dict[str, Any]] = wait_for(
        "the 3 backfill runs",
        check(lambda: runs_finished(gql, backfill_id, len(BACKFILL_DAYS), [])),
        240,
        log,
    )
    return run_id, backfill_id, finished


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_deployment_on_postgres_runs_elt_and_a_backfill_through_code_server_daemon_and_webserver(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox(objectives=OBJECTIVES, companies=20, seed=111)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY / "dagster.yaml", home / "dagster.yaml")
    db = tmp_path / "objectives.duckdb"
    pg_log, code_log = tmp_path / "postgres.log", tmp_path / "code_server.log"
    web_log, daemon_log = tmp_path / "webserver.log", tmp_path / "daemon.log"
    code_port, web_port = free_port(), free_port()
    workspace = ["-w", str(DEPLOY / "workspace.yaml")]
    code_server = [str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1"]
    code_server += ["-p", str(code_port), "-m", "objectives_pipeline.definitions"]
    code_server += ["--location-name", LOCATION]
    health_check = [str(BIN / "dagster"), "api", "grpc-health-check"]
    health_check += ["-h", "127.0.0.1", "-p", str(code_port)]
    webserver = [str(BIN / "dagster-webserver"), *workspace, "-h", "127.0.0.1", "-p", str(web_port)]
    daemon = [str(BIN / "dagster-daemon"), "run", *workspace]

    with postgres_server(pg_log) as pg:
        env = {
            **os.environ,
            **pg.env(),
            "DAGSTER_HOME": str(home),
            "DAGSTER_CODE_SERVER_HOST": "127.0.0.1",
            "DAGSTER_CODE_SERVER_PORT": str(code_port),
            "OBJECTIVES_DUCKDB_PATH": str(db),
            "PLANHAT_API_TOKEN": server.token,
            "PLANHAT_BASE_URL": server.base_url,
            "PYTHONPATH": str(REPO_ROOT),
        }
        # As under Kubernetes, the code server is up before the webserver and the daemon load it.
        with process_group(code_server, env, code_log) as code_proc:

            def code_server_healthy() -> bool:
                assert code_proc.poll() is None, logs(code_log)
                done = subprocess.run(health_check, env=env, capture_output=True, timeout=60)
                return done.returncode == 0

            wait_for("the code server", code_server_healthy, 120, code_log)
            with (
                process_group(webserver, env, web_log) as web_proc,
                process_group(daemon, env, daemon_log) as daemon_proc,
            ):

                def serving(check: Callable[[], Any]) -> Callable[[], Any]:
                    def all_running_then_check() -> Any:
                        exited = [p.args for p in (code_proc, web_proc, daemon_proc) if p.poll()]
                        assert not exited, (exited, logs(code_log, web_log, daemon_log))
                        return check()

                    return all_running_then_check

                try:
                    run_id, backfill_id, finished = launch_elt_and_backfill(
                        GraphQL(web_port), serving, daemon_log
                    )
                    # The daemon marks the backfill done on its next pass after the last run.
                    wait_for(
                        "the backfill to complete",
                        serving(lambda: backfill_status(pg, backfill_id) in BACKFILL_DONE),
                        120,
                        daemon_log,
                    )
                except AssertionError as failure:
                    raise AssertionError(
                        f"{failure}\n{logs(code_log, web_log, daemon_log)}"
                    ) from None

        statuses = {r["runId"]: r["status"] for r in finished}
        assert set(statuses.values()) == {"SUCCESS"}, statuses
        # The instance's record is in PostgreSQL, and nowhere else.
        runs = pg.query("SELECT run_id, status, pipeline_name FROM runs")
        elt_runs = {r[0]: r[1] for r in runs if r[2] != "health_score_writeback"}
        assert elt_runs == {run_id: "SUCCESS", **statuses}
        # With a token the sensor writeback_after_objectives_elt is on: it follows ELT runs.
        assert {r[2] for r in runs} <= {"objectives_elt", "health_score_writeback"}
        assert backfill_status(pg, backfill_id) == "COMPLETED_SUCCESS"
        assert len(pg.query("SELECT key FROM bulk_actions")) == 1
        materialized = pg.query(
            "SELECT DISTINCT partition FROM event_logs "
            "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
            """AND asset_key = '["planhat_objectives"]' ORDER BY 1"""
        )
        assert [p for (p,) in materialized] == sorted([*BACKFILL_DAYS, SINGLE_RUN_DAY])
        # Neither secret reached the event log (run metadata, step logs) in PostgreSQL.
        for secret in (pg.password, server.token):
            leaks = pg.query(
                "SELECT count(*) FROM event_logs WHERE event LIKE %s", (f"%{secret}%",)
            )
            assert leaks == [(0,)]
    assert not [p for p in home.rglob("*.db") if p.is_file()], "a SQLite store was created"
    for log in (code_log, web_log, daemon_log):
        assert pg.password not in log.read_text(errors="replace"), log.name
        assert server.token not in log.read_text(errors="replace"), log.name

    partitions = sorted(
        tag["value"] for r in finished for tag in r["tags"] if tag["key"] == "dagster/partition"
    )
    assert partitions == BACKFILL_DAYS
    per_day = query(
        db,
        "SELECT snapshot_date::VARCHAR, count(*) FROM raw.planhat_objectives GROUP BY 1 ORDER BY 1",
    )
    assert per_day == [(day, OBJECTIVES) for day in sorted([*BACKFILL_DAYS, SINGLE_RUN_DAY])]
    tables = {name for (name,) in query(db, "SELECT table_name FROM duckdb_tables()")}
    assert tables >= MODEL_TABLES
    companies = {o["companyId"] for o in server.store.all_objectives()}
    assert query(db, "SELECT count(*) FROM company_objective_health") == [(len(companies),)]
    assert query(
        db, "SELECT count(DISTINCT snapshot_date) FROM company_objective_health_daily"
    ) == [(4,)]
