"""`objectives-pipeline demo`: the whole pipeline end to end on the embedded sandbox."""

import argparse
import os
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import dagster as dg

from objectives_pipeline.commands.health import print_table, query_health
from objectives_pipeline.commands.loop import (
    WRITEBACK_JOB,
    print_alerts,
    print_companies_read_back,
    writeback_line,
)
from objectives_pipeline.commands.push import JOB_NAME as PUSH_JOB
from objectives_pipeline.commands.push import output_summary, refresh_push_source
from objectives_pipeline.commands.runs import print_failure, run_job
from objectives_pipeline.settings import read_env
from objectives_pipeline.warehouse import Warehouse

SHOWN_METADATA = (
    "rows",
    "companies",
    "pages",
    "requests",
    "retries",
    "seconds",
    "records_per_second",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--date",
        type=date.fromisoformat,
        default=None,
        metavar="YYYY-MM-DD",
        help="snapshot date (default: today)",
    )
    parser.add_argument("--skip-push", action="store_true", help="extract and model only")


def run(args: argparse.Namespace) -> int:
    settings = read_env()
    if settings.api_token or settings.base_url:
        print(
            "PLANHAT_API_TOKEN or PLANHAT_BASE_URL is set: the demo only runs against the "
            "embedded sandbox. Unset them, or use `make dev` to run against your tenant.",
            file=sys.stderr,
        )
        return 2
    snapshot = (args.date or date.today()).isoformat()
    steps: list[tuple[str, Callable[[], dg.ExecuteInProcessResult]]] = [
        (f"objectives_elt [{snapshot}]", lambda: run_job("objectives_elt", partition_key=snapshot)),
    ]
    if not args.skip_push:
        steps += [
            ("crm_objectives + objectives_to_push", refresh_push_source),
            (PUSH_JOB, lambda: run_job(PUSH_JOB)),
            # snapshot again, so the health table includes what the push created
            (
                f"objectives_elt [{snapshot}]",
                lambda: run_job("objectives_elt", partition_key=snapshot),
            ),
        ]
    steps.append(
        (
            f"{WRITEBACK_JOB} [{snapshot}]",
            lambda: run_job(WRITEBACK_JOB, partition_key=snapshot),
        )
    )
    for label, execute in steps:
        print(f"==> {label}: running through Dagster ...", flush=True)
        result = execute()
        if not result.success:
            print_failure(label, result)
            return 1
        print(f"    run {result.run_id} succeeded")
        if label == PUSH_JOB:
            print(f"    {output_summary(result)}")
        if label.startswith(WRITEBACK_JOB):
            print(f"    {writeback_line(result)}")
            continue
        for line in _materialization_lines(result):
            print(f"    {line}")
    warehouse = Warehouse.from_env()
    rows = query_health(warehouse) or []
    print(f"\nCompany objective health, latest snapshot ({len(rows)} companies, worst 10):")
    print_table(rows[:10], sys.stdout)
    print_companies_read_back(warehouse, sys.stdout)
    print_alerts(warehouse, sys.stdout)
    print(f"\nDuckDB file: {warehouse.database}")
    print(
        '  .venv/bin/objectives-pipeline query "SELECT * FROM company_objective_health '
        'ORDER BY avg_health LIMIT 5"'
    )
    print(f"  {_command()} health --help   (worst/best, --below, --company, CSV/JSON)")
    print(f"Dagster UI with this run history: {_ui_command()}, then open http://127.0.0.1:3000")
    return 0


def _command() -> str:
    """How the user started this command, relative to the working directory when inside it."""
    script = Path(sys.argv[0])
    if script.name != "objectives-pipeline":
        return "objectives-pipeline"
    return str(script.relative_to(Path.cwd())) if script.is_relative_to(Path.cwd()) else str(script)


def _ui_command() -> str:
    if Path("Makefile").is_file() and Path("workspace.yaml").is_file():
        return "make dev"
    dagster = Path(sys.executable).with_name("dagster")
    return (
        f"DAGSTER_HOME={os.environ['DAGSTER_HOME']} {dagster} dev "
        "-m objectives_pipeline.definitions -h 127.0.0.1 -p 3000"
    )


def _materialization_lines(result: dg.ExecuteInProcessResult) -> list[str]:
    lines = []
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        shown = [
            f"{key}={getattr(value, 'value', value)}"
            for key, value in materialization.metadata.items()
            if key in SHOWN_METADATA or key == "dagster/row_count"
        ]
        if shown:
            lines.append(f"{materialization.asset_key.to_user_string()}: {', '.join(shown)}")
    return lines
