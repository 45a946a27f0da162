"""Discovering SQL models: dependencies from DuckDB's parser, and files that are refused by name."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from objectives_pipeline.package_files import sql_models_dir
from objectives_pipeline.warehouse import ModelError, discover_models
from objectives_pipeline.warehouse.sql_refs import SqlRejected, TableRef, inspect_select


def write(root: Path, relative: str, sql: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sql, encoding="utf-8")
    return path


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    """A copy of the shipped models folder, free to add files to."""
    return Path(shutil.copytree(sql_models_dir(), tmp_path / "dbt_like_sql"))


def test_the_shipped_models_and_their_dependencies() -> None:
    models = {m.name: m for m in discover_models()}
    assert set(models) == {
        "stg_objectives",
        "company_objective_health_daily",
        "company_objective_health",
        "company_health_alerts",
        "objectives_to_push",
    }
    stg = models["stg_objectives"]
    assert (stg.group, stg.upstream, stg.sources) == (
        "staging",
        frozenset(),
        frozenset({"raw.planhat_objectives"}),
    )
    daily = models["company_objective_health_daily"]
    assert (daily.group, daily.upstream, daily.sources) == (
        "marts",
        frozenset({"stg_objectives"}),
        frozenset(),
    )
    assert daily.variables == frozenset({"at_risk_threshold"})
    latest = models["company_objective_health"]
    assert latest.upstream == {"company_objective_health_daily", "stg_objectives"}
    alerts = models["company_health_alerts"]
    assert (alerts.group, alerts.upstream, alerts.sources) == (
        "marts",
        frozenset({"company_objective_health", "company_objective_health_daily"}),
        frozenset(),
    )
    assert alerts.variables == {"alert_drop", "alert_window_days", "at_risk_threshold"}
    push = models["objectives_to_push"]
    assert (push.group, push.upstream, push.sources) == (
        "reverse_etl",
        frozenset(),
        frozenset({"crm.objectives"}),
    )
    assert stg.description.startswith("stg_objectives: typed, cleaned objectives")


def test_models_come_in_dependency_order(models_dir: Path) -> None:
    order = [m.name for m in discover_models(models_dir)]
    assert order.index("stg_objectives") < order.index("company_objective_health_daily")
    assert order.index("company_objective_health_daily") < order.index("company_objective_health")


def test_a_new_file_becomes_a_model_with_its_upstream_detected(models_dir: Path) -> None:
    write(
        models_dir,
        "marts/finance/worst_companies.sql",
        "-- The ten companies with the lowest average health.\n"
        "WITH ranked AS (SELECT *, row_number() OVER (ORDER BY avg_health) AS rank\n"
        "                FROM company_objective_health h\n"
        "                JOIN main.stg_objectives s USING (company_id))\n"
        "SELECT company_id, avg_health FROM ranked WHERE rank <= 10;\n"
        "-- end\n",
    )
    models = discover_models(models_dir)
    new = next(m for m in models if m.name == "worst_companies")
    assert new.group == "marts_finance"
    assert new.upstream == {"company_objective_health", "stg_objectives"}
    assert new.sources == frozenset()
    assert new.description == "The ten companies with the lowest average health."
    names = [m.name for m in models]
    assert names.index("company_objective_health") < names.index("worst_companies")


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT 1 AS a; SELECT 2 AS b;", "holds 2 statements"),
        ("CREATE TABLE evil AS SELECT 1", "statement type is CREATE"),
        ("DELETE FROM raw.planhat_objectives", "statement type is DELETE"),
        ("INSERT INTO t VALUES (1)", "statement type is INSERT"),
        ("DROP TABLE raw.planhat_objectives", "statement type is DROP"),
        ("SELECT 1; DROP TABLE raw.planhat_objectives", "holds 2 statements"),
        ("COPY (SELECT 1) TO 'out.csv'", "statement type is COPY"),
        ("SELEC company_id FROM stg_objectives", "does not parse"),
        ("-- only a comment\n", "holds no SQL statement"),
    ],
)
def test_a_file_that_is_not_exactly_one_select_is_refused_by_name(
    models_dir: Path, sql: str, reason: str
) -> None:
    bad = write(models_dir, "marts/bad_model.sql", sql)
    with pytest.raises(ModelError) as caught:
        discover_models(models_dir)
    assert str(bad) in str(caught.value)
    assert reason in str(caught.value)
    assert caught.value.path == bad


def test_a_dependency_cycle_is_refused_naming_the_files(models_dir: Path) -> None:
    a = write(models_dir, "marts/loop_a.sql", "SELECT * FROM loop_b")
    b = write(models_dir, "marts/loop_b.sql", "SELECT * FROM loop_c")
    c = write(models_dir, "marts/loop_c.sql", "SELECT * FROM main.loop_a")
    with pytest.raises(ModelError, match="cycle") as caught:
        discover_models(models_dir)
    for path in (a, b, c):
        assert str(path) in str(caught.value)


def test_a_model_reading_itself_is_a_cycle(models_dir: Path) -> None:
    me = write(models_dir, "marts/myself.sql", "SELECT * FROM myself")
    with pytest.raises(ModelError, match="cycle") as caught:
        discover_models(models_dir)
    assert str(me) in str(caught.value)


def test_two_files_with_the_same_name_are_refused(models_dir: Path) -> None:
    twin = write(models_dir, "reverse_etl/stg_objectives.sql", "SELECT 1 AS x")
    with pytest.raises(ModelError, match="both define model 'stg_objectives'") as caught:
        discover_models(models_dir)
    assert str(twin) in str(caught.value)
    assert str(models_dir / "staging" / "stg_objectives.sql") in str(caught.value)


def test_a_file_name_that_cannot_be_a_table_name_is_refused(models_dir: Path) -> None:
    bad = write(models_dir, "marts/health-by-company.sql", "SELECT 1 AS x")
    with pytest.raises(ModelError, match="plain identifier") as caught:
        discover_models(models_dir)
    assert str(bad) in str(caught.value)


def test_table_references_come_from_the_parser_not_from_text() -> None:
    info = inspect_select(
        """
        WITH recent AS (SELECT * FROM raw.planhat_objectives),
             stg_objectives AS (SELECT * FROM recent)      -- a CTE shadows the model name
        SELECT 'FROM fake_table' AS text, r.*, "Odd Name".x
        FROM recent r
        JOIN stg_objectives USING (objective_id)
        JOIN "crm"."Odd Name" ON true
        WHERE r.company_id IN (SELECT company_id FROM other.db_table)
          AND health <= getvariable('at_risk_threshold')
        -- FROM commented_out
        """
    )
    assert info.tables == {
        TableRef("", "raw", "planhat_objectives"),
        TableRef("", "crm", "Odd Name"),
        TableRef("", "other", "db_table"),
    }
    assert info.variables == {"at_risk_threshold"}
    with pytest.raises(SqlRejected, match="statement type is UPDATE"):
        inspect_select("UPDATE t SET x = 1")
