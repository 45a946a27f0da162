"""The daily partitions every snapshot asset shares."""

from __future__ import annotations

import dagster as dg

from objectives_pipeline.settings import read_env
from objectives_pipeline.snapshot_dates import partitions_start

_settings = read_env()
#: The first date a snapshot can be taken for: OBJECTIVES_START_DATE, else the first
#: snapshot's date, else today (objectives_pipeline.snapshot_dates).
START_DATE = partitions_start(_settings).isoformat()
#: Timezone of the snapshot dates and of the daily schedule (OBJECTIVES_TIMEZONE).
TIMEZONE = _settings.timezone
#: When the daily snapshot runs, as cron in TIMEZONE (OBJECTIVES_SCHEDULE_CRON).
SCHEDULE_CRON = _settings.schedule_cron
#: With a token the daily snapshot and the write-back run unless turned off in the UI.
AUTOMATION_DEFAULT_ON = not _settings.uses_sandbox

# end_offset=1 makes today's partition exist, so the daily run snapshots today, not yesterday.
daily_partitions = dg.DailyPartitionsDefinition(start_date=START_DATE, timezone=TIMEZONE, end_offset=1)
