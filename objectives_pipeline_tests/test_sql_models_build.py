"""Building the SQL models into a real DuckDB file: results, parameters and failures."""

from __future__ import annotations

import json
import math
import shutil
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from objectives_pipeline.package_files import sql_models_dir
from objectives_pipeline.warehouse import (
    ModelError,
    SnapshotStager,
    SqlModel,
    Warehouse,
    build_model,
    discover_models,
    load_snapshot,
)

DAY1, DAY2 = date(2024, 3, 1), date(2024, 3, 2)
HOSTILE = "2'); DROP TABLE raw.planhat_objectives; --"

SNAPSHOTS: dict[date, list[dict[str, Any]]] = {
    DAY1: [
        {"_id": "o1", "name": "Adopt", "health": 4, "companyId": "A", "companyName": "Acme"},
        {"_id": "o2", "name": "Expand", "health": 1.5, "companyId": "A", "companyName": "Acme"},
        {"_id": "o3", "name": "Renew", "health": None, "companyId": "A", "companyName": "Acme"},
        {"_id": "o4", "name": "Onboard", "health": 2.5, "companyId": "B", "companyName": "Beta"},
        {"_id": "o5", "name": "Gone tomorrow", "health": 5, "companyId": "C", "companyName": "Cee"},
    ],
    DAY2: [
        {"_id": "o1", "name": " Adopt ", "health": 3.75, "companyId": "A", "companyName": "Acme"},
        {"_id": "o2", "name": "Expand", "health": "abc", "companyId": "A", "companyName": "Acme"},
        {"_id": "o3", "name": "Renew", "health": "2", "companyId": "A"},
        {"_id": "o6", "name": "Train", "health": 2.0, "companyId": "A", "companyName": "Acme"},
        {"_id": "o4", "name": "Onboard", "health": 4.5, "companyId": "B", "companyName": "Beta"},
        {"_id": "o7", "name": "Fix", "health": 0.5, "companyId": "B", "companyName": "Beta"},
        {"_id": "o8", "name": "Unscored", "companyId": "D", "companyName": "Delta"},
        {"_id": "o9", "name": "Orphan", "health": 1},
    ],
}


def py_health(value: Any) -> float | None:
    """Health as the documented load rules read it: numbers, and strings holding a number."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def expected_daily(threshold: float) -> dict[tuple[date, str], dict[str, Any]]:
    groups: dict[tuple[date, str], list[dict[str, Any]]] = defaultdict(list)
    for day, records in SNAPSHOTS.items():
        for record in records:
            if record.get("companyId"):
                groups[(day, record["companyId"])].append(record)
    result = {}
    for key, records in groups.items():
        healths = [h for r in records if (h := py_health(r.get("health"))) is not None]
        at_risk = sum(1 for h in healths if h <= threshold)
        names = [r["companyName"] for r in records if r.get("companyName")]
        result[key] = {
            "company_name": names[0] if names else key[1],
            "objective_count": len(records),
            "objectives_with_health": len(healths),
            "avg_health": sum(healths) / len(healths) if healths else None,
            "min_health": min(healths, default=None),
            "max_health": max(healths, default=None),
            "at_risk_objectives": at_risk,
            "at_risk_share": at_risk / len(healths) if healths else None,
        }
    return result


def table(warehouse: Warehouse, name: str) -> list[dict[str, Any]]:
    with warehouse.connect(read_only=True) as con:
        cursor = con.execute(f"SELECT * FROM main.{name}")
        names = [d[0] for d in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def approx(row: dict[str, Any]) -> dict[str, Any]:
    return {k: pytest.approx(v) if isinstance(v, float) else v for k, v in row.items()}


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    warehouse = Warehouse(tmp_path / "objectives.duckdb")
    for day, records in SNAPSHOTS.items():
        with SnapshotStager() as stager:
            stager.add_page(json.dumps(records).encode())
            load_snapshot(warehouse, stager, day, datetime(2024, 3, 2, tzinfo=UTC))
    return warehouse


@pytest.fixture
def models() -> dict[str, SqlModel]:
    return {m.name: m for m in discover_models()}


def build_health(warehouse: Warehouse, models: dict[str, SqlModel], **variables: object) -> None:
    for name in ("stg_objectives", "company_objective_health_daily", "company_objective_health"):
        build_model(warehouse, models[name], variables)


def test_health_marts_equal_an_independent_computation(
    warehouse: Warehouse, models: dict[str, SqlModel]
) -> None:
    build_health(warehouse, models, at_risk_threshold=2.5)
    expected = expected_daily(threshold=2.5)

    daily = {
        (r.pop("snapshot_date"), r.pop("company_id")): r
        for r in table(warehouse, "company_objective_health_daily")
    }
    assert daily == {key: approx(value) for key, value in expected.items()}

    latest = {r.pop("company_id"): r for r in table(warehouse, "company_objective_health")}
    assert set(latest) == {"A", "B", "D"}, "C has no objectives in the latest snapshot"
    for company, row in latest.items():
        assert row.pop("snapshot_date") == DAY2
        assert row == approx(expected[(DAY2, company)])
    # Spelled out once, so the rules are visible: "abc" and a missing health are not zeros.
    assert latest["A"]["objective_count"] == 4 and latest["A"]["objectives_with_health"] == 3
    assert latest["A"]["avg_health"] == pytest.approx((3.75 + 2 + 2) / 3)
    assert latest["D"]["avg_health"] is None and latest["D"]["at_risk_share"] is None


def test_the_default_threshold_applies_when_none_is_given(
    warehouse: Warehouse, models: dict[str, SqlModel]
) -> None:
    build_health(warehouse, models)
    latest = {r["company_id"]: r for r in table(warehouse, "company_objective_health")}
    expected = expected_daily(threshold=2.0)
    assert {c: r["at_risk_objectives"] for c, r in latest.items()} == {
        c: expected[(DAY2, c)]["at_risk_objectives"] for c in latest
    }


def test_staging_cleans_names_and_flags_health(
    warehouse: Warehouse, models: dict[str, SqlModel]
) -> None:
    build_model(warehouse, models["stg_objectives"])
    rows = {(r["snapshot_date"], r["objective_id"]): r for r in table(warehouse, "stg_objectives")}
    o1, o2, o3 = rows[(DAY2, "o1")], rows[(DAY2, "o2")], rows[(DAY2, "o3")]
    assert o1["name"] == "Adopt" and not o1["health_issue"] and o1["has_health"]
    assert o2["health"] is None and o2["health_issue"] and not o2["has_health"]
    assert o3["health"] == 2.0 and o3["health_issue"]
    assert o3["company_name"] == "Acme", "filled in from another objective of the company"
    assert rows[(DAY2, "o9")]["company_id"] is None


def test_a_parameter_value_is_bound_as_data_never_run_as_sql(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    echo = folder / "echo_label.sql"
    folder.mkdir()
    echo.write_text(
        "SELECT getvariable('label') AS label, count(*) AS objectives FROM raw.planhat_objectives"
    )
    (model,) = discover_models(folder)
    result = build_model(warehouse, model, {"label": HOSTILE})
    assert table(warehouse, "echo_label") == [{"label": HOSTILE, "objectives": 13}]
    assert result.rows == 1 and result.columns == [("label", "VARCHAR"), ("objectives", "BIGINT")]


def test_a_failed_build_names_the_file_and_keeps_the_previous_table(
    warehouse: Warehouse, models: dict[str, SqlModel]
) -> None:
    build_health(warehouse, models, at_risk_threshold=2.5)
    before = table(warehouse, "company_objective_health_daily")
    daily = models["company_objective_health_daily"]
    with pytest.raises(ModelError) as caught:
        build_model(warehouse, daily, {"at_risk_threshold": HOSTILE})
    assert str(daily.path) in str(caught.value)
    assert "previous table was kept" in str(caught.value)
    assert table(warehouse, "company_objective_health_daily") == before
    with warehouse.connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.planhat_objectives").fetchone() == (13,)


def test_reading_a_table_that_does_not_exist_fails_at_build_naming_file_and_table(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    path = folder / "marts" / "needs_missing.sql"
    path.parent.mkdir(parents=True)
    path.write_text(
        "SELECT * FROM raw.planhat_objectives JOIN raw.not_loaded_yet USING (company_id)"
    )
    (model,) = discover_models(folder)
    assert model.sources == {"raw.planhat_objectives", "raw.not_loaded_yet"}
    with pytest.raises(ModelError) as caught:
        build_model(warehouse, model)
    assert str(path) in str(caught.value)
    assert "raw.not_loaded_yet, which does not exist" in str(caught.value)


def test_an_upstream_model_not_built_yet_is_named(
    warehouse: Warehouse, models: dict[str, SqlModel]
) -> None:
    model = models["company_objective_health"]
    with pytest.raises(ModelError) as caught:
        build_model(warehouse, model)
    message = str(caught.value)
    assert str(model.path) in message
    assert "reads model company_objective_health_daily" in message and "Build" in message


def test_a_variable_without_a_value_is_refused_before_building(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "needs_var.sql").write_text("SELECT getvariable('minimum_rows') AS m")
    (model,) = discover_models(folder)
    with pytest.raises(ModelError, match="getvariable\\('minimum_rows'\\)"):
        build_model(warehouse, model)


def test_objectives_to_push_maps_crm_rows_to_planhat_fields_health_left_for_the_push_to_check(
    warehouse: Warehouse, models: dict[str, SqlModel]
) -> None:
    with warehouse.connect() as con:
        con.execute("CREATE SCHEMA crm")
        con.execute(
            "CREATE TABLE crm.objectives (crm_objective_id VARCHAR, objective_name VARCHAR, "
            "company_external_id VARCHAR, health_score VARCHAR, owner_email VARCHAR, "
            "renewal_date DATE, notes VARCHAR)"
        )
        con.executemany(
            "INSERT INTO crm.objectives VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                ["17", " Grow seats ", "ACME-1", "4.5", "ann@acme.test", date(2025, 1, 31), "Q1"],
                ["18", "Fix onboarding", "BETA-2", "n/a", None, None, 'says "hi"'],
            ],
        )
    result = build_model(warehouse, models["objectives_to_push"])
    assert [c for c, _ in result.columns] == [
        "name",
        "company_id",
        "health",
        "external_id",
        "source_id",
        "custom",
    ]
    rows = table(warehouse, "objectives_to_push")
    assert [{**r, "custom": json.loads(r["custom"])} for r in rows] == [
        {
            "name": "Grow seats",
            "company_id": "extid-ACME-1",
            "health": "4.5",
            "external_id": None,
            "source_id": "crm-17",
            "custom": {"Owner": "ann@acme.test", "Renewal date": "2025-01-31", "Notes": "Q1"},
        },
        {
            "name": "Fix onboarding",
            "company_id": "extid-BETA-2",
            "health": "n/a",
            "external_id": None,
            "source_id": "crm-18",
            "custom": {"Owner": None, "Renewal date": None, "Notes": 'says "hi"'},
        },
    ]


def test_build_on_an_open_connection_and_the_models_folder_can_move(
    warehouse: Warehouse, tmp_path: Path
) -> None:
    moved = Path(shutil.copytree(sql_models_dir(), tmp_path / "elsewhere"))
    stg = next(m for m in discover_models(moved) if m.name == "stg_objectives")
    with warehouse.connect() as con:
        result = build_model(con, stg)
        assert con.execute("SELECT count(*) FROM stg_objectives").fetchone() == (result.rows,)
    assert result.rows == 13
