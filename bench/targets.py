"""Issue 9's targets (and the push's), judged PASS or FAIL from the measured figures.

Every figure comes from the rows and measurements of the run: medians over rounds for wall
times and requests (counted at the sandbox), the largest peak RSS. A target whose
scenarios did not run, or failed, is NOT MEASURED.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

from .rows import GIB, MIB, Measurement, Row, Target, find, time_ratio
from .scenarios import (
    DLT,
    DLT_JSONL,
    FLOOR_A,
    FLOOR_B,
    OURS,
    OURS_CALM,
    OURS_CHURN,
    OURS_DAGSTER,
    SEQUENTIAL,
    SEQUENTIAL_RETRYING,
    ExtractScenario,
    Scenario,
)

CALM_RECORDS_PER_REQUEST = 1999
"""Calm target: at most ceil(N / 1999) + 2 requests (pages overlapping by one record)."""
CHURN_MAX_REQUESTS_RATIO = 1.3
CHURN_MAX_WALL_RATIO = 3.0
MIN_SPEEDUP_50MS = 4.0
MAX_FLOORS_RATIO = 1.5
RATE_LIMIT_SLACK = 1.3
MAX_MEMORY_GROWTH = 1.5
MAX_DAGSTER_OVERHEAD_SECONDS = 0.5
PUSH_REQUESTS_PER_100K = 20


def evaluate_targets(
    scenarios: Sequence[Scenario], rows: Sequence[Row], measurements: Sequence[Measurement]
) -> list[Target]:
    """Every target, in the order of issue 9's list, then the push's."""
    extract = {s.name: s for s in scenarios if isinstance(s, ExtractScenario)}
    return [
        *_calm_requests(rows),
        *_churn(rows, measurements),
        *_speedups(rows),
        *_floors(rows),
        *_rate_limits(extract, rows),
        *_memory(rows, measurements),
        *_dagster_overhead(measurements),
        *_push(measurements),
    ]


def _judge(name: str, passed: bool, detail: str) -> Target:
    return Target(name, "PASS" if passed else "FAIL", detail)


def _missing(name: str, what: str) -> Target:
    return Target(name, "NOT MEASURED", f"{what}: no successful runs")


def _calm_requests(rows: Sequence[Row]) -> list[Target]:
    targets = []
    for scenario in ("extract_0ms", "extract_large"):
        name = f"calm requests <= ceil(N / {CALM_RECORDS_PER_REQUEST}) + 2 ({scenario})"
        row = find(rows, scenario, OURS.label)
        if row is None or row.requests is None or row.expected_records is None:
            targets.append(_missing(name, scenario))
            continue
        limit = math.ceil(row.expected_records / CALM_RECORDS_PER_REQUEST) + 2
        targets.append(
            _judge(
                name,
                row.requests <= limit,
                f"{row.expected_records:,} objectives: {row.requests:,} requests "
                f"(at most {limit:,})",
            )
        )
    return targets


def _churn(rows: Sequence[Row], measurements: Sequence[Measurement]) -> list[Target]:
    calm, churn = find(rows, "churn", OURS_CALM.label), find(rows, "churn", OURS_CHURN.label)
    names = (
        f"churn: requests <= {CHURN_MAX_REQUESTS_RATIO:g}x calm",
        f"churn: wall <= {CHURN_MAX_WALL_RATIO:g}x calm",
        "churn: every survivor exactly once",
    )
    if calm is None or churn is None or not calm.seconds or not churn.seconds:
        return [_missing(name, "churn") for name in names]
    requests = (churn.requests or 0) / max(calm.requests or 0, 1)
    wall = churn.seconds / calm.seconds
    runs = [m for m in measurements if m.scenario == "churn" and m.label == OURS_CHURN.label]
    checked = [m for m in runs if m.error is None and m.survivors is not None]
    survivors_ok = bool(checked) and len(checked) == len(runs) and all(m.verified for m in runs)
    survivors = "; ".join(
        f"round {m.round}: "
        + (m.problem or m.error or f"{m.survivors:,} survivors, each exactly once")
        for m in runs
    )
    return [
        _judge(
            names[0],
            requests <= CHURN_MAX_REQUESTS_RATIO,
            f"churn {churn.requests} vs calm {calm.requests} requests: {requests:.2f}x",
        ),
        _judge(
            names[1],
            wall <= CHURN_MAX_WALL_RATIO,
            f"churn {churn.seconds:.2f}s vs calm {calm.seconds:.2f}s: {wall:.2f}x",
        ),
        _judge(names[2], survivors_ok, survivors or "no run"),
    ]


def _speedup(
    name: str, ours: Row | None, peer: Row | None, passes: Callable[[float], bool]
) -> Target:
    ratio = time_ratio(ours, peer)
    if ratio is None or ours is None or peer is None:
        return _missing(name, "ours or the peer")
    return _judge(
        name,
        passes(1 / ratio),
        f"ours {ours.seconds:.2f}s vs {peer.label} {peer.seconds:.2f}s: {1 / ratio:.2f}x faster",
    )


def _speedups(rows: Sequence[Row]) -> list[Target]:
    sequential = find(rows, "extract_50ms", SEQUENTIAL.label)

    def fast_enough(speedup: float) -> bool:
        return speedup >= MIN_SPEEDUP_50MS

    def faster(speedup: float) -> bool:
        return speedup > 1

    targets = [
        _speedup(
            "50 ms: extract_snapshot >= 4x faster than the sequential pager",
            find(rows, "extract_50ms", OURS.label),
            sequential,
            fast_enough,
        ),
        _speedup(
            "50 ms: planhat_objectives through Dagster (step time) >= 4x faster than the "
            "sequential pager",
            find(rows, "dagster_50ms", OURS_DAGSTER.label),
            sequential,
            fast_enough,
        ),
        _speedup(
            f"50 ms: extract_snapshot >= 4x faster than {DLT_JSONL.label}",
            find(rows, "extract_50ms", OURS.label),
            find(rows, "extract_50ms", DLT_JSONL.label),
            fast_enough,
        ),
    ]
    for peer in (SEQUENTIAL, DLT, DLT_JSONL):
        targets.append(
            _speedup(
                f"0 ms: ours faster than {peer.label}",
                find(rows, "extract_0ms", OURS.label),
                find(rows, "extract_0ms", peer.label),
                faster,
            )
        )
    return targets


def _floors(rows: Sequence[Row]) -> list[Target]:
    targets = []
    for scenario in ("extract_0ms", "extract_large"):
        name = f"0 ms: ours <= {MAX_FLOORS_RATIO:g}x (floor (a) + floor (b)) ({scenario})"
        ours = find(rows, scenario, OURS.label)
        a, b = find(rows, scenario, FLOOR_A.label), find(rows, scenario, FLOOR_B.label)
        if ours is None or a is None or b is None or not (ours.seconds and a.seconds and b.seconds):
            targets.append(_missing(name, scenario))
            continue
        floors = a.seconds + b.seconds
        ratio = ours.seconds / floors
        targets.append(
            _judge(
                name,
                ratio <= MAX_FLOORS_RATIO,
                f"{ours.expected_records:,} objectives: ours {ours.seconds:.2f}s vs "
                f"{a.seconds:.2f}s + {b.seconds:.2f}s = {floors:.2f}s: {ratio:.2f}x",
            )
        )
    return targets


def _rate_limits(extract: dict[str, ExtractScenario], rows: Sequence[Row]) -> list[Target]:
    targets = []
    scenario = extract.get("rate_limited")
    ours = find(rows, "rate_limited", OURS.label)
    pager = find(rows, "rate_limited", SEQUENTIAL_RETRYING.label)
    rate = scenario.rate_limit_per_second if scenario is not None else None
    name = f"rate-limited: wall <= {RATE_LIMIT_SLACK:g}x (accepted requests / rate)"
    if ours is None or not ours.seconds or ours.accepted_requests is None or not rate:
        targets.append(_missing(name, "rate_limited"))
    else:
        bound = RATE_LIMIT_SLACK * ours.accepted_requests / rate
        targets.append(
            _judge(
                name,
                ours.seconds <= bound,
                f"ours {ours.seconds:.2f}s for {ours.accepted_requests} accepted requests "
                f"(+{ours.throttled or 0} answered 429) at {rate:g}/s: at most {bound:.2f}s",
            )
        )
    targets.append(
        _speedup(
            "rate-limited: ours no slower than the pager that retries 429",
            ours,
            pager,
            lambda speedup: speedup >= 1,
        )
    )
    targets.append(
        _speedup(
            "quota: ours no slower than the pager that retries 429",
            find(rows, "quota", OURS.label),
            find(rows, "quota", SEQUENTIAL_RETRYING.label),
            lambda speedup: speedup >= 1,
        )
    )
    return targets


def _memory(rows: Sequence[Row], measurements: Sequence[Measurement]) -> list[Target]:
    targets = []
    name = f"memory: peak RSS at 1,000,000 <= {MAX_MEMORY_GROWTH:g}x at 100,000 (ours)"
    large, small = find(rows, "extract_large", OURS.label), find(rows, "extract_0ms", OURS.label)
    if large is None or small is None or not large.peak_rss_bytes or not small.peak_rss_bytes:
        targets.append(_missing(name, "extract_large or extract_0ms"))
    else:
        growth = large.peak_rss_bytes / small.peak_rss_bytes
        targets.append(
            _judge(
                name,
                growth <= MAX_MEMORY_GROWTH,
                f"{large.expected_records:,} objectives {large.peak_rss_bytes / MIB:.0f} MiB vs "
                f"{small.expected_records:,} objectives {small.peak_rss_bytes / MIB:.0f} MiB: "
                f"{growth:.2f}x",
            )
        )
    peaks: dict[str, int] = {}
    for m in measurements:
        if m.label.startswith("ours") and m.error is None:
            peaks[m.scenario] = max(peaks.get(m.scenario, 0), m.peak_rss_bytes)
    name = "memory: no scenario over 1 GiB peak RSS (ours)"
    if not peaks:
        targets.append(_missing(name, "ours"))
    else:
        targets.append(
            _judge(
                name,
                max(peaks.values()) <= GIB,
                ", ".join(f"{s} {b / MIB:.0f} MiB" for s, b in peaks.items()),
            )
        )
    return targets


def _dagster_overhead(measurements: Sequence[Measurement]) -> list[Target]:
    name = (
        "Dagster overhead: step time - extract_snapshot's own time <= "
        f"{MAX_DAGSTER_OVERHEAD_SECONDS:g} s"
    )
    runs = [
        m
        for m in measurements
        if m.scenario == "dagster_50ms" and m.error is None and "overhead_seconds" in m.details
    ]
    if not runs:
        return [_missing(name, "dagster_50ms")]
    overhead = statistics.median(float(m.details["overhead_seconds"]) for m in runs)
    step = statistics.median(float(m.details["step_seconds"]) for m in runs)
    own = statistics.median(float(m.details["extract_seconds"]) for m in runs)
    return [
        _judge(
            name,
            overhead <= MAX_DAGSTER_OVERHEAD_SECONDS,
            f"step {step:.2f}s - extract_snapshot {own:.2f}s = {overhead:.2f}s (medians)",
        )
    ]


def _push(measurements: Sequence[Measurement]) -> list[Target]:
    pushes = [m for m in measurements if m.scenario == "push" and m.error is None and m.phases]
    if not pushes:
        return []
    first = [m.phases[0] for m in pushes]
    again = [m.phases[1] for m in pushes if len(m.phases) > 1]
    most = max(p.requests or 0 for p in first)
    rows_pushed = first[0].records
    limit = max(1, math.ceil(rows_pushed * PUSH_REQUESTS_PER_100K / 100_000))
    resent = max((p.requests or 0 for p in again), default=-1)
    return [
        _judge(
            f"push: at most {PUSH_REQUESTS_PER_100K} requests per 100,000 rows",
            most <= limit and all(p.records for p in first),
            f"{rows_pushed:,} rows sent in {most} requests (at most {limit} allowed)",
        ),
        _judge(
            "push: unchanged re-push sends 0 requests",
            resent == 0,
            f"{resent} requests" if resent >= 0 else "not run",
        ),
    ]
