"""The audit tables of the push, in schema ``reverse_etl``, and the writes to them.

==========================  =========================================================
table                       one row per
==========================  =========================================================
``push_runs``               push run: config, counts, status, the message a user reads
``push_results``            row sent (or that was to be sent): keys, outcome,
                            Planhat ``_id``, error text, the payload
``rejected_rows``           row refused before sending: the row as read, the reason
``push_state``              (target, key): the payload hash and ``_id`` of the last
                            push that Planhat confirmed; drives "send only changes"
``enabled_targets``         (target, writer) a user enabled once: the push or the health
                            write-back may write that real tenant from then on
==========================  =========================================================

Outcomes in ``push_results``: ``created``, ``updated``, ``unmodified`` (Planhat matched
the item and had nothing to change), ``failed`` (Planhat refused it, or the request
failed), ``not_sent`` (the run stopped before its batch), ``skipped`` (the health write-back:
a metric for a company without an externalId), and in dry runs ``would_create`` /
``would_update``.

Many rows are written with one statement of parallel ``unnest`` lists: DuckDB's
``executemany`` inserts a few hundred rows per second, this a few hundred thousand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
from pydantic_core import to_json

SCHEMA = "reverse_etl"
SUCCESS_OUTCOMES = ("created", "updated", "unmodified")
FAILURE_OUTCOMES = ("failed", "not_sent")
#: Outcomes whose payload hash is remembered in push_state: not sent again until it changes.
#: ``skipped``: a value Planhat cannot take as sent (e.g. a metric for a company without an
#: externalId); remembered so that an unchanged re-run asks Planhat nothing.
REMEMBERED_OUTCOMES = (*SUCCESS_OUTCOMES, "skipped")

DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.push_runs (
    run_id VARCHAR NOT NULL,
    started_at TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    status VARCHAR NOT NULL,
    target VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    dry_run BOOLEAN NOT NULL,
    full_push BOOLEAN NOT NULL,
    rows_read BIGINT,
    rejected BIGINT,
    unchanged BIGINT,
    to_send BIGINT,
    sent BIGINT,
    created BIGINT,
    updated BIGINT,
    unmodified BIGINT,
    failed BIGINT,
    not_sent BIGINT,
    would_create BIGINT,
    would_update BIGINT,
    requests BIGINT,
    batches BIGINT,
    message VARCHAR
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.push_results (
    run_id VARCHAR NOT NULL,
    batch INTEGER,
    row_number BIGINT NOT NULL,
    push_key VARCHAR NOT NULL,
    source_id VARCHAR,
    external_id VARCHAR,
    outcome VARCHAR NOT NULL,
    planhat_id VARCHAR,
    error VARCHAR,
    payload JSON,
    recorded_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.rejected_rows (
    run_id VARCHAR NOT NULL,
    row_number BIGINT NOT NULL,
    push_key VARCHAR,
    reason VARCHAR NOT NULL,
    row_data JSON NOT NULL,
    rejected_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.push_state (
    target VARCHAR NOT NULL,
    push_key VARCHAR NOT NULL,
    payload_hash VARCHAR NOT NULL,
    planhat_id VARCHAR,
    pushed_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL
);
CREATE TABLE IF NOT EXISTS {SCHEMA}.enabled_targets (
    target VARCHAR NOT NULL,
    writer VARCHAR NOT NULL,
    enabled_at TIMESTAMP NOT NULL,
    run_id VARCHAR NOT NULL
);
"""


@dataclass(frozen=True)
class RowOutcome:
    """What happened to one row that was (to be) sent."""

    row_number: int
    push_key: str
    payload_hash: str
    source_id: str | None
    external_id: str | None
    outcome: str
    payload: dict[str, Any]
    batch: int | None = None
    planhat_id: str | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome in SUCCESS_OUTCOMES


@dataclass(frozen=True)
class Rejection:
    """A row refused before sending."""

    row_number: int
    push_key: str | None
    reason: str
    row_data: dict[str, Any]


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def ensure_audit_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


def is_enabled(con: duckdb.DuckDBPyConnection, target: str, writer: str) -> bool:
    """True when a user once enabled `writer` ("push", "health_writeback") for `target`."""
    ensure_audit_tables(con)
    row = con.execute(
        f"SELECT count(*) FROM {SCHEMA}.enabled_targets WHERE target = ? AND writer = ?",
        [target, writer],
    ).fetchone()
    return bool(row and row[0])


def record_enabled(
    con: duckdb.DuckDBPyConnection, target: str, writer: str, run_id: str
) -> None:
    """Remember that a user enabled `writer` for `target` (run `run_id`)."""
    if is_enabled(con, target, writer):
        return
    con.execute(
        f"INSERT INTO {SCHEMA}.enabled_targets VALUES (?, ?, ?, ?)",
        [target, writer, now_utc(), run_id],
    )


def start_run(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    target: str,
    source: str,
    dry_run: bool,
    full_push: bool,
) -> None:
    con.execute(
        f"INSERT INTO {SCHEMA}.push_runs (run_id, started_at, status, target, source, dry_run, "
        "full_push) VALUES (?, ?, 'running', ?, ?, ?, ?)",
        [run_id, now_utc(), target, source, dry_run, full_push],
    )


def finish_run(
    con: duckdb.DuckDBPyConnection, run_id: str, status: str, counts: dict[str, int], message: str
) -> None:
    columns = sorted(counts)
    assignments = ", ".join(f"{column} = ?" for column in columns)
    con.execute(
        f"UPDATE {SCHEMA}.push_runs SET finished_at = ?, status = ?, message = ?, {assignments} "
        "WHERE run_id = ?",
        [now_utc(), status, message, *(counts[c] for c in columns), run_id],
    )


def record_rejections(
    con: duckdb.DuckDBPyConnection, run_id: str, rejections: Sequence[Rejection]
) -> None:
    if not rejections:
        return
    con.execute(
        f"INSERT INTO {SCHEMA}.rejected_rows "
        "SELECT ?, unnest(?::BIGINT[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), "
        "unnest(CAST(CAST(? AS JSON) AS JSON[])), ?",
        [
            run_id,
            [r.row_number for r in rejections],
            [r.push_key for r in rejections],
            [r.reason for r in rejections],
            _json_array([r.row_data for r in rejections]),
            now_utc(),
        ],
    )


def record_outcomes(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    target: str,
    outcomes: Sequence[RowOutcome],
    *,
    update_state: bool,
) -> None:
    """Append `outcomes` to push_results and, if `update_state`, remember the successes.

    One transaction: the results of a batch and the state they imply land together.
    """
    if not outcomes:
        return
    recorded_at = now_utc()
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            f"INSERT INTO {SCHEMA}.push_results "
            "SELECT ?, unnest(?::INTEGER[]), unnest(?::BIGINT[]), unnest(?::VARCHAR[]), "
            "unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), "
            "unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(CAST(CAST(? AS JSON) AS JSON[])), ?",
            [
                run_id,
                [o.batch for o in outcomes],
                [o.row_number for o in outcomes],
                [o.push_key for o in outcomes],
                [o.source_id for o in outcomes],
                [o.external_id for o in outcomes],
                [o.outcome for o in outcomes],
                [o.planhat_id for o in outcomes],
                [o.error for o in outcomes],
                _json_array([o.payload for o in outcomes]),
                recorded_at,
            ],
        )
        remembered = [o for o in outcomes if o.outcome in REMEMBERED_OUTCOMES]
        if update_state and remembered:
            _remember(con, run_id, target, remembered, recorded_at)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def _remember(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    target: str,
    outcomes: Sequence[RowOutcome],
    pushed_at: datetime,
) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _pushed AS "
        "SELECT unnest(?::VARCHAR[]) AS push_key, unnest(?::VARCHAR[]) AS payload_hash, "
        "unnest(?::VARCHAR[]) AS planhat_id",
        [
            [o.push_key for o in outcomes],
            [o.payload_hash for o in outcomes],
            [o.planhat_id for o in outcomes],
        ],
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _pushed_state AS "
        "SELECT p.push_key, p.payload_hash, coalesce(p.planhat_id, s.planhat_id) AS planhat_id "
        f"FROM _pushed p LEFT JOIN {SCHEMA}.push_state s "
        "ON s.target = ? AND s.push_key = p.push_key",
        [target],
    )
    con.execute(
        f"DELETE FROM {SCHEMA}.push_state "
        "WHERE target = ? AND push_key IN (SELECT push_key FROM _pushed)",
        [target],
    )
    con.execute(
        f"INSERT INTO {SCHEMA}.push_state "
        "SELECT ?, push_key, payload_hash, planhat_id, ?, ? FROM _pushed_state",
        [target, pushed_at, run_id],
    )
    con.execute("DROP TABLE _pushed")
    con.execute("DROP TABLE _pushed_state")


def _json_array(values: list[Any]) -> str:
    """One JSON array for many JSON cells: serialised in one call, split by DuckDB."""
    return to_json(values, fallback=str).decode()
