"""`defs`: everything Dagster loads (see workspace.yaml and `[tool.dg]` in pyproject.toml).

Every module of `defs/` is loaded by `dg.load_from_defs_folder`; the resources, defined
outside it in `resources.py`, are bound here.
"""

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg

from objectives_pipeline.resources import AlertWebhookResource, resources_from_env


@cache
def _defs_folder() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)


def build_defs(resources: Mapping[str, Any]) -> dg.Definitions:
    """The project's definitions bound to `resources` (planhat, warehouse, sql_models, and
    alert_webhook: no webhook unless given)."""
    return dg.Definitions.merge(
        _defs_folder(),
        dg.Definitions(resources={"alert_webhook": AlertWebhookResource(), **resources}),
    )


defs = build_defs(resources_from_env())
