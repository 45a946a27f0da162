"""`objectives-pipeline push`: run the push_objectives_to_planhat job from the command line.

The run goes through Dagster (``execute_in_process`` on the job of
``objectives_pipeline.definitions:defs``), so it is recorded like a run started in the
UI when ``DAGSTER_HOME`` is set, and its rows land in the same audit tables.
"""

from __future__ import annotations

import argparse
from typing import Any

import dagster as dg

from objectives_pipeline.commands.runs import print_failure, run_assets, run_job
from objectives_pipeline.defs.reverse_etl import OP_NAME

JOB_NAME = "push_objectives_to_planhat"
REFRESH_ASSETS = ("crm_objectives", "objectives_to_push")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--yes",
        action="store_true",
        help="enable writing the real tenant (needed the first time; remembered afterwards)",
    )
    parser.add_argument("--source", help="table or view to push (default: objectives_to_push)")
    parser.add_argument("--dry-run", action="store_true", help="everything except the PUT requests")
    parser.add_argument(
        "--full-push", action="store_true", help="send every row, also unchanged ones"
    )
    parser.add_argument("--batch-size", type=int, help="items per bulk request (1-5000)")
    parser.add_argument(
        "--allow-create-without-key",
        action="store_true",
        help="also send rows with neither source_id nor external_id (not idempotent)",
    )
    parser.add_argument(
        "--max-failed-share", type=float, help="share of rows that may fail (default 0)"
    )
    parser.add_argument(
        "--max-rejected-share", type=float, help="share of rows validation may reject (default 0.1)"
    )
    parser.add_argument(
        "--refresh",
        action="store_true",
        help="first rebuild crm_objectives and objectives_to_push from the CRM export",
    )


def run_config(args: argparse.Namespace) -> dict[str, Any]:
    """The job's run config: only the flags given, the rest keeps the op's defaults."""
    config: dict[str, Any] = {}
    for name in ("source", "batch_size", "max_failed_share", "max_rejected_share"):
        value = getattr(args, name)
        if value is not None:
            config[name] = value
    for name in ("dry_run", "full_push", "allow_create_without_key"):
        if getattr(args, name):
            config[name] = True
    if args.yes:
        config["enabled"] = True
    return {
        "ops": {OP_NAME: {"config": config}},
        "loggers": {"console": {"config": {"log_level": "INFO"}}},
    }


def run(args: argparse.Namespace) -> int:
    if args.refresh:
        refreshed = refresh_push_source()
        if not refreshed.success:
            print_failure(f"rebuilding {', '.join(REFRESH_ASSETS)}", refreshed)
            return 1
    result = run_job(JOB_NAME, run_config=run_config(args))
    if result.success:
        print(output_summary(result))
        return 0
    print_failure("the push", result)
    return 1


def refresh_push_source() -> dg.ExecuteInProcessResult:
    """Rebuild the CRM source table and the `objectives_to_push` model, as one run."""
    return run_assets(REFRESH_ASSETS)


def output_summary(result: dg.ExecuteInProcessResult) -> str:
    for event in result.all_node_events:
        if event.is_successful_output:
            summary = event.step_output_data.metadata.get("summary")
            if summary is not None:
                return str(summary.value)
    return "The push finished."
