"""What a push must send: the source rows whose payload changed since Planhat last confirmed it.

Done in DuckDB, in one pass over the source. Every row gets

* a `push_key`: ``sourceId:<id>``, else ``externalId:<id>`` (Planhat matches on them in that
  order), else ``row:<payload hash>`` for a row without keys;
* a `payload_hash`: md5 of the row's objective columns as JSON, plus which columns the
  source has (a column added to the source changes every payload).

A row is *unchanged* when ``reverse_etl.push_state`` holds the same hash for its key and
target, i.e. the last push Planhat confirmed sent exactly this. Everything else is a
candidate and is read into Python for validation. `full_push` makes every row a candidate.
Rows sharing a sourceId or an externalId are always candidates: validation rejects them,
since Planhat would match them to one objective.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from .audit import SCHEMA
from .source import SourceColumns, SourceRelation

ROW_COLUMNS = ("name", "company_id", "health", "external_id", "source_id", "custom")
_CANDIDATES = "_push_candidates"


@dataclass(frozen=True)
class Candidate:
    """A source row that may have to be sent, as read."""

    row_number: int
    push_key: str
    payload_hash: str
    key_rows: int
    known_id: str | None
    row: dict[str, Any]


@dataclass(frozen=True)
class PushPlan:
    rows_read: int
    unchanged: int
    candidates: list[Candidate]
    fields: tuple[str, ...]


def plan_push(
    con: duckdb.DuckDBPyConnection,
    relation: SourceRelation,
    columns: SourceColumns,
    *,
    target: str,
    full_push: bool,
) -> PushPlan:
    """Read the source once; count what is unchanged and return the rest."""
    fields = ",".join(columns.fields)
    known = _known_ids_sql(con)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {_CANDIDATES} AS
        WITH src AS (
            SELECT CAST(row_number() OVER () AS BIGINT) AS row_number, {columns.select_list()}
            FROM {relation.quoted}
        ),
        hashed AS (
            SELECT *,
                   md5(? || to_json(struct_pack(name, company_id, health, external_id,
                                                source_id, custom))::VARCHAR) AS payload_hash,
                   nullif(trim(source_id), '') AS sid,
                   nullif(trim(external_id), '') AS eid
            FROM src
        ),
        keyed AS (
            SELECT *,
                   CASE WHEN sid IS NOT NULL THEN 'sourceId:' || sid
                        WHEN eid IS NOT NULL THEN 'externalId:' || eid
                        ELSE 'row:' || payload_hash END AS push_key
            FROM hashed
        )
        SELECT k.*,
               -- rows sharing any keyable are one objective to Planhat (it matches on
               -- sourceId, then externalId): count the rows of the largest such share
               greatest(count(*) OVER (PARTITION BY k.push_key),
                        count(k.sid) OVER (PARTITION BY k.sid),
                        count(k.eid) OVER (PARTITION BY k.eid)) AS key_rows,
               s.payload_hash AS state_hash, {known} AS known_id
        FROM keyed k
        LEFT JOIN {SCHEMA}.push_state s ON s.target = ? AND s.push_key = k.push_key
        {_known_ids_joins(known)}
        """,
        [fields, target],
    )
    counts = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE NOT ? AND key_rows = 1 "
        f"AND state_hash = payload_hash) FROM {_CANDIDATES}",
        [full_push],
    ).fetchone()
    rows_read, unchanged = (int(counts[0]), int(counts[1])) if counts else (0, 0)
    cursor = con.execute(
        f"SELECT row_number, push_key, payload_hash, key_rows, known_id, {', '.join(ROW_COLUMNS)} "
        f"FROM {_CANDIDATES} "
        "WHERE ? OR key_rows > 1 OR state_hash IS DISTINCT FROM payload_hash "
        "ORDER BY row_number",
        [full_push],
    )
    candidates = [
        Candidate(
            row_number=int(r[0]),
            push_key=str(r[1]),
            payload_hash=str(r[2]),
            key_rows=int(r[3]),
            known_id=r[4],
            row=dict(zip(ROW_COLUMNS, r[5:], strict=True)),
        )
        for r in cursor.fetchall()
    ]
    con.execute(f"DROP TABLE {_CANDIDATES}")
    return PushPlan(rows_read, unchanged, candidates, columns.fields)


def _known_ids_sql(con: duckdb.DuckDBPyConnection) -> str:
    """Where a row's Planhat _id may be known: the push state, else the latest snapshot."""
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables "
        "WHERE table_schema = 'raw' AND table_name = 'planhat_objectives'"
    ).fetchone()
    if row and row[0]:
        return "coalesce(s.planhat_id, by_sid.objective_id, by_eid.objective_id)"
    return "s.planhat_id"


def _known_ids_joins(known: str) -> str:
    if "by_sid" not in known:
        return ""
    latest = (
        "FROM raw.planhat_objectives WHERE snapshot_date = "
        "(SELECT max(snapshot_date) FROM raw.planhat_objectives)"
    )
    return (
        f"LEFT JOIN (SELECT source_id, min(objective_id) AS objective_id {latest} "
        "AND source_id IS NOT NULL GROUP BY source_id) by_sid ON by_sid.source_id = k.sid "
        f"LEFT JOIN (SELECT external_id, min(objective_id) AS objective_id {latest} "
        "AND external_id IS NOT NULL GROUP BY external_id) by_eid ON by_eid.external_id = k.eid"
    )
