"""`objectives-pipeline health`: the per-company health-score view, read-only."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from datetime import date
from typing import Any, TextIO

from objectives_pipeline.settings import DEFAULT_COMMAND_LOCK_TIMEOUT_SECONDS
from objectives_pipeline.warehouse import Warehouse, WarehouseError, WarehouseNotFoundError

COLUMNS = [
    "company_id",
    "company_name",
    "objective_count",
    "objectives_with_health",
    "avg_health",
    "min_health",
    "max_health",
    "at_risk_share",
    "snapshot_date",
]


def add_warehouse_arguments(parser: argparse.ArgumentParser) -> None:
    """--db and --lock-timeout, read by :func:`warehouse_from_args`."""
    parser.add_argument(
        "--db", help="DuckDB file (default: OBJECTIVES_DUCKDB_PATH or data/objectives.duckdb)"
    )
    parser.add_argument(
        "--lock-timeout",
        type=float,
        default=DEFAULT_COMMAND_LOCK_TIMEOUT_SECONDS,
        help="seconds to wait while a run holds the database",
    )


def warehouse_from_args(args: argparse.Namespace) -> Warehouse:
    """The warehouse --db names (else OBJECTIVES_DUCKDB_PATH), waiting --lock-timeout for a writer."""
    if args.db:
        return Warehouse(args.db, lock_timeout=args.lock_timeout)
    return Warehouse.from_env(lock_timeout=args.lock_timeout)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_warehouse_arguments(parser)
    parser.add_argument("--company", metavar="ID", help="only this company (Planhat _id)")
    parser.add_argument(
        "--below",
        type=float,
        metavar="THRESHOLD",
        help="only companies whose average health is below THRESHOLD",
    )
    parser.add_argument(
        "--date",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="the snapshot of that day instead of the latest",
    )
    parser.add_argument(
        "--limit", type=int, default=10, help="rows in each of the worst/best lists (default 10)"
    )
    parser.add_argument(
        "--all",
        action="store_true",
        help="every company, worst first, instead of worst and best lists",
    )
    parser.add_argument(
        "--trend",
        metavar="COMPANY",
        help="the daily average health of one company (id or name) with a sparkline",
    )
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table")


def run(args: argparse.Namespace) -> int:
    warehouse = warehouse_from_args(args)
    if args.trend:
        from objectives_pipeline.commands.health_trend import print_trend

        return print_trend(warehouse, args.trend, args.format, sys.stdout)
    try:
        rows = query_health(
            warehouse, company=args.company, below=args.below, snapshot_date=args.date
        )
    except WarehouseNotFoundError:
        rows = None
    except WarehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if rows is None:
        print(no_data_message(warehouse), file=sys.stderr)
        return 1
    if not rows:
        print("No company matches these filters.", file=sys.stderr)
        return 1
    if args.format == "json":
        json.dump(rows, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    elif args.format == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    elif args.all or args.company or len(rows) <= 2 * args.limit:
        print_table(rows, sys.stdout)
    else:
        print(f"Worst {args.limit} companies by average objective health:")
        print_table(rows[: args.limit], sys.stdout)
        print(f"\nBest {args.limit} companies:")
        print_table(list(reversed(rows[-args.limit :])), sys.stdout)
        print(f"\n{len(rows)} companies in all; --all lists every one, --format csv|json exports.")
    return 0


def no_data_message(warehouse: Warehouse) -> str:
    return (
        f"No health data yet in {warehouse.path}. Run `make demo`, or materialize the "
        "objectives_elt job (`make dev`, then Launch in the UI)."
    )


def query_health(
    warehouse: Warehouse,
    *,
    company: str | None = None,
    below: float | None = None,
    snapshot_date: date | None = None,
) -> list[dict[str, Any]] | None:
    """Companies worst first; None when the health tables do not exist yet."""
    table = "company_objective_health_daily" if snapshot_date else "company_objective_health"
    conditions: list[str] = ["TRUE"]
    params: list[Any] = []
    if snapshot_date:
        conditions.append("snapshot_date = ?")
        params.append(snapshot_date)
    if company:
        conditions.append("company_id = ?")
        params.append(company)
    if below is not None:
        conditions.append("avg_health < ?")
        params.append(below)
    with warehouse.connect(read_only=True) as con:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main' AND table_name = ?",
            [table],
        ).fetchone()
        if not exists or exists[0] == 0:
            return None
        cursor = con.execute(
            f"SELECT {', '.join(COLUMNS)} FROM main.{table} WHERE {' AND '.join(conditions)} "
            "ORDER BY avg_health ASC NULLS LAST, company_name, company_id",
            params,
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def print_table(
    rows: list[dict[str, Any]], out: TextIO, columns: Sequence[str] = COLUMNS
) -> None:
    """`rows` aligned under their `columns`; floats with two decimals, None as '-'."""
    cells = [[_format(row[c]) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)
