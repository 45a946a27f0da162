"""SQL-model assets: every table they read comes from a real asset, and their SQL versions them."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from objectives_pipeline.defs.extract_assets import planhat_objectives
from objectives_pipeline.defs.reverse_etl import crm_objectives
from objectives_pipeline.defs.sql_assets import build_sql_model_assets
from objectives_pipeline.package_files import sql_models_dir
from objectives_pipeline.resources import SqlModelsResource, WarehouseResource
from objectives_pipeline.warehouse import ModelError

SOURCES = [planhat_objectives, crm_objectives]


def _write(folder: Path, relative: str, sql: str) -> Path:
    path = folder / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sql)
    return path


@pytest.mark.parametrize(
    ("sql", "table"),
    [
        ("SELECT * FROM raw.planhat_objective", "raw.planhat_objective"),  # a typo
        ("SELECT o.* FROM crm.objectives o JOIN crm.accounts a USING (id)", "crm.accounts"),
        ("SELECT * FROM not_a_model", "main.not_a_model"),
    ],
)
def test_a_model_reading_a_table_no_asset_produces_fails_naming_file_and_table(
    tmp_path: Path, sql: str, table: str
) -> None:
    _write(tmp_path, "staging/fine.sql", "SELECT * FROM raw.planhat_objectives")
    bad = _write(tmp_path, "marts/reads_unknown.sql", sql)

    with pytest.raises(ModelError) as caught:
        build_sql_model_assets(SOURCES, tmp_path)

    message = str(caught.value)
    assert str(bad) in message and table in message
    assert "dagster/table_name" in message and "reads_unknown" in message
    assert caught.value.path == bad


def test_source_tables_resolve_through_the_table_each_asset_declares(tmp_path: Path) -> None:
    @dg.asset(metadata={"dagster/table_name": "ext.accounts"})
    def accounts() -> None: ...

    _write(
        tmp_path,
        "marts/joined.sql",
        (
            "SELECT a.*, o.name FROM ext.accounts a "
            "JOIN RAW.Planhat_Objectives o ON o.company_id = a.id "
            "JOIN crm.objectives c ON c.crm_objective_id = o.source_id"
        ),
    )
    _write(tmp_path, "marts/on_top.sql", "SELECT * FROM main.joined")

    built = {a.key: a for a in build_sql_model_assets([*SOURCES, accounts], tmp_path)}

    joined, on_top = built[dg.AssetKey("joined")], built[dg.AssetKey("on_top")]
    assert {dep.asset_key for dep in joined.specs_by_key[joined.key].deps} == {
        dg.AssetKey("accounts"),
        dg.AssetKey("planhat_objectives"),
        dg.AssetKey("crm_objectives"),
    }
    assert [dep.asset_key for dep in on_top.specs_by_key[on_top.key].deps] == [joined.key]


def test_every_shipped_model_declares_its_table_and_a_code_version() -> None:
    assets = build_sql_model_assets(SOURCES)

    names = {a.key.to_user_string(): a for a in assets}
    assert set(names) == {p.stem for p in sql_models_dir().rglob("*.sql")}
    for name, asset in names.items():
        table = asset.metadata_by_key[asset.key]["dagster/table_name"]
        assert getattr(table, "value", table) == f"main.{name}"
        version = asset.code_versions_by_key[asset.key]
        assert version and len(version) == 16
    assert len({a.code_versions_by_key[a.key] for a in assets}) == len(assets)


def test_changing_a_models_sql_changes_only_its_code_version_against_the_recorded_one(
    tmp_path: Path,
) -> None:
    models = Path(shutil.copytree(sql_models_dir(), tmp_path / "models"))
    _write(models, "marts/answer.sql", "SELECT 42 AS answer")
    resources = {
        "warehouse": WarehouseResource(path=str(tmp_path / "wh.duckdb")),
        "sql_models": SqlModelsResource(),
    }
    instance = dg.DagsterInstance.ephemeral()
    before = {a.key: a for a in build_sql_model_assets(SOURCES, models)}

    result = dg.materialize([before[dg.AssetKey("answer")]], instance=instance, resources=resources)

    event = result.get_asset_materialization_events()[0].materialization
    assert event.metadata["dagster/row_count"].value == 1
    assert event.tags is not None
    recorded = event.tags["dagster/code_version"]
    assert recorded == before[dg.AssetKey("answer")].code_versions_by_key[dg.AssetKey("answer")]

    _write(models, "marts/answer.sql", "SELECT 42 AS answer UNION ALL SELECT 43")
    after = {a.key: a for a in build_sql_model_assets(SOURCES, models)}

    changed = {
        key
        for key in after
        if after[key].code_versions_by_key[key] != before[key].code_versions_by_key[key]
    }
    assert changed == {dg.AssetKey("answer")}
    # Dagster compares the code version recorded with the last materialization to the
    # definition's: equal before the edit (fresh), different after it (stale in the UI).
    latest = instance.get_latest_materialization_event(dg.AssetKey("answer"))
    assert latest is not None and latest.asset_materialization is not None
    stored = (latest.asset_materialization.tags or {})["dagster/code_version"]
    assert (
        stored
        == recorded
        != after[dg.AssetKey("answer")].code_versions_by_key[dg.AssetKey("answer")]
    )
