"""From the demo to a real tenant: no demo data, no fabricated history, nothing by surprise.

A token-protected sandbox stands in for a real tenant (`PlanhatResource` with a token is
exactly how the pipeline talks to Planhat).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from objectives_pipeline.commands.runs import failure_messages
from objectives_pipeline.definitions import build_defs
from objectives_pipeline.defs.reverse_etl import DEMO_CRM_EXPORT_NAME
from objectives_pipeline.resources import PlanhatResource, SqlModelsResource, WarehouseResource
from objectives_pipeline.reverse_etl import generate_crm_objectives, write_crm_csv
from objectives_pipeline.sandbox import SandboxServer
from objectives_pipeline.sandbox.embedded import stop_sandbox
from objectives_pipeline.settings import read_env
from objectives_pipeline.snapshot_dates import first_snapshot_date, partitions_start
from objectives_pipeline_tests.dagster_helpers import query, run_elt

TOKEN = "tenant-token-7c2e91d04b"


@pytest.fixture
def tenant() -> Iterator[SandboxServer]:
    with SandboxServer(objectives=20, companies=10, seed=5, token=TOKEN) as srv:
        yield srv


def definitions(planhat: PlanhatResource, db: Path) -> dg.Definitions:
    return build_defs(
        {
            "planhat": planhat,
            "warehouse": WarehouseResource(path=str(db)),
            "sql_models": SqlModelsResource(),
        }
    )


def as_tenant(srv: SandboxServer) -> PlanhatResource:
    return PlanhatResource(api_token=srv.token, base_url=srv.base_url, max_attempts=2)


def push(defs: dg.Definitions, **config: Any) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("push_objectives_to_planhat").execute_in_process(
        run_config={"ops": {"push_objectives": {"config": config}}}, raise_on_error=False
    )


def load_crm(defs: dg.Definitions, csv_path: Path) -> dg.ExecuteInProcessResult:
    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        asset_selection=[dg.AssetKey("crm_objectives"), dg.AssetKey("objectives_to_push")],
        run_config={"ops": {"crm_objectives": {"config": {"csv_path": str(csv_path)}}}},
        raise_on_error=False,
    )


def test_the_demo_export_is_never_pushed_to_a_tenant(tenant: SandboxServer, tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    sandbox_dir = tmp_path / "sandbox"
    demo = build_defs(
        {
            "planhat": PlanhatResource(sandbox_dir=str(sandbox_dir), sandbox_objectives=10),
            "warehouse": WarehouseResource(path=str(db)),
            "sql_models": SqlModelsResource(),
        }
    )
    try:
        generated = load_crm(demo, tmp_path / "no-export-here.csv")
    finally:
        stop_sandbox(sandbox_dir)
    real = definitions(as_tenant(tenant), db)
    pushed = push(real, enabled=True)
    reloaded = load_crm(real, sandbox_dir / DEMO_CRM_EXPORT_NAME)

    assert generated.success
    assert (sandbox_dir / DEMO_CRM_EXPORT_NAME).is_file()  # inside the folder make clean removes
    assert not pushed.success
    assert "built from the demo CRM export" in " ".join(failure_messages(pushed))
    assert not reloaded.success
    assert "is the demo export generated for the embedded sandbox" in " ".join(
        failure_messages(reloaded)
    )
    assert not [r for r in tenant.request_log if r.method == "PUT"]


def test_the_first_push_to_a_tenant_needs_enabling_and_is_remembered(
    tenant: SandboxServer, tmp_path: Path
) -> None:
    db = tmp_path / "warehouse.duckdb"
    export = write_crm_csv(
        tmp_path / "crm.csv",
        generate_crm_objectives(tenant.store.companies(), 12, seed=2, with_problems=False),
    )
    real = definitions(as_tenant(tenant), db)
    assert load_crm(real, export).success

    first = push(real)
    puts_after_first = [r for r in tenant.request_log if r.method == "PUT"]
    enabled = push(real, enabled=True)
    write_crm_csv(
        export, generate_crm_objectives(tenant.store.companies(), 14, seed=2, with_problems=False)
    )
    assert load_crm(real, export).success
    later = push(real)  # what a sensor does: default config
    off = push(real, enabled=False)

    assert not first.success
    assert "is not enabled, nothing was written" in " ".join(failure_messages(first))
    assert puts_after_first == []
    assert enabled.success and later.success
    assert not off.success
    assert query(db, "SELECT count(*) FROM reverse_etl.enabled_targets")[0][0] == 1


def test_a_base_url_without_a_token_fails_even_a_dry_run(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    defs = definitions(PlanhatResource(base_url="https://api-eu.planhat.com"), db)
    result = push(defs, dry_run=True, full_push=True)

    assert not result.success
    assert "PLANHAT_API_TOKEN is not set" in " ".join(failure_messages(result))


def test_a_past_snapshot_is_refused_and_yesterday_still_runs(
    tenant: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OBJECTIVES_ALLOW_PAST_SNAPSHOTS")
    db = tmp_path / "warehouse.duckdb"
    defs = definitions(as_tenant(tenant), db)
    today = date.today()
    past = run_elt(defs, (today - timedelta(days=5)).isoformat())
    requests_after_refusal = len(tenant.request_log)
    yesterday = run_elt(defs, (today - timedelta(days=1)).isoformat())
    monkeypatch.setenv("OBJECTIVES_ALLOW_PAST_SNAPSHOTS", "true")
    relabelled = run_elt(defs, (today - timedelta(days=5)).isoformat())

    assert not past.success
    message = " ".join(failure_messages(past))
    assert "Planhat serves only its present state" in message
    assert "OBJECTIVES_ALLOW_PAST_SNAPSHOTS=true" in message
    assert requests_after_refusal == 0  # nothing was fetched
    assert yesterday.success
    assert relabelled.success
    meta = {
        event.materialization.asset_key.to_user_string(): event.materialization.metadata
        for event in relabelled.get_asset_materialization_events()
    }["planhat_objectives"]
    assert meta["relabelled"].value is True
    assert meta["captured_on"].value == date.today().isoformat()
    assert query(db, "SELECT count(DISTINCT snapshot_date) FROM raw.planhat_objectives")[0][0] == 2


def test_partitions_start_at_the_first_snapshot(
    tenant: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "warehouse.duckdb"
    monkeypatch.delenv("OBJECTIVES_START_DATE")
    monkeypatch.setenv("OBJECTIVES_DUCKDB_PATH", str(db))
    before = partitions_start(read_env())
    assert run_elt(definitions(as_tenant(tenant), db), "2026-03-04").success

    assert before == date.today()  # nothing to backfill before the first run
    assert first_snapshot_date(str(db)) == date(2026, 3, 4)
    assert partitions_start(read_env()) == date(2026, 3, 4)
