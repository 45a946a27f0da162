"""The one rule every write to Planhat follows: a real tenant is written only once a user
enabled it.

The embedded sandbox is always written (unless `enabled: false`). For a real tenant, the
first push and the first health write-back need an explicit ``enabled: true`` (``--yes`` on
the command line); the warehouse remembers it per tenant and writer
(``reverse_etl.enabled_targets``), so schedules and sensors may write from then on.
"""

from __future__ import annotations

from objectives_pipeline.resources import PlanhatResource, WarehouseResource
from objectives_pipeline.reverse_etl import audit

PUSH = "push"
HEALTH_WRITEBACK = "health_writeback"


def writes_enabled(
    planhat: PlanhatResource,
    warehouse: WarehouseResource,
    *,
    writer: str,
    enabled: bool | None,
    run_id: str,
) -> bool:
    """Whether `writer` may write the configured target in this run; an explicit
    ``enabled=True`` against a real tenant is remembered."""
    if enabled is False:
        return False
    if planhat.uses_sandbox:
        return True
    target = planhat.describe_target()
    with warehouse.get_warehouse().connect() as con:
        if enabled:
            audit.record_enabled(con, target, writer, run_id)
            return True
        return audit.is_enabled(con, target, writer)


def not_enabled_message(target: str, what: str, config_path: str, flag: str | None = None) -> str:
    """What a user reads when a write to a real tenant was not enabled yet."""
    how = f"{flag} on the command line, or run config" if flag else "run config"
    return (
        f"{what} to {target} is not enabled, nothing was written: the first write to a real "
        f"Planhat tenant must be enabled explicitly ({how} {config_path}: enabled: true). "
        "After that, schedules and sensors write it too; enabled: false turns a run off."
    )
