"""The pipeline's defaults, each written once, and the one reader of its environment variables.

Plain Python (no Dagster, no other project module): the client, the warehouse, the Dagster
resources and the commands all take their defaults from here and read the environment
through :func:`read_env`. Planhat's own limits (page size, batch size, concurrency) live in
:mod:`objectives_pipeline.planhat.config`; the SQL models' folder is
:func:`objectives_pipeline.package_files.sql_models_dir`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

# Planhat
DEFAULT_BASE_URL = "https://api.planhat.com"
DEFAULT_ANALYTICS_URL = "https://analytics.planhat.com"
#: Objectives per request: Planhat's maximum.
DEFAULT_PAGE_SIZE = 2000
#: Pages of a listing in flight at once. More were no faster at 100,000 objectives and 50 ms a
#: request (typing the pages is the bottleneck), and at most this many minus one requests go
#: past the end of a first snapshot, which has no size hint.
DEFAULT_PAGES_IN_FLIGHT = 3
#: Items per bulk upsert request: Planhat's maximum.
DEFAULT_BATCH_SIZE = 5000
DEFAULT_TIMEOUT_SECONDS = 60.0
#: The longest one request may take, its whole body included.
DEFAULT_REQUEST_DEADLINE_SECONDS = 300.0
#: The longest one extraction may page before it gives up (nothing is loaded then).
DEFAULT_RUN_BUDGET_SECONDS = 3600.0
#: Attempts per request, retries included.
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_RATE_LIMIT_PER_MINUTE = 200
DEFAULT_SANDBOX_DIR = "data/sandbox"

# Warehouse
DEFAULT_DATABASE_PATH = "data/objectives.duckdb"
# Building the models over 1,000,000 objectives x 30 snapshots peaked at 3.1 GB of RSS with
# DuckDB's default (80% of RAM) and ran faster capped, spilling to disk (bench/README.md).
DEFAULT_MEMORY_LIMIT = "512MB"
#: How long a pipeline run waits for another process's DuckDB lock.
DEFAULT_LOCK_TIMEOUT_SECONDS = 120.0
#: How long a command (or a `Warehouse` built in code) waits for it: someone is waiting.
DEFAULT_COMMAND_LOCK_TIMEOUT_SECONDS = 30.0
#: Dagster pool of every step that writes the DuckDB file (one writer at a time).
DUCKDB_POOL = "duckdb_writer"

# SQL models
DEFAULT_AT_RISK_THRESHOLD = 2.0
DEFAULT_ALERT_DROP = 1.0
DEFAULT_ALERT_WINDOW_DAYS = 7

# Schedule and partitions (the partitions' start: objectives_pipeline.snapshot_dates)
#: How many days before today a snapshot may still be labelled (a late retry of yesterday).
DEFAULT_PAST_SNAPSHOT_GRACE_DAYS = 1
DEFAULT_TIMEZONE = "UTC"
DEFAULT_SCHEDULE_CRON = "0 6 * * *"

# Environment variables
TOKEN_ENV_VAR = "PLANHAT_API_TOKEN"
BASE_URL_ENV_VAR = "PLANHAT_BASE_URL"
TENANT_UUID_ENV_VAR = "PLANHAT_TENANT_UUID"
ANALYTICS_URL_ENV_VAR = "PLANHAT_ANALYTICS_URL"
DUCKDB_PATH_ENV_VAR = "OBJECTIVES_DUCKDB_PATH"
MEMORY_LIMIT_ENV_VAR = "OBJECTIVES_DUCKDB_MEMORY_LIMIT"
ALERT_WEBHOOK_ENV_VAR = "OBJECTIVES_ALERT_WEBHOOK_URL"
START_DATE_ENV_VAR = "OBJECTIVES_START_DATE"
ALLOW_PAST_SNAPSHOTS_ENV_VAR = "OBJECTIVES_ALLOW_PAST_SNAPSHOTS"
TIMEZONE_ENV_VAR = "OBJECTIVES_TIMEZONE"
SCHEDULE_CRON_ENV_VAR = "OBJECTIVES_SCHEDULE_CRON"
#: SQL-model variables settable from the environment: variable name -> model variable.
SQL_MODEL_ENV_VARS = {
    "OBJECTIVES_AT_RISK_THRESHOLD": "at_risk_threshold",
    "OBJECTIVES_ALERT_DROP": "alert_drop",
    "OBJECTIVES_ALERT_WINDOW_DAYS": "alert_window_days",
}


@dataclass(frozen=True)
class Settings:
    """What the environment sets, defaults filled in. Secrets are left out of the repr."""

    api_token: str | None = field(default=None, repr=False)
    base_url: str | None = None
    tenant_uuid: str | None = None
    analytics_url: str | None = None
    duckdb_path: str = DEFAULT_DATABASE_PATH
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    alert_webhook_url: str | None = field(default=None, repr=False)
    #: SQL-model variables set in the environment, unparsed (model variable -> text).
    sql_variables: Mapping[str, str] = field(default_factory=dict)
    #: OBJECTIVES_START_DATE; None: the first snapshot's date (see `snapshot_dates`).
    start_date: str | None = None
    #: OBJECTIVES_ALLOW_PAST_SNAPSHOTS: snapshots may be labelled with any past date.
    allow_past_snapshots: bool = False
    timezone: str = DEFAULT_TIMEZONE
    schedule_cron: str = DEFAULT_SCHEDULE_CRON

    @property
    def uses_sandbox(self) -> bool:
        """True when no Planhat token is set: the embedded sandbox stands in for Planhat."""
        return self.api_token is None


def read_env(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of `environ` (default: ``os.environ``); blank values count as unset."""
    env = os.environ if environ is None else environ

    def text(name: str) -> str | None:
        return env.get(name, "").strip() or None

    return Settings(
        api_token=text(TOKEN_ENV_VAR),
        base_url=text(BASE_URL_ENV_VAR),
        tenant_uuid=text(TENANT_UUID_ENV_VAR),
        analytics_url=text(ANALYTICS_URL_ENV_VAR),
        duckdb_path=text(DUCKDB_PATH_ENV_VAR) or DEFAULT_DATABASE_PATH,
        memory_limit=text(MEMORY_LIMIT_ENV_VAR) or DEFAULT_MEMORY_LIMIT,
        alert_webhook_url=text(ALERT_WEBHOOK_ENV_VAR),
        sql_variables={
            variable: value
            for name, variable in SQL_MODEL_ENV_VARS.items()
            if (value := text(name)) is not None
        },
        start_date=text(START_DATE_ENV_VAR),
        allow_past_snapshots=(text(ALLOW_PAST_SNAPSHOTS_ENV_VAR) or "").lower()
        in {"1", "true", "yes"},
        timezone=text(TIMEZONE_ENV_VAR) or DEFAULT_TIMEZONE,
        schedule_cron=text(SCHEDULE_CRON_ENV_VAR) or DEFAULT_SCHEDULE_CRON,
    )
