"""`push_objectives`: one reverse-ETL run from a DuckDB relation into Planhat.

1. Short read-write connection: create the audit tables, record the run as
   ``running``, diff the source against ``push_state`` in DuckDB; close.
2. Validate the changed rows (pydantic); record the rejected ones.
3. Send the valid rows in batches of at most `batch_size`, one after another. After
   each batch, a short connection records its per-row outcomes and, for the rows
   Planhat confirmed, the new state. A crash loses at most the batch in flight, and
   the next run resends exactly the rows not confirmed.
4. Record the counts and the verdict of the `PushPolicy` in ``push_runs``.

Planhat refusing the token (401/403) stops the push: the rest is recorded as
``not_sent``. A batch that still fails after the client's retries (5xx, timeouts,
429) also stops it: that batch is ``failed`` (it may have been partly applied; items
are matched by key, so resending it creates no duplicates), the rest ``not_sent``.
A 400 fails only its batch. Rows Planhat refuses in a 206 are ``failed`` with its error.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from objectives_pipeline.planhat import (
    MAX_BULK_BATCH,
    AuthError,
    BadRequestError,
    PlanhatClient,
    PlanhatError,
)
from objectives_pipeline.settings import DEFAULT_BATCH_SIZE

from . import audit
from .audit import Rejection, RowOutcome
from .diff import Candidate, PushPlan, plan_push
from .outcomes import OutgoingRow, all_failed, all_not_sent, dry_run, match_batch
from .report import PREVIEW_ROWS, ProblemRow, PushPolicy, PushReport
from .source import SourceRelation, describe_source
from .validation import PushRow, validate_row

if TYPE_CHECKING:
    from objectives_pipeline.warehouse import Warehouse



class PushLog(Protocol):
    def info(self, msg: str) -> None: ...

    def warning(self, msg: str) -> None: ...
#: Planhat's largest bulk request.
MAX_BATCH_SIZE = MAX_BULK_BATCH


@dataclass(frozen=True)
class PushOptions:
    """What to push and how. `source` is a table or view name (validated, then quoted)."""

    source: str = "objectives_to_push"
    batch_size: int = DEFAULT_BATCH_SIZE
    dry_run: bool = False
    full_push: bool = False
    allow_create_without_key: bool = False
    policy: PushPolicy = field(default_factory=PushPolicy)

    def __post_init__(self) -> None:
        if isinstance(self.batch_size, bool) or not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(
                f"batch_size must be from 1 to {MAX_BATCH_SIZE} (Planhat rejects larger bulk "
                f"requests), got {self.batch_size!r}"
            )


def push_objectives(
    warehouse: Warehouse,
    connect_planhat: Callable[[], PlanhatClient],
    options: PushOptions,
    *,
    target: str,
    run_id: str | None = None,
    log: PushLog | None = None,
) -> PushReport:
    """Push the changed rows of `options.source` to Planhat; record everything.

    `target` names the Planhat tenant (e.g. its base URL; never the token): the push
    state is kept per target. `connect_planhat` is called only when there is
    something to send. Returns the report whatever the rows' outcomes; raises only
    for a source that cannot be read (`SourceError`) and for warehouse errors.
    """
    relation = SourceRelation(options.source)
    report = PushReport(
        run_id=run_id or uuid.uuid4().hex,
        target=target,
        source=relation.name,
        dry_run=options.dry_run,
        full_push=options.full_push,
        policy=options.policy,
    )
    run = _Run(warehouse, report, log)
    started = time.perf_counter()
    try:
        plan = run.read(relation, full_push=options.full_push)
        outgoing = run.validate(plan, options.allow_create_without_key)
        batches = [
            outgoing[i : i + options.batch_size]
            for i in range(0, len(outgoing), options.batch_size)
        ]
        report.batches = len(batches)
        if options.dry_run:
            run.record([o for i, b in enumerate(batches) for o in dry_run(b, i)], state=False)
        elif batches:
            run.send(connect_planhat, batches)
    except Exception as exc:
        report.seconds = time.perf_counter() - started
        try:
            run.finish(status="failed", message=f"{type(exc).__name__}: {exc}")
        except Exception as finish_error:
            exc.add_note(f"The push run could not be marked failed in push_runs: {finish_error}")
        raise
    report.seconds = time.perf_counter() - started
    run.finish(status=report.status, message=report.summary())
    return report


class _Run:
    """The steps of one push, sharing its report."""

    def __init__(self, warehouse: Warehouse, report: PushReport, log: PushLog | None) -> None:
        self.warehouse = warehouse
        self.report = report
        self.log = log
        self.started = False

    def read(self, relation: SourceRelation, *, full_push: bool) -> PushPlan:
        report = self.report
        with self.warehouse.connect() as con:
            audit.ensure_audit_tables(con)
            audit.start_run(
                con,
                run_id=report.run_id,
                target=report.target,
                source=report.source,
                dry_run=report.dry_run,
                full_push=full_push,
            )
            self.started = True
            plan = plan_push(
                con, relation, describe_source(con, relation), target=report.target,
                full_push=full_push,
            )
        report.rows_read, report.unchanged = plan.rows_read, plan.unchanged
        if not plan.rows_read:
            self._warning(f"{relation.name} has no rows: nothing to push.")
        self._info(
            f"Read {plan.rows_read} rows from {relation.name}: {plan.unchanged} unchanged since "
            f"the last confirmed push, {len(plan.candidates)} to validate"
        )
        return plan

    def validate(self, plan: PushPlan, allow_create_without_key: bool) -> list[OutgoingRow]:
        outgoing: list[OutgoingRow] = []
        rejections: list[Rejection] = []
        for candidate in plan.candidates:
            result = (
                _duplicate_reason(candidate)
                if candidate.key_rows > 1
                else validate_row(candidate.row, allow_create_without_key=allow_create_without_key)
            )
            if isinstance(result, PushRow):
                outgoing.append(
                    OutgoingRow(
                        row_number=candidate.row_number,
                        push_key=candidate.push_key,
                        payload_hash=candidate.payload_hash,
                        known_id=candidate.known_id,
                        payload=result.payload(plan.fields),
                    )
                )
            else:
                rejections.append(
                    Rejection(candidate.row_number, candidate.push_key, result, candidate.row)
                )
        report = self.report
        report.rejected, report.to_send = len(rejections), len(outgoing)
        if rejections:
            with self.warehouse.connect() as con:
                audit.record_rejections(con, report.run_id, rejections)
            self._warning(
                f"Rejected {len(rejections)} rows before sending, e.g. row "
                f"{rejections[0].row_number}: {rejections[0].reason}. All of them: "
                f"{report.rejected_rows_query}"
            )
            self._preview(
                ProblemRow(r.row_number, _key_text(r.push_key), "rejected", r.reason)
                for r in rejections
            )
        return outgoing

    def send(
        self, connect_planhat: Callable[[], PlanhatClient], batches: Sequence[list[OutgoingRow]]
    ) -> None:
        report = self.report
        with connect_planhat() as client:
            try:
                for index, batch in enumerate(batches):
                    if not self._send_batch(client, index, batch, len(batches)):
                        rest = [row for later in batches[index + 1 :] for row in later]
                        self.record(
                            all_not_sent(rest, None, f"not sent: {report.stopped}"), state=True
                        )
                        break
            finally:
                report.requests = client.stats.requests

    def _send_batch(
        self, client: PlanhatClient, index: int, batch: list[OutgoingRow], total: int
    ) -> bool:
        """Send one batch and record it; False when the push must stop."""
        report = self.report
        label = f"batch {index + 1} of {total} ({len(batch)} rows)"
        try:
            result = client.bulk_upsert([row.payload for row in batch], batch_size=len(batch))
        except AuthError as exc:
            problem = (
                "Planhat refused the token" if exc.status == 401
                else "The token is not allowed to write objectives"
            )
            report.stopped = (
                f"{problem} (HTTP {exc.status}) at {label}; {report.sent} rows were sent "
                "before. Set a valid PLANHAT_API_TOKEN (a private-app token allowed to write "
                "objectives) and run push_objectives_to_planhat again: only rows that did not "
                "succeed are sent."
            )
            self.record(all_not_sent(batch, index, f"not sent: {exc}"), state=True)
            return False
        except BadRequestError as exc:
            report.sent += len(batch)
            self._warning(f"Planhat rejected {label} as a bad request: {exc}")
            self.record(all_failed(batch, index, f"batch rejected: {exc}"), state=True)
            return True
        except PlanhatError as exc:
            report.sent += len(batch)
            report.stopped = (
                f"{label} failed after the client's retries: {exc}. It may have been partly "
                "applied; every item carries a key, so running push_objectives_to_planhat "
                "again resends it without creating duplicates. Check Planhat's status or the "
                "network first if this repeats."
            )
            self.record(
                all_failed(batch, index, f"outcome unknown, may be partly applied: {exc}"),
                state=True,
            )
            return False
        report.sent += len(batch)
        outcomes = match_batch(batch, result, index)
        self.record(outcomes, state=True)
        failed = sum(1 for o in outcomes if o.outcome == "failed")
        self._info(
            f"Sent {label}: HTTP {result.requests[0].status if result.requests else '?'}, "
            f"{result.created} created, {result.updated} updated, {result.nonupdates} "
            f"unmodified, {failed} failed"
        )
        return True

    def record(self, outcomes: list[RowOutcome], *, state: bool) -> None:
        if not outcomes:
            return
        report = self.report
        with self.warehouse.connect() as con:
            audit.record_outcomes(con, report.run_id, report.target, outcomes, update_state=state)
        for name, count in Counter(o.outcome for o in outcomes).items():
            setattr(report, name, getattr(report, name) + count)
        self._preview(
            ProblemRow(o.row_number, _key_text(o.push_key), o.outcome, o.error or "")
            for o in outcomes
            if o.outcome in audit.FAILURE_OUTCOMES
        )

    def finish(self, *, status: str, message: str) -> None:
        if not self.started:
            return
        with self.warehouse.connect() as con:
            audit.finish_run(con, self.report.run_id, status, self.report.counts(), message)

    def _preview(self, rows: Iterable[ProblemRow]) -> None:
        problems = self.report.problems
        for row in rows:
            if len(problems) >= PREVIEW_ROWS:
                return
            problems.append(row)

    def _info(self, message: str) -> None:
        if self.log is not None:
            self.log.info(message)

    def _warning(self, message: str) -> None:
        if self.log is not None:
            self.log.warning(message)


def _duplicate_reason(candidate: Candidate) -> str:
    keys = ", ".join(
        f"{name} {value}"
        for name, value in (
            ("sourceId", candidate.row.get("source_id")),
            ("externalId", candidate.row.get("external_id")),
        )
        if value is not None and str(value).strip()
    )
    return (
        f"duplicate key: {candidate.key_rows} source rows share a key with this one "
        f"({keys or _key_text(candidate.push_key)}); Planhat would match them to one "
        "objective and apply only one of them, so none is sent"
    )


def _key_text(push_key: str | None) -> str:
    if not push_key:
        return ""
    kind, _, value = push_key.partition(":")
    return f"{kind} {value}" if kind != "row" else "(no key)"
