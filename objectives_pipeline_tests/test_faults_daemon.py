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
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from objectives_pipeline.sandbox import SandboxServer

from .dagster_helpers import query
from .fault_matrix import figures

#: Starts dagster-webserver and dagster-daemon and backfills 14 days: minutes.
pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAYS = [f"2026-11-{day:02d}" for day in range(1, 15)]
SINGLE_RUN_DAY = "2026-11-20"
DONE = {"SUCCESS", "FAILURE", "CANCELED"}
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}

WORKSPACE = """
query {
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on PythonError { message }
          ... on RepositoryLocation {
            repositories {
              name
              jobs { name }
              schedules { name }
              assetNodes { assetKey { path } }
            }
          }
        }
      }
    }
  }
}
"""

LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}
"""

LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}
"""

RUNS = """
query($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    ... on Runs { results { runId status startTime endTime tags { key value } } }
  }
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def process_group(
    args: list[str], env: dict[str, str], log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `args` in a new session; kill its whole process group on exit, always."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=10)
                    break
                except subprocess.TimeoutExpired:
                    continue
            with suppress(ProcessLookupError):  # whatever the leader left in its group
                os.killpg(proc.pid, signal.SIGKILL)


class GraphQL:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/graphql"
        self.http = httpx.Client(timeout=30)

    def __call__(self, document: str, **variables: Any) -> dict[str, Any]:
        response = self.http.post(self.url, json={"query": document, "variables": variables})
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        data: dict[str, Any] = body["data"]
        return data


def wait_for(what: str, check: Callable[[], Any], timeout: float, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}; log:\n{log.read_text()[-3000:]}")


def loaded_location(gql: GraphQL) -> dict[str, Any] | None:
    entries = gql(WORKSPACE)["workspaceOrError"]["locationEntries"]
    if not entries or entries[0]["loadStatus"] != "LOADED":
        return None
    entry: dict[str, Any] = entries[0]
    return entry


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
                runs = gql(
                    RUNS, filter={"tags": [{"key": "dagster/backfill", "value": backfill_id}]}
                )
                results: list[dict[str, Any]] = runs["runsOrError"]["results"]
                mine = gql(RUNS, filter={"runIds": [single_id]})["runsOrError"]["results"]
                every = results + mine
                if len(results) == len(DAYS) and all(r["status"] in DONE for r in every):
                    return every
                return None

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
