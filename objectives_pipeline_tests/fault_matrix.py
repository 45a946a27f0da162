"""Helpers of the fault suite (test_faults_*.py): extract runs, failure texts and the figures.

Each fault test prints one ``FAULT-MATRIX`` line with its figures (faults injected, retries,
records expected and landed, duplicates); ``pytest -s -k faults`` shows them, and
docs/reliability.md quotes one run.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import dagster as dg

from objectives_pipeline.defs.extract_assets import planhat_objectives
from objectives_pipeline.resources import SqlModelsResource, WarehouseResource
from objectives_pipeline.sandbox import RequestRecord, SandboxServer

from .dagster_helpers import planhat_for, query

FAST_RETRIES: dict[str, Any] = {
    "retry_initial_backoff_seconds": 0.01,
    "retry_jitter_seconds": 0.01,
}


def extract(
    server: SandboxServer,
    db: Path,
    partition_key: str,
    *,
    run_config: dict[str, Any] | None = None,
    instance: dg.DagsterInstance | None = None,
    **planhat_options: Any,
) -> dg.ExecuteInProcessResult:
    """Materialize `planhat_objectives` alone (no SQL models) in a real Dagster run."""
    for name, value in FAST_RETRIES.items():
        planhat_options.setdefault(name, value)
    return dg.materialize(
        [planhat_objectives],
        partition_key=partition_key,
        resources={
            "planhat": planhat_for(server, **planhat_options),
            "warehouse": WarehouseResource(path=str(db), lock_timeout_seconds=10),
            "sql_models": SqlModelsResource(),
        },
        run_config=run_config,
        instance=instance,
        raise_on_error=False,
    )


def extract_config(**config: Any) -> dict[str, Any]:
    return {"ops": {"planhat_objectives": {"config": config}}}


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """The step failure's message and every cause, as Dagster shows them."""
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.error  # type: ignore[union-attr]
    assert error is not None
    return error.to_string()


def faults_in(log: list[RequestRecord]) -> Counter[str]:
    """How many requests of `log` got each injected fault."""
    return Counter(r.fault for r in log if r.fault is not None)


def landed(db: Path, partition_key: str) -> tuple[int, int, set[str]]:
    """(rows, duplicate rows, distinct ids) of one partition of raw.planhat_objectives."""
    rows = query(
        db,
        "SELECT objective_id FROM raw.planhat_objectives WHERE snapshot_date = ?",
        [partition_key],
    )
    ids = [r[0] for r in rows]
    return len(ids), len(ids) - len(set(ids)), set(ids)


def partition_rows(db: Path, partition_key: str) -> list[tuple[Any, ...]]:
    return query(
        db,
        "SELECT objective_id, name, health, captured_at FROM raw.planhat_objectives "
        "WHERE snapshot_date = ? ORDER BY objective_id",
        [partition_key],
    )


def figures(fault: str, **values: object) -> None:
    """Print the figures of one fault test (shown with ``pytest -s``)."""
    cells = "; ".join(f"{name}={value}" for name, value in values.items())
    print(f"\nFAULT-MATRIX | {fault} | {cells}")
