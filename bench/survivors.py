"""Did a run under churn load every objective that existed for the whole run, exactly once?

The survivors are the objectives the sandbox held both before the run and after it (churn
deletes objectives and creates new ids; it never brings an id back), so each existed for
the whole run and a complete snapshot has each of them exactly once.
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .common import SNAPSHOT_DATE


@dataclass(frozen=True)
class SurvivorCheck:
    survivors: int
    missing: int
    """Survivors with no row in the snapshot."""
    repeated: int
    """Survivors with more than one row."""

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.repeated == 0

    def describe(self) -> str:
        if self.ok:
            return f"{self.survivors:,} survivors, each exactly once"
        return (
            f"{self.missing:,} of {self.survivors:,} survivors missing, {self.repeated:,} repeated"
        )


def check_survivors(database: Path, table: str, survivors: Set[str]) -> SurvivorCheck:
    """Count the survivors missing from, or repeated in, `table`'s snapshot in `database`."""
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute(
            f"SELECT objective_id, count(*) FROM {table} WHERE snapshot_date = ? GROUP BY 1",
            [SNAPSHOT_DATE],
        ).fetchall()
    counts = {str(oid): int(n) for oid, n in rows}
    return SurvivorCheck(
        survivors=len(survivors),
        missing=sum(1 for oid in survivors if oid not in counts),
        repeated=sum(1 for oid in survivors if counts.get(oid, 0) > 1),
    )
