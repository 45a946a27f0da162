"""Building the project's Dagster definitions against a test sandbox and a temp DuckDB file,
and driving Dagster's own processes (webserver, daemon, code server) over GraphQL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import httpx

from objectives_pipeline.definitions import build_defs
from objectives_pipeline.resources import PlanhatResource, SqlModelsResource, WarehouseResource
from objectives_pipeline.sandbox import SandboxServer


def planhat_for(server: SandboxServer, **options: Any) -> PlanhatResource:
    options.setdefault("max_attempts", 4)
    return PlanhatResource(api_token=server.token, base_url=server.base_url, **options)


def defs_for(server: SandboxServer, db_path: Path, **planhat_options: Any) -> dg.Definitions:
    return build_defs(
        {
            "planhat": planhat_for(server, **planhat_options),
            "warehouse": WarehouseResource(path=str(db_path), lock_timeout_seconds=10),
            "sql_models": SqlModelsResource(),
        }
    )


def run_elt(
    defs: dg.Definitions,
    partition_key: str,
    *,
    instance: dg.DagsterInstance | None = None,
    run_config: dict[str, Any] | None = None,
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def("objectives_elt")
    return job.execute_in_process(
        partition_key=partition_key,
        instance=instance,
        run_config=run_config,
        raise_on_error=False,
    )


def query(db_path: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db_path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def materialization_metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        if materialization.asset_key == dg.AssetKey(asset):
            return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    raise AssertionError(f"no materialization of {asset}")


REPO_ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
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
    args: list[str],
    env: dict[str, str],
    log: Path,
    *,
    cwd: Path = REPO_ROOT,
    stop_signal: signal.Signals = signal.SIGTERM,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start `args` in a new session; stop its whole process group on exit (`stop_signal`,
    then SIGKILL after 10 s), always."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            for sig in (stop_signal, signal.SIGKILL):
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


def runs_finished(
    gql: GraphQL, backfill_id: str, expected: int, run_ids: list[str]
) -> list[dict[str, Any]] | None:
    """The backfill's runs plus `run_ids` once `expected` backfill runs exist and all are done."""
    runs = gql(RUNS, filter={"tags": [{"key": "dagster/backfill", "value": backfill_id}]})
    results: list[dict[str, Any]] = runs["runsOrError"]["results"]
    mine = gql(RUNS, filter={"runIds": run_ids})["runsOrError"]["results"] if run_ids else []
    every = results + mine
    if len(results) == expected and all(r["status"] in DONE for r in every):
        return every
    return None
