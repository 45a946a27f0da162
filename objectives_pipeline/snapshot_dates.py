"""Which dates a snapshot may be labelled with, and where the partitions start.

Planhat serves only the present state of its objectives: a snapshot labelled with a past date
would hold today's state under that date, and the write-back would then send it to Planhat as
that day's metric point. So a snapshot's date may lie at most ``grace_days`` before today (a
late retry of yesterday's run still runs); older dates are refused unless
``OBJECTIVES_ALLOW_PAST_SNAPSHOTS=true`` (tests and tools that relabel on purpose), and the
run's metadata then says the snapshot is relabelled.

The daily partitions start at ``OBJECTIVES_START_DATE`` when it is set, else at the date of the
first snapshot this warehouse took (kept in a small file next to it), else today: the UI never
shows months of "missing" partitions that only a fabricated backfill could fill.

Plain Python: no Dagster, no other project module but `settings`.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from objectives_pipeline.settings import (
    ALLOW_PAST_SNAPSHOTS_ENV_VAR,
    DEFAULT_PAST_SNAPSHOT_GRACE_DAYS,
    START_DATE_ENV_VAR,
    Settings,
)

#: Name of the file, next to the DuckDB file, that keeps the first snapshot's date.
START_DATE_FILE_SUFFIX = ".start_date"


def today_in(timezone: str) -> date:
    """Today's date in `timezone` (the snapshot dates' timezone)."""
    return datetime.now(ZoneInfo(timezone)).date()


def past_snapshot_refusal(
    snapshot_date: date,
    today: date,
    *,
    allowed: bool,
    grace_days: int = DEFAULT_PAST_SNAPSHOT_GRACE_DAYS,
) -> str | None:
    """Why a snapshot may not be labelled `snapshot_date` on `today`, or None when it may."""
    oldest = today - timedelta(days=grace_days)
    if snapshot_date > today:
        return (
            f"{snapshot_date} is in the future (today is {today}): a snapshot can only be taken "
            "of the present."
        )
    if snapshot_date >= oldest or allowed:
        return None
    return (
        f"{snapshot_date} lies more than {grace_days} day(s) before today ({today}). Planhat "
        "serves only its present state, so this snapshot would store today's objectives under a "
        f"past date. Nothing was fetched. Snapshot today's partition instead; to relabel on "
        f"purpose (tests, a restored copy), set {ALLOW_PAST_SNAPSHOTS_ENV_VAR}=true."
    )


def start_date_file(database: str) -> Path:
    """Where the first snapshot's date of the warehouse `database` is kept: next to a local
    DuckDB file, else in ``$DAGSTER_HOME`` (MotherDuck has no local file)."""
    if database.startswith(("md:", "motherduck:")):
        home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home")
        return home / f"objectives{START_DATE_FILE_SUFFIX}"
    return Path(database + START_DATE_FILE_SUFFIX)


def first_snapshot_date(database: str) -> date | None:
    """The date of the first snapshot recorded for the warehouse `database`, if any."""
    try:
        return date.fromisoformat(start_date_file(database).read_text().strip())
    except (OSError, ValueError):
        return None


def record_snapshot_date(database: str, snapshot_date: date) -> None:
    """Keep `snapshot_date` as the partitions' start when it is the first (or earliest) one."""
    first = first_snapshot_date(database)
    if first is not None and first <= snapshot_date:
        return
    path = start_date_file(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    staged = path.with_name(path.name + ".tmp")
    staged.write_text(snapshot_date.isoformat() + "\n")
    staged.replace(path)


def partitions_start(settings: Settings) -> date:
    """OBJECTIVES_START_DATE, else the first snapshot's date, else today."""
    if settings.start_date is not None:
        try:
            return date.fromisoformat(settings.start_date)
        except ValueError:
            raise ValueError(
                f"{START_DATE_ENV_VAR}={settings.start_date!r} is not a date: write it as "
                "YYYY-MM-DD, or unset it to start at the first snapshot's date."
            ) from None
    return first_snapshot_date(settings.duckdb_path) or today_in(settings.timezone)
