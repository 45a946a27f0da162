"""Closing the loop: each company's average objective health written back into Planhat.

The write itself (what changed, matching Planhat's answers, audit tables) lives in
`objectives_pipeline.reverse_etl.health_writeback`; this module adds configuration,
the "never write a real tenant by surprise" rule, run metadata and the job.
"""

# No `from __future__ import annotations`: Dagster reads the Config annotations at runtime.
from collections.abc import Iterator
from datetime import date

import dagster as dg
from pydantic import Field

from objectives_pipeline.defs.jobs import objectives_elt
from objectives_pipeline.defs.partitions import AUTOMATION_DEFAULT_ON, TIMEZONE, daily_partitions
from objectives_pipeline.defs.tenant_writes import (
    HEALTH_WRITEBACK,
    not_enabled_message,
    writes_enabled,
)
from objectives_pipeline.resources import PlanhatResource, WarehouseResource
from objectives_pipeline.reverse_etl import PushPolicy, SourceError
from objectives_pipeline.reverse_etl.health_writeback import (
    DEFAULT_DIMENSION,
    DEFAULT_FIELD,
    WritebackOptions,
    write_health_back,
)
from objectives_pipeline.settings import (
    ALLOW_PAST_SNAPSHOTS_ENV_VAR,
    DEFAULT_PAST_SNAPSHOT_GRACE_DAYS,
    DUCKDB_POOL,
    read_env,
)
from objectives_pipeline.snapshot_dates import past_snapshot_refusal, today_in

GROUP = "health_score"
ASSET = "planhat_company_health"
JOB = "health_score_writeback"


class HealthWritebackConfig(dg.Config):
    """Run configuration of `planhat_company_health`."""

    enabled: bool | None = Field(
        default=None,
        description=(
            "Write to Planhat. Unset: on for the embedded sandbox; for a real tenant only once a "
            "run enabled it (true), which the warehouse then remembers. false: nothing is written."
        ),
    )
    write_past_date: bool = Field(
        default=False,
        description=(
            f"Write a partition dated more than {DEFAULT_PAST_SNAPSHOT_GRACE_DAYS} day(s) before "
            "today: its field value would replace today's, and its metric point is only true if "
            "that day's snapshot was taken that day. Off: such a run writes nothing."
        ),
    )
    field_name: str = Field(
        default=DEFAULT_FIELD,
        description="The company number custom field to write avg_health to, as named in Planhat.",
    )
    at_risk_field: str | None = Field(
        default=None,
        description="Optional second number field for the at-risk share (percent, 0-100).",
    )
    push_metric: bool | None = Field(
        default=None,
        description=(
            "Also send the custom metric dimension_id for the partition's date. Unset: when a "
            "tenant UUID is known (PLANHAT_TENANT_UUID, or the sandbox)."
        ),
    )
    dimension_id: str = Field(
        default=DEFAULT_DIMENSION, description="dimensionId of the custom metric."
    )
    full_write: bool = Field(
        default=False, description="Send every value, also those Planhat already confirmed."
    )
    max_failed_share: float = Field(
        default=0.0, ge=0, le=1, description="Share of the values sent that may fail."
    )


@dg.asset(
    name=ASSET,
    group_name=GROUP,
    partitions_def=daily_partitions,
    deps=[dg.AssetKey("company_objective_health")],
    pool=DUCKDB_POOL,
    kinds={"planhat", "duckdb"},
    output_required=False,
    description=(
        "Each company's average objective health of the partition's date, written into Planhat: "
        "a number custom field (PUT /companies) and the custom metric avg_objective_health "
        "(POST /dimensiondata), only for companies whose value changed. Off against a real "
        "tenant unless enabled in config."
    ),
)
def planhat_company_health(
    context: dg.AssetExecutionContext,
    config: HealthWritebackConfig,
    planhat: PlanhatResource,
    warehouse: WarehouseResource,
) -> Iterator[dg.MaterializeResult[None]]:
    target = planhat.describe_target()
    snapshot_date = date.fromisoformat(context.partition_key)
    allowed = config.write_past_date or read_env().allow_past_snapshots
    if past_snapshot_refusal(snapshot_date, today_in(TIMEZONE), allowed=allowed):
        context.log.warning(
            f"Health write-back of {snapshot_date} to {target} skipped, nothing was written: "
            f"{snapshot_date} is not today or yesterday (write_past_date: true, or "
            f"{ALLOW_PAST_SNAPSHOTS_ENV_VAR}=true, writes a past date anyway)."
        )
        return
    enabled = writes_enabled(
        planhat,
        warehouse,
        writer=HEALTH_WRITEBACK,
        enabled=config.enabled,
        run_id=context.run.run_id,
    )
    if not enabled:
        context.log.warning(
            not_enabled_message(target, "The health write-back", f"ops: {ASSET}: config")
        )
        return
    push_metric = planhat.has_tenant_uuid if config.push_metric is None else config.push_metric
    try:
        options = WritebackOptions(
            snapshot_date=snapshot_date,
            field_name=config.field_name,
            at_risk_field=config.at_risk_field,
            push_metric=push_metric,
            dimension_id=config.dimension_id,
            full_write=config.full_write,
            policy=PushPolicy(max_failed_share=config.max_failed_share),
        )
    except ValueError as exc:
        raise dg.Failure(description=f"Invalid write-back config: {exc}") from None
    if push_metric and not planhat.has_tenant_uuid:
        raise dg.Failure(
            description=(
                "push_metric is on but no tenant UUID is set: set PLANHAT_TENANT_UUID (Planhat > "
                "Settings > Private apps), or set push_metric: false to write the field only."
            )
        )
    try:
        report = write_health_back(
            warehouse.get_warehouse(),
            lambda: planhat.get_client(context.log),
            options,
            target=target,
            run_id=context.run.run_id,
            log=context.log,
        )
    except SourceError as exc:
        raise dg.Failure(description=str(exc)) from None
    metadata = {
        **report.metadata(),
        "target": target,
        "field_name": config.field_name,
        "push_metric": push_metric,
        "summary": report.summary(),
    }
    if not report.ok:
        raise dg.Failure(description=report.summary(), metadata=metadata)
    context.log.info(report.summary())
    yield dg.MaterializeResult(metadata=metadata)


health_score_writeback = dg.define_asset_job(
    name=JOB,
    selection=dg.AssetSelection.assets(ASSET),
    description=(
        "Write each company's average objective health of the partition's date into Planhat "
        "(custom field and custom metric). Run after objectives_elt for the same date."
    ),
)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[objectives_elt],
    request_job=health_score_writeback,
    name="writeback_after_objectives_elt",
    default_status=(
        dg.DefaultSensorStatus.RUNNING if AUTOMATION_DEFAULT_ON else dg.DefaultSensorStatus.STOPPED
    ),
    description=(
        "Runs health_score_writeback for the date of each objectives_elt run that succeeded. On "
        "by default with PLANHAT_API_TOKEN (it writes only once a write-back was enabled, and "
        "never a past date); toggle it under Automation."
    ),
)
def writeback_after_objectives_elt(context: dg.RunStatusSensorContext) -> dg.RunRequest | None:
    partition = context.dagster_run.tags.get("dagster/partition")
    if partition is None:
        return None
    return dg.RunRequest(run_key=context.dagster_run.run_id, partition_key=partition)
