"""Running the project's jobs from the command line as real Dagster runs."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from objectives_pipeline.package_files import dagster_yaml

#: The terminal shows warnings and errors; the full run log is in the UI (make dev).
QUIET_CONSOLE: Mapping[str, Any] = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def instance() -> dg.DagsterInstance:
    """The instance `make dev` uses, so command-line runs show up in the UI's run history.

    ``$DAGSTER_HOME`` (default ``./.dagster_home``) is created when missing, with the
    project's dagster.yaml (the one shipped in the package when installed from a wheel).
    """
    home = Path(os.environ.get("DAGSTER_HOME") or Path.cwd() / ".dagster_home").absolute()
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copyfile(dagster_yaml(), home / "dagster.yaml")
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
        run_config={**QUIET_CONSOLE, **(run_config or {})},
        instance=instance(),
        partition_key=partition_key,
        raise_on_error=raise_on_error,
    )


def run_assets(asset_names: Sequence[str]) -> dg.ExecuteInProcessResult:
    """Materialize some unpartitioned assets of `defs` in this process, as one recorded run."""
    from objectives_pipeline.definitions import defs

    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        run_config=QUIET_CONSOLE,
        instance=instance(),
        asset_selection=[dg.AssetKey(name) for name in asset_names],
        raise_on_error=False,
    )


def print_failure(label: str, result: dg.ExecuteInProcessResult) -> None:
    """Say on stderr which run failed and why."""
    print(f"error: {label} failed (run {result.run_id}):", file=sys.stderr)
    for message in failure_messages(result):
        print(f"  {message}", file=sys.stderr)


def failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    """What went wrong in a run, one message per failed step, for the terminal."""
    messages = []
    for event in result.all_events:
        if not event.is_step_failure or event.step_failure_data is None:
            continue
        data = event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            messages.append(f"{event.step_key}: {data.user_failure_data.description}")
        elif data.error is not None:
            cause = data.error.cause.message.strip() if data.error.cause else ""
            messages.append(f"{event.step_key}: {data.error.message.strip()} {cause}".strip())
    return messages or ["the run failed before any step ran; see its log in the Dagster UI"]
