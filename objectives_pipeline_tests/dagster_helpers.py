"""Building the project's Dagster definitions against a test sandbox and a temp DuckDB file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import duckdb

from objectives_pipeline.definitions import build_defs
from objectives_pipeline.defs.resources import PlanhatResource, SqlModelsResource, WarehouseResource
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
