"""``python -m bench.writeback --companies 5000``: requests and time of the health write-back.

Self-contained: an in-process sandbox (no latency), a temporary DuckDB file, real Dagster
runs. It snapshots the objectives (objectives_elt), then runs health_score_writeback three
times for the same date: first write, unchanged re-run, and a re-run after the health of
`--change` companies changed in Planhat (and a new snapshot).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import dagster as dg

from objectives_pipeline.definitions import build_defs
from objectives_pipeline.planhat import PlanhatClient
from objectives_pipeline.resources import PlanhatResource, SqlModelsResource, WarehouseResource
from objectives_pipeline.sandbox import SandboxServer

DAY = "2026-03-02"
WRITE_PATHS = ("/companies", "/leancompanies", "/dimensiondata")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--companies", type=int, default=5000)
    parser.add_argument("--objectives-per-company", type=int, default=4)
    parser.add_argument("--change", type=int, default=50, help="companies changed before run 3")
    args = parser.parse_args(argv)
    with (
        tempfile.TemporaryDirectory() as tmp,
        SandboxServer(
            objectives=args.companies * args.objectives_per_company,
            companies=args.companies,
            seed=42,
        ) as server,
    ):
        defs = build_defs(
            {
                "planhat": PlanhatResource(
                    api_token=server.token,
                    base_url=server.base_url,
                    tenant_uuid=server.tenant_uuid,
                    analytics_url=server.base_url,
                    rate_limit_per_minute=100_000,
                ),
                "warehouse": WarehouseResource(path=str(Path(tmp) / "bench.duckdb")),
                "sql_models": SqlModelsResource(),
            }
        )
        _run(defs, "objectives_elt", {})
        print(f"{args.companies} companies, {server.store.count()} objectives, date {DAY}")
        print(f"{'run':<28}{'sent':>7}{'metric':>8}{'skipped':>9}{'requests':>10}{'seconds':>9}")
        _writeback(defs, server, "first write")
        _writeback(defs, server, "unchanged re-run")
        _change_health(server, args.change)
        _run(defs, "objectives_elt", {})
        _writeback(defs, server, f"after {args.change} changed")
    return 0


def _run(defs: dg.Definitions, job: str, run_config: dict[str, Any]) -> dg.ExecuteInProcessResult:
    result = defs.resolve_job_def(job).execute_in_process(
        partition_key=DAY, run_config=run_config, raise_on_error=True
    )
    return result


def _writeback(defs: dg.Definitions, server: SandboxServer, label: str) -> None:
    since = len(server.request_log)
    started = time.perf_counter()
    result = _run(
        defs,
        "health_score_writeback",
        {"ops": {"planhat_company_health": {"config": {"enabled": True}}}},
    )
    wall = time.perf_counter() - started
    requests = [r for r in server.request_log[since:] if r.path.startswith(WRITE_PATHS)]
    meta = {}
    for event in result.get_asset_materialization_events():
        meta = {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}
    print(
        f"{label:<28}{meta['companies_sent']:>7}{meta['metrics_sent']:>8}"
        f"{meta['skipped_for_metrics']:>9}{len(requests):>10}{meta['seconds']:>9.2f}"
        f"   (Dagster run {wall:.2f}s; "
        + ", ".join(f"{r.method} {r.path.split('/')[1]} {r.n_items}" for r in requests)
        + ")"
    )


def _change_health(server: SandboxServer, count: int) -> None:
    """Set one objective's health to 0 in each of `count` companies that have one."""
    changed: set[str] = set()
    with PlanhatClient(server.base_url, server.token, rate_limit_per_minute=None) as client:
        for objective in client.iter_objectives():
            if len(changed) == count:
                break
            if objective.company_id in changed or not objective.health:
                continue
            client.update_objective(objective.id, {"health": 0})
            changed.add(str(objective.company_id))


if __name__ == "__main__":
    raise SystemExit(main())
