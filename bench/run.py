"""``python -m bench.run``: run the benchmark, print the report, optionally rewrite bench/README.md.

Every implementation runs in a child process of its own (``python -m bench.worker``)
against a sandbox served by this process; implementations alternate within each
round, and the report gives medians over rounds. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

from objectives_pipeline.extract import ExtractOptions
from objectives_pipeline.sandbox import Faults

from .report import build_report, rewrite_readme
from .rows import Measurement
from .sandbox_host import BenchSandbox
from .scenarios import (
    PAGE_SIZE,
    SEED,
    ExtractScenario,
    ModelsScenario,
    PushScenario,
    Scenario,
    scenario_names,
    scenarios,
)
from .survivors import check_survivors
from .worker import TOKEN_ENV, RunSpec, read_outcome, write_spec

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "bench" / "README.md"
RESULTS_JSON = REPO_ROOT / "bench" / "results.json"
Log = Callable[[str], None]


@dataclass(frozen=True)
class BenchOptions:
    quick: bool = False
    rounds: int = 2
    scenarios: tuple[str, ...] = ()
    """Names to run; empty: all."""
    concurrency: int = field(default_factory=lambda: ExtractOptions().concurrency)
    """Pages in flight for ours and floor (a); default: the product's default."""
    work_dir: Path | None = None
    """Where the runs' files go (a temporary folder by default, removed afterwards)."""


def run_benchmark(options: BenchOptions, log: Log = print) -> list[Measurement]:
    """Run the selected scenarios; return one `Measurement` per worker run."""
    chosen = [
        s
        for s in scenarios(quick=options.quick)
        if not options.scenarios or s.name in options.scenarios
    ]
    measurements: list[Measurement] = []
    with _work_dir(options.work_dir) as root:
        runner = _Runner(root, options, log, measurements)
        sandbox: BenchSandbox | None = None
        try:
            for scenario in chosen:
                if isinstance(scenario, ExtractScenario):
                    if sandbox is None or sandbox.objectives != scenario.objectives:
                        if sandbox is not None:
                            sandbox.__exit__(None, None, None)
                            sandbox = None
                        sandbox = runner.start_sandbox(scenario.objectives, scenario.companies)
                    runner.begin(scenario)
                    runner.extract(scenario, sandbox)
                elif isinstance(scenario, PushScenario):
                    runner.begin(scenario)
                    runner.push(scenario)
                else:
                    runner.begin(scenario)
                    runner.models(scenario)
                runner.end(scenario)
        finally:
            if sandbox is not None:
                sandbox.__exit__(None, None, None)
    return measurements


@contextmanager
def _work_dir(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    root = Path(tempfile.mkdtemp(prefix="objectives-bench-"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


class _Runner:
    def __init__(
        self, root: Path, options: BenchOptions, log: Log, measurements: list[Measurement]
    ) -> None:
        self.root = root
        self.options = options
        self.log = log
        self.measurements = measurements
        self.ndjson: dict[int, Path] = {}
        self.started = time.perf_counter()
        self.scenario_started = self.started

    def begin(self, scenario: Scenario) -> None:
        self.scenario_started = time.perf_counter()
        self.log(
            f"[{self._clock()}] scenario {scenario.name}: {scenario.title} "
            f"(budget {scenario.budget_seconds:.0f}s)"
        )

    def end(self, scenario: Scenario) -> None:
        took = time.perf_counter() - self.scenario_started
        over = " OVER BUDGET" if took > scenario.budget_seconds else ""
        self.log(
            f"[{self._clock()}] scenario {scenario.name} took {took:.0f}s "
            f"(budget {scenario.budget_seconds:.0f}s){over}"
        )

    def out_of_budget(self, scenario: Scenario, round_number: int) -> bool:
        """True when `round_number` must not start: at the pace of the rounds before it, it
        would end past the scenario's budget."""
        took = time.perf_counter() - self.scenario_started
        if round_number == 1 or took * round_number / (round_number - 1) <= scenario.budget_seconds:
            return False
        self.log(
            f"  stopping {scenario.name} before round {round_number}: {took:.0f}s used of "
            f"its {scenario.budget_seconds:.0f}s budget, and a round takes "
            f"{took / (round_number - 1):.0f}s"
        )
        return True

    def _clock(self) -> str:
        minutes, seconds = divmod(int(time.perf_counter() - self.started), 60)
        return f"{minutes:02d}:{seconds:02d}"

    def start_sandbox(self, objectives: int, companies: int) -> BenchSandbox:
        self.log(f"starting a sandbox with {objectives:,} objectives")
        started = time.perf_counter()
        sandbox = BenchSandbox(objectives=objectives, companies=companies, seed=SEED).__enter__()
        ndjson = self.root / f"objectives-{objectives}.ndjson"
        seen = sandbox.warm_up(PAGE_SIZE, ndjson)
        if seen != objectives:
            raise RuntimeError(f"the sandbox served {seen} objectives, expected {objectives}")
        self.ndjson[objectives] = ndjson
        self.log(f"  sandbox ready and warmed up in {time.perf_counter() - started:.1f}s")
        return sandbox

    def extract(self, scenario: ExtractScenario, sandbox: BenchSandbox) -> None:
        timeout = min(_timeout(scenario.objectives), scenario.budget_seconds)
        for round_number in range(1, self.options.rounds + 1):
            if self.out_of_budget(scenario, round_number):
                break
            for variant in _rotated(scenario.variants, round_number - 1):
                workdir = self._fresh_dir(scenario.name, variant.label, round_number)
                spec = RunSpec(
                    task="extract",
                    implementation=variant.implementation,
                    workdir=str(workdir),
                    result=str(workdir / "outcome.json"),
                    base_url=sandbox.base_url,
                    objectives=scenario.objectives,
                    page_size=PAGE_SIZE,
                    concurrency=variant.concurrency or self.options.concurrency,
                    ndjson=str(self.ndjson[scenario.objectives]),
                    loader_file_format=variant.loader_file_format,
                    tenant_client=variant.tenant_client,
                    retry_429=variant.retry_429,
                )
                if scenario.rest_between_runs:
                    time.sleep(scenario.rest_between_runs)  # a fresh quota for every run
                before = sandbox.object_ids() if scenario.churn_per_list_request else None
                sandbox.set_faults(scenario.faults(variant))
                mark = sandbox.request_mark()
                try:
                    measurement = self._run(
                        scenario.name, variant.label, round_number, spec, sandbox.token, timeout
                    )
                finally:
                    sandbox.set_faults(Faults())
                measurement.requests = sandbox.requests_since(mark)
                measurement.throttled = sandbox.throttled_since(mark)
                if measurement.error is not None:
                    measurement.error += f" ({measurement.requests:,} requests sent)"
                if before is None:
                    measurement.expected_records = scenario.objectives
                elif measurement.error is None:
                    self._check_survivors(measurement, before & sandbox.object_ids())
                shutil.rmtree(workdir, ignore_errors=True)

    def _check_survivors(self, measurement: Measurement, survivors: set[str]) -> None:
        database, table = measurement.details.get("database"), measurement.details.get("table")
        if not database or not table:
            measurement.problem = "the run did not say where it loaded the objectives"
            return
        check = check_survivors(Path(database), table, survivors)
        measurement.survivors = check.survivors
        if not check.ok:
            measurement.problem = check.describe()
        self.log(f"    {check.describe()}")

    def push(self, scenario: PushScenario) -> None:
        with BenchSandbox(objectives=1000, companies=scenario.companies, seed=SEED) as sandbox:
            companies = tuple(sandbox.company_external_ids())
            for round_number in range(1, self.options.rounds + 1):
                if self.out_of_budget(scenario, round_number):
                    break
                workdir = self._fresh_dir(scenario.name, "ours", round_number)
                spec = RunSpec(
                    task="push",
                    implementation="ours",
                    workdir=str(workdir),
                    result=str(workdir / "outcome.json"),
                    base_url=sandbox.base_url,
                    rows=scenario.rows,
                    company_external_ids=companies,
                    tag=f"r{round_number}",
                )
                mark = sandbox.request_mark()
                measurement = self._run(
                    scenario.name,
                    "ours",
                    round_number,
                    spec,
                    sandbox.token,
                    min(_timeout(scenario.rows), scenario.budget_seconds),
                )
                measurement.requests = sandbox.requests_since(mark)
                measurement.expected_records = scenario.rows
                shutil.rmtree(workdir, ignore_errors=True)

    def models(self, scenario: ModelsScenario) -> None:
        folder = self._fresh_dir(scenario.name, "prepared", 0)
        database = folder / "models.duckdb"
        base = RunSpec(
            task="models_prepare",
            implementation="ours",
            workdir=str(folder),
            result=str(folder / "prepare.json"),
            objectives=scenario.objectives,
            snapshots=scenario.snapshots,
            companies=scenario.companies,
            seed=SEED,
            database=str(database),
        )
        timeout = min(_timeout(scenario.objectives) * 2, scenario.budget_seconds)
        prepared = self._run(scenario.name, "prepare", 0, base, "", timeout, keep=False)
        if prepared.error:
            self.measurements.append(prepared)
            return
        self.log(f"  prepared {prepared.records:,} rows in {prepared.seconds:.1f}s")
        for round_number in range(1, self.options.rounds + 1):
            if self.out_of_budget(scenario, round_number):
                break
            spec = replace(base, task="models", result=str(folder / f"models-{round_number}.json"))
            measurement = self._run(scenario.name, "ours", round_number, spec, "", timeout)
            measurement.expected_records = scenario.objectives * scenario.snapshots
        shutil.rmtree(folder, ignore_errors=True)

    def _fresh_dir(self, scenario: str, label: str, round_number: int) -> Path:
        slug = "".join(ch if ch.isalnum() else "-" for ch in label)
        path = self.root / scenario / f"{slug}-{round_number}"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def _run(
        self,
        scenario: str,
        label: str,
        round_number: int,
        spec: RunSpec,
        token: str,
        timeout: float,
        *,
        keep: bool = True,
    ) -> Measurement:
        measurement = run_worker(spec, token, timeout)
        measurement.scenario, measurement.label, measurement.round = scenario, label, round_number
        if keep:
            self.measurements.append(measurement)
        status = (
            f"error: {measurement.error}"
            if measurement.error
            else (
                f"{measurement.seconds:.2f}s, {measurement.records:,} records, "
                f"peak RSS {measurement.peak_rss_bytes / 2**20:.0f} MiB"
            )
        )
        self.log(f"  round {round_number} {label}: {status}")
        return measurement


def run_worker(spec: RunSpec, token: str, timeout: float) -> Measurement:
    """Run one task in a fresh interpreter; never raises for the task's own failures."""
    spec_path = Path(spec.result).with_suffix(".spec.json")
    write_spec(spec, spec_path)
    env = {**os.environ, TOKEN_ENV: token, "PYTHONPATH": str(REPO_ROOT)}
    measurement = Measurement()
    try:
        completed = subprocess.run(
            [sys.executable, "-m", "bench.worker", str(spec_path)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        measurement.error = f"timed out after {timeout:.0f}s"
        return measurement
    result = Path(spec.result)
    if not result.exists():
        tail = _scrub(completed.stderr, token).strip().splitlines()[-3:]
        measurement.error = f"worker exited {completed.returncode}: {' | '.join(tail)}"
        return measurement
    return Measurement.from_outcome(read_outcome(result))


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


def _rotated(items: Sequence[object], shift: int) -> list:  # type: ignore[type-arg]
    shift %= max(len(items), 1)
    return [*items[shift:], *items[:shift]]


def _timeout(records: int) -> float:
    """Seconds a single run may take before it is stopped: generous, but bounded."""
    return 300.0 + records / 100.0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Benchmark the objectives pipeline against its peers and floors.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument(
        "--rounds", type=int, default=None, help="rounds per scenario (2; quick: 1)"
    )
    parser.add_argument(
        "--scenario",
        action="append",
        choices=scenario_names(),
        help="run only this scenario (repeatable)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=None, help="pages in flight for ours and floor (a)"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="rewrite the results section of this README (default: bench/README.md for a "
        "full run of every scenario; nothing for --quick or --scenario runs)",
    )
    parser.add_argument(
        "--no-output", action="store_true", help="print the report only, write no README"
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="also write every measurement as JSON (default with the README: bench/results.json)",
    )
    parser.add_argument("--work-dir", type=Path, default=None, help="keep run files here")
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (1 if args.quick else BenchOptions.rounds)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    options = BenchOptions(
        quick=args.quick,
        rounds=rounds,
        scenarios=tuple(args.scenario or ()),
        concurrency=args.concurrency or ExtractOptions().concurrency,
        work_dir=args.work_dir,
    )
    command = "python -m bench.run" + (" " + " ".join(argv if argv is not None else sys.argv[1:]))
    started = time.perf_counter()
    measurements = run_benchmark(options, log=lambda line: print(line, flush=True))
    report = build_report(
        measurements,
        options=options,
        command=command.strip(),
        elapsed_seconds=time.perf_counter() - started,
    )
    print()
    print(report.markdown)
    output, json_output = args.output, args.json
    if output is None and not (args.quick or args.scenario or args.no_output):
        output, json_output = README, json_output or RESULTS_JSON
    if output is not None and not args.no_output:
        rewrite_readme(output, report.markdown)
        print(f"\nwrote the results into {output}")
    if json_output is not None:
        json_output.write_text(json.dumps(report.as_json(), indent=2))
    return 0 if report.complete else 1


if __name__ == "__main__":
    sys.exit(main())
