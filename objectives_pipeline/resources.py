"""Dagster resources: the Planhat client, the DuckDB warehouse, SQL-model settings and the
alert webhook. They live outside `defs/`: `definitions.py` binds them to what `defs/` defines."""

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, ValidationError

from objectives_pipeline.planhat import ConfigError, PlanhatClient, RateLimiter, RetryPolicy
from objectives_pipeline.settings import (
    ALERT_WEBHOOK_ENV_VAR,
    DEFAULT_ALERT_DROP,
    DEFAULT_ALERT_WINDOW_DAYS,
    DEFAULT_ANALYTICS_URL,
    DEFAULT_AT_RISK_THRESHOLD,
    DEFAULT_BASE_URL,
    DEFAULT_DATABASE_PATH,
    DEFAULT_LOCK_TIMEOUT_SECONDS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_RATE_LIMIT_PER_MINUTE,
    DEFAULT_REQUEST_DEADLINE_SECONDS,
    DEFAULT_SANDBOX_DIR,
    DEFAULT_TIMEOUT_SECONDS,
    SQL_MODEL_ENV_VARS,
    TOKEN_ENV_VAR,
    Settings,
    read_env,
)
from objectives_pipeline.warehouse import Warehouse


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
    timeout_seconds: float = Field(
        default=DEFAULT_TIMEOUT_SECONDS, gt=0, description="Per-request timeout."
    )
    request_deadline_seconds: float = Field(
        default=DEFAULT_REQUEST_DEADLINE_SECONDS,
        gt=0,
        description="The longest one request may take, its whole body included.",
    )
    max_attempts: int = Field(
        default=DEFAULT_MAX_ATTEMPTS,
        ge=1,
        le=20,
        description="Attempts per request, retries included.",
    )
    rate_limit_per_minute: int = Field(
        default=DEFAULT_RATE_LIMIT_PER_MINUTE, ge=1, description="Client-side request rate limit."
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
        """Where requests go, safe to log (never the token). A `base_url` without a token is a
        `ConfigError` here too, so that not even a dry run names the sandbox for a tenant."""
        if self.uses_sandbox:
            self._refuse_url_without_token()
            return f"embedded sandbox ({self.sandbox_dir})"
        return self.base_url or DEFAULT_BASE_URL

    def _refuse_url_without_token(self) -> None:
        if self.base_url:  # even the default host: a set URL means a real tenant
            raise ConfigError(
                f"PLANHAT_BASE_URL is set to {self.base_url} but PLANHAT_API_TOKEN is not set. "
                "Set PLANHAT_API_TOKEN to a Planhat private-app token, or unset PLANHAT_BASE_URL "
                "to run against the embedded sandbox."
            )

    def get_client(self, log: logging.Logger | dg.DagsterLogManager | None = None) -> PlanhatClient:
        retry = RetryPolicy(
            max_attempts=self.max_attempts,
            initial_backoff=self.retry_initial_backoff_seconds,
            jitter=self.retry_jitter_seconds,
            pace_to_server=self.pace_to_server,
            request_deadline=self.request_deadline_seconds,
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
        self._refuse_url_without_token()
        # Only here: a deployment with a token never imports the sandbox or its web stack.
        from objectives_pipeline.sandbox.app import SANDBOX_TENANT_UUID
        from objectives_pipeline.sandbox.embedded import ensure_sandbox

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
        default=DEFAULT_LOCK_TIMEOUT_SECONDS,
        gt=0,
        description="How long to wait for another process's DuckDB lock.",
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
        default=DEFAULT_AT_RISK_THRESHOLD,
        description="Objectives (and companies, for alerts) with health at or below this are at risk.",
    )
    alert_drop: float = Field(
        default=DEFAULT_ALERT_DROP,
        gt=0,
        description="company_health_alerts: a fall of the company average by at least this alerts.",
    )
    alert_window_days: int = Field(
        default=DEFAULT_ALERT_WINDOW_DAYS,
        ge=1,
        description="company_health_alerts: compare with the snapshot this many days earlier.",
    )

    def variables(self) -> dict[str, object]:
        return {
            "at_risk_threshold": self.at_risk_threshold,
            "alert_drop": self.alert_drop,
            "alert_window_days": self.alert_window_days,
        }


def planhat_resource_from_env(settings: Settings | None = None) -> PlanhatResource:
    """The token is bound through `dg.EnvVar`, so it never appears in run configuration."""
    settings = settings or read_env()
    return PlanhatResource(
        api_token=None if settings.uses_sandbox else dg.EnvVar(TOKEN_ENV_VAR),
        base_url=settings.base_url,
        tenant_uuid=settings.tenant_uuid,
        analytics_url=settings.analytics_url,
    )


def warehouse_resource_from_env(settings: Settings | None = None) -> WarehouseResource:
    settings = settings or read_env()
    return WarehouseResource(path=settings.duckdb_path, memory_limit=settings.memory_limit)


def sql_models_resource_from_env(settings: Settings | None = None) -> SqlModelsResource:
    """SqlModelsResource with the OBJECTIVES_* overrides that are set; a bad value is a ConfigError."""
    values = dict((settings or read_env()).sql_variables)
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


def alert_webhook_resource_from_env(settings: Settings | None = None) -> AlertWebhookResource:
    """The URL is bound through `dg.EnvVar`, so it never appears in run configuration."""
    url_set = (settings or read_env()).alert_webhook_url is not None
    return AlertWebhookResource(url=dg.EnvVar(ALERT_WEBHOOK_ENV_VAR) if url_set else None)


def resources_from_env(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Every resource the definitions need (planhat, warehouse, sql_models, alert_webhook),
    configured from `environ` (default: ``os.environ``). The token and the webhook URL are
    bound as `dg.EnvVar`: a run reads them from its own process environment."""
    settings = read_env(environ)
    return {
        "planhat": planhat_resource_from_env(settings),
        "warehouse": warehouse_resource_from_env(settings),
        "sql_models": sql_models_resource_from_env(settings),
        "alert_webhook": alert_webhook_resource_from_env(settings),
    }
