"""From measurements to the report: medians, ratios, PASS/FAIL per target, markdown, README."""

from __future__ import annotations

import importlib.metadata
import math
import os
import platform
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .scenarios import (
    DLT,
    DLT_JSONL,
    FLOOR_A,
    OURS,
    SEQUENTIAL,
    ExtractScenario,
    ModelsScenario,
    PushScenario,
    Scenario,
    scenarios,
)
from .worker import Outcome, Phase

if TYPE_CHECKING:
    from .run import BenchOptions

MIB = 2**20
GIB = 2**30
RESULTS_START = "<!-- bench:results:start -->"
RESULTS_END = "<!-- bench:results:end -->"
PLANHAT_SOFT_QUOTA_PER_MINUTE = 200


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
    """Counted at the sandbox (API routes only)."""
    client_requests: int | None = None
    peak_rss_bytes: int = 0
    rss_before_bytes: int = 0
    phases: list[Phase] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

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
        return self.error is None and (
            self.expected_records is None or self.records == self.expected_records
        )


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


@dataclass
class Report:
    markdown: str
    rows: list[Row]
    targets: list[Target]
    measurements: list[Measurement]
    machine: dict[str, str]
    complete: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "complete": self.complete,
            "rows": [asdict(r) for r in self.rows],
            "targets": [asdict(t) for t in self.targets],
            "measurements": [asdict(m) for m in self.measurements],
        }


def summarise(scenario: str, label: str, runs: Sequence[Measurement]) -> Row:
    ok = [m for m in runs if m.error is None]
    records = sorted({m.records for m in ok})
    requests = [m.requests for m in ok if m.requests is not None]
    return Row(
        scenario=scenario,
        label=label,
        runs=len(runs),
        seconds=statistics.median(m.seconds for m in ok) if ok else None,
        records=records[0] if len(records) == 1 else (records[0] if records else None),
        expected_records=runs[0].expected_records if runs else None,
        requests=int(statistics.median(requests)) if requests else None,
        peak_rss_bytes=max((m.peak_rss_bytes for m in ok), default=None),
        verified=bool(runs) and all(m.verified for m in runs),
        errors=tuple(m.error for m in runs if m.error),
    )


def build_report(
    measurements: Sequence[Measurement], *, options: BenchOptions, command: str
) -> Report:
    all_scenarios = [
        s
        for s in scenarios(quick=options.quick)
        if not options.scenarios or s.name in options.scenarios
    ]
    rows = _rows(all_scenarios, measurements)
    targets = evaluate_targets(rows, measurements)
    machine = machine_info()
    complete = bool(measurements) and all(m.verified for m in measurements)
    lines = _header(command, machine, options)
    lines += _extract_tables(all_scenarios, rows)
    lines += _push_table(all_scenarios, measurements)
    lines += _models_table(all_scenarios, measurements)
    lines += _quota_note(rows)
    lines += ["### Targets", ""]
    if options.quick:
        lines += ["_Quick run: the sizes are too small for the targets to mean anything._", ""]
    lines += [f"- **{t.status}** {t.name}: {t.detail}" for t in targets]
    lines.append("")
    if not complete:
        lines += ["**Some runs failed or loaded the wrong number of records:**", ""]
        lines += [
            f"- {m.scenario} / {m.label} round {m.round}: "
            + (m.error or f"{m.records:,} records, expected {m.expected_records:,}")
            for m in measurements
            if not m.verified
        ]
        lines.append("")
    return Report("\n".join(lines), rows, targets, list(measurements), machine, complete)


def _rows(all_scenarios: Sequence[Scenario], measurements: Sequence[Measurement]) -> list[Row]:
    rows: list[Row] = []
    for scenario in all_scenarios:
        labels: Iterable[str]
        if isinstance(scenario, ExtractScenario):
            labels = [v.label for v in scenario.variants]
        else:
            labels = ["ours"]
        for label in labels:
            runs = [m for m in measurements if m.scenario == scenario.name and m.label == label]
            if runs:
                rows.append(summarise(scenario.name, label, runs))
    return rows


def find(rows: Sequence[Row], scenario: str, label: str) -> Row | None:
    return next((r for r in rows if r.scenario == scenario and r.label == label), None)


def _time_ratio(ours: Row | None, other: Row | None) -> float | None:
    if ours is None or other is None or not ours.seconds or not other.seconds:
        return None
    return ours.seconds / other.seconds


def evaluate_targets(rows: Sequence[Row], measurements: Sequence[Measurement]) -> list[Target]:
    targets: list[Target] = []

    def speedup_target(scenario: str, peer: str, minimum: float, name: str) -> None:
        ours, other = find(rows, scenario, OURS.label), find(rows, scenario, peer)
        ratio = _time_ratio(ours, other)
        if ratio is None or ours is None or other is None:
            targets.append(Target(name, "NOT MEASURED", f"{scenario}: no successful runs"))
            return
        speedup = 1 / ratio
        passed = speedup >= minimum if minimum > 1 else speedup > 1
        targets.append(
            Target(
                name,
                "PASS" if passed else "FAIL",
                f"ours {ours.seconds:.2f}s vs {peer} {other.seconds:.2f}s: "
                f"{speedup:.2f}x faster (ours/peer = {ratio:.2f})",
            )
        )

    for peer in (SEQUENTIAL, DLT, DLT_JSONL):
        speedup_target(
            "extract_50ms", peer.label, 4.0, f"50 ms: ours >= 4x faster than {peer.label}"
        )
    for peer in (SEQUENTIAL, DLT, DLT_JSONL):
        speedup_target("extract_0ms", peer.label, 1.0, f"0 ms: ours faster than {peer.label}")

    ours0, floor = find(rows, "extract_0ms", OURS.label), find(rows, "extract_0ms", FLOOR_A.label)
    ratio = _time_ratio(ours0, floor)
    if ratio is None or ours0 is None or floor is None:
        targets.append(Target("0 ms: ours within 2x of floor (a)", "NOT MEASURED", "no runs"))
    else:
        targets.append(
            Target(
                "0 ms: ours within 2x of floor (a)",
                "PASS" if ratio <= 2 else "FAIL",
                f"ours {ours0.seconds:.2f}s vs floor (a) {floor.seconds:.2f}s: ours/floor = "
                f"{ratio:.2f}",
            )
        )

    large = find(rows, "extract_large", OURS.label)
    if large is None or ours0 is None or not large.peak_rss_bytes or not ours0.peak_rss_bytes:
        targets.append(Target("memory: large peak RSS <= 1.5x small", "NOT MEASURED", "no runs"))
    else:
        growth = large.peak_rss_bytes / ours0.peak_rss_bytes
        targets.append(
            Target(
                "memory: large peak RSS <= 1.5x small",
                "PASS" if growth <= 1.5 else "FAIL",
                f"{large.expected_records:,} objectives {large.peak_rss_bytes / MIB:.0f} MiB vs "
                f"{ours0.expected_records:,} objectives {ours0.peak_rss_bytes / MIB:.0f} MiB: "
                f"{growth:.2f}x",
            )
        )

    ours_peaks: dict[str, int] = {}
    for m in measurements:
        if m.label.startswith("ours") and m.error is None:
            ours_peaks[m.scenario] = max(ours_peaks.get(m.scenario, 0), m.peak_rss_bytes)
    if ours_peaks:
        worst = max(ours_peaks, key=lambda s: ours_peaks[s])
        targets.append(
            Target(
                "memory: no scenario over 1 GiB peak RSS (ours)",
                "PASS" if ours_peaks[worst] <= GIB else "FAIL",
                ", ".join(f"{s} {b / MIB:.0f} MiB" for s, b in ours_peaks.items()),
            )
        )
    else:
        targets.append(Target("memory: no scenario over 1 GiB", "NOT MEASURED", "no runs"))

    pushes = [m for m in measurements if m.scenario == "push" and m.error is None and m.phases]
    if pushes:
        first = [m.phases[0] for m in pushes]
        again = [m.phases[1] for m in pushes if len(m.phases) > 1]
        most = max(p.requests or 0 for p in first)
        rows_pushed = first[0].records
        limit = max(1, math.ceil(rows_pushed * 20 / 100_000))
        targets.append(
            Target(
                "push: at most 20 requests per 100,000 rows",
                "PASS" if most <= limit and all(p.records for p in first) else "FAIL",
                f"{rows_pushed:,} rows sent in {most} requests (at most {limit} allowed)",
            )
        )
        resent = max((p.requests or 0 for p in again), default=-1)
        targets.append(
            Target(
                "push: unchanged re-push sends 0 requests",
                "PASS" if resent == 0 else "FAIL",
                f"{resent} requests" if resent >= 0 else "not run",
            )
        )
    return targets


def machine_info() -> dict[str, str]:
    cpu = "unknown"
    memory = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 2**20:.1f} GiB"
                break
    except OSError:
        pass
    versions = ", ".join(
        f"{name} {_version(name)}" for name in ("duckdb", "httpx", "dlt", "pydantic")
    )
    return {
        "cores": str(os.cpu_count()),
        "cpu": cpu,
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _header(command: str, machine: dict[str, str], options: BenchOptions) -> list[str]:
    return [
        "## Results",
        "",
        f"- Command: `{command}` ({options.rounds} round(s), implementations alternating "
        f"within each round; medians; ours and floor (a) with {options.concurrency} pages in flight)",
        f"- Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory']} memory, "
        f"{machine['os']}",
        f"- Software: Python {machine['python']}, {machine['packages']}",
        f"- Date: {machine['date']}",
        "",
    ]


def _median_or_none(values: Iterable[float | int | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def _fmt_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _fmt_int(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _fmt_mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:,.0f}"


def _fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _extract_tables(all_scenarios: Sequence[Scenario], rows: Sequence[Row]) -> list[str]:
    lines = [
        "### Extraction",
        "",
        "Wall seconds from opening the client to the committed DuckDB table (process start "
        "and imports excluded); records/s = objectives / wall seconds; requests counted at "
        "the sandbox; peak RSS of the implementation's own process; ours ÷ this: ratio of "
        "wall times (below 1: ours is faster).",
        "",
        "| scenario | implementation | wall s | records/s | requests | peak RSS MiB "
        "| ours ÷ this | verified |",
        "|---|---|--:|--:|--:|--:|--:|---|",
    ]
    sweep: list[str] = []
    for scenario in all_scenarios:
        if not isinstance(scenario, ExtractScenario):
            continue
        if scenario.name == "concurrency_50ms":
            sweep = _sweep_table(scenario, rows)
            continue
        ours = find(rows, scenario.name, OURS.label)
        for variant in scenario.variants:
            row = find(rows, scenario.name, variant.label)
            if row is None:
                continue
            ratio = None if variant.label == OURS.label else _time_ratio(ours, row)
            lines.append(
                f"| {scenario.title} | {variant.label} | {_fmt_seconds(row.seconds)} "
                f"| {_fmt_int(row.records_per_second)} | {_fmt_int(row.requests)} "
                f"| {_fmt_mib(row.peak_rss_bytes)} | {_fmt_ratio(ratio)} "
                f"| {_verified(row)} |"
            )
        for label, reason in scenario.skipped:
            lines.append(f"| {scenario.title} | {label} | {reason} | | | | | |")
    lines.append("")
    return lines + sweep


def _verified(row: Row) -> str:
    if row.errors:
        return f"FAILED: {row.errors[0]}"
    if not row.verified:
        return f"WRONG: {row.records} of {row.expected_records} records"
    return f"{row.records:,} rows x {row.runs}" if row.records is not None else "yes"


def _sweep_table(scenario: ExtractScenario, rows: Sequence[Row]) -> list[str]:
    peers = [find(rows, "extract_50ms", p.label) for p in (SEQUENTIAL, DLT, DLT_JSONL)]
    lines = [
        f"Concurrency of ours ({scenario.title}); speed-ups against the peers' medians "
        "of the 50 ms scenario:",
        "",
        "| pages in flight | wall s | requests | peak RSS MiB | x faster than sequential "
        "| x faster than dlt | x faster than dlt + jsonl | verified |",
        "|--:|--:|--:|--:|--:|--:|--:|---|",
    ]
    for variant in scenario.variants:
        row = find(rows, scenario.name, variant.label)
        if row is None:
            continue
        speedups = " | ".join(_fmt_ratio(_time_ratio(peer, row)) for peer in peers)
        lines.append(
            f"| {variant.concurrency} | {_fmt_seconds(row.seconds)} | {_fmt_int(row.requests)} "
            f"| {_fmt_mib(row.peak_rss_bytes)} | {speedups} | {_verified(row)} |"
        )
    return [*lines, ""]


def _push_table(
    all_scenarios: Sequence[Scenario], measurements: Sequence[Measurement]
) -> list[str]:
    scenario = next((s for s in all_scenarios if isinstance(s, PushScenario)), None)
    runs = [m for m in measurements if scenario and m.scenario == scenario.name]
    if scenario is None or not runs:
        return []
    lines = [
        f"### Reverse ETL ({scenario.title})",
        "",
        "Each round pushes new objectives (created in the sandbox), then runs the same push "
        f"again with nothing changed. Requests are the client's count; the sandbox counted "
        f"{_fmt_int(_median_or_none(m.requests for m in runs))} per round, both pushes together.",
        "",
        "| step | rows read | rows sent | requests | wall s | peak RSS MiB |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    ok = [m for m in runs if m.error is None and m.phases]
    for index, name in enumerate(("push", "re-push unchanged")):
        phases = [m.phases[index] for m in ok if len(m.phases) > index]
        if not phases:
            continue
        lines.append(
            f"| {name} | {_fmt_int(_median_or_none(p.details.get('rows_read') for p in phases))} "
            f"| {_fmt_int(statistics.median(p.records for p in phases))} "
            f"| {_fmt_int(statistics.median(p.requests or 0 for p in phases))} "
            f"| {_fmt_seconds(statistics.median(p.seconds for p in phases))} "
            f"| {_fmt_mib(max(m.peak_rss_bytes for m in ok))} |"
        )
    for m in runs:
        if m.error:
            lines.append(f"| round {m.round} | FAILED: {m.error} | | | | |")
    return [*lines, ""]


def _models_table(
    all_scenarios: Sequence[Scenario], measurements: Sequence[Measurement]
) -> list[str]:
    scenario = next((s for s in all_scenarios if isinstance(s, ModelsScenario)), None)
    runs = [m for m in measurements if scenario and m.scenario == scenario.name]
    if scenario is None or not runs:
        return []
    ok = [m for m in runs if m.error is None and m.phases]
    lines = [
        f"### {scenario.title}",
        "",
        f"`build_model` for every file in dbt_like_sql/, in dependency order, over "
        f"{scenario.objectives * scenario.snapshots:,} rows of raw.planhat_objectives "
        "(one load, copied to the other dates inside DuckDB).",
        "",
        "| model | rows | wall s |",
        "|---|--:|--:|",
    ]
    if ok:
        for index, phase in enumerate(ok[0].phases):
            seconds = statistics.median(m.phases[index].seconds for m in ok)
            lines.append(f"| {phase.name} | {phase.records:,} | {seconds:.2f} |")
        total = statistics.median(m.seconds for m in ok)
        peak = max(m.peak_rss_bytes for m in ok)
        lines.append(f"| **all models** | | **{total:.2f}** |")
        lines += ["", f"Peak RSS of the build process: {peak / MIB:,.0f} MiB."]
    for m in runs:
        if m.error:
            lines.append(f"\nRound {m.round} FAILED: {m.error}")
    return [*lines, ""]


def _quota_note(rows: Sequence[Row]) -> list[str]:
    quota = PLANHAT_SOFT_QUOTA_PER_MINUTE
    lines = [
        "### Planhat's rate limit",
        "",
        "Every client here runs with `rate_limit_per_minute=None`, as the pipeline does against "
        f"its sandbox. Against Planhat the client keeps to {quota} requests per sliding minute "
        "(the documented soft quota), and that alone bounds the wall time from below:",
        "",
    ]
    for scenario in ("extract_0ms", "extract_large"):
        row = find(rows, scenario, OURS.label)
        if row is None or row.requests is None or row.expected_records is None:
            continue
        sustained = row.requests / quota * 60
        fresh = max(row.requests - quota, 0) / quota * 60
        lines.append(
            f"- {row.expected_records:,} objectives: ours sends {row.requests:,} requests (the "
            f"pages, the `select=_id` listing of the completeness check, and the empty pages "
            f"that end each pass). That is {sustained:,.0f} s of quota: at least {fresh:,.0f} s "
            f"when the run starts with a full minute's quota, {sustained:,.0f} s when runs or "
            f"other API users share it (measured here without a limit: "
            f"{_fmt_seconds(row.seconds)} s)."
        )
    return [*lines, ""]


def rewrite_readme(path: Path, results: str) -> None:
    """Replace the text between the results markers of `path` (append them if missing)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    block = f"{RESULTS_START}\n{results.rstrip()}\n{RESULTS_END}"
    start, end = text.find(RESULTS_START), text.find(RESULTS_END)
    if start != -1 and end > start:
        text = text[:start] + block + text[end + len(RESULTS_END) :]
    else:
        text = text.rstrip() + ("\n\n" if text.strip() else "") + block + "\n"
    path.write_text(text, encoding="utf-8")
