"""`objectives-pipeline health --trend COMPANY`: one company's daily average health, with a sparkline."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from objectives_pipeline.commands.health import no_data_message, print_table
from objectives_pipeline.warehouse import Warehouse, WarehouseError, WarehouseNotFoundError

TREND_COLUMNS = [
    "snapshot_date",
    "avg_health",
    "objective_count",
    "objectives_with_health",
    "at_risk_share",
]
BARS = "▁▂▃▄▅▆▇█"
NO_HEALTH = "·"


def sparkline(values: Sequence[float | None]) -> str:
    """One bar per value, scaled between the lowest and highest; None as '·'.

    Equal values (a single day included) are all drawn at mid height.
    """
    known = [v for v in values if v is not None]
    if not known:
        return NO_HEALTH * len(values)
    low, high = min(known), max(known)
    if high == low:
        return "".join(NO_HEALTH if v is None else BARS[len(BARS) // 2 - 1] for v in values)
    scale = (len(BARS) - 1) / (high - low)
    return "".join(NO_HEALTH if v is None else BARS[round((v - low) * scale)] for v in values)


def find_company_trend(
    warehouse: Warehouse, company: str
) -> tuple[list[tuple[str, str | None]], list[dict[str, Any]]] | None:
    """Companies whose id is `company`, else whose name is (case-insensitive), and, when
    exactly one matches, its rows of company_objective_health_daily by date.

    None when the table does not exist yet.
    """
    with warehouse.connect(read_only=True) as con:
        exists = con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'main' AND table_name = 'company_objective_health_daily'"
        ).fetchone()
        if not exists or exists[0] == 0:
            return None
        matches = con.execute(
            "SELECT company_id, max(company_name) FROM main.company_objective_health_daily "
            "WHERE company_id = $c OR (NOT EXISTS (SELECT 1 FROM main.company_objective_health_daily "
            "WHERE company_id = $c) AND lower(company_name) = lower($c)) "
            "GROUP BY company_id ORDER BY company_id",
            {"c": company},
        ).fetchall()
        if len(matches) != 1:
            return [(str(i), n) for i, n in matches], []
        cursor = con.execute(
            f"SELECT {', '.join(TREND_COLUMNS)} FROM main.company_objective_health_daily "
            "WHERE company_id = ? ORDER BY snapshot_date",
            [matches[0][0]],
        )
        rows = [dict(zip(TREND_COLUMNS, r, strict=True)) for r in cursor.fetchall()]
    return [(str(i), n) for i, n in matches], rows


def print_trend(warehouse: Warehouse, company: str, output: str, out: TextIO) -> int:
    """Print the trend of `company` as table, csv or json; the exit code."""
    try:
        found = find_company_trend(warehouse, company)
    except WarehouseNotFoundError:
        found = None
    except WarehouseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if found is None:
        print(no_data_message(warehouse), file=sys.stderr)
        return 1
    matches, rows = found
    if not matches:
        print(f"No company has the id or name {company!r}.", file=sys.stderr)
        return 1
    if len(matches) > 1:
        listed = ", ".join(f"{i} ({n})" for i, n in matches)
        print(
            f"{len(matches)} companies are named {company!r}: {listed}. Pass the id instead.",
            file=sys.stderr,
        )
        return 1
    ((company_id, name),) = matches
    if output == "json":
        json.dump(rows, out, indent=2, default=str)
        out.write("\n")
    elif output == "csv":
        writer = csv.DictWriter(out, fieldnames=TREND_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    else:
        values = [r["avg_health"] for r in rows]
        known = [v for v in values if v is not None]
        out.write(f"{name or company_id} ({company_id}): average objective health by snapshot\n")
        print_table(rows, out, TREND_COLUMNS)
        span = f"{rows[0]['snapshot_date']} .. {rows[-1]['snapshot_date']}"
        low_high = f"min {min(known):.2f}, max {max(known):.2f}" if known else "no health values"
        count = f"{len(rows)} snapshot{'s' if len(rows) != 1 else ''}"
        out.write(f"\n{sparkline(values)}  {span}, {count}, {low_high}")
        out.write(f" ({NO_HEALTH} = no objective with a health)\n" if None in values else "\n")
    return 0
