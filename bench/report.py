"""From measurements to the report: medians, ratios, PASS/FAIL per target, markdown, README."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .rows import MIB, Measurement, Row, Target, find, summarise, time_ratio
from .scenarios import (
    DLT_JSONL,
    OURS,
    OURS_DAGSTER,
    SEQUENTIAL,
    ExtractScenario,
    ModelsScenario,
    PushScenario,
    Scenario,
    scenarios,
)
from .targets import evaluate_targets

if TYPE_CHECKING:
    from .run import BenchOptions

RESULTS_START = "<!-- bench:results:start -->"
RESULTS_END = "<!-- bench:results:end -->"
PLANHAT_SOFT_QUOTA_PER_MINUTE = 200


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


def build_report(
    measurements: Sequence[Measurement],
    *,
    options: BenchOptions,
    command: str,
    elapsed_seconds: float | None = None,
) -> Report:
    """The results section; `elapsed_seconds`: the whole run's wall time, when known."""
    all_scenarios = [
        s
        for s in scenarios(quick=options.quick)
        if not options.scenarios or s.name in options.scenarios
    ]
    rows = _rows(all_scenarios, measurements)
    targets = evaluate_targets(all_scenarios, rows, measurements)
    machine = machine_info()
    complete = bool(measurements) and all(m.verified for m in measurements)
    lines = _header(command, machine, options, elapsed_seconds)
    lines += _extract_tables(all_scenarios, rows)
    lines += _dagster_table(measurements)
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
            + (m.error or m.problem or f"{m.records:,} records, expected {m.expected_records:,}")
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


def _header(
    command: str, machine: dict[str, str], options: BenchOptions, elapsed: float | None
) -> list[str]:
    took = "" if elapsed is None else f"; the whole run took {elapsed / 60:.1f} minutes"
    return [
        "## Results",
        "",
        f"- Command: `{command}` ({options.rounds} round(s), implementations alternating "
        f"within each round; medians; ours and floor (a) with {options.concurrency} pages in "
        f"flight{took})",
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
        "and imports excluded; through Dagster: the asset's step); records/s = objectives / "
        "wall seconds; requests counted at the sandbox, with those it answered 429 in "
        "brackets; peak RSS of the implementation's own process; ours ÷ this: ratio of "
        "wall times (below 1: ours is faster); verified: rows loaded x runs, or, under "
        "churn, the objectives that existed for the whole run, each found exactly once.",
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
            ratio = None if variant.label == OURS.label else time_ratio(ours, row)
            lines.append(
                f"| {scenario.title} | {variant.label} | {_fmt_seconds(row.seconds)} "
                f"| {_fmt_int(row.records_per_second)} | {_fmt_requests(row)} "
                f"| {_fmt_mib(row.peak_rss_bytes)} | {_fmt_ratio(ratio)} "
                f"| {_verified(row)} |"
            )
        for label, reason in scenario.skipped:
            lines.append(f"| {scenario.title} | {label} | {reason} | | | | | |")
    lines.append("")
    return lines + sweep


def _fmt_requests(row: Row) -> str:
    if row.throttled:
        return f"{_fmt_int(row.requests)} ({row.throttled:,} 429)"
    return _fmt_int(row.requests)


def _verified(row: Row) -> str:
    if row.errors:
        return f"FAILED: {row.errors[0]}"
    if row.problems:
        return f"WRONG: {row.problems[0]}"
    if not row.verified:
        return f"WRONG: {row.records} of {row.expected_records} records"
    if row.survivors is not None:
        return f"{row.survivors:,} survivors once x {row.runs}"
    return f"{row.records:,} rows x {row.runs}" if row.records is not None else "yes"


def _dagster_table(measurements: Sequence[Measurement]) -> list[str]:
    runs = [
        m
        for m in measurements
        if m.label == OURS_DAGSTER.label and m.error is None and "step_seconds" in m.details
    ]
    if not runs:
        return []

    def median(key: str) -> str:
        return _fmt_seconds(statistics.median(float(m.details[key]) for m in runs))

    return [
        "Through Dagster (`dg.materialize` of `planhat_objectives`, the project's resources, "
        "an ephemeral instance; medians over rounds): the step runs from Dagster's STEP_START "
        "to STEP_SUCCESS event; extract_snapshot's own time is the `seconds` the asset records "
        "in its metadata; the overhead (the snapshot's quality checks, the metadata and "
        "Dagster's own work in the step) is the difference.",
        "",
        "| dg.materialize s | step s | extract_snapshot s | overhead s | runs |",
        "|--:|--:|--:|--:|--:|",
        f"| {median('materialize_seconds')} | {median('step_seconds')} "
        f"| {median('extract_seconds')} | {median('overhead_seconds')} | {len(runs)} |",
        "",
    ]


def _sweep_table(scenario: ExtractScenario, rows: Sequence[Row]) -> list[str]:
    peers = [find(rows, "extract_50ms", p.label) for p in (SEQUENTIAL, DLT_JSONL)]
    lines = [
        f"Concurrency of ours ({scenario.title}); speed-ups against the peers' medians "
        "of the 50 ms scenario:",
        "",
        "| pages in flight | wall s | requests | peak RSS MiB | x faster than sequential "
        "| x faster than dlt + jsonl | verified |",
        "|--:|--:|--:|--:|--:|--:|---|",
    ]
    for variant in scenario.variants:
        row = find(rows, scenario.name, variant.label)
        if row is None:
            continue
        speedups = " | ".join(_fmt_ratio(time_ratio(peer, row)) for peer in peers)
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
        "Outside the quota, rate_limited and churn scenarios, every client here runs with "
        "`rate_limit_per_minute=None`, as the pipeline does against "
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
            f"- {row.expected_records:,} objectives: ours sends {row.requests:,} requests. "
            f"That is {sustained:,.0f} s of quota: at least {fresh:,.0f} s "
            f"when the run starts with a full minute's quota, {sustained:,.0f} s when runs or "
            f"other API users share it (measured here without a limit: "
            f"{_fmt_seconds(row.seconds)} s)."
        )
    if not lines[-1].startswith("- "):
        return []  # neither extract_0ms nor extract_large ran
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
