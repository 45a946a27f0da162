"""The daily partitions every snapshot asset shares."""

from __future__ import annotations

import os

import dagster as dg

#: The first date a snapshot can be taken for; override with OBJECTIVES_START_DATE.
START_DATE = os.environ.get("OBJECTIVES_START_DATE", "2026-01-01")
#: Timezone of the snapshot dates and of the daily schedule (OBJECTIVES_TIMEZONE).
TIMEZONE = os.environ.get("OBJECTIVES_TIMEZONE", "UTC")

# end_offset=1 makes today's partition exist, so the daily run snapshots today, not yesterday.
daily_partitions = dg.DailyPartitionsDefinition(start_date=START_DATE, timezone=TIMEZONE, end_offset=1)
