"""The ELT job and its daily schedule."""

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg

from objectives_pipeline.defs.partitions import AUTOMATION_DEFAULT_ON, SCHEDULE_CRON, TIMEZONE

# The ELT only reads Planhat: writing back (reverse_etl, health_score) has jobs of its own.
ELT_SELECTION = dg.AssetSelection.assets(
    "planhat_objectives"
).downstream() - dg.AssetSelection.groups("reverse_etl", "health_score")

objectives_elt = dg.define_asset_job(
    name="objectives_elt",
    selection=ELT_SELECTION,
    description="Today's snapshot of every Planhat objective, then every SQL model built on it.",
)


@dg.schedule(
    job=objectives_elt,
    cron_schedule=SCHEDULE_CRON,
    execution_timezone=TIMEZONE,
    # With a token a day not captured is lost for good: on unless turned off in the UI.
    default_status=(
        dg.DefaultScheduleStatus.RUNNING if AUTOMATION_DEFAULT_ON else dg.DefaultScheduleStatus.STOPPED
    ),
    description=(
        "Snapshot the objectives of the day the schedule fires (in OBJECTIVES_TIMEZONE). On by "
        "default with PLANHAT_API_TOKEN, off for the sandbox; toggle it under Automation."
    ),
)
def objectives_elt_daily(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    fired_at = context.scheduled_execution_time or datetime.now(ZoneInfo(TIMEZONE))
    partition_key = fired_at.astimezone(ZoneInfo(TIMEZONE)).date().isoformat()
    return dg.RunRequest(run_key=partition_key, partition_key=partition_key)
