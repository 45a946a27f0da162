"""The demo's last part: what the health write-back put into Planhat, and the alerts."""

from __future__ import annotations

from typing import TextIO

import dagster as dg

from objectives_pipeline.defs.health_score import ASSET as WRITEBACK_ASSET
from objectives_pipeline.defs.health_score import JOB as WRITEBACK_JOB
from objectives_pipeline.resources import planhat_resource_from_env
from objectives_pipeline.reverse_etl.health_writeback import DEFAULT_FIELD
from objectives_pipeline.warehouse import Warehouse, read_health_alerts

__all__ = ["WRITEBACK_JOB", "print_alerts", "print_companies_read_back", "writeback_line"]


def writeback_line(result: dg.ExecuteInProcessResult) -> str:
    """The write-back's counts in one line (or why nothing was written)."""
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        if materialization.asset_key == dg.AssetKey(WRITEBACK_ASSET):
            meta = {k: getattr(v, "value", v) for k, v in materialization.metadata.items()}
            return (
                f"{meta['companies_considered']} companies with a health: "
                f"{meta['companies_sent']} field values sent, {meta['companies_unchanged']} "
                f"unchanged; metric: {meta['metrics_sent']} sent, {meta['skipped_for_metrics']} "
                f"skipped (no externalId); {meta['requests']} write-back request(s)"
            )
    return "nothing written (the write-back is off for this target)"


def print_companies_read_back(warehouse: Warehouse, out: TextIO, count: int = 3) -> None:
    """Read `count` companies (worst health first) back from Planhat with their field."""
    with warehouse.connect(read_only=True) as con:
        rows = con.execute(
            "SELECT company_id, company_name, avg_health FROM company_objective_health "
            "WHERE avg_health IS NOT NULL ORDER BY avg_health, company_id LIMIT ?",
            [count],
        ).fetchall()
    with planhat_resource_from_env().get_client() as client:
        print(f"\nRead back from Planhat (GET /companies/<_id>), field {DEFAULT_FIELD!r}:", file=out)
        for company_id, name, avg in rows:
            company = client.get_company(str(company_id))
            value = (company.custom or {}).get(DEFAULT_FIELD)
            print(f"  {name or company_id}: {value} (DuckDB avg_health {avg:.2f})", file=out)


def print_alerts(warehouse: Warehouse, out: TextIO, limit: int = 10) -> None:
    """The companies of `company_health_alerts`, biggest drop first."""
    alerts = read_health_alerts(warehouse)
    print(f"\nAlerts (company_health_alerts, {len(alerts)}):", file=out)
    if not alerts:
        print("  none: no company's average objective health dropped", file=out)
    for alert in alerts[:limit]:
        print(
            f"  {alert.company_name or alert.company_id}: {alert.health_before:.2f} on "
            f"{alert.baseline_date} -> {alert.health_now:.2f} on {alert.snapshot_date} "
            f"({alert.reason})",
            file=out,
        )
