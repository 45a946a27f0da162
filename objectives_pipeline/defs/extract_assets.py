"""The extract-load asset `planhat_objectives` and its data-quality checks."""

from datetime import UTC, date
from typing import Any

import dagster as dg
from pydantic import Field

from objectives_pipeline.defs.partitions import TIMEZONE, daily_partitions
from objectives_pipeline.extract import ExtractOptions, ExtractResult, extract_snapshot
from objectives_pipeline.planhat import MAX_PAGE_SIZE, PlanhatError
from objectives_pipeline.resources import PlanhatResource, WarehouseResource
from objectives_pipeline.settings import (
    DEFAULT_PAGE_SIZE,
    DEFAULT_PAGES_IN_FLIGHT,
    DEFAULT_RUN_BUDGET_SECONDS,
    DUCKDB_POOL,
    read_env,
)
from objectives_pipeline.snapshot_dates import (
    past_snapshot_refusal,
    record_snapshot_date,
    today_in,
)
from objectives_pipeline.warehouse import (
    RAW_OBJECTIVES_TABLE,
    SnapshotQuality,
    WarehouseError,
)

#: Definition metadata naming the DuckDB table an asset produces; SQL models find their
#: upstream assets through it.
TABLE_NAME = "dagster/table_name"
PREVIEW_ROWS = 10

CHECKS = [
    dg.AssetCheckSpec(
        "unique_objective_per_snapshot",
        asset="planhat_objectives",
        description="One row per (snapshot_date, objective_id).",
    ),
    dg.AssetCheckSpec(
        "company_id_present",
        asset="planhat_objectives",
        description="Every objective names its company.",
    ),
    dg.AssetCheckSpec(
        "health_in_range",
        asset="planhat_objectives",
        description="Health values fall within the configured range (warns).",
    ),
    dg.AssetCheckSpec(
        "row_count_stable",
        asset="planhat_objectives",
        description=(
            "The snapshot did not shrink sharply against the partition it replaced or the "
            "previous snapshot (a sharper drop fails the run unless allow_row_drop is set)."
        ),
    ),
    dg.AssetCheckSpec(
        "records_well_formed",
        asset="planhat_objectives",
        description="No record had fields of unexpected types (warns; such rows are kept and flagged).",
    ),
]


class ExtractConfig(dg.Config):
    """Run configuration of `planhat_objectives`."""

    page_size: int = Field(
        default=DEFAULT_PAGE_SIZE,
        ge=2,
        le=MAX_PAGE_SIZE,
        description="Objectives per request (Planhat's maximum is 2000; pages overlap by one).",
    )
    concurrency: int = Field(
        default=DEFAULT_PAGES_IN_FLIGHT,
        ge=1,
        le=16,
        description="Pages fetched at once, within the rate limit.",
    )
    health_min: float = Field(default=0.0, description="Lowest expected health value.")
    health_max: float = Field(default=5.0, description="Highest expected health value.")
    max_row_drop_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description=(
            "Fail, keeping the partition as it was, when the snapshot has this share fewer "
            "rows than the partition it replaces or the previous snapshot."
        ),
    )
    allow_row_drop: bool = Field(
        default=False,
        description="Load a snapshot however sharply it shrank (the objectives were deleted).",
    )
    run_budget_seconds: float = Field(
        default=DEFAULT_RUN_BUDGET_SECONDS,
        gt=0,
        description="No request starts after the extraction has paged this long.",
    )


@dg.asset(
    key="planhat_objectives",
    partitions_def=daily_partitions,
    pool=DUCKDB_POOL,
    check_specs=CHECKS,
    group_name="extract_load",
    kinds={"python", "duckdb"},
    metadata={TABLE_NAME: RAW_OBJECTIVES_TABLE},
    description=(
        "Daily snapshot of every Planhat objective in raw.planhat_objectives. Planhat exposes only "
        "current state: materializing a past date captures the state at run time (see captured_at). "
        "One pass of overlapping pages sorted by _id, the order checked on every page; "
        "completeness_proof says which proof the pages met (sorted_overlap, or "
        "fallback_consistent_order when the server did not keep the _id order and the pages "
        "were read again in its own order; order_problem says why). boundaries_repaired counts page boundaries "
        "read again because objectives were deleted meanwhile; created_during_run counts loaded "
        "objectives whose ObjectId is not older than the run's start second; deleted_during_run "
        "counts objectives seen in one page and missing from the next page covering their ids (a "
        "lower bound); rate_limit_remaining is the last X-Rate-Limit-Remaining Planhat sent."
    ),
)
def planhat_objectives(
    context: dg.AssetExecutionContext,
    config: ExtractConfig,
    planhat: PlanhatResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:  # type: ignore[type-arg]  # with check specs Dagster rejects MaterializeResult[None]
    snapshot_date = date.fromisoformat(context.partition_key)
    today = today_in(TIMEZONE)
    refusal = past_snapshot_refusal(
        snapshot_date, today, allowed=read_env().allow_past_snapshots
    )
    if refusal is not None:
        raise dg.Failure(description=f"Snapshot {snapshot_date} refused: {refusal}")
    wh = warehouse.get_warehouse()
    context.log.info(f"Extracting objectives from {planhat.describe_target()} for {snapshot_date}")
    options = ExtractOptions(
        config.page_size,
        config.concurrency,
        health_range=(config.health_min, config.health_max),
        run_budget_seconds=config.run_budget_seconds,
        max_row_drop_share=None if config.allow_row_drop else config.max_row_drop_share,
    )
    try:
        with planhat.get_client(context.log) as client:
            result = extract_snapshot(client, wh, snapshot_date, options, context.log.info)
    except (PlanhatError, WarehouseError) as exc:
        raise dg.Failure(
            description=(
                f"Snapshot {snapshot_date} was not taken; the partition keeps its previous "
                f"contents. {exc}"
            ),
            metadata={"error_type": type(exc).__name__},
        ) from exc
    quality = result.load.quality  # computed in the load's transaction: nothing is read again
    assert quality is not None, "extract_snapshot was given a health_range"
    record_snapshot_date(warehouse.path, snapshot_date)
    relabelled = snapshot_date != today
    if relabelled:
        context.log.warning(
            f"Snapshot relabelled: the objectives as they are on {today} are stored under "
            f"{snapshot_date}."
        )
    return dg.MaterializeResult(
        metadata={
            **_metadata(result, planhat, quality.preview),
            "relabelled": relabelled,
            "captured_on": today.isoformat(),
        },
        check_results=_check_results(quality, config),
    )


def _metadata(
    result: ExtractResult, planhat: PlanhatResource, preview: list[dict[str, object]]
) -> dict[str, Any]:
    stats = result.client_stats
    return {
        "rows": result.load.rows,
        "companies": result.load.companies,
        "pages": result.pages,
        "requests": stats.requests,
        "requests_per_1000_objectives": result.requests_per_1000_objectives,
        "boundaries_repaired": result.boundaries_repaired,
        "completeness_proof": result.paging.completeness_proof,
        "order_problem": result.paging.order_problem or "",
        "order_rereads": result.paging.order_rereads,
        "fallback_requests": result.paging.fallback_requests,
        "existence_checks": result.paging.existence_checks,
        "rate_limit_remaining": stats.rate_limit_remaining,
        "retries": stats.retries,
        "retry_wait_seconds": round(stats.retry_wait_seconds, 3),
        "rate_limit_wait_seconds": round(stats.rate_limit_wait_seconds, 3),
        "paced_seconds": round(stats.paced_seconds, 3),
        "in_flight_limit_reductions": stats.in_flight_limit_reductions,
        "seconds": round(result.seconds, 3),
        "records_per_second": round(result.records_per_second, 1),
        "duplicates_removed": result.load.duplicates_removed,
        "flagged_rows": result.load.flagged_rows,
        "created_during_run": result.created_during_run,
        "deleted_during_run": result.deleted_during_run,
        "captured_at": dg.MetadataValue.timestamp(result.captured_at.replace(tzinfo=UTC)),
        "source": planhat.describe_target(),
        "preview": dg.MetadataValue.md(_markdown_table(preview)),
    }


def _check_results(quality: SnapshotQuality, config: ExtractConfig) -> list[dg.AssetCheckResult]:
    warn = dg.AssetCheckSeverity.WARN
    drop_share = quality.row_drop_share
    return [
        dg.AssetCheckResult(
            check_name="unique_objective_per_snapshot",
            passed=quality.duplicate_ids == 0,
            metadata={"duplicate_objective_ids": quality.duplicate_ids},
        ),
        dg.AssetCheckResult(
            check_name="company_id_present",
            passed=quality.missing_company_id == 0,
            metadata={"rows_without_company_id": quality.missing_company_id},
        ),
        dg.AssetCheckResult(
            check_name="health_in_range",
            passed=quality.health_out_of_range == 0,
            severity=warn,
            metadata={
                "rows_out_of_range": quality.health_out_of_range,
                "expected_min": config.health_min,
                "expected_max": config.health_max,
                "observed_min": quality.health_min,
                "observed_max": quality.health_max,
            },
        ),
        dg.AssetCheckResult(
            check_name="row_count_stable",
            passed=drop_share is None or drop_share <= config.max_row_drop_share,
            severity=warn,
            metadata={
                "rows": quality.rows,
                "previous_snapshot_rows": quality.previous_rows,
                "replaced_partition_rows": quality.replaced_rows,
                "previous_snapshot_date": str(quality.previous_snapshot_date),
                "drop_share": drop_share,
                "max_drop_share": config.max_row_drop_share,
            },
        ),
        dg.AssetCheckResult(
            check_name="records_well_formed",
            passed=quality.flagged_rows == 0,
            severity=warn,
            metadata={
                "flagged_rows": quality.flagged_rows,
                "find_them": "SELECT * FROM raw.planhat_objectives WHERE len(load_issues) > 0",
            },
        ),
    ]


def _markdown_table(rows: list[dict[str, object]]) -> str:
    if not rows:
        return "_no rows_"
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = (str(row[c]).replace("|", "\\|").replace("\n", " ")[:60] for c in columns)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
