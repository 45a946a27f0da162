"""One measured run in a process of its own: ``python -m bench.worker SPEC.json``.

The parent (:mod:`bench.run`) writes a :class:`RunSpec` as JSON, starts this module
in a fresh interpreter, and reads the :class:`Outcome` back from ``spec.result``.
Running every implementation in its own process makes peak RSS per
implementation: nothing another implementation imported or allocated is counted,
and the sandbox server lives in the parent.

The Planhat token reaches the worker in the environment (``BENCH_PLANHAT_TOKEN``),
never on the command line.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TOKEN_ENV = "BENCH_PLANHAT_TOKEN"

# task -> implementation -> "module:function"; modules are imported before timing starts.
TASKS: dict[str, dict[str, str]] = {
    "extract": {
        "ours": "bench.ours:extract",
        "dagster": "bench.dagster_asset:extract",
        "sequential": "bench.sequential:extract",
        "dlt": "bench.dlt_peer:extract",
        "floor_a": "bench.floors:fetch_raw_pages",
        "floor_b": "bench.floors:load_local_ndjson",
    },
    "push": {"ours": "bench.push:push"},
    "models_prepare": {"ours": "bench.models:prepare_models"},
    "models": {"ours": "bench.models:build_models"},
}


@dataclass(frozen=True)
class RunSpec:
    """What one worker run does. Fields unused by a task keep their defaults."""

    task: str
    implementation: str
    workdir: str
    result: str
    base_url: str = ""
    objectives: int = 0
    page_size: int = 2000
    concurrency: int = 4
    ndjson: str = ""
    rows: int = 0
    company_external_ids: tuple[str, ...] = ()
    tag: str = ""
    snapshots: int = 0
    companies: int = 0
    seed: int = 0
    database: str = ""
    loader_file_format: str = ""
    tenant_client: bool = False
    retry_429: bool = False

    @property
    def token(self) -> str:
        return os.environ.get(TOKEN_ENV, "")

    @property
    def max_pages(self) -> int:
        """A bound for every paging loop: the pages the data needs, plus slack."""
        return self.objectives // self.page_size + 2 * self.concurrency + 10


@dataclass
class Phase:
    """A timed part of a run that is reported on its own row (a push, a model build)."""

    name: str
    seconds: float
    records: int
    requests: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """What a task reports: its timed seconds and what it verifiably produced.

    `records` is counted after the timed section (rows in DuckDB, or records
    received for the raw-bytes floor). `client_requests` is the client's own count,
    when it keeps one; the parent also counts requests at the sandbox.
    """

    seconds: float
    records: int
    client_requests: int | None = None
    phases: list[Phase] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    peak_rss_bytes: int = 0
    rss_before_bytes: int = 0
    error: str | None = None


class Stopwatch:
    """``with Stopwatch() as watch: ...`` then ``watch.seconds``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __enter__(self) -> Stopwatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._started


def load_spec(path: Path) -> RunSpec:
    data = json.loads(path.read_text())
    data["company_external_ids"] = tuple(data.get("company_external_ids", ()))
    return RunSpec(**data)


def write_spec(spec: RunSpec, path: Path) -> None:
    path.write_text(json.dumps(asdict(spec)))


def read_outcome(path: Path) -> Outcome:
    data = json.loads(path.read_text())
    data["phases"] = [Phase(**p) for p in data.get("phases", [])]
    return Outcome(**data)


def _task(spec: RunSpec) -> Callable[[RunSpec], Outcome]:
    try:
        target = TASKS[spec.task][spec.implementation]
    except KeyError:
        raise SystemExit(f"unknown task/implementation {spec.task}/{spec.implementation}") from None
    module_name, _, function = target.partition(":")
    task: Callable[[RunSpec], Outcome] = getattr(importlib.import_module(module_name), function)
    return task


def _peak_rss_bytes() -> int:
    """High-water RSS of this process (VmHWM) or of a process it started and waited for.

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux keeps that across exec, so a worker
    started with vfork would report the parent's peak, sandbox included. VmHWM belongs
    to the address space the worker's interpreter got at exec.
    """
    own = 0
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                own = int(line.split()[1]) * 1024
                break
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return max(own, children)


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.worker SPEC.json", file=sys.stderr)
        return 2
    spec = load_spec(Path(argv[0]))
    task = _task(spec)
    rss_before = _current_rss_bytes()
    try:
        outcome = task(spec)
    except Exception as exc:
        traceback.print_exc()
        outcome = Outcome(seconds=0.0, records=0, error=f"{type(exc).__name__}: {exc}"[:500])
    outcome.rss_before_bytes = rss_before
    outcome.peak_rss_bytes = _peak_rss_bytes()
    Path(spec.result).write_text(json.dumps(asdict(outcome)))
    return 0 if outcome.error is None else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
