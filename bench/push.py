"""Our reverse-ETL push, through the function the ``push_objectives`` op calls.

:func:`objectives_pipeline.reverse_etl.push_objectives` of a source table of new,
keyed objectives, then the same push again with nothing changed (which should
send nothing).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from objectives_pipeline.reverse_etl import PushOptions, push_objectives

from .ours import client, warehouse
from .worker import Outcome, Phase, RunSpec, Stopwatch

PUSH_SOURCE = "bench.objectives_to_push"


def push(spec: RunSpec) -> Outcome:
    """Push `spec.rows` new objectives, then push again with nothing changed."""
    database = Path(spec.workdir) / "push.duckdb"
    _create_source(database, spec)
    wh = warehouse(database)
    phases: list[Phase] = []
    for name in ("push", "re-push unchanged"):
        with Stopwatch() as watch:
            report = push_objectives(
                wh, lambda: client(spec), PushOptions(source=PUSH_SOURCE), target=spec.base_url
            )
        phases.append(
            Phase(
                name=name,
                seconds=watch.seconds,
                records=report.sent,
                requests=report.requests,
                details={
                    "rows_read": report.rows_read,
                    "unchanged": report.unchanged,
                    "created": report.created,
                    "updated": report.updated,
                    "failed": report.failed,
                    "rejected": report.rejected,
                    "batches": report.batches,
                    "status": report.status,
                },
            )
        )
    return Outcome(
        seconds=sum(p.seconds for p in phases),
        records=phases[0].records,
        client_requests=sum(p.requests or 0 for p in phases),
        phases=phases,
    )


def _create_source(database: Path, spec: RunSpec) -> None:
    """`spec.rows` objectives keyed by sourceId, of companies that exist in the sandbox."""
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS bench")
        con.execute(
            f"""
            CREATE OR REPLACE TABLE {PUSH_SOURCE} AS
            SELECT 'Objective ' || i AS name,
                   'extid-' || list_extract($companies, 1 + (i % len($companies))::INTEGER)
                       AS company_id,
                   ((i * 7) % 51) / 10.0 AS health,
                   CAST(NULL AS VARCHAR) AS external_id,
                   'bench-' || $tag || '-' || i AS source_id,
                   json_object('Owner', 'owner' || (i % 17), 'Tier', i % 3) AS custom
            FROM range($rows) AS t(i)
            """,
            {"companies": list(spec.company_external_ids), "tag": spec.tag, "rows": spec.rows},
        )
