"""Smoke test of the benchmark (`make bench`): tiny sizes, one round, real processes and HTTP.

Runs ``python -m bench.run --quick`` on the scenarios that exercise every implementation
(ours, through Dagster too, the sequential pager with and without 429 retries, dlt, both
floors, the push and the SQL models) and every server behaviour (rate limits, a quota,
churn), and checks that the report has a row for each, that every implementation loaded
exactly the objectives the sandbox holds (under churn: every objective that existed for
the whole run, once), and that every target is judged. No timing is asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import RESULTS_END, RESULTS_START
from bench.scenarios import ExtractScenario, ModelsScenario, PushScenario, scenarios

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SMOKE_SCENARIOS = (
    "extract_0ms",
    "dagster_50ms",
    "quota",
    "rate_limited",
    "churn",
    "push",
    "models",
)

pytest.importorskip("dlt", reason="the benchmark needs the `bench` extra (dlt)")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, str]:  # type: ignore[type-arg]
    folder = tmp_path_factory.mktemp("bench")
    readme = folder / "README.md"
    readme.write_text(
        f"# Benchmarks\n\nKept text.\n\n{RESULTS_START}\nold\n{RESULTS_END}\n\nAfter.\n"
    )
    results = folder / "results.json"
    command = [sys.executable, "-m", "bench.run", "--quick", "--rounds", "1"]
    for name in SMOKE_SCENARIOS:
        command += ["--scenario", name]
    command += ["--output", str(readme), "--json", str(results), "--work-dir", str(folder / "work")]
    completed = subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return json.loads(results.read_text()), readme.read_text(), completed.stdout


def test_every_implementation_has_a_row_with_the_objectives_the_sandbox_holds(
    bench_run: tuple[dict, str, str],  # type: ignore[type-arg]
) -> None:
    report, _, _ = bench_run
    rows = {(r["scenario"], r["label"]): r for r in report["rows"]}
    chosen = [s for s in scenarios(quick=True) if s.name in SMOKE_SCENARIOS]
    expected: list[tuple[str, str]] = []
    for scenario in chosen:
        if isinstance(scenario, ExtractScenario):
            expected += [(scenario.name, v.label) for v in scenario.variants]
        else:
            expected.append((scenario.name, "ours"))
    assert sorted(rows) == sorted(expected)
    extract = next(s for s in chosen if isinstance(s, ExtractScenario))
    for variant in extract.variants:
        row = rows[(extract.name, variant.label)]
        assert row["records"] == extract.objectives, variant.label
        assert row["verified"] and row["seconds"] > 0 and row["peak_rss_bytes"] > 0
    http_rows = [r for (s, label), r in rows.items() if s == extract.name and "NDJSON" not in label]
    assert all(r["requests"] >= extract.objectives // 2000 + 1 for r in http_rows)
    for scenario in chosen:
        if isinstance(scenario, ExtractScenario) and not scenario.churn_per_list_request:
            for variant in scenario.variants:
                row = rows[(scenario.name, variant.label)]
                assert row["records"] == scenario.objectives and row["verified"], row
    assert report["complete"] is True


def test_churn_run_loads_every_survivor_once(
    bench_run: tuple[dict, str, str],  # type: ignore[type-arg]
) -> None:
    report, _, _ = bench_run
    churn = next(s for s in scenarios(quick=True) if s.name == "churn")
    assert isinstance(churn, ExtractScenario)
    runs = {m["label"]: m for m in report["measurements"] if m["scenario"] == "churn"}
    calm, churned = runs["ours, calm"], runs["ours, churn"]
    assert calm["survivors"] == churn.objectives  # nothing changed: every objective survives
    assert calm["records"] == churn.objectives
    # the sandbox deleted objectives during the run, and every one it kept was loaded once
    assert 0 < churned["survivors"] < churn.objectives
    assert churned["problem"] is None and churned["error"] is None
    targets = {t["name"]: t for t in report["targets"]}
    assert targets["churn: every survivor exactly once"]["status"] == "PASS"


def test_dagster_run_reports_step_and_extract_time(
    bench_run: tuple[dict, str, str],  # type: ignore[type-arg]
) -> None:
    report, readme, _ = bench_run
    [run] = [m for m in report["measurements"] if m["scenario"] == "dagster_50ms"]
    details = run["details"]
    assert run["records"] == next(
        s.objectives for s in scenarios(quick=True) if s.name == "dagster_50ms"
    )
    assert (
        0 < details["extract_seconds"] <= details["step_seconds"] <= details["materialize_seconds"]
    )
    assert details["overhead_seconds"] == round(
        details["step_seconds"] - details["extract_seconds"], 3
    )
    assert run["requests"] == run["client_requests"]  # the asset's metadata agrees with the sandbox
    overhead = next(t for t in report["targets"] if t["name"].startswith("Dagster overhead"))
    assert overhead["status"] in ("PASS", "FAIL")
    assert "| dg.materialize s | step s |" in readme


def test_rate_limited_scenarios_run_under_the_sandbox_limits(
    bench_run: tuple[dict, str, str],  # type: ignore[type-arg]
) -> None:
    report, _, _ = bench_run
    targets = {t["name"]: t for t in report["targets"]}
    for name in (
        "rate-limited: wall <= 1.3x (accepted requests / rate)",
        "rate-limited: ours no slower than the pager that retries 429",
        "quota: ours no slower than the pager that retries 429",
    ):
        assert targets[name]["status"] in ("PASS", "FAIL"), targets[name]
    for run in report["measurements"]:
        if run["scenario"] in ("rate_limited", "quota"):
            assert run["throttled"] is not None and run["requests"] >= run["throttled"]


def test_push_sends_every_row_once_and_nothing_when_unchanged(
    bench_run: tuple[dict, str, str],  # type: ignore[type-arg]
) -> None:
    report, _, _ = bench_run
    push = next(s for s in scenarios(quick=True) if isinstance(s, PushScenario))
    [run] = [m for m in report["measurements"] if m["scenario"] == push.name]
    first, again = run["phases"]
    assert first["records"] == push.rows and first["details"]["created"] == push.rows
    assert first["requests"] >= 1
    assert again["records"] == 0 and again["requests"] == 0
    assert again["details"]["unchanged"] == push.rows
    assert run["requests"] == first["requests"]  # the sandbox saw exactly the client's requests


def test_models_build_over_every_snapshot(
    bench_run: tuple[dict, str, str],  # type: ignore[type-arg]
) -> None:
    report, _, _ = bench_run
    models = next(s for s in scenarios(quick=True) if isinstance(s, ModelsScenario))
    [run] = [m for m in report["measurements"] if m["scenario"] == models.name]
    assert run["records"] == models.objectives * models.snapshots
    built = {p["name"]: p["records"] for p in run["phases"]}
    assert {"stg_objectives", "company_objective_health", "company_objective_health_daily"} <= set(
        built
    )
    assert built["stg_objectives"] == models.objectives * models.snapshots
    assert 0 < built["company_objective_health"] <= models.companies


def test_readme_results_section_is_rewritten_and_the_rest_kept(
    bench_run: tuple[dict, str, str],  # type: ignore[type-arg]
) -> None:
    report, readme, stdout = bench_run
    assert readme.startswith("# Benchmarks\n\nKept text.") and readme.rstrip().endswith("After.")
    section = readme[readme.index(RESULTS_START) : readme.index(RESULTS_END)]
    assert "old" not in section.splitlines()
    for needle in ("Command: `python -m bench.run --quick", "Machine:", "Date:", "### Targets"):
        assert needle in section
    for target in report["targets"]:
        assert target["status"] in section and target["name"] in section
    assert "| ours |" in section and "| dlt rest_api |" in section
    assert "### Targets" in stdout  # the report is printed as well
