"""`defs`: everything Dagster loads (see workspace.yaml)."""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from objectives_pipeline.defs.extract_assets import planhat_objectives
from objectives_pipeline.defs.jobs import objectives_elt, objectives_elt_daily
from objectives_pipeline.defs.resources import (
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
    """The project's definitions bound to `resources` (planhat, warehouse, sql_models)."""
    return dg.Definitions(
        assets=[
            planhat_objectives,
            crm_objectives,
            *build_sql_model_assets([planhat_objectives, crm_objectives]),
        ],
        jobs=[objectives_elt, push_objectives_to_planhat],
        schedules=[objectives_elt_daily],
        sensors=[push_after_objectives_to_push],
        resources=dict(resources),
    )


defs = build_defs(
    {
        "planhat": planhat_resource_from_env(),
        "warehouse": warehouse_resource_from_env(),
        "sql_models": sql_models_resource_from_env(),
    }
)
