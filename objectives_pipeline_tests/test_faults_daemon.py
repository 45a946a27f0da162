"""Fault 8, and issue 3's webserver test: the real webserver and daemon, driven over GraphQL.

`dagster-webserver` and `dagster-daemon run` start as subprocesses on 127.0.0.1 with a temp
DAGSTER_HOME holding the repo's dagster.yaml (pool limit 1, at most 4 runs at once) and the
pipeline pointed at a sandbox this test serves. A 14-day backfill and one single run are
launched through GraphQL; the daemon then runs several of them at once.

Runs use the in-process executor (run config, as the launchpad allows): each run is still its
own process opening DuckDB, which is what the lock is about, without a second process per
step that would only add seconds of imports on a small CI machine.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from objectives_pipeline.sandbox import SandboxServer

from .dagster_helpers import (
    BIN,
    IN_PROCESS,
    LAUNCH_BACKFILL,
    LAUNCH_RUN,
    REPO_ROOT,
    GraphQL,
    free_port,
    loaded_location,
    process_group,
    query,
    runs_finished,
    wait_for,
)
from .fault_matrix import figures

#: Starts dagster-webserver and dagster-daemon and backfills 14 days: minutes.
pytestmark = pytest.mark.slow

DAYS = [f"2026-11-{day:02d}" for day in range(1, 15)]
SINGLE_RUN_DAY = "2026-11-20"


@pytest.mark.timeout(400)
def test_backfill_of_14_days_through_the_daemon_runs_in_parallel_without_lock_errors(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox(objectives=300, companies=20, seed=81)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_ROOT / "dagster.yaml", home / "dagster.yaml")
    db = tmp_path / "objectives.duckdb"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "OBJECTIVES_DUCKDB_PATH": str(db),
        "PLANHAT_API_TOKEN": server.token,
        "PLANHAT_BASE_URL": server.base_url,
        "PYTHONPATH": str(REPO_ROOT),
    }
    port = free_port()
    gql = GraphQL(port)
    web_log, daemon_log = tmp_path / "webserver.log", tmp_path / "daemon.log"
    webserver = [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1"]
    daemon = [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"]

    with process_group([*webserver, "-p", str(port)], env, web_log):
        entry = wait_for("the code location", lambda: loaded_location(gql), 120, web_log)
        location = entry["locationOrLoadError"]
        assert location["__typename"] == "RepositoryLocation", location
        repo = location["repositories"][0]
        jobs = {j["name"] for j in repo["jobs"]}
        assets = {"/".join(a["assetKey"]["path"]) for a in repo["assetNodes"]}
        assert {"objectives_elt", "push_objectives_to_planhat"} <= jobs
        assert {"objectives_elt_daily"} <= {s["name"] for s in repo["schedules"]}
        assert {"planhat_objectives", "company_objective_health"} <= assets

        launched = gql(
            LAUNCH_BACKFILL,
            params={
                "partitionNames": DAYS,
                "assetSelection": [{"path": ["planhat_objectives"]}],
                "runConfigData": IN_PROCESS,
            },
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]
        single = gql(
            LAUNCH_RUN,
            params={
                "selector": {
                    "repositoryLocationName": entry["name"],
                    "repositoryName": repo["name"],
                    "jobName": "objectives_elt",
                },
                "executionMetadata": {
                    "tags": [{"key": "dagster/partition", "value": SINGLE_RUN_DAY}]
                },
                "runConfigData": IN_PROCESS,
            },
        )["launchRun"]
        assert single["__typename"] == "LaunchRunSuccess", single
        single_id = single["run"]["runId"]

        with process_group(daemon, env, daemon_log):

            def runs_done() -> list[dict[str, Any]] | None:
                return runs_finished(gql, backfill_id, len(DAYS), [single_id])

            finished = wait_for("14 backfill runs and the single run", runs_done, 220, daemon_log)

    statuses = {r["runId"]: r["status"] for r in finished}
    assert set(statuses.values()) == {"SUCCESS"}, statuses
    partitions = sorted(
        tag["value"] for r in finished for tag in r["tags"] if tag["key"] == "dagster/partition"
    )
    assert partitions == sorted([*DAYS, SINGLE_RUN_DAY])
    # Several runs were in progress at once.
    spans = sorted((r["startTime"], r["endTime"]) for r in finished)
    most_at_once = max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)
    assert most_at_once >= 2
    per_day = query(
        db,
        "SELECT snapshot_date::VARCHAR, count(*) FROM raw.planhat_objectives GROUP BY 1 ORDER BY 1",
    )
    assert per_day == [(day, 300) for day in sorted([*DAYS, SINGLE_RUN_DAY])]
    companies = {o["companyId"] for o in server.store.all_objectives()}
    assert query(db, "SELECT count(*) FROM company_objective_health") == [(len(companies),)]
    lock_errors = [
        path
        for path in [web_log, daemon_log, *home.rglob("*")]
        if path.is_file() and b"Could not set lock" in path.read_bytes()
    ]
    assert lock_errors == []
    figures(
        "backfill of 14 partitions + 1 launched run, daemon, max 4 runs at once",
        runs=len(finished),
        most_runs_at_once=most_at_once,
        succeeded=sum(s == "SUCCESS" for s in statuses.values()),
        lock_errors=len(lock_errors),
        expected_rows=300 * 15,
        landed_rows=sum(n for _, n in per_day),
    )
