"""Small things every measured implementation shares."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb

SNAPSHOT_DATE = date(2026, 1, 31)
"""The partition every extraction writes."""


def count_rows(database: Path, table: str) -> int:
    """Rows in `table` of the DuckDB file `database` (read-only; after the timed section)."""
    with duckdb.connect(str(database), read_only=True) as con:
        row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else 0
