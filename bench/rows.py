"""Measurements as the parent saw them, and their summary per implementation and scenario."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .worker import Outcome, Phase

MIB = 2**20
GIB = 2**30


@dataclass
class Measurement:
    """One worker run as the parent saw it."""

    scenario: str = ""
    label: str = ""
    round: int = 0
    seconds: float = 0.0
    records: int = 0
    expected_records: int | None = None
    requests: int | None = None
    """Counted at the sandbox (API routes only), 429s included."""
    throttled: int | None = None
    """Requests the sandbox answered 429."""
    survivors: int | None = None
    """Objectives that existed for the whole run (churn), when checked."""
    client_requests: int | None = None
    peak_rss_bytes: int = 0
    rss_before_bytes: int = 0
    phases: list[Phase] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    problem: str | None = None
    """What the parent found wrong with what the run loaded (e.g. survivors missing)."""

    @classmethod
    def from_outcome(cls, outcome: Outcome) -> Measurement:
        return cls(
            seconds=outcome.seconds,
            records=outcome.records,
            client_requests=outcome.client_requests,
            peak_rss_bytes=outcome.peak_rss_bytes,
            rss_before_bytes=outcome.rss_before_bytes,
            phases=list(outcome.phases),
            details=dict(outcome.details),
            error=outcome.error,
        )

    @property
    def verified(self) -> bool:
        return (
            self.error is None
            and self.problem is None
            and (self.expected_records is None or self.records == self.expected_records)
        )

    @property
    def accepted_requests(self) -> int | None:
        """Requests the sandbox served (not 429)."""
        if self.requests is None:
            return None
        return self.requests - (self.throttled or 0)


@dataclass(frozen=True)
class Row:
    """One implementation in one scenario, summarised over its rounds."""

    scenario: str
    label: str
    runs: int
    seconds: float | None
    records: int | None
    expected_records: int | None
    requests: int | None
    peak_rss_bytes: int | None
    verified: bool
    errors: tuple[str, ...] = ()
    throttled: int | None = None
    accepted_requests: int | None = None
    survivors: int | None = None
    problems: tuple[str, ...] = ()

    @property
    def records_per_second(self) -> float | None:
        if not self.seconds or self.records is None:
            return None
        return self.records / self.seconds


@dataclass(frozen=True)
class Target:
    name: str
    status: str  # PASS, FAIL or NOT MEASURED
    detail: str


def _median_int(values: Sequence[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return int(statistics.median(present)) if present else None


def summarise(scenario: str, label: str, runs: Sequence[Measurement]) -> Row:
    ok = [m for m in runs if m.error is None]
    records = sorted({m.records for m in ok})
    survivors = [m.survivors for m in ok if m.survivors is not None]
    return Row(
        scenario=scenario,
        label=label,
        runs=len(runs),
        seconds=statistics.median(m.seconds for m in ok) if ok else None,
        records=records[0] if records else None,
        expected_records=runs[0].expected_records if runs else None,
        requests=_median_int([m.requests for m in ok]),
        peak_rss_bytes=max((m.peak_rss_bytes for m in ok), default=None),
        verified=bool(runs) and all(m.verified for m in runs),
        errors=tuple(m.error for m in runs if m.error),
        throttled=_median_int([m.throttled for m in ok]),
        accepted_requests=_median_int([m.accepted_requests for m in ok]),
        survivors=min(survivors) if survivors else None,
        problems=tuple(m.problem for m in runs if m.problem),
    )


def find(rows: Sequence[Row], scenario: str, label: str) -> Row | None:
    return next((r for r in rows if r.scenario == scenario and r.label == label), None)


def time_ratio(ours: Row | None, other: Row | None) -> float | None:
    """`ours`'s median wall time over `other`'s (below 1: ours is faster)."""
    if ours is None or other is None or not ours.seconds or not other.seconds:
        return None
    return ours.seconds / other.seconds
