"""Reverse ETL in Dagster: the CRM export asset, the push op and job, and the sensor.

The push itself (diff, validation, batches, audit tables) lives in
`objectives_pipeline.reverse_etl`; this module adds configuration, run metadata and
the failure policy's verdict as a `dg.Failure`.
"""

# No `from __future__ import annotations`: Dagster reads the Config annotations at runtime.
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field

from objectives_pipeline.defs.extract_assets import TABLE_NAME
from objectives_pipeline.defs.tenant_writes import PUSH, not_enabled_message, writes_enabled
from objectives_pipeline.resources import PlanhatResource, WarehouseResource
from objectives_pipeline.reverse_etl import (
    CRM_COLUMNS,
    DEMO_MARK,
    DEMO_MARK_COLUMN,
    MAX_BATCH_SIZE,
    PushOptions,
    PushPolicy,
    PushReport,
    SourceError,
    generate_crm_objectives,
    push_objectives,
    write_crm_csv,
)
from objectives_pipeline.reverse_etl.crm import sandbox_companies
from objectives_pipeline.settings import DEFAULT_BATCH_SIZE, DUCKDB_POOL

GROUP = "reverse_etl"
OP_NAME = "push_objectives"
CRM_TABLE = "crm.objectives"
#: One row: where crm.objectives was loaded from and whether it is the sandbox's demo export.
CRM_ORIGIN_TABLE = "crm.export_origin"
DEFAULT_CRM_EXPORT = "data/crm/crm_objectives.csv"
#: The demo export, inside the sandbox's state folder: `make clean` removes it with the sandbox.
DEMO_CRM_EXPORT_NAME = "demo_crm_objectives.csv"
DEFAULT_SOURCE = "objectives_to_push"
#: Relations built from crm.objectives: never pushed to a real tenant while it holds the demo.
CRM_DERIVED_SOURCES = (DEFAULT_SOURCE, CRM_TABLE)


class CrmExportConfig(dg.Config):
    """Run configuration of `crm_objectives`."""

    csv_path: str = Field(
        default=DEFAULT_CRM_EXPORT,
        description="The CRM export to load: a CSV with a header holding the CRM columns.",
    )
    generate_if_missing: bool = Field(
        default=True,
        description=(
            "With the embedded sandbox only: when csv_path does not exist, load a demo export "
            f"(written once to the sandbox folder as {DEMO_CRM_EXPORT_NAME}) whose company "
            "references resolve in the sandbox. A demo export is never loaded with a token."
        ),
    )
    demo_rows: int = Field(default=500, ge=8, le=1_000_000, description="Rows of a demo export.")
    demo_seed: int = Field(default=42, description="Seed of the demo export and of the sandbox.")


@dg.asset(
    key="crm_objectives",
    group_name=GROUP,
    pool=DUCKDB_POOL,
    kinds={"csv", "duckdb"},
    metadata={TABLE_NAME: CRM_TABLE},
    description=(
        "The CRM's objectives export, loaded as text into crm.objectives (one row per CSV row). "
        "The objectives_to_push model maps it into Planhat's shape."
    ),
)
def crm_objectives(
    context: dg.AssetExecutionContext,
    config: CrmExportConfig,
    planhat: PlanhatResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult[None]:
    path = Path(config.csv_path)
    generated = False
    if not path.is_file() and config.generate_if_missing and planhat.uses_sandbox:
        path = Path(planhat.sandbox_dir) / DEMO_CRM_EXPORT_NAME
        if not path.is_file():
            companies = sandbox_companies(planhat.sandbox_companies, config.demo_seed)
            rows = generate_crm_objectives(companies, config.demo_rows, seed=config.demo_seed)
            write_crm_csv(path, rows, demo=True)
            generated = True
            context.log.info(f"Wrote a demo CRM export with {len(rows)} rows to {path}")
    if not path.is_file():
        raise dg.Failure(
            description=(
                f"No CRM export at {path}. Put your export there (a CSV with the columns "
                f"{', '.join(CRM_COLUMNS)}), or set csv_path to it."
            )
        )
    with warehouse.get_warehouse().connect() as con:
        header = con.execute(
            "DESCRIBE SELECT * FROM read_csv(?, header = true, all_varchar = true)", [str(path)]
        ).fetchall()
        columns = {str(row[0]) for row in header}
        missing = [c for c in CRM_COLUMNS if c not in columns]
        if missing:
            raise dg.Failure(
                description=(
                    f"The CRM export {path} has no column {', '.join(missing)}; it needs "
                    f"{', '.join(CRM_COLUMNS)}."
                )
            )
        demo = DEMO_MARK_COLUMN in columns and bool(
            con.execute(
                f'SELECT count(*) FROM read_csv(?, header = true, all_varchar = true) '
                f'WHERE "{DEMO_MARK_COLUMN}" = ?',
                [str(path), DEMO_MARK],
            ).fetchone()[0]  # type: ignore[index]
        )
        if demo and not planhat.uses_sandbox:
            raise dg.Failure(
                description=(
                    f"{path} is the demo export generated for the embedded sandbox "
                    f"({DEMO_MARK_COLUMN} = {DEMO_MARK!r}); it is never loaded to be pushed to "
                    f"{planhat.describe_target()}. Put your CRM's export at {DEFAULT_CRM_EXPORT} "
                    "(or set csv_path); `make clean` removes the demo's files."
                )
            )
        con.execute("CREATE SCHEMA IF NOT EXISTS crm")
        con.execute("BEGIN")
        con.execute(
            f"CREATE OR REPLACE TABLE {CRM_TABLE} AS SELECT {', '.join(CRM_COLUMNS)} "
            "FROM read_csv(?, header = true, all_varchar = true)",
            [str(path)],
        )
        con.execute(
            f"CREATE OR REPLACE TABLE {CRM_ORIGIN_TABLE} AS "
            "SELECT ?::VARCHAR AS csv_path, ?::BOOLEAN AS demo, now() AS loaded_at, "
            "?::VARCHAR AS run_id",
            [str(path), demo, context.run.run_id],
        )
        con.execute("COMMIT")
        count = con.execute(f"SELECT count(*) FROM {CRM_TABLE}").fetchone()
    rows_loaded = int(count[0]) if count else 0
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows_loaded,
            "csv_path": str(path),
            "generated_demo_export": generated,
            "demo_export": demo,
        }
    )


class PushConfig(dg.Config):
    """Run configuration of `push_objectives_to_planhat`."""

    enabled: bool | None = Field(
        default=None,
        description=(
            "Write to Planhat. Unset: on for the embedded sandbox; for a real tenant only once a "
            "run enabled it (true), which the warehouse then remembers. false: nothing is sent."
        ),
    )
    source: str = Field(
        default=DEFAULT_SOURCE,
        description=(
            "Table or view to push (name, company_id, health, external_id, source_id, custom): "
            "'table', 'schema.table' or 'catalog.schema.table'."
        ),
    )
    batch_size: int = Field(
        default=DEFAULT_BATCH_SIZE, ge=1, le=MAX_BATCH_SIZE, description="Items per bulk request."
    )
    dry_run: bool = Field(default=False, description="Do everything except the PUT requests.")
    full_push: bool = Field(
        default=False, description="Send every row, also those unchanged since the last push."
    )
    allow_create_without_key: bool = Field(
        default=False,
        description=(
            "Send rows with neither source_id nor external_id. Planhat cannot match them "
            "later: a changed row or a retried request creates another objective."
        ),
    )
    max_failed_share: float = Field(
        default=0.0, ge=0, le=1, description="Share of rows to send that may fail (default none)."
    )
    max_rejected_share: float = Field(
        default=0.1, ge=0, le=1, description="Share of rows read that validation may reject."
    )


@dg.op(
    name=OP_NAME,
    pool=DUCKDB_POOL,
    description=(
        "Upsert the changed rows of `source` into Planhat in bulk; every row's outcome goes to "
        "reverse_etl.push_results, rejected rows to reverse_etl.rejected_rows."
    ),
)
def push_objectives_op(
    context: dg.OpExecutionContext,
    config: PushConfig,
    planhat: PlanhatResource,
    warehouse: WarehouseResource,
) -> Iterator[dg.Output[dict[str, int]]]:
    options = PushOptions(
        source=config.source,
        batch_size=config.batch_size,
        dry_run=config.dry_run,
        full_push=config.full_push,
        allow_create_without_key=config.allow_create_without_key,
        policy=PushPolicy(config.max_failed_share, config.max_rejected_share),
    )
    target = planhat.describe_target()
    if not planhat.uses_sandbox:
        refusal = demo_source_refusal(warehouse, config.source, target)
        if refusal:
            raise dg.Failure(description=refusal)
    # A dry run writes nothing, so it neither needs enabling nor enables.
    if not config.dry_run and not writes_enabled(
        planhat, warehouse, writer=PUSH, enabled=config.enabled, run_id=context.run_id
    ):
        raise dg.Failure(
            description=not_enabled_message(
                target, "The push", f"ops: {OP_NAME}: config", "objectives-pipeline push --yes"
            )
        )
    context.log.info(f"Pushing {config.source} to {target}{' (dry run)' if config.dry_run else ''}")
    try:
        report = push_objectives(
            warehouse.get_warehouse(),
            lambda: planhat.get_client(context.log),
            options,
            target=target,
            run_id=context.run_id,
            log=context.log,
        )
    except SourceError as exc:
        raise dg.Failure(description=str(exc)) from None
    metadata = push_metadata(report)
    if not report.ok:
        raise dg.Failure(description=report.summary(), metadata=metadata)
    context.log.info(report.summary())
    yield dg.Output(report.counts(), metadata=metadata)


def demo_source_refusal(warehouse: WarehouseResource, source: str, target: str) -> str | None:
    """Why `source` may not be pushed to the real tenant `target`: it is built from the demo
    CRM export generated for the sandbox. None when it may."""
    if source.lower() not in CRM_DERIVED_SOURCES:
        return None
    with warehouse.get_warehouse().connect() as con:
        found = con.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema = 'crm' AND table_name = 'export_origin'"
        ).fetchone()
        if not (found and found[0]):
            return None
        origin = con.execute(f"SELECT csv_path, demo FROM {CRM_ORIGIN_TABLE}").fetchone()
    if origin is None or not origin[1]:
        return None
    return (
        f"{source} is built from the demo CRM export {origin[0]}, generated for the embedded "
        f"sandbox: it is never pushed to {target}. Load your CRM's export first "
        f"(objectives-pipeline push --refresh, with it at {DEFAULT_CRM_EXPORT}); `make clean` "
        "removes the demo's files and the DuckDB file."
    )


def push_metadata(report: PushReport) -> dict[str, Any]:
    """Every count, the shares against the policy, and a preview of the errors."""
    metadata: dict[str, Any] = dict(report.counts())
    metadata.update(
        {
            "dry_run": report.dry_run,
            "full_push": report.full_push,
            "target": report.target,
            "source": report.source,
            "seconds": round(report.seconds, 3),
            "failed_share": round(report.failed_share, 6),
            "max_failed_share": report.policy.max_failed_share,
            "rejected_share": round(report.rejected_share, 6),
            "max_rejected_share": report.policy.max_rejected_share,
            "summary": report.summary(),
            "errors": dg.MetadataValue.md(report.problems_markdown()),
            "failed_rows_query": report.failed_rows_query,
            "rejected_rows_query": report.rejected_rows_query,
        }
    )
    return metadata


@dg.job(
    name="push_objectives_to_planhat",
    description=(
        "Reverse ETL: push the objectives of a DuckDB relation (default: the objectives_to_push "
        "model) into Planhat through bulk upsert, sending only what changed."
    ),
)
def push_objectives_to_planhat() -> None:
    push_objectives_op()


@dg.asset_sensor(
    asset_key=dg.AssetKey(DEFAULT_SOURCE),
    job=push_objectives_to_planhat,
    name="push_after_objectives_to_push",
    default_status=dg.DefaultSensorStatus.STOPPED,
    minimum_interval_seconds=30,
    description=(
        "Runs push_objectives_to_planhat (default config) after each materialization of "
        "objectives_to_push. Off by default: turn it on in the UI (Automation). Against a real "
        "tenant its runs push only once a push was enabled (push --yes)."
    ),
)
def push_after_objectives_to_push(
    context: dg.SensorEvaluationContext, asset_event: dg.EventLogEntry
) -> dg.RunRequest:
    return dg.RunRequest(run_key=f"{asset_event.run_id}:{asset_event.timestamp}")

