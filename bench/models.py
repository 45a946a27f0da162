"""Our SQL models over many snapshots, through the functions the model assets call.

`prepare_models` loads one snapshot with ``load_snapshot`` (the extraction's load)
and copies it, inside DuckDB, to earlier snapshot dates with drifting health; it
also adds the CRM export table ``objectives_to_push`` reads. `build_models` then
builds every model of ``dbt_like_sql/`` with ``build_model``, in dependency order,
as materializing all model assets does.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from objectives_pipeline.sandbox import generate_tenant
from objectives_pipeline.warehouse import (
    DEFAULT_VARIABLES,
    SnapshotStager,
    build_model,
    discover_models,
    load_snapshot,
)

from .common import SNAPSHOT_DATE, count_rows
from .ours import warehouse
from .worker import Outcome, Phase, RunSpec, Stopwatch

# Later snapshots: the same objectives, health drifting by -0.5, 0 or +0.5 per day
# (clamped to 0..5; a missing health stays missing), captured a day later each.
_COPY_SNAPSHOT = """
INSERT INTO raw.planhat_objectives BY NAME
SELECT * REPLACE (
    snapshot_date + $day::INTEGER AS snapshot_date,
    CASE WHEN health IS NULL THEN NULL
         ELSE least(5.0, greatest(0.0, health + ((hash(objective_id, $day) % 3)::INTEGER - 1) * 0.5))
    END AS health,
    captured_at + to_days($day::INTEGER) AS captured_at
)
FROM raw.planhat_objectives
WHERE snapshot_date = $first::DATE
"""

# crm.objectives as the crm_objectives asset loads the CRM export: every column text.
_CRM_TABLE = """
CREATE SCHEMA IF NOT EXISTS crm;
CREATE OR REPLACE TABLE crm.objectives AS
SELECT printf('OPP-%06d', i + 1) AS crm_objective_id,
       'Objective ' || (i % 97) AS objective_name,
       'C' || (1000 + hash(i, $seed) % $companies) AS company_external_id,
       CAST((i % 9) / 2.0 + 0.5 AS VARCHAR) AS health_score,
       'owner' || (i % 13) || '@example.com' AS owner_email,
       CAST(DATE '2026-01-01' + (i % 540)::INTEGER AS VARCHAR) AS renewal_date,
       '' AS notes
FROM range($rows) AS t(i)
"""


def prepare_models(spec: RunSpec) -> Outcome:
    """`spec.objectives` objectives in `spec.snapshots` snapshots, and a CRM export table.

    Not a measurement: it prepares the database that `build_models` times.
    """
    database = Path(spec.database)
    first = SNAPSHOT_DATE - timedelta(days=spec.snapshots - 1)
    tenant = generate_tenant(spec.objectives, spec.companies, spec.seed)
    with Stopwatch() as watch:
        with SnapshotStager(Path(spec.workdir)) as stager:
            for start in range(0, len(tenant.objectives), spec.page_size):
                page = tenant.objectives[start : start + spec.page_size]
                stager.add_page(json.dumps(page, ensure_ascii=False).encode())
            del tenant
            load_snapshot(warehouse(database), stager, first, _six_am(first))
        with duckdb.connect(str(database)) as con:
            for day in range(1, spec.snapshots):
                con.execute(_COPY_SNAPSHOT, {"first": first, "day": day})
            crm_rows = max(spec.objectives // 10, 8)
            con.execute(
                _CRM_TABLE, {"rows": crm_rows, "seed": spec.seed, "companies": spec.companies}
            )
    return Outcome(seconds=watch.seconds, records=count_rows(database, "raw.planhat_objectives"))


def _six_am(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 6, 0, 0)


def build_models(spec: RunSpec) -> Outcome:
    """Build every model of dbt_like_sql/ over the prepared database, one after another."""
    wh = warehouse(Path(spec.database))
    models = discover_models()
    phases: list[Phase] = []
    with Stopwatch() as watch:
        for model in models:
            with Stopwatch() as one:
                result = build_model(wh, model, DEFAULT_VARIABLES)
            phases.append(Phase(name=model.name, seconds=one.seconds, records=result.rows))
    return Outcome(
        seconds=watch.seconds,
        records=count_rows(Path(spec.database), "raw.planhat_objectives"),
        phases=phases,
    )
