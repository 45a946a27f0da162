"""The asset check that warns about company-health drops and posts them to a webhook.

The POST happens in the check, not in the asset: the asset stays a plain SQL build,
the check is where a drop becomes a warning, and its result records whether the
webhook got it. A check neither blocks nor fails the run, and re-executing the check
alone (from the asset's Checks tab) re-sends the current alerts.
"""

from typing import Any

import dagster as dg

from objectives_pipeline.alert_webhook import alert_text, post_webhook
from objectives_pipeline.defs.extract_assets import _markdown_table
from objectives_pipeline.resources import AlertWebhookResource, WarehouseResource
from objectives_pipeline.warehouse import HealthAlert, read_health_alerts

CHECK_NAME = "no_health_alerts"
FIND_THEM = "SELECT * FROM company_health_alerts"


@dg.asset_check(
    asset="company_health_alerts",
    name=CHECK_NAME,
    description=(
        "No company's average objective health fell by alert_drop or more over "
        "alert_window_days, or crossed below the at-risk threshold (warns, with the list; "
        "posts it to OBJECTIVES_ALERT_WEBHOOK_URL when set)."
    ),
)
def no_health_alerts(
    context: dg.AssetCheckExecutionContext,
    warehouse: WarehouseResource,
    alert_webhook: AlertWebhookResource,
) -> dg.AssetCheckResult:
    alerts = read_health_alerts(warehouse.get_warehouse())
    metadata: dict[str, Any] = {
        "alerts": dg.MetadataValue.int(len(alerts)),
        "alert_list": dg.MetadataValue.md(_markdown_table(_rows(alerts))),
        "find_them": FIND_THEM,
    }
    if alerts:
        metadata.update(_notify(context, alert_webhook, alerts))
    return dg.AssetCheckResult(
        passed=not alerts, severity=dg.AssetCheckSeverity.WARN, metadata=metadata
    )


def _notify(
    context: dg.AssetCheckExecutionContext,
    webhook: AlertWebhookResource,
    alerts: list[HealthAlert],
) -> dict[str, Any]:
    if not webhook.url:
        return {"webhook": "not configured (set OBJECTIVES_ALERT_WEBHOOK_URL)"}
    outcome = post_webhook(
        webhook.url,
        {"text": alert_text(alerts)},
        timeout=webhook.timeout_seconds,
        max_attempts=webhook.max_attempts,
        backoff=webhook.backoff_seconds,
        budget=webhook.budget_seconds,
    )
    if outcome.delivered:
        context.log.info(f"Posted {len(alerts)} health alerts to the webhook at {outcome.host}.")
    else:
        context.log.warning(
            f"The health alerts were not delivered to the webhook at {outcome.host} after "
            f"{outcome.attempts} attempts: {outcome.error}. The run goes on; the alerts are in "
            "company_health_alerts."
        )
    result: dict[str, Any] = {
        "webhook": "delivered" if outcome.delivered else "failed",
        "webhook_host": outcome.host,
        "webhook_attempts": outcome.attempts,
    }
    if outcome.status_code is not None:
        result["webhook_status"] = outcome.status_code
    if outcome.error:
        result["webhook_error"] = outcome.error
    return result


def _rows(alerts: list[HealthAlert]) -> list[dict[str, object]]:
    return [
        {
            "company": a.company_name or a.company_id,
            "company_id": a.company_id,
            "before": round(a.health_before, 2),
            "now": round(a.health_now, 2),
            "drop": round(a.health_drop, 2),
            "reason": a.reason,
        }
        for a in alerts
    ]
