"""Our extraction through Dagster: the ``planhat_objectives`` asset, materialized in process.

``dg.materialize`` with the project's own resources pointed at the bench sandbox (the
``planhat`` resource as for a real tenant: token from the environment, its default
client-side limit) and a fresh DuckDB file, on an ephemeral instance. Reported:

- ``seconds``: the asset's step, from Dagster's STEP_START to STEP_SUCCESS events (the
  extraction, the snapshot's quality checks and Dagster's own work inside the step);
- ``details.extract_seconds``: ``extract_snapshot``'s own time, the ``seconds`` the asset
  records in its materialization metadata;
- ``details.overhead_seconds``: the difference, what Dagster and the asset add;
- ``details.materialize_seconds``: the whole ``dg.materialize`` call (run set-up included).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from objectives_pipeline.defs.extract_assets import planhat_objectives
from objectives_pipeline.resources import PlanhatResource, WarehouseResource

from .common import SNAPSHOT_DATE, count_rows
from .worker import TOKEN_ENV, Outcome, RunSpec, Stopwatch

TABLE = "raw.planhat_objectives"
ASSET = "planhat_objectives"


def extract(spec: RunSpec) -> Outcome:
    database = Path(spec.workdir) / "dagster.duckdb"
    resources = {
        "planhat": PlanhatResource(
            api_token=dg.EnvVar(TOKEN_ENV),
            base_url=spec.base_url,
        ),
        "warehouse": WarehouseResource(path=str(database)),
    }
    run_config = {"ops": {ASSET: {"config": {"page_size": spec.page_size}}}}
    with dg.DagsterInstance.ephemeral() as instance:
        with Stopwatch() as watch:
            result = dg.materialize(
                [planhat_objectives],
                resources=resources,
                run_config=run_config,
                partition_key=SNAPSHOT_DATE.isoformat(),
                instance=instance,
                raise_on_error=False,
            )
        if not result.success:
            raise RuntimeError(f"the run of {ASSET} failed: {_failure(result)}")
        step_seconds = _step_seconds(instance, result.run_id)
    metadata = _materialization_metadata(result)
    extract_seconds = float(metadata["seconds"])
    return Outcome(
        seconds=step_seconds,
        records=count_rows(database, TABLE),
        client_requests=int(metadata["requests"]),
        details={
            "database": str(database),
            "table": TABLE,
            "step_seconds": round(step_seconds, 3),
            "extract_seconds": extract_seconds,
            "overhead_seconds": round(step_seconds - extract_seconds, 3),
            "materialize_seconds": round(watch.seconds, 3),
        },
    )


def _step_seconds(instance: dg.DagsterInstance, run_id: str) -> float:
    """Seconds between the asset step's STEP_START and STEP_SUCCESS events."""
    started = succeeded = None
    for entry in instance.all_logs(run_id):
        if entry.dagster_event_type == dg.DagsterEventType.STEP_START:
            started = entry.timestamp
        elif entry.dagster_event_type == dg.DagsterEventType.STEP_SUCCESS:
            succeeded = entry.timestamp
    if started is None or succeeded is None:
        raise RuntimeError(f"run {run_id} has no STEP_START/STEP_SUCCESS pair for {ASSET}")
    return succeeded - started


def _materialization_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        if materialization.asset_key == dg.AssetKey(ASSET):
            return {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
    raise RuntimeError(f"the run did not materialize {ASSET}")


def _failure(result: dg.ExecuteInProcessResult) -> str:
    failure = next((e for e in result.all_events if e.is_step_failure), None)
    error = failure.step_failure_data.error if failure is not None else None
    return error.message.strip()[:300] if error is not None else "no step failure recorded"
