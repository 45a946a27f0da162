"""Reading the company-health models: a summary of the latest snapshot and the alerts.

Both read, on a read-only connection, tables the SQL models in ``dbt_like_sql/marts``
build: :func:`health_summary` from ``company_objective_health`` and
:func:`read_health_alerts` from ``company_health_alerts``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from .connection import Warehouse

__all__ = [
    "ALERT_COLUMNS",
    "WORST_COLUMNS",
    "HealthAlert",
    "HealthSummary",
    "health_summary",
    "read_health_alerts",
]

ALERT_COLUMNS = (
    "company_id",
    "company_name",
    "snapshot_date",
    "baseline_date",
    "health_before",
    "health_now",
    "health_drop",
    "dropped",
    "crossed_at_risk",
    "reason",
)
"""The columns of ``company_health_alerts``, in order."""

WORST_COLUMNS = ("company_id", "company_name", "avg_health", "objective_count", "at_risk_share")

_SUMMARY = """
SELECT count(*),
       avg(avg_health),
       count(*) FILTER (WHERE avg_health <= $threshold),
       coalesce(sum(objective_count - objectives_with_health), 0),
       max(snapshot_date)
FROM main.company_objective_health
"""

_WORST = f"""
SELECT {", ".join(WORST_COLUMNS)}
FROM main.company_objective_health
WHERE avg_health IS NOT NULL
ORDER BY avg_health, company_name, company_id
LIMIT $limit
"""


@dataclass(frozen=True)
class HealthAlert:
    """One row of ``company_health_alerts``: a company whose average health dropped."""

    company_id: str
    company_name: str | None
    snapshot_date: date
    baseline_date: date
    health_before: float
    health_now: float
    health_drop: float
    dropped: bool
    crossed_at_risk: bool
    reason: str


@dataclass(frozen=True)
class HealthSummary:
    """Figures of ``company_objective_health`` (the latest snapshot).

    Attributes:
        companies: companies in the snapshot.
        mean_avg_health: mean of the companies' ``avg_health`` (None if none has one).
        companies_at_risk: companies whose ``avg_health`` is at or below the threshold.
        objectives_without_health: objectives of those companies with no numeric health.
        snapshot_date: the snapshot (None when the table is empty).
        worst: up to ``worst`` companies with the lowest ``avg_health``,
            columns :data:`WORST_COLUMNS`.
    """

    companies: int
    mean_avg_health: float | None
    companies_at_risk: int
    objectives_without_health: int
    snapshot_date: date | None
    worst: list[dict[str, Any]] = field(default_factory=list)


def health_summary(
    warehouse: Warehouse, at_risk_threshold: float, worst: int = 10
) -> HealthSummary:
    """Summarise ``company_objective_health``, which must exist."""
    with warehouse.connect(read_only=True) as con:
        row = con.execute(_SUMMARY, {"threshold": at_risk_threshold}).fetchone()
        assert row is not None
        cursor = con.execute(_WORST, {"limit": worst})
        rows = [dict(zip(WORST_COLUMNS, r, strict=True)) for r in cursor.fetchall()]
    companies, mean, at_risk, without_health, snapshot = row
    return HealthSummary(
        companies=int(companies),
        mean_avg_health=None if mean is None else float(mean),
        companies_at_risk=int(at_risk),
        objectives_without_health=int(without_health),
        snapshot_date=snapshot,
        worst=rows,
    )


def read_health_alerts(warehouse: Warehouse) -> list[HealthAlert]:
    """Every row of ``company_health_alerts`` (which must exist), biggest drop first."""
    with warehouse.connect(read_only=True) as con:
        rows = con.execute(
            f"SELECT {', '.join(ALERT_COLUMNS)} FROM main.company_health_alerts "
            "ORDER BY health_drop DESC, company_id"
        ).fetchall()
    return [HealthAlert(*row) for row in rows]
