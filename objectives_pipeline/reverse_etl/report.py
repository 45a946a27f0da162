"""What one push did: counts, the failure policy's verdict, and words a user can act on."""

from __future__ import annotations

from dataclasses import dataclass, field

from .audit import SCHEMA

PREVIEW_ROWS = 20


@dataclass(frozen=True)
class PushPolicy:
    """When a push counts as failed.

    `max_failed_share`: share of the rows to send that may fail or stay unsent (default:
    none). `max_rejected_share`: share of the rows read that validation may reject.
    A push that had to stop (e.g. Planhat refused the token) always fails.
    """

    max_failed_share: float = 0.0
    max_rejected_share: float = 0.1

    def __post_init__(self) -> None:
        for name in ("max_failed_share", "max_rejected_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value!r}")


@dataclass(frozen=True)
class ProblemRow:
    """One row of the error preview."""

    row_number: int
    key: str
    outcome: str
    error: str


@dataclass
class PushReport:
    """Counts of one push; `ok` applies the policy. Also written to reverse_etl.push_runs."""

    run_id: str
    target: str
    source: str
    dry_run: bool
    full_push: bool
    policy: PushPolicy
    rows_read: int = 0
    rejected: int = 0
    unchanged: int = 0
    to_send: int = 0
    sent: int = 0
    created: int = 0
    updated: int = 0
    unmodified: int = 0
    failed: int = 0
    not_sent: int = 0
    would_create: int = 0
    would_update: int = 0
    requests: int = 0
    batches: int = 0
    seconds: float = 0.0
    stopped: str | None = None
    problems: list[ProblemRow] = field(default_factory=list)

    COUNTS = (
        "rows_read", "rejected", "unchanged", "to_send", "sent", "created", "updated",
        "unmodified", "failed", "not_sent", "would_create", "would_update", "requests", "batches",
    )  # fmt: skip

    def counts(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in self.COUNTS}

    @property
    def failed_share(self) -> float:
        return (self.failed + self.not_sent) / self.to_send if self.to_send else 0.0

    @property
    def rejected_share(self) -> float:
        return self.rejected / self.rows_read if self.rows_read else 0.0

    @property
    def violations(self) -> list[str]:
        """Why the policy fails this push; empty when it passes."""
        found = []
        if self.stopped:
            found.append(
                f"{self.stopped} The {self.failed + self.not_sent} rows that did not succeed: "
                f"{self.failed_rows_query}."
            )
        elif self.failed_share > self.policy.max_failed_share:
            cause = (
                "Planhat refused them for lack of permission: give the token's private app "
                "write access to objectives (or use a token that has it)"
                if self.problems and all(_is_permission(p) for p in self.problems)
                else "Fix the cause shown in the errors"
            )
            found.append(
                f"{self.failed + self.not_sent} of {self.to_send} rows to send did not succeed "
                f"({self.failed} failed, {self.not_sent} not sent; {self.failed_share:.1%}, "
                f"max_failed_share allows {self.policy.max_failed_share:.1%}). Find them with "
                f"{self.failed_rows_query}. {cause} and run push_objectives_to_planhat "
                "again: only rows that did not succeed are sent."
            )
        if self.rejected_share > self.policy.max_rejected_share:
            found.append(
                f"{self.rejected} of {self.rows_read} source rows were rejected before sending "
                f"({self.rejected_share:.1%}, max_rejected_share allows "
                f"{self.policy.max_rejected_share:.1%}). Find them with {self.rejected_rows_query}"
                f", fix them in {self.source} (or the model behind it) and run again."
            )
        return found

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def status(self) -> str:
        return "succeeded" if self.ok else "failed"

    @property
    def failed_rows_query(self) -> str:
        return (
            f"SELECT * FROM {SCHEMA}.push_results WHERE run_id = '{self.run_id}' "
            "AND outcome IN ('failed', 'not_sent')"
        )

    @property
    def rejected_rows_query(self) -> str:
        return f"SELECT * FROM {SCHEMA}.rejected_rows WHERE run_id = '{self.run_id}'"

    def summary(self) -> str:
        """One paragraph: what happened, and for a failed push what to do."""
        mode = "Dry run: would push" if self.dry_run else "Pushed"
        what = (
            f"{self.would_create} would be created, {self.would_update} would be updated"
            if self.dry_run
            else f"{self.created} created, {self.updated} updated, {self.unmodified} unmodified, "
            f"{self.failed} failed, {self.not_sent} not sent"
        )
        head = (
            f"{mode} {self.source} to {self.target}: {self.rows_read} rows read, "
            f"{self.unchanged} unchanged, {self.rejected} rejected, {self.to_send} to send in "
            f"{self.batches} batch(es), {self.requests} request(s); {what}."
        )
        violations = self.violations
        return head if not violations else head + " FAILED: " + " ".join(violations)

    def problems_markdown(self) -> str:
        if not self.problems:
            return "_no errors_"
        lines = ["| row | key | outcome | error |", "|---|---|---|---|"]
        for p in self.problems[:PREVIEW_ROWS]:
            cells = [str(p.row_number), p.key, p.outcome, p.error]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        more = self.failed + self.not_sent + self.rejected - len(self.problems[:PREVIEW_ROWS])
        if more > 0:
            lines.append(f"\n…and {more} more: {self.failed_rows_query}; {self.rejected_rows_query}")
        return "\n".join(lines)


def _is_permission(problem: ProblemRow) -> bool:
    return problem.outcome == "failed" and problem.error.startswith("permission denied")


def _cell(text: str) -> str:
    flat = text.replace("|", "\\|").replace("\n", " ")
    return flat if len(flat) <= 160 else flat[:157] + "..."
