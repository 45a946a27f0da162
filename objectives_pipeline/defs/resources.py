"""Dagster resources: the Planhat client, the DuckDB warehouse and SQL-model settings."""

import logging
import os
from pathlib import Path

import dagster as dg
from pydantic import Field, ValidationError

from objectives_pipeline.alert_webhook import ALERT_WEBHOOK_ENV_VAR
from objectives_pipeline.planhat import (
    DEFAULT_ANALYTICS_URL,
    ConfigError,
    PlanhatClient,
    RateLimiter,
    RetryPolicy,
)
from objectives_pipeline.sandbox.app import SANDBOX_TENANT_UUID
from objectives_pipeline.sandbox.embedded import ensure_sandbox
from objectives_pipeline.warehouse import (
    DEFAULT_DATABASE_PATH,
    DEFAULT_MEMORY_LIMIT,
    DUCKDB_PATH_ENV_VAR,
    MEMORY_LIMIT_ENV_VAR,
    Warehouse,
)

DEFAULT_BASE_URL = "https://api.planhat.com"
DEFAULT_SANDBOX_DIR = "data/sandbox"


class PlanhatResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Builds a `PlanhatClient`: the real Planhat when a token is set, else the embedded sandbox.

    With no `api_token`, a durable sandbox process is started on 127.0.0.1 (or reused) with its
    state under `sandbox_dir`, and the run log says so. A `base_url` with no token (the default
    Planhat host included) is a configuration error: we never silently swap a real tenant for
    the sandbox.
    """

    api_token: str | None = Field(
        default=None, description="Planhat API token (PLANHAT_API_TOKEN)."
    )
    base_url: str | None = Field(
        default=None,
        description=f"Planhat API base URL (PLANHAT_BASE_URL); {DEFAULT_BASE_URL} when unset.",
    )
    timeout_seconds: float = Field(default=60.0, gt=0, description="Per-request timeout.")
    max_attempts: int = Field(
        default=6, ge=1, le=20, description="Attempts per request, retries included."
    )
    rate_limit_per_minute: int = Field(
        default=200, ge=1, description="Client-side request rate limit."
    )
    rate_limit_window_seconds: float = Field(
        default=60.0,
        gt=0,
        le=60,
        description=(
            "The client-side limit holds in every sliding window of this many seconds, each "
            "allowing rate_limit_per_minute x window / 60 requests (at least 1). Shorter windows "
            "smooth bursts."
        ),
    )
    retry_initial_backoff_seconds: float = Field(
        default=0.5, ge=0, description="First wait before a retry; doubles with each attempt."
    )
    retry_jitter_seconds: float = Field(
        default=0.5, ge=0, description="Random extra wait, up to this much, added to each backoff."
    )
    pace_to_server: bool = Field(
        default=True,
        description=(
            "Learn Planhat's allowance from the X-Rate-Limit-* headers and 429s, space requests "
            "to it and halve the requests in flight on a 429."
        ),
    )
    tenant_uuid: str | None = Field(
        default=None,
        description=(
            "Planhat tenant UUID (PLANHAT_TENANT_UUID), needed for custom metrics; the embedded "
            "sandbox has its own."
        ),
    )
    analytics_url: str | None = Field(
        default=None,
        description=(
            f"Host of custom metrics (PLANHAT_ANALYTICS_URL); {DEFAULT_ANALYTICS_URL} when unset "
            "with a token, the sandbox itself without."
        ),
    )
    sandbox_dir: str = Field(
        default=DEFAULT_SANDBOX_DIR, description="State folder of the embedded sandbox."
    )
    sandbox_objectives: int = Field(
        default=2000, ge=0, description="Objectives seeded in a new embedded sandbox."
    )
    sandbox_companies: int = Field(
        default=200, ge=1, description="Companies seeded in a new embedded sandbox."
    )

    @property
    def uses_sandbox(self) -> bool:
        return not self.api_token

    @property
    def has_tenant_uuid(self) -> bool:
        """True when custom metrics can be sent (the sandbox always has a tenant UUID)."""
        return self.uses_sandbox or bool(self.tenant_uuid and self.tenant_uuid.strip())

    def describe_target(self) -> str:
        """Where requests go, safe to log (never the token)."""
        if self.uses_sandbox:
            return f"embedded sandbox ({self.sandbox_dir})"
        return self.base_url or DEFAULT_BASE_URL

    def get_client(self, log: logging.Logger | dg.DagsterLogManager | None = None) -> PlanhatClient:
        retry = RetryPolicy(
            max_attempts=self.max_attempts,
            initial_backoff=self.retry_initial_backoff_seconds,
            jitter=self.retry_jitter_seconds,
            pace_to_server=self.pace_to_server,
        )
        if self.api_token:
            window = self.rate_limit_window_seconds
            per_window = max(1, int(self.rate_limit_per_minute * window / 60))
            return PlanhatClient(
                base_url=self.base_url or DEFAULT_BASE_URL,
                token=self.api_token,
                timeout=self.timeout_seconds,
                retry=retry,
                rate_limiter=RateLimiter(per_window, window),
                tenant_uuid=self.tenant_uuid,
                analytics_url=self.analytics_url or DEFAULT_ANALYTICS_URL,
            )
        if self.base_url:  # even the default host: a set URL means a real tenant
            raise ConfigError(
                f"PLANHAT_BASE_URL is set to {self.base_url} but PLANHAT_API_TOKEN is not set. "
                "Set PLANHAT_API_TOKEN to a Planhat private-app token, or unset PLANHAT_BASE_URL "
                "to run against the embedded sandbox."
            )
        endpoint = ensure_sandbox(
            Path(self.sandbox_dir),
            objectives=self.sandbox_objectives,
            companies=self.sandbox_companies,
        )
        if log is not None:
            log.info(
                f"PLANHAT_API_TOKEN is not set: using the embedded Planhat sandbox at "
                f"{endpoint.base_url} (state in {self.sandbox_dir}). Set PLANHAT_API_TOKEN and "
                "PLANHAT_BASE_URL to talk to a real Planhat tenant."
            )
        return PlanhatClient(
            base_url=endpoint.base_url,
            token=endpoint.token,
            timeout=self.timeout_seconds,
            retry=retry,
            rate_limit_per_minute=None,
            tenant_uuid=SANDBOX_TENANT_UUID,
            analytics_url=endpoint.base_url,
        )


class WarehouseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The DuckDB file (or `md:` MotherDuck database) the pipeline reads and writes."""

    path: str = Field(default=DEFAULT_DATABASE_PATH, description="OBJECTIVES_DUCKDB_PATH.")
    lock_timeout_seconds: float = Field(
        default=120.0, gt=0, description="How long to wait for another process's DuckDB lock."
    )
    memory_limit: str = Field(
        default=DEFAULT_MEMORY_LIMIT,
        description="DuckDB memory_limit (OBJECTIVES_DUCKDB_MEMORY_LIMIT); DuckDB spills beyond it.",
    )

    def get_warehouse(self) -> Warehouse:
        return Warehouse(
            self.path, lock_timeout=self.lock_timeout_seconds, memory_limit=self.memory_limit
        )


class SqlModelsResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Variables the SQL models read with getvariable(); always bound, never formatted into SQL."""

    at_risk_threshold: float = Field(
        default=2.0,
        description="Objectives (and companies, for alerts) with health at or below this are at risk.",
    )
    alert_drop: float = Field(
        default=1.0,
        gt=0,
        description="company_health_alerts: a fall of the company average by at least this alerts.",
    )
    alert_window_days: int = Field(
        default=7,
        ge=1,
        description="company_health_alerts: compare with the snapshot this many days earlier.",
    )

    def variables(self) -> dict[str, object]:
        return {
            "at_risk_threshold": self.at_risk_threshold,
            "alert_drop": self.alert_drop,
            "alert_window_days": self.alert_window_days,
        }


def planhat_resource_from_env() -> PlanhatResource:
    token_set = bool(os.environ.get("PLANHAT_API_TOKEN"))
    return PlanhatResource(
        api_token=dg.EnvVar("PLANHAT_API_TOKEN") if token_set else None,  # type: ignore[arg-type]
        base_url=os.environ.get("PLANHAT_BASE_URL", "").strip() or None,
        tenant_uuid=os.environ.get("PLANHAT_TENANT_UUID", "").strip() or None,
        analytics_url=os.environ.get("PLANHAT_ANALYTICS_URL", "").strip() or None,
    )


def warehouse_resource_from_env() -> WarehouseResource:
    return WarehouseResource(
        path=os.environ.get(DUCKDB_PATH_ENV_VAR) or DEFAULT_DATABASE_PATH,
        memory_limit=os.environ.get(MEMORY_LIMIT_ENV_VAR) or DEFAULT_MEMORY_LIMIT,
    )


#: SqlModelsResource fields settable from the environment, by variable name.
SQL_MODEL_ENV_VARS = {
    "OBJECTIVES_AT_RISK_THRESHOLD": "at_risk_threshold",
    "OBJECTIVES_ALERT_DROP": "alert_drop",
    "OBJECTIVES_ALERT_WINDOW_DAYS": "alert_window_days",
}


def sql_models_resource_from_env() -> SqlModelsResource:
    """SqlModelsResource with the OBJECTIVES_* overrides that are set; a bad value is a ConfigError."""
    values = {
        field: raw.strip()
        for name, field in SQL_MODEL_ENV_VARS.items()
        if (raw := os.environ.get(name, "")).strip()
    }
    try:
        return SqlModelsResource(**values)  # type: ignore[arg-type]
    except ValidationError as error:
        names = {field: name for name, field in SQL_MODEL_ENV_VARS.items()}
        problems = "; ".join(
            f"{names.get(str(e['loc'][0]), e['loc'][0])}={values.get(str(e['loc'][0]))!r}: {e['msg']}"
            for e in error.errors()
        )
        raise ConfigError(f"Invalid SQL model setting in the environment: {problems}.") from None


class AlertWebhookResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """Where health alerts are posted: a Slack-compatible incoming webhook, or nowhere.

    The URL is read through `dg.EnvVar` (OBJECTIVES_ALERT_WEBHOOK_URL) and only its host is
    ever logged or put in metadata.
    """

    url: str | None = Field(
        default=None,
        description="Incoming-webhook URL (OBJECTIVES_ALERT_WEBHOOK_URL); unset: no webhook.",
    )
    timeout_seconds: float = Field(default=5.0, gt=0, description="Per-request timeout.")
    max_attempts: int = Field(default=3, ge=1, le=10, description="Requests at most, retries included.")
    backoff_seconds: float = Field(
        default=1.0, ge=0, description="First wait before a retry; doubles with each attempt."
    )
    budget_seconds: float = Field(
        default=20.0, gt=0, description="No retry starts after this many seconds."
    )


def alert_webhook_resource_from_env() -> AlertWebhookResource:
    url_set = bool(os.environ.get(ALERT_WEBHOOK_ENV_VAR, "").strip())
    return AlertWebhookResource(
        url=dg.EnvVar(ALERT_WEBHOOK_ENV_VAR) if url_set else None,  # type: ignore[arg-type]
    )
