"""`defs`: everything Dagster loads (see workspace.yaml)."""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from objectives_pipeline.defs.extract_assets import planhat_objectives
from objectives_pipeline.defs.health_alerts import no_health_alerts
from objectives_pipeline.defs.health_score import health_score_writeback, planhat_company_health
from objectives_pipeline.defs.jobs import objectives_elt, objectives_elt_daily
from objectives_pipeline.defs.resources import (
    AlertWebhookResource,
    alert_webhook_resource_from_env,
    planhat_resource_from_env,
    sql_models_resource_from_env,
    warehouse_resource_from_env,
)
from objectives_pipeline.defs.reverse_etl import (
    crm_objectives,
    push_after_objectives_to_push,
    push_objectives_to_planhat,
)
from objectives_pipeline.defs.sql_assets import build_sql_model_assets


def build_defs(resources: Mapping[str, Any]) -> dg.Definitions:
    """The project's definitions bound to `resources` (planhat, warehouse, sql_models, and
    alert_webhook: no webhook unless given)."""
    return dg.Definitions(
        assets=[
            planhat_objectives,
            crm_objectives,
            *build_sql_model_assets([planhat_objectives, crm_objectives]),
            planhat_company_health,
        ],
        asset_checks=[no_health_alerts],
        jobs=[objectives_elt, push_objectives_to_planhat, health_score_writeback],
        schedules=[objectives_elt_daily],
        sensors=[push_after_objectives_to_push],
        resources={"alert_webhook": AlertWebhookResource(), **resources},
    )


defs = build_defs(
    {
        "planhat": planhat_resource_from_env(),
        "warehouse": warehouse_resource_from_env(),
        "sql_models": sql_models_resource_from_env(),
        "alert_webhook": alert_webhook_resource_from_env(),
    }
)
