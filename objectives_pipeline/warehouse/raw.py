"""The raw snapshot table and the atomic load that replaces one of its partitions.

Table ``raw.planhat_objectives`` holds one row per objective per
``snapshot_date`` (unique on ``(snapshot_date, objective_id)``, enforced by the
load rather than by an index):

==============  ============  ==================================================
column          type          meaning
==============  ============  ==================================================
snapshot_date   DATE          the partition
objective_id    VARCHAR       ``_id``
name            VARCHAR       ``name``
health          DOUBLE        ``health``; NULL when missing or not a number
company_id      VARCHAR       ``companyId``
company_name    VARCHAR       ``companyName``
external_id     VARCHAR       ``externalId`` (numbers become text)
source_id       VARCHAR       ``sourceId``
custom          JSON          ``custom`` when it is an object
usage           JSON          ``usage`` when it is an object
captured_at     TIMESTAMP     when the extraction ran, in UTC
extra           JSON          every other field (``__v``, fields Planhat adds later)
load_issues     VARCHAR[]     what was unexpected, e.g. ``health is not a number``,
                              ``custom is not an object``, ``companyId missing``;
                              empty for a clean record
raw_record      JSON          the record exactly as received, only when
                              ``load_issues`` is not empty
==============  ============  ==================================================

Nothing is dropped: a record with unexpected types is loaded with what could be
read, flagged in ``load_issues`` and kept whole in ``raw_record``.

:func:`load_snapshot` runs, in one transaction on a short-lived read-write
connection: delete the partition, insert every staged record through DuckDB's
JSON reader, remove repeated ``objective_id`` values (the copy staged last is
kept), commit. On any error, or if the process dies, the transaction is rolled
back and the partition keeps its previous contents.

Memory: DuckDB streams the staged files into the table. The only state that
grows with the snapshot is the narrow set of ids used to find repeats, and
DuckDB spills it to ``<database>.tmp`` beyond the load's ``memory_limit``
(default :data:`LOAD_MEMORY_LIMIT`), so peak memory stays flat.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb

from . import raw_sql
from .connection import Warehouse
from .errors import RowDropError, SnapshotLoadError
from .quality import SnapshotQuality, previous_snapshot, quality_on
from .staging import SnapshotStager

__all__ = [
    "LOAD_MEMORY_LIMIT",
    "LOAD_THREADS",
    "RAW_OBJECTIVES_TABLE",
    "LoadStep",
    "SnapshotLoadResult",
    "ensure_raw_table",
    "load_snapshot",
]

RAW_OBJECTIVES_TABLE = "raw.planhat_objectives"
# Measured on sandbox-shaped records: with one thread and this cap, loading 1,000,000
# objectives peaks at about 1.15x the RSS of loading 100,000; with DuckDB's defaults
# (a buffer pool of up to 80% of RAM) at about 1.8x. DuckDB's JSON functions need
# about 110 MB of working memory per thread; raise the cap by that much per thread.
LOAD_MEMORY_LIMIT = "128MB"
LOAD_THREADS = 2


class LoadStep(enum.Enum):
    """Milestones of :func:`load_snapshot`, reported to its ``on_step`` callback."""

    BEGUN = "begun"
    PREVIOUS_DELETED = "previous partition deleted"
    INSERTED = "staged records inserted"
    COMMITTED = "committed"


@dataclass(frozen=True)
class SnapshotLoadResult:
    """What :func:`load_snapshot` wrote.

    Attributes:
        snapshot_date: the partition that was replaced.
        rows: rows in the partition now.
        companies: distinct ``company_id`` values in it.
        duplicates_removed: staged records left out because another copy of the
            same ``objective_id`` was staged later.
        flagged_rows: rows with at least one load issue.
        issues: how many rows carry each load issue.
        replaced_rows: rows the partition held before.
        pages: staged files read.
        quality: the asset checks' figures, computed in the load's transaction when
            ``health_range`` was given to :func:`load_snapshot` (else None).
        created_since: rows whose ``_id`` is an ObjectId created at or after the second
            of ``created_since`` given to :func:`load_snapshot` (0 when not given).
        seconds: wall time, waiting for the database lock included.
    """

    snapshot_date: date
    rows: int
    companies: int
    duplicates_removed: int
    flagged_rows: int
    issues: dict[str, int] = field(default_factory=dict)
    replaced_rows: int = 0
    pages: int = 0
    created_since: int = 0
    seconds: float = 0.0
    quality: SnapshotQuality | None = None


def ensure_raw_table(con: duckdb.DuckDBPyConnection) -> None:
    """Create schema ``raw`` and table ``raw.planhat_objectives`` if they do not exist."""
    con.execute(raw_sql.CREATE_TABLE)


def load_snapshot(
    warehouse: Warehouse,
    stager: SnapshotStager,
    snapshot_date: date,
    captured_at: datetime,
    *,
    memory_limit: str | None = LOAD_MEMORY_LIMIT,
    threads: int | None = LOAD_THREADS,
    on_step: Callable[[LoadStep], None] | None = None,
    created_since: datetime | None = None,
    health_range: tuple[float, float] | None = None,
    max_row_drop_share: float | None = None,
) -> SnapshotLoadResult:
    """Replace partition ``snapshot_date`` with the staged records, atomically.

    ``captured_at`` is stored in UTC: an aware datetime is converted, a naive
    one is taken to be UTC already.
    ``memory_limit`` and ``threads`` apply to DuckDB for the duration of the load
    (``None`` keeps the current setting); the defaults keep peak memory flat.
    ``on_step`` is called at each :class:`LoadStep`; all but ``COMMITTED``
    happen inside the transaction. ``created_since`` (naive = UTC): count the rows
    whose ObjectId says they were created since then. ``health_range`` (low, high): also
    compute the partition's :class:`SnapshotQuality` before committing, so that nobody
    has to read the partition again for the asset checks. ``max_row_drop_share``: roll
    back with :class:`RowDropError` when the new partition has this share fewer rows than
    the partition it replaces or the previous snapshot, whichever is larger.

    Raises :class:`SnapshotLoadError` when nothing was staged or a staged page
    cannot be read, and :class:`WarehouseLockedError` when the database stays
    locked; in every case the partition keeps its previous contents.
    """
    if isinstance(snapshot_date, datetime) or not isinstance(snapshot_date, date):
        raise TypeError(f"snapshot_date must be a date, got {snapshot_date!r}")
    if not isinstance(captured_at, datetime):
        raise TypeError(f"captured_at must be a datetime, got {captured_at!r}")
    if captured_at.utcoffset() is not None:
        captured_at = captured_at.astimezone(UTC).replace(tzinfo=None)
    if not stager.pages:
        raise SnapshotLoadError(
            f"Nothing was staged for snapshot {snapshot_date}, so its partition was left as "
            f"it was. (An extraction that finds no objectives still stages one '[]' page.)"
        )
    notify = on_step or _ignore
    day = {"snapshot_date": snapshot_date}
    typed = stager.typed_database()
    started = time.perf_counter()
    with warehouse.connect() as con, _settings(con, memory_limit=memory_limit, threads=threads):
        con.execute(f"ATTACH '{_quoted(typed)}' AS staged (READ_ONLY)")
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                notify(LoadStep.BEGUN)
                ensure_raw_table(con)
                replaced = _scalar(con, raw_sql.DELETE_PARTITION, day)
                notify(LoadStep.PREVIOUS_DELETED)
                duplicates = _scalar(con, raw_sql.COUNT_REPEATS, {})
                _copy_typed(
                    con,
                    raw_sql.COPY_TYPED_LATEST if duplicates else raw_sql.COPY_TYPED,
                    snapshot_date,
                    {"snapshot_date": snapshot_date, "captured_at": captured_at},
                )
                notify(LoadStep.INSERTED)
                rows, companies, flagged, created = _row(
                    con,
                    raw_sql.PARTITION_SUMMARY,
                    {**day, "created_since": _epoch_seconds(created_since)},
                )
                issues = {
                    str(k): int(v) for k, v in con.execute(raw_sql.ISSUE_COUNTS, day).fetchall()
                }
                quality = (
                    None
                    if health_range is None
                    else quality_on(con, snapshot_date, *health_range, replaced_rows=replaced)
                )
                if max_row_drop_share is not None:
                    _refuse_sharp_drop(con, snapshot_date, int(rows), replaced, max_row_drop_share)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.execute("DETACH staged")
    notify(LoadStep.COMMITTED)
    return SnapshotLoadResult(
        snapshot_date=snapshot_date,
        rows=int(rows),
        companies=int(companies),
        duplicates_removed=duplicates,
        flagged_rows=int(flagged),
        issues=issues,
        replaced_rows=replaced,
        pages=len(stager.pages),
        created_since=int(created),
        seconds=time.perf_counter() - started,
        quality=quality,
    )


def _refuse_sharp_drop(
    con: duckdb.DuckDBPyConnection, day: date, rows: int, replaced: int, most: float
) -> None:
    previous = previous_snapshot(con, day)
    baselines = [(replaced, f"the {replaced} rows this partition held before")]
    if previous is not None:
        baselines.append((previous[1], f"the {previous[1]} rows of snapshot {previous[0]}"))
    baseline, what = max(baselines)
    if baseline and (baseline - rows) / baseline > most:
        raise RowDropError(
            f"Snapshot {day} found {rows} objectives, {(baseline - rows) / baseline:.0%} fewer "
            f"than {what} (at most {most:.0%} is allowed), so the partition was left as it "
            "was: a sharp drop is more often a partial extraction than deleted objectives. "
            "If they really were deleted, run again with allow_row_drop: true (or a larger "
            "max_row_drop_share) in the planhat_objectives config"
        )


def _epoch_seconds(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    aware = moment if moment.utcoffset() is not None else moment.replace(tzinfo=UTC)
    return int(aware.timestamp())


def _ignore(step: LoadStep) -> None:
    pass


@contextmanager
def _settings(con: duckdb.DuckDBPyConnection, **settings: object) -> Iterator[None]:
    """Apply DuckDB settings, then restore them: they are shared by the whole database."""
    wanted = {name: value for name, value in settings.items() if value is not None}
    previous = {name: _row(con, f"SELECT current_setting('{name}')", {})[0] for name in wanted}
    for name, value in wanted.items():
        con.execute(f"SET {name} = ?", [value])
    try:
        yield
    finally:
        for name, value in previous.items():
            con.execute(f"SET {name} = ?", [value])


def _copy_typed(
    con: duckdb.DuckDBPyConnection, sql: str, snapshot_date: date, params: dict[str, Any]
) -> None:
    try:
        con.execute(sql, params)
    except duckdb.OutOfMemoryException as error:
        raise SnapshotLoadError(
            f"DuckDB ran out of memory loading snapshot {snapshot_date}, so its partition was "
            f"left as it was. Pass a larger memory_limit to load_snapshot. DuckDB said: {error}"
        ) from error


def _quoted(path: Path) -> str:
    """A path as a SQL string literal's content (ATTACH takes no bound parameter)."""
    return str(path).replace("'", "''")


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> int:
    value = _row(con, sql, params)[0]
    assert isinstance(value, int)
    return value


def _row(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> tuple[Any, ...]:
    row = con.execute(sql, params).fetchone()
    assert row is not None, "DuckDB returned no row for an aggregate query"
    return tuple(row)
