"""`objectives-pipeline query "SELECT ..."`: run one read-only query on the DuckDB file."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

import duckdb

from objectives_pipeline.commands.health import (
    add_warehouse_arguments,
    print_table,
    warehouse_from_args,
)
from objectives_pipeline.warehouse import WarehouseError

# Not EXPLAIN: EXPLAIN ANALYZE runs the statement it explains, a COPY TO included.
READ_STATEMENTS = {duckdb.StatementType.SELECT}
READ_HELP = "SELECT, WITH, FROM, VALUES, DESCRIBE, SHOW or SUMMARIZE"


class QueryRefused(ValueError):
    """The text is not exactly one read-only statement."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sql", help=f"one read-only statement ({READ_HELP})")
    add_warehouse_arguments(parser)
    parser.add_argument("--format", choices=["table", "csv", "json"], default="table")
    parser.add_argument(
        "--max-rows",
        type=int,
        default=100,
        help="rows shown in table format (default 100); csv and json print every row",
    )


def run(args: argparse.Namespace) -> int:
    warehouse = warehouse_from_args(args)
    try:
        check_read_only(args.sql)
        with warehouse.connect(read_only=True) as con:
            cursor = con.execute(args.sql)
            columns = [d[0] for d in cursor.description or []]
            limit = args.max_rows + 1 if args.format == "table" else None
            rows = cursor.fetchall() if limit is None else cursor.fetchmany(limit)
    except QueryRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except WarehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except duckdb.Error as exc:
        print(f"error: the query failed: {exc}", file=sys.stderr)
        return 2
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    if args.format == "json":
        json.dump(records, sys.stdout, indent=2, default=_json_value)
        sys.stdout.write("\n")
    elif args.format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        shown = records[: args.max_rows]
        print_table(shown, sys.stdout, columns)
        more = " (more not shown: --max-rows, or --format csv)" if len(records) > len(shown) else ""
        print(f"({len(shown)} rows{more})")
    return 0


def check_read_only(sql: str) -> None:
    """Raise QueryRefused unless `sql` is exactly one read-only statement."""
    try:
        with duckdb.connect(":memory:") as parser:
            statements = parser.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryRefused(f"the query does not parse: {exc}") from None
    if len(statements) != 1:
        raise QueryRefused(
            f"pass exactly one statement, got {len(statements)}; run them one at a time."
        )
    kind = statements[0].type
    if kind not in READ_STATEMENTS:
        raise QueryRefused(
            f"query only reads: {kind.name} statements are refused. Use {READ_HELP}; "
            "the pipeline's runs are what write the database."
        )


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, UUID):
        return str(value)
    return str(value)
