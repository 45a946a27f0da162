"""Data-quality figures for one snapshot of ``raw.planhat_objectives``.

:func:`snapshot_quality` reads, on a read-only connection, what the asset
checks of the extract-load step report: repeated ids, objectives without a
company, health values outside the expected range, flagged records, and the
row count against the previous snapshot (a sharp drop can be a silent partial
extract), plus a short preview of the rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb

from .connection import Warehouse
from .errors import WarehouseError

__all__ = [
    "PREVIEW_COLUMNS",
    "SnapshotQuality",
    "latest_snapshot_rows",
    "previous_snapshot",
    "quality_on",
    "snapshot_quality",
]

PREVIEW_COLUMNS = (
    "objective_id",
    "name",
    "health",
    "company_id",
    "company_name",
    "external_id",
    "source_id",
)

_FIGURES = """
SELECT count(*),
       count(objective_id) - count(DISTINCT objective_id),
       count(*) FILTER (WHERE company_id IS NULL),
       count(*) FILTER (WHERE health < $low OR health > $high),
       min(health),
       max(health),
       count(*) FILTER (WHERE len(load_issues) > 0)
FROM raw.planhat_objectives
WHERE snapshot_date = $day
"""

_PREVIOUS = """
SELECT snapshot_date, count(*)
FROM raw.planhat_objectives
WHERE snapshot_date = (SELECT max(snapshot_date) FROM raw.planhat_objectives
                       WHERE snapshot_date < $day)
GROUP BY snapshot_date
"""

_PREVIEW = f"""
SELECT {", ".join(PREVIEW_COLUMNS)}
FROM raw.planhat_objectives
WHERE snapshot_date = $day
ORDER BY objective_id
LIMIT $limit
"""


@dataclass(frozen=True)
class SnapshotQuality:
    """Quality figures of one snapshot.

    Attributes:
        snapshot_date: the snapshot.
        rows: rows in it.
        duplicate_ids: rows beyond the first for a repeated ``objective_id`` (0 expected).
        missing_company_id: rows without ``company_id``.
        health_out_of_range: rows whose health is outside ``[health_low, health_high]``.
        health_min, health_max: the lowest and highest health seen (None if none).
        flagged_rows: rows with load issues.
        previous_snapshot_date, previous_rows: the latest earlier snapshot, if any.
        replaced_rows: rows of the partition this load replaced (None when not known).
        row_drop_share: ``(baseline - rows) / baseline`` against the larger of
            `previous_rows` and `replaced_rows`; negative when the snapshot grew, None
            without a non-empty baseline.
        preview: the first rows by ``objective_id``, columns :data:`PREVIEW_COLUMNS`.
    """

    snapshot_date: date
    rows: int
    duplicate_ids: int
    missing_company_id: int
    health_out_of_range: int
    health_min: float | None
    health_max: float | None
    flagged_rows: int
    previous_snapshot_date: date | None
    previous_rows: int | None
    row_drop_share: float | None
    preview: list[dict[str, Any]] = field(default_factory=list)
    replaced_rows: int | None = None


def snapshot_quality(
    warehouse: Warehouse,
    snapshot_date: date,
    health_low: float,
    health_high: float,
    *,
    preview_rows: int = 10,
) -> SnapshotQuality:
    """Quality figures for partition ``snapshot_date`` (zero rows if it was never loaded)."""
    with warehouse.connect(read_only=True) as con:
        if not _raw_table_exists(con):
            return SnapshotQuality(snapshot_date, 0, 0, 0, 0, None, None, 0, None, None, None)
        return quality_on(con, snapshot_date, health_low, health_high, preview_rows=preview_rows)


def quality_on(
    con: duckdb.DuckDBPyConnection,
    snapshot_date: date,
    health_low: float,
    health_high: float,
    *,
    preview_rows: int = 10,
    replaced_rows: int | None = None,
) -> SnapshotQuality:
    """:func:`snapshot_quality` on an open connection (e.g. inside the load's transaction,
    which knows the `replaced_rows` of the partition it replaced)."""
    day = {"day": snapshot_date}
    figures = con.execute(_FIGURES, {**day, "low": health_low, "high": health_high}).fetchone()
    assert figures is not None
    rows, duplicates, no_company, out_of_range, low, high, flagged = figures
    previous = previous_snapshot(con, snapshot_date)
    cursor = con.execute(_PREVIEW, {**day, "limit": preview_rows})
    names = [d[0] for d in cursor.description or []]
    preview = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    previous_date, previous_rows = previous if previous else (None, None)
    baseline = max(previous_rows or 0, replaced_rows or 0)
    drop = (baseline - rows) / baseline if baseline else None
    return SnapshotQuality(
        snapshot_date=snapshot_date,
        rows=int(rows),
        duplicate_ids=int(duplicates),
        missing_company_id=int(no_company),
        health_out_of_range=int(out_of_range),
        health_min=low,
        health_max=high,
        flagged_rows=int(flagged),
        previous_snapshot_date=previous_date,
        previous_rows=None if previous_rows is None else int(previous_rows),
        row_drop_share=drop,
        preview=preview,
        replaced_rows=replaced_rows,
    )


def previous_snapshot(con: duckdb.DuckDBPyConnection, snapshot_date: date) -> tuple[date, int] | None:
    """The latest snapshot before `snapshot_date` and its rows, if any."""
    row = con.execute(_PREVIOUS, {"day": snapshot_date}).fetchone()
    return (row[0], int(row[1])) if row else None


def _raw_table_exists(con: duckdb.DuckDBPyConnection) -> bool:
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE schema_name = 'raw' AND table_name = 'planhat_objectives'"
    ).fetchone()
    return bool(exists and exists[0])


_LATEST = """
SELECT count(*)
FROM raw.planhat_objectives
WHERE snapshot_date = (SELECT max(snapshot_date) FROM raw.planhat_objectives)
"""


def latest_snapshot_rows(warehouse: Warehouse) -> int | None:
    """Rows of the latest snapshot, or None when there is none (or no database yet)."""
    try:
        with warehouse.connect(read_only=True) as con:
            if not _raw_table_exists(con):
                return None
            row = con.execute(_LATEST).fetchone()
    except WarehouseError:
        return None
    return int(row[0]) if row and row[0] else None
