"""Model-specific materialization metadata for the SQL assets, keyed by model name.

A hook reads the table its model just built and returns metadata the Dagster UI
shows with the materialization; numeric values are plotted across materializations.
"""

from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg

from objectives_pipeline.defs.extract_assets import _markdown_table
from objectives_pipeline.warehouse import Warehouse, health_summary, read_health_alerts

MetadataHook = Callable[[Warehouse, Mapping[str, object]], dict[str, Any]]
"""(warehouse, the SQL variables of the build) -> extra metadata."""

WORST_SHOWN = 10


def company_objective_health_metadata(
    warehouse: Warehouse, variables: Mapping[str, object]
) -> dict[str, Any]:
    threshold = float(variables["at_risk_threshold"])  # type: ignore[arg-type]
    summary = health_summary(warehouse, threshold, worst=WORST_SHOWN)
    metadata: dict[str, Any] = {
        "companies": dg.MetadataValue.int(summary.companies),
        "companies_at_risk": dg.MetadataValue.int(summary.companies_at_risk),
        "objectives_without_health": dg.MetadataValue.int(summary.objectives_without_health),
        "at_risk_threshold": dg.MetadataValue.float(threshold),
        "worst_companies": dg.MetadataValue.md(_markdown_table(_rounded(summary.worst))),
    }
    if summary.mean_avg_health is not None:
        metadata["mean_avg_health"] = dg.MetadataValue.float(round(summary.mean_avg_health, 4))
    return metadata


def company_health_alerts_metadata(
    warehouse: Warehouse, variables: Mapping[str, object]
) -> dict[str, Any]:
    return {"alerts": dg.MetadataValue.int(len(read_health_alerts(warehouse)))}


MODEL_METADATA: Mapping[str, MetadataHook] = {
    "company_objective_health": company_objective_health_metadata,
    "company_health_alerts": company_health_alerts_metadata,
}


def _rounded(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()} for r in rows]
