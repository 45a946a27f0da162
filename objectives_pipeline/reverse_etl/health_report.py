"""Options and report of the health write-back (see `health_writeback`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from objectives_pipeline.planhat.metrics import check_dimension_id
from objectives_pipeline.settings import DEFAULT_BATCH_SIZE

from . import audit
from .push import MAX_BATCH_SIZE
from .report import ProblemRow, PushPolicy

DEFAULT_FIELD = "Avg objective health"
DEFAULT_DIMENSION = "avg_objective_health"


@dataclass(frozen=True)
class WritebackOptions:
    """What to write for which snapshot date."""

    snapshot_date: date
    field_name: str = DEFAULT_FIELD
    at_risk_field: str | None = None
    push_metric: bool = True
    dimension_id: str = DEFAULT_DIMENSION
    full_write: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    policy: PushPolicy = field(default_factory=PushPolicy)

    def __post_init__(self) -> None:
        if not self.field_name.strip():
            raise ValueError("field_name must name a number custom field of companies in Planhat")
        if self.at_risk_field is not None and self.at_risk_field.strip() in ("", self.field_name):
            raise ValueError("at_risk_field must be a different, non-empty field name, or None")
        check_dimension_id(self.dimension_id)
        if isinstance(self.batch_size, bool) or not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be from 1 to {MAX_BATCH_SIZE}")


@dataclass
class WritebackReport:
    """Counts of one write-back; `ok` applies the push's failure policy."""

    run_id: str
    target: str
    snapshot_date: date
    policy: PushPolicy
    companies_considered: int = 0
    companies_without_health: int = 0
    companies_unchanged: int = 0
    companies_sent: int = 0
    companies_updated: int = 0
    companies_unmodified: int = 0
    companies_failed: int = 0
    metrics_unchanged: int = 0
    metrics_sent: int = 0
    metrics_processed: int = 0
    metrics_failed: int = 0
    skipped_for_metrics: int = 0
    requests: int = 0
    seconds: float = 0.0
    stopped: str | None = None
    problems: list[ProblemRow] = field(default_factory=list)

    @property
    def failed_share(self) -> float:
        sent = self.companies_sent + self.metrics_sent
        return (self.companies_failed + self.metrics_failed) / sent if sent else 0.0

    @property
    def ok(self) -> bool:
        return self.stopped is None and self.failed_share <= self.policy.max_failed_share

    @property
    def failed_rows_query(self) -> str:
        return (
            f"SELECT * FROM {audit.SCHEMA}.push_results WHERE run_id IN ('{self.run_id}', "
            f"'{self.run_id}:metric') AND outcome IN ('failed', 'not_sent', 'skipped')"
        )

    def summary(self) -> str:
        head = (
            f"Health write-back for {self.snapshot_date} to {self.target}: "
            f"{self.companies_considered} companies with a health, {self.companies_unchanged} "
            f"unchanged, {self.companies_sent} sent ({self.companies_updated} updated, "
            f"{self.companies_unmodified} unmodified, {self.companies_failed} failed); metric: "
            f"{self.metrics_sent} sent, {self.metrics_unchanged} unchanged, "
            f"{self.metrics_failed} failed, {self.skipped_for_metrics} skipped (no externalId); "
            f"{self.requests} request(s)."
        )
        if self.ok:
            return head
        if self.stopped:
            return f"{head} FAILED: {self.stopped} Details: {self.failed_rows_query}"
        return (
            f"{head} FAILED: {self.failed_share:.1%} of the values sent failed, "
            f"max_failed_share allows {self.policy.max_failed_share:.1%}. Find them with "
            f"{self.failed_rows_query}; fix the cause and run again: only values Planhat has "
            "not confirmed are sent."
        )

    def metadata(self) -> dict[str, Any]:
        """The counts for run metadata."""
        return {
            "snapshot_date": self.snapshot_date.isoformat(),
            "companies_considered": self.companies_considered,
            "companies_without_health": self.companies_without_health,
            "companies_sent": self.companies_sent,
            "companies_unchanged": self.companies_unchanged,
            "companies_failed": self.companies_failed,
            "metrics_sent": self.metrics_sent,
            "metrics_unchanged": self.metrics_unchanged,
            "metrics_failed": self.metrics_failed,
            "skipped_for_metrics": self.skipped_for_metrics,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "failed_rows_query": self.failed_rows_query,
        }
