"""planhat_company_health against the sandbox over HTTP, through real Dagster runs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest

from objectives_pipeline.definitions import build_defs
from objectives_pipeline.planhat import PlanhatClient
from objectives_pipeline.resources import PlanhatResource, SqlModelsResource, WarehouseResource
from objectives_pipeline.sandbox import Faults, SandboxServer
from objectives_pipeline_tests.dagster_helpers import materialization_metadata, query, run_elt

DAY = "2026-03-02"
EPOCH_DAY = (date.fromisoformat(DAY) - date(1970, 1, 1)).days
TOKEN = "writeback-secret-7d1e4c"
FIELD = "Avg objective health"


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    # 60 companies: the 38th has no externalId.
    with SandboxServer(objectives=600, companies=60, seed=3, token=TOKEN) as srv:
        yield srv


def planhat(srv: SandboxServer, **options: Any) -> PlanhatResource:
    options.setdefault("tenant_uuid", srv.tenant_uuid)
    return PlanhatResource(
        api_token=srv.token,
        base_url=srv.base_url,
        analytics_url=srv.base_url,
        max_attempts=3,
        **options,
    )


def defs(srv: SandboxServer, db: Path, **options: Any) -> dg.Definitions:
    return build_defs(
        {
            "planhat": planhat(srv, **options),
            "warehouse": WarehouseResource(path=str(db), lock_timeout_seconds=10),
            "sql_models": SqlModelsResource(),
        }
    )


def write_back(
    definitions: dg.Definitions, *, enabled: bool | None = True, **config: Any
) -> dg.ExecuteInProcessResult:
    if enabled is not None:
        config["enabled"] = enabled
    job = definitions.resolve_job_def("health_score_writeback")
    return job.execute_in_process(
        partition_key=DAY,
        run_config={"ops": {"planhat_company_health": {"config": config}}},
        raise_on_error=False,
    )


def mart(db: Path) -> dict[str, float]:
    rows = query(
        db,
        "SELECT company_id, avg_health FROM company_objective_health_daily "
        "WHERE snapshot_date = ? AND avg_health IS NOT NULL",
        [date.fromisoformat(DAY)],
    )
    return {str(company_id): round(float(avg), 2) for company_id, avg in rows}


def writes(srv: SandboxServer, since: int = 0) -> list[tuple[str, str, int | None]]:
    """The write-back's requests (method, path, items) after the first `since` logged."""
    return [
        (r.method, r.path, r.n_items)
        for r in srv.request_log[since:]
        if r.path.startswith(("/companies", "/leancompanies", "/dimensiondata"))
    ]


def read_fields(srv: SandboxServer) -> dict[str, Any]:
    with PlanhatClient(srv.base_url, srv.token) as client:
        return {c.id: (c.custom or {}).get(FIELD) for c in client.iter_companies()}


def read_metrics(srv: SandboxServer) -> dict[str, float]:
    response = httpx.get(
        f"{srv.base_url}/dimensiondata",
        params={"dimid": "avg_objective_health", "from": EPOCH_DAY, "to": EPOCH_DAY},
        headers={"Authorization": f"Bearer {srv.token}"},
    )
    response.raise_for_status()
    return {row["companyId"]: row["value"] for row in response.json()}


@pytest.fixture
def loaded(server: SandboxServer, tmp_path: Path) -> tuple[dg.Definitions, Path]:
    db = tmp_path / "warehouse.duckdb"
    definitions = defs(server, db)
    assert run_elt(definitions, DAY).success
    return definitions, db


def test_field_and_metric_land_for_every_company_then_a_rerun_sends_nothing(
    server: SandboxServer, loaded: tuple[dg.Definitions, Path]
) -> None:
    definitions, db = loaded
    expected = mart(db)
    no_external = {c["_id"] for c in server.store.companies() if not c.get("externalId")}
    assert no_external & set(expected), "the fixture needs a company without externalId"
    since = len(server.request_log)

    first = write_back(definitions)

    assert first.success
    assert writes(server, since) == [
        ("PUT", "/companies", len(expected)),
        ("GET", "/leancompanies", 60),
        ("POST", f"/dimensiondata/{server.tenant_uuid}", len(expected) - 1),
    ]
    fields = read_fields(server)
    assert {cid: fields[cid] for cid in expected} == expected
    assert all(fields[cid] is None for cid in fields if cid not in expected)
    assert read_metrics(server) == {c: v for c, v in expected.items() if c not in no_external}
    meta = materialization_metadata(first, "planhat_company_health")
    assert (meta["companies_considered"], meta["companies_sent"], meta["companies_failed"]) == (
        len(expected), len(expected), 0,
    )
    assert (meta["metrics_sent"], meta["skipped_for_metrics"], meta["requests"]) == (
        len(expected) - 1, 1, 3,
    )
    skipped = query(
        db,
        "SELECT push_key, error FROM reverse_etl.push_results WHERE run_id = ? "
        "AND outcome = 'skipped'",
        [f"{first.run_id}:metric"],
    )
    assert [key for key, _ in skipped] == [f"company:{next(iter(no_external))}:{DAY}"]
    assert "no externalId" in skipped[0][1]
    assert TOKEN not in str(meta)

    since = len(server.request_log)
    second = write_back(definitions)

    assert second.success
    assert writes(server, since) == []
    meta = materialization_metadata(second, "planhat_company_health")
    assert (meta["companies_unchanged"], meta["metrics_unchanged"], meta["requests"]) == (
        len(expected), len(expected), 0,
    )


def test_only_companies_whose_health_changed_are_sent(
    server: SandboxServer, loaded: tuple[dg.Definitions, Path]
) -> None:
    definitions, db = loaded
    assert write_back(definitions).success
    before = mart(db)
    company = next(c for c in server.store.companies() if c["_id"] in before and c.get("externalId"))
    with PlanhatClient(server.base_url, server.token) as client:
        objective = next(
            o for o in client.iter_objectives(company_id=company["_id"]) if o.health is not None
        )
        client.update_objective(objective.id, {"health": 0 if objective.health else 5})
    assert run_elt(definitions, DAY).success
    after = mart(db)
    changed = {cid for cid in after if after[cid] != before.get(cid)}
    assert changed == {company["_id"]}
    since = len(server.request_log)

    result = write_back(definitions)

    assert result.success
    assert writes(server, since) == [
        ("PUT", "/companies", 1),
        ("GET", "/leancompanies", 60),
        ("POST", f"/dimensiondata/{server.tenant_uuid}", 1),
    ]
    assert read_fields(server)[company["_id"]] == after[company["_id"]]
    assert read_metrics(server)[company["_id"]] == after[company["_id"]]


def test_companies_refused_in_a_206_are_recorded_and_sent_again_next_run(
    server: SandboxServer, loaded: tuple[dg.Definitions, Path]
) -> None:
    definitions, db = loaded
    refused = sorted(mart(db))[:2]
    server.faults = Faults(bulk_item_error_source_ids=set(refused))

    failed = write_back(definitions)

    assert not failed.success
    rows = query(
        db,
        "SELECT push_key, error FROM reverse_etl.push_results WHERE run_id = ? "
        "AND outcome = 'failed' ORDER BY push_key",
        [failed.run_id],
    )
    assert [key for key, _ in rows] == [f"company:{cid}" for cid in refused]
    assert all("sandbox fault" in error for _, error in rows)
    description = next(e for e in failed.all_events if e.is_step_failure).step_failure_data
    assert "2 failed" in str(description.user_failure_data.description)

    server.faults = Faults()
    since = len(server.request_log)
    retried = write_back(definitions)

    assert retried.success
    assert writes(server, since)[0] == ("PUT", "/companies", 2)
    fields = read_fields(server)
    assert [fields[cid] for cid in refused] == [mart(db)[cid] for cid in refused]


def test_with_a_real_token_nothing_is_written_unless_enabled(
    server: SandboxServer, loaded: tuple[dg.Definitions, Path]
) -> None:
    definitions, _ = loaded
    since = len(server.request_log)

    result = write_back(definitions, enabled=None)

    assert result.success
    assert writes(server, since) == []
    assert result.get_asset_materialization_events() == []


def test_without_a_tenant_uuid_only_the_field_is_written(
    server: SandboxServer, tmp_path: Path
) -> None:
    db = tmp_path / "warehouse.duckdb"
    definitions = defs(server, db, tenant_uuid=None)
    assert run_elt(definitions, DAY).success
    since = len(server.request_log)

    result = write_back(definitions, at_risk_field="At-risk objectives %")

    assert result.success
    assert [w[:2] for w in writes(server, since)] == [("PUT", "/companies")]
    shares = query(
        db,
        "SELECT company_id, round(at_risk_share * 100, 1) FROM company_objective_health_daily "
        "WHERE snapshot_date = ? AND avg_health IS NOT NULL",
        [date.fromisoformat(DAY)],
    )
    with PlanhatClient(server.base_url, server.token) as client:
        stored = {c.id: (c.custom or {}).get("At-risk objectives %") for c in client.iter_companies()}
    assert {cid: stored[cid] for cid, _ in shares} == {cid: float(v) for cid, v in shares}
    forced = write_back(definitions, push_metric=True)
    assert not forced.success
    failure = next(e for e in forced.all_events if e.is_step_failure).step_failure_data
    assert "PLANHAT_TENANT_UUID" in str(failure.user_failure_data.description)


def test_a_date_without_a_snapshot_fails_clearly(server: SandboxServer, tmp_path: Path) -> None:
    definitions = defs(server, tmp_path / "warehouse.duckdb")
    assert run_elt(definitions, "2026-03-01").success

    result = write_back(definitions)

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data
    assert "no rows for 2026-03-02" in str(failure.user_failure_data.description)
    assert writes(server) == []
