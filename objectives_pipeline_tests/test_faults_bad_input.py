"""Bad input: configuration, records of unexpected shape and broken SQL models."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from objectives_pipeline.defs.extract_assets import planhat_objectives
from objectives_pipeline.defs.sql_assets import build_sql_model_assets
from objectives_pipeline.resources import (
    PlanhatResource,
    SqlModelsResource,
    WarehouseResource,
    planhat_resource_from_env,
)
from objectives_pipeline.sandbox import Faults, SandboxServer, Tenant
from objectives_pipeline.warehouse import ModelError

from .dagster_helpers import defs_for, materialization_metadata, query, run_elt
from .fault_matrix import extract, extract_config, failure_text, figures

DAY = "2026-10-10"


@pytest.fixture(scope="module")
def server(sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return sandbox(objectives=300, companies=10, seed=101)


def materialize(planhat: PlanhatResource, db: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [planhat_objectives],
        partition_key=DAY,
        resources={
            "planhat": planhat,
            "warehouse": WarehouseResource(path=str(db), lock_timeout_seconds=5),
            "sql_models": SqlModelsResource(),
        },
        raise_on_error=False,
    )


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("size", "bound"),
    [(0, "greater than or equal to 2"), (1, "greater than or equal to 2"), (2001, "2000")],
)
def test_a_page_size_out_of_range_is_refused_before_any_request(
    server: SandboxServer, tmp_path: Path, size: int, bound: str
) -> None:
    before = len(server.request_log)
    result = extract(server, tmp_path / "o.duckdb", DAY, run_config=extract_config(page_size=size))
    assert not result.success
    text = failure_text(result)
    assert "page_size" in text and bound in text
    assert len(server.request_log) == before
    assert not (tmp_path / "o.duckdb").exists()


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("api.planhat.com", "is not an http(s) URL"),
        ("https://", "is not an http(s) URL"),
        ("http://api.planhat.com", "Refusing to send the Planhat API token over plain http://"),
    ],
)
def test_an_unusable_base_url_fails_the_run_with_a_clear_message(
    tmp_path: Path, base_url: str, message: str
) -> None:
    planhat = PlanhatResource(api_token="tok-never-sent", base_url=base_url)
    result = materialize(planhat, tmp_path / "o.duckdb")
    assert not result.success
    text = failure_text(result)
    assert message in text
    assert "tok-never-sent" not in text
    assert not (tmp_path / "o.duckdb").exists()


@pytest.mark.parametrize("base_url", ["https://api.planhat.com", "https://api-eu.planhat.com"])
def test_a_planhat_url_without_a_token_is_refused_not_swapped_for_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, base_url: str
) -> None:
    monkeypatch.delenv("PLANHAT_API_TOKEN", raising=False)
    monkeypatch.setenv("PLANHAT_BASE_URL", base_url)
    planhat = planhat_resource_from_env().model_copy(
        update={"sandbox_dir": str(tmp_path / "sandbox")}
    )
    result = materialize(planhat, tmp_path / "o.duckdb")
    assert not result.success
    assert "PLANHAT_API_TOKEN is not set" in failure_text(result)
    assert not (tmp_path / "sandbox").exists()  # no sandbox was started in its place


@pytest.mark.parametrize("problem", ["does not exist", "is not a folder"])
def test_a_duckdb_path_in_an_unusable_folder_fails_naming_the_folder(
    server: SandboxServer, tmp_path: Path, problem: str
) -> None:
    folder = tmp_path / "nowhere"
    if problem == "is not a folder":
        folder.write_text("a file where the folder should be")
    result = extract(server, folder / "o.duckdb", DAY)
    assert not result.success
    text = failure_text(result)
    assert f"its folder {folder} {problem}" in text and "OBJECTIVES_DUCKDB_PATH" in text


# -- records of unexpected shape -----------------------------------------------------------

ODD = {
    "ffff00000000000000000001": ({"health": "high"}, ["health is not a number"]),
    "ffff00000000000000000002": ({"custom": ["a", "list"]}, ["custom is not an object"]),
    "ffff00000000000000000003": ({"companyId": None}, ["companyId missing"]),
    "ffff00000000000000000004": ({"plannedDate": "2026-12-01", "owner": {"id": 7}}, []),
}


def odd_tenant(server: SandboxServer) -> dict[str, dict[str, Any]]:
    """Load records the API would refuse to create straight into the sandbox's store."""
    company = server.store.companies()[0]
    odd: dict[str, dict[str, Any]] = {}
    for oid, (changes, _) in ODD.items():
        record = {"_id": oid, "name": f"odd {oid[-1]}", "companyId": company["_id"], "health": 3}
        record.update(changes)
        if record["companyId"] is None:
            del record["companyId"]
        odd[oid] = record
    server.store.load(
        Tenant(
            companies=server.store.companies(),
            objectives=[*server.store.all_objectives(), *odd.values()],
        )
    )
    return odd


def test_records_of_unexpected_shape_are_loaded_flagged_and_kept_whole(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox(objectives=200, companies=10, seed=102)
    odd = odd_tenant(server)
    db = tmp_path / "o.duckdb"

    result = run_elt(defs_for(server, db), DAY)

    assert result.success  # the SQL models build on top of them too
    assert query(db, "SELECT count(*) FROM raw.planhat_objectives") == [(204,)]
    rows = {
        r[0]: r[1:]
        for r in query(
            db,
            "SELECT objective_id, load_issues, raw_record, health, custom, company_id, extra "
            "FROM raw.planhat_objectives WHERE objective_id LIKE 'ffff%'",
        )
    }
    for oid, (_, issues) in ODD.items():
        load_issues, raw_record, *_ = rows[oid]
        assert load_issues == issues, oid
        assert (json.loads(raw_record) if raw_record else None) == (odd[oid] if issues else None)
    assert rows["ffff00000000000000000001"][2] is None  # health: no number to keep
    assert rows["ffff00000000000000000002"][3] is None  # custom: not an object
    assert rows["ffff00000000000000000003"][4] is None  # company_id
    extra = json.loads(rows["ffff00000000000000000004"][5])
    assert extra == {"plannedDate": "2026-12-01", "owner": {"id": 7}}

    meta = materialization_metadata(result, "planhat_objectives")
    assert meta["flagged_rows"] == 3
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not checks["records_well_formed"].passed
    assert checks["records_well_formed"].severity == dg.AssetCheckSeverity.WARN
    assert not checks["company_id_present"].passed
    figures(
        "records of unexpected shape (health string, custom list, no companyId, extra fields)",
        expected=204,
        landed=204,
        flagged=meta["flagged_rows"],
        raw_kept=3,
        dropped=0,
    )


def test_an_odd_record_on_a_repaired_boundary_lands_as_received(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    """Boundaries that churn opened are read again: odd records there land raw as well."""
    server = sandbox(objectives=1000, companies=10, seed=1)
    company = server.store.companies()[0]["_id"]
    objectives = server.store.all_objectives()
    for obj in objectives[300:]:  # beyond the churned quarter, on boundaries read again
        obj["health"] = "not a number"
        obj["companyId"] = company
    server.store.load(Tenant(companies=server.store.companies(), objectives=objectives))
    before = set(server.store.ids())
    server.faults = Faults(churn_per_list_request=10, seed=2)

    result = extract(
        server,
        tmp_path / "o.duckdb",
        DAY,
        run_config=extract_config(page_size=100, concurrency=1),
        rate_limit_per_minute=100_000,
        rate_limit_window_seconds=1.0,
    )
    server.faults = Faults()

    assert result.success, failure_text(result)
    meta = materialization_metadata(result, "planhat_objectives")
    assert meta["boundaries_repaired"] > 0
    survivors = before & set(server.store.ids())
    odd = query(
        tmp_path / "o.duckdb",
        "SELECT objective_id, raw_record ->> '$.health' FROM raw.planhat_objectives "
        "WHERE list_contains(load_issues, 'health is not a number')",
    )
    assert {oid for oid, _ in odd} >= {o["_id"] for o in objectives[300:]} & survivors
    assert {health for _, health in odd} == {"not a number"}


# -- SQL models folder ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT 1 AS a; SELECT 2 AS b", "2 statements"),
        ("CREATE TABLE t AS SELECT 1 AS a", "statement type is CREATE"),
        ("DELETE FROM raw.planhat_objectives", "statement type is DELETE"),
    ],
)
def test_a_model_file_that_is_not_one_select_is_refused_naming_it(
    tmp_path: Path, sql: str, reason: str
) -> None:
    (tmp_path / "marts").mkdir()
    (tmp_path / "marts" / "fine.sql").write_text("SELECT 1 AS one")
    bad = tmp_path / "marts" / "bad_model.sql"
    bad.write_text(sql)
    with pytest.raises(ModelError) as caught:
        build_sql_model_assets([], tmp_path)
    assert str(bad) in str(caught.value) and reason in str(caught.value)


def test_a_cycle_between_model_files_is_refused_naming_them(tmp_path: Path) -> None:
    a = tmp_path / "loop_a.sql"
    b = tmp_path / "loop_b.sql"
    a.write_text("SELECT * FROM loop_b")
    b.write_text("SELECT * FROM loop_a")
    with pytest.raises(ModelError, match="cycle") as caught:
        build_sql_model_assets([], tmp_path)
    assert str(a) in str(caught.value) and str(b) in str(caught.value)
