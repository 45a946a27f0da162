"""Running the project's jobs from the command line as real Dagster runs."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def instance() -> dg.DagsterInstance:
    """The instance `make dev` uses, so command-line runs show up in the UI's run history."""
    if not os.environ.get("DAGSTER_HOME"):
        home = Path.cwd() / ".dagster_home"
        home.mkdir(exist_ok=True)
        source = PROJECT_ROOT / "dagster.yaml"
        if source.exists() and not (home / "dagster.yaml").exists():
            shutil.copyfile(source, home / "dagster.yaml")
        os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.get()


def run_job(
    job_name: str,
    *,
    partition_key: str | None = None,
    run_config: Mapping[str, Any] | None = None,
    raise_on_error: bool = False,
) -> dg.ExecuteInProcessResult:
    """Execute one job of `objectives_pipeline.definitions:defs` in this process, recorded."""
    from objectives_pipeline.definitions import defs

    job = defs.resolve_job_def(job_name)
    return job.execute_in_process(
        run_config=run_config,
        instance=instance(),
        partition_key=partition_key,
        raise_on_error=raise_on_error,
    )


def failure_summary(result: dg.ExecuteInProcessResult) -> str:
    """The first failure message of a run, for the terminal."""
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            return f"step {event.step_key} failed: {error.message.strip()}"
    return "the run failed; see its logs in the Dagster UI (make dev)"
