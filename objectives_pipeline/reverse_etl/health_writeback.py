"""Writing each company's average objective health back into Planhat.

For one snapshot date, every company of ``company_objective_health_daily`` with an
``avg_health`` gets

* a number custom field (``PUT /companies``, keyed by ``_id``): ``avg_health`` rounded to
  2 decimals, and optionally a second field with ``at_risk_share`` as a percentage
  (0-100, 1 decimal);
* optionally the custom metric `dimension_id` for that date (``POST /dimensiondata``),
  which needs the company's externalId (read with one ``GET /leancompanies``). A company
  without one is recorded as ``skipped`` in ``reverse_etl.push_results``.

Only values that changed since Planhat last confirmed them are sent: the push's
``reverse_etl.push_state`` holds their hashes, under the targets
``<target>#company_health_field`` and ``<target>#company_health_metric:<dimension>``.
Every run is a row of ``reverse_etl.push_runs`` (the metric part under
``<run_id>:metric``), every value sent a row of ``push_results``.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from objectives_pipeline.planhat import (
    AuthError,
    BulkUpsertResult,
    ConfigError,
    MetricItem,
    MetricsResult,
    PlanhatClient,
    PlanhatError,
)

from . import audit
from .audit import RowOutcome
from .errors import SourceError
from .health_report import DEFAULT_DIMENSION, DEFAULT_FIELD, WritebackOptions, WritebackReport
from .outcomes import OutgoingRow, all_failed, all_not_sent
from .push import PushLog
from .report import PREVIEW_ROWS, ProblemRow

__all__ = [
    "DEFAULT_DIMENSION",
    "DEFAULT_FIELD",
    "SOURCE_TABLE",
    "WritebackOptions",
    "WritebackReport",
    "match_companies",
    "match_metrics",
    "read_health",
    "write_health_back",
]

if TYPE_CHECKING:
    import duckdb

    from objectives_pipeline.warehouse import Warehouse

SOURCE_TABLE = "company_objective_health_daily"
NO_EXTERNAL_ID = (
    "skipped: the company has no externalId in Planhat, and custom metrics are matched on it; "
    "set one in Planhat (the custom field was still written)"
)


@dataclass(frozen=True)
class CompanyHealth:
    """One company's values for the date, as written."""

    row_number: int
    company_id: str
    avg_health: float
    at_risk_percent: float | None


def read_health(con: duckdb.DuckDBPyConnection, day: date) -> tuple[list[CompanyHealth], int]:
    """The companies with an avg_health on `day`, and how many have none; `SourceError`
    when the table or the date is missing."""
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [SOURCE_TABLE]
    ).fetchone()
    if not found or not found[0]:
        raise SourceError(
            f"{SOURCE_TABLE} does not exist: run objectives_elt for {day} first (it builds the "
            "health models the write-back reads)"
        )
    rows = con.execute(
        f"SELECT company_id, avg_health, at_risk_share FROM {SOURCE_TABLE} "
        "WHERE snapshot_date = ? ORDER BY company_id",
        [day],
    ).fetchall()
    if not rows:
        latest = con.execute(f"SELECT max(snapshot_date) FROM {SOURCE_TABLE}").fetchone()
        raise SourceError(
            f"{SOURCE_TABLE} has no rows for {day} (latest: {latest[0] if latest else None}): "
            f"run objectives_elt for {day} first, or write back a date that has a snapshot"
        )
    health = [
        CompanyHealth(
            row_number=n,
            company_id=str(company_id),
            avg_health=round(float(avg), 2),
            at_risk_percent=None if share is None else round(float(share) * 100, 1),
        )
        for n, (company_id, avg, share) in enumerate(rows, start=1)
        if avg is not None
    ]
    return health, len(rows) - len(health)


def write_health_back(
    warehouse: Warehouse,
    connect_planhat: Callable[[], PlanhatClient],
    options: WritebackOptions,
    *,
    target: str,
    run_id: str | None = None,
    log: PushLog | None = None,
) -> WritebackReport:
    """Write the changed values of `options.snapshot_date` to Planhat; record everything.

    `connect_planhat` is called only when something changed. Raises `SourceError`
    when the date has no health rows, and warehouse errors; Planhat's errors are
    recorded per company and judged by `options.policy` (`WritebackReport.ok`).
    """
    report = WritebackReport(
        run_id=run_id or uuid.uuid4().hex,
        target=target,
        snapshot_date=options.snapshot_date,
        policy=options.policy,
    )
    run = _Writeback(warehouse, report, options, log)
    started = time.perf_counter()
    fields, metrics = run.plan()
    if fields or metrics:
        with connect_planhat() as client:
            try:
                run.send_fields(client, fields)
                if metrics:
                    run.send_metrics(client, metrics)
            finally:
                report.requests = client.stats.requests
    report.seconds = time.perf_counter() - started
    run.finish()
    return report


class _Writeback:
    def __init__(
        self,
        warehouse: Warehouse,
        report: WritebackReport,
        options: WritebackOptions,
        log: PushLog | None,
    ) -> None:
        self.warehouse = warehouse
        self.report = report
        self.options = options
        self.log = log
        self.field_target = f"{report.target}#company_health_field"
        self.metric_target = f"{report.target}#company_health_metric:{options.dimension_id}"
        self.metric_run = f"{report.run_id}:metric"

    def plan(self) -> tuple[list[OutgoingRow], list[OutgoingRow]]:
        """The field and metric rows whose values changed since Planhat last confirmed them."""
        report, options = self.report, self.options
        day = options.snapshot_date.isoformat()
        with self.warehouse.connect() as con:
            audit.ensure_audit_tables(con)
            health, report.companies_without_health = read_health(con, options.snapshot_date)
            fields = [_row(h, f"company:{h.company_id}", self._field_payload(h)) for h in health]
            metrics = [
                _row(h, f"company:{h.company_id}:{day}", self._metric_payload(h))
                for h in health
                if options.push_metric
            ]
            fields = self._changed(con, self.field_target, fields, "companies_unchanged")
            metrics = self._changed(con, self.metric_target, metrics, "metrics_unchanged")
            source = f"{SOURCE_TABLE}@{day}"
            for run_id, target in (
                (report.run_id, self.field_target),
                (self.metric_run, self.metric_target),
            ):
                audit.start_run(
                    con, run_id=run_id, target=target, source=source, dry_run=False,
                    full_push=options.full_write,
                )  # fmt: skip
        report.companies_considered = len(health)
        self._info(
            f"{len(health)} companies have a health on {day}: {len(fields)} field values and "
            f"{len(metrics)} metric values changed since Planhat last confirmed them"
        )
        return fields, metrics

    def send_fields(self, client: PlanhatClient, rows: list[OutgoingRow]) -> None:
        size = self.options.batch_size
        batches = [rows[i : i + size] for i in range(0, len(rows), size)]
        for index, batch in enumerate(batches):
            self.report.companies_sent += len(batch)
            try:
                result = client.bulk_upsert_companies(
                    [row.payload for row in batch], batch_size=len(batch)
                )
            except PlanhatError as exc:
                rest = [row for later in batches[index + 1 :] for row in later]
                self._stop(f"Writing the custom field failed at batch {index + 1}: {exc}.")
                outcome = all_not_sent if isinstance(exc, AuthError) else all_failed
                self._record(self.field_target, outcome(batch, index, str(exc)))
                self._record(self.field_target, all_not_sent(rest, None, "not sent: stopped"))
                return
            self._record(self.field_target, match_companies(batch, result, index))

    def send_metrics(self, client: PlanhatClient, rows: list[OutgoingRow]) -> None:
        if self.report.stopped:
            self._record(self.metric_target, all_not_sent(rows, None, "not sent: stopped"))
            return
        try:
            external = {c.id: c.external_id for c in client.list_lean_companies()}
        except PlanhatError as exc:
            self._stop(f"Reading the companies' externalIds failed: {exc}.")
            self._record(self.metric_target, all_not_sent(rows, None, str(exc)))
            return
        sendable: list[OutgoingRow] = []
        skipped: list[RowOutcome] = []
        for row in rows:
            external_id = external.get(row.payload["companyId"])
            if not external_id:
                skipped.append(row.outcome("skipped", batch=None, error=NO_EXTERNAL_ID))
                continue
            payload = {k: v for k, v in row.payload.items() if k != "companyId"}
            sendable.append(
                OutgoingRow(row.row_number, row.push_key, row.payload_hash, row.known_id,
                            {**payload, "externalId": external_id})
            )  # fmt: skip
        self.report.skipped_for_metrics = len(skipped)
        self._record(self.metric_target, skipped)
        if not sendable:
            return
        self.report.metrics_sent = len(sendable)
        try:
            result = client.push_metrics(
                [MetricItem.model_validate(row.payload) for row in sendable]
            )
        except (PlanhatError, ConfigError) as exc:
            self._stop(f"Sending the custom metric failed: {exc}.")
            self._record(self.metric_target, all_failed(sendable, 0, str(exc)))
            return
        self._record(self.metric_target, match_metrics(sendable, result))

    def finish(self) -> None:
        report = self.report
        status = "succeeded" if report.ok else "failed"
        field_counts = {
            "rows_read": report.companies_considered,
            "unchanged": report.companies_unchanged,
            "to_send": report.companies_sent,
            "sent": report.companies_sent,
            "updated": report.companies_updated,
            "unmodified": report.companies_unmodified,
            "failed": report.companies_failed,
            "requests": report.requests,
        }
        metric_counts = {
            "rows_read": report.companies_considered if self.options.push_metric else 0,
            "unchanged": report.metrics_unchanged,
            "rejected": report.skipped_for_metrics,
            "to_send": report.metrics_sent,
            "sent": report.metrics_sent,
            "created": report.metrics_processed,
            "failed": report.metrics_failed,
        }
        with self.warehouse.connect() as con:
            audit.finish_run(con, report.run_id, status, field_counts, report.summary())
            audit.finish_run(con, self.metric_run, status, metric_counts, report.summary())

    def _field_payload(self, health: CompanyHealth) -> dict[str, Any]:
        custom: dict[str, Any] = {self.options.field_name: health.avg_health}
        if self.options.at_risk_field:
            custom[self.options.at_risk_field] = health.at_risk_percent
        return {"_id": health.company_id, "custom": custom}

    def _metric_payload(self, health: CompanyHealth) -> dict[str, Any]:
        return {
            "dimensionId": self.options.dimension_id,
            "value": health.avg_health,
            "companyId": health.company_id,
            "model": "Company",
            "date": self.options.snapshot_date.isoformat(),
        }

    def _changed(
        self,
        con: duckdb.DuckDBPyConnection,
        target: str,
        rows: list[OutgoingRow],
        counter: str,
    ) -> list[OutgoingRow]:
        if not rows:
            return rows
        state = dict(
            con.execute(
                f"SELECT push_key, payload_hash FROM {audit.SCHEMA}.push_state WHERE target = ?",
                [target],
            ).fetchall()
        )
        changed = [
            row for row in rows
            if self.options.full_write or state.get(row.push_key) != row.payload_hash
        ]  # fmt: skip
        setattr(self.report, counter, len(rows) - len(changed))
        return changed

    def _record(self, target: str, outcomes: Sequence[RowOutcome]) -> None:
        if not outcomes:
            return
        report = self.report
        run_id = report.run_id if target == self.field_target else self.metric_run
        with self.warehouse.connect() as con:
            audit.record_outcomes(con, run_id, target, outcomes, update_state=True)
        failed = sum(1 for o in outcomes if o.outcome in audit.FAILURE_OUTCOMES)
        if target == self.field_target:
            report.companies_failed += failed
            report.companies_updated += sum(1 for o in outcomes if o.outcome == "updated")
            report.companies_unmodified += sum(1 for o in outcomes if o.outcome == "unmodified")
        else:
            report.metrics_failed += failed
            report.metrics_processed += sum(1 for o in outcomes if o.outcome == "created")
        for o in outcomes:
            if o.outcome in (*audit.FAILURE_OUTCOMES, "skipped") and len(report.problems) < (
                PREVIEW_ROWS
            ):
                report.problems.append(
                    ProblemRow(o.row_number, o.push_key, o.outcome, o.error or "")
                )
        if failed and self.log is not None:
            first = next(o for o in outcomes if o.outcome in audit.FAILURE_OUTCOMES)
            self.log.warning(f"{failed} values failed, e.g. {first.push_key}: {first.error}")

    def _stop(self, message: str) -> None:
        self.report.stopped = self.report.stopped or message

    def _info(self, message: str) -> None:
        if self.log is not None:
            self.log.info(message)


def match_companies(
    rows: Sequence[OutgoingRow], result: BulkUpsertResult, batch: int
) -> list[RowOutcome]:
    """One outcome per company of a ``PUT /companies`` batch keyed by ``_id``.

    Errors are tied to companies by position or ``_id``; when Planhat reports an error it
    ties to no company, the outcome of every company not confirmed is unknown: failed.
    """
    position = {row.known_id: n for n, row in enumerate(rows)}
    errors: dict[int, str] = {}
    unlocated: list[str] = []
    for error in result.errors:
        where = error.item_index if error.item_index is not None else position.get(error.id)
        text = f"{error.kind} error: {error.message}"
        if where is None or not 0 <= where < len(rows):
            unlocated.append(text)
        else:
            errors[where] = f"{errors[where]}; {text}" if where in errors else text
    updated = {str(keys.get("_id")) for keys in result.updates_keys}
    updated.update(str(i) for i in result.modified)
    outcomes = []
    for n, row in enumerate(rows):
        if n in errors:
            outcomes.append(row.outcome("failed", batch=batch, error=errors[n]))
        elif row.known_id in updated:
            outcomes.append(row.outcome("updated", batch=batch, planhat_id=row.known_id))
        elif unlocated:
            detail = "outcome unknown: " + "; ".join(unlocated[:3])
            outcomes.append(row.outcome("failed", batch=batch, error=detail))
        else:
            outcomes.append(row.outcome("unmodified", batch=batch, planhat_id=row.known_id))
    return outcomes


def match_metrics(rows: Sequence[OutgoingRow], result: MetricsResult) -> list[RowOutcome]:
    """One outcome per metric value sent: ``created`` (processed) or ``failed``.

    When Planhat processed fewer items than it reports errors for by position, the
    values it does not name are counted failed too (their outcome is unknown).
    """
    errors: dict[int, str] = {}
    unlocated: list[str] = []
    for error in result.errors:
        if error.item_index is None:
            unlocated.append(error.message)
        else:
            errors[error.item_index] = error.message
    unknown = bool(unlocated) or result.processed + len(errors) < len(rows)
    outcomes = []
    for n, row in enumerate(rows):
        if n in errors:
            outcomes.append(row.outcome("failed", batch=0, error=errors[n]))
        elif unknown:
            detail = "; ".join(unlocated[:3]) or f"Planhat processed {result.processed}"
            outcomes.append(row.outcome("failed", batch=0, error=f"outcome unknown: {detail}"))
        else:
            outcomes.append(row.outcome("created", batch=0, planhat_id=row.known_id))
    return outcomes


def _row(health: CompanyHealth, push_key: str, payload: dict[str, Any]) -> OutgoingRow:
    digest = hashlib.md5(json.dumps(payload, sort_keys=True).encode(), usedforsecurity=False)
    return OutgoingRow(
        row_number=health.row_number,
        push_key=push_key,
        payload_hash=digest.hexdigest(),
        known_id=health.company_id,
        payload=payload,
    )
