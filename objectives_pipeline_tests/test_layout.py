"""The project layout: what `defs/` holds loads by itself, production imports no sandbox, and
every setting has one home read by the client, the warehouse and the Dagster resources."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from objectives_pipeline.planhat import PlanhatClient
from objectives_pipeline.resources import (
    PlanhatResource,
    SqlModelsResource,
    WarehouseResource,
    resources_from_env,
)
from objectives_pipeline.settings import (
    DEFAULT_AT_RISK_THRESHOLD,
    DEFAULT_DATABASE_PATH,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_TIMEOUT_SECONDS,
    read_env,
)
from objectives_pipeline.warehouse import DEFAULT_VARIABLES, Warehouse

from .dagster_helpers import BIN, GraphQL, free_port, loaded_location, process_group, wait_for

REPO = Path(__file__).resolve().parents[1]
TOKEN = "layout-test-token-0123456789"


def _python(code: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PLANHAT_", "OBJECTIVES_")) and k != "PYTHONPATH"
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=cwd,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_with_a_token_loading_the_definitions_imports_no_sandbox_or_web_server() -> None:
    done = _python(
        "import sys\n"
        "from objectives_pipeline.definitions import defs\n"
        "assert defs.resolve_job_def('objectives_elt') is not None\n"
        "web = sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn'))\n"
        "sandbox = sorted(m for m in sys.modules if m.startswith('objectives_pipeline.sandbox'))\n"
        "print('web', web)\n"
        "print('sandbox', sandbox)\n",
        REPO,
        {
            "PLANHAT_API_TOKEN": TOKEN,
            "PLANHAT_BASE_URL": "https://api.planhat.com",
            "PYTHONPATH": str(REPO),
        },
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "web []" in done.stdout and "sandbox []" in done.stdout, done.stdout
    assert TOKEN not in done.stdout + done.stderr


def test_an_asset_dropped_into_defs_is_loaded_without_being_listed_anywhere(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copytree(
        REPO / "objectives_pipeline",
        project / "objectives_pipeline",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    shutil.copytree(REPO / "dbt_like_sql", project / "dbt_like_sql")
    shutil.copy(REPO / "pyproject.toml", project / "pyproject.toml")
    shutil.copy(REPO / "dagster.yaml", project / "dagster.yaml")
    (project / "objectives_pipeline" / "defs" / "churn_watch.py").write_text(
        "import dagster as dg\n\n\n"
        "@dg.asset(deps=['company_objective_health'])\n"
        "def churn_watch() -> None:\n"
        "    pass\n\n\n"
        "churn_watch_job = dg.define_asset_job('churn_watch_job', selection=[churn_watch])\n"
    )

    done = _python(
        "import objectives_pipeline\n"
        "from objectives_pipeline.definitions import defs\n"
        "print(objectives_pipeline.__file__)\n"
        "keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}\n"
        "print(sorted(keys))\n"
        "print(defs.resolve_job_def('churn_watch_job').name)\n",
        project,
        {"PLANHAT_API_TOKEN": TOKEN, "PYTHONPATH": str(project)},
    )

    assert done.returncode == 0, done.stderr[-3000:]
    assert str(project) in done.stdout  # the copy was loaded, not the checkout
    assert "'churn_watch'" in done.stdout and "'planhat_objectives'" in done.stdout
    assert "churn_watch_job" in done.stdout


def test_blank_variables_count_as_unset_and_the_token_stays_out_of_the_repr() -> None:
    settings = read_env(
        {
            "PLANHAT_API_TOKEN": f"  {TOKEN} ",
            "PLANHAT_BASE_URL": "   ",
            "OBJECTIVES_DUCKDB_PATH": "",
            "OBJECTIVES_AT_RISK_THRESHOLD": " 2.5 ",
        }
    )
    assert settings.api_token == TOKEN and not settings.uses_sandbox
    assert settings.base_url is None
    assert settings.duckdb_path == DEFAULT_DATABASE_PATH
    assert settings.sql_variables == {"at_risk_threshold": "2.5"}
    assert TOKEN not in repr(settings)
    assert read_env({"PLANHAT_API_TOKEN": " "}).uses_sandbox


def test_client_warehouse_and_resources_read_the_same_environment_the_same_way(
    tmp_path: Path,
) -> None:
    env = {
        "PLANHAT_API_TOKEN": TOKEN,
        "PLANHAT_BASE_URL": " https://api-eu.planhat.com ",
        "PLANHAT_TENANT_UUID": "00000000-5a4d-4b0c-8000-000000000042",
        "OBJECTIVES_DUCKDB_PATH": str(tmp_path / "w.duckdb"),
        "OBJECTIVES_DUCKDB_MEMORY_LIMIT": "256MB",
        "OBJECTIVES_AT_RISK_THRESHOLD": "3",
    }
    resources = resources_from_env(env)
    planhat, warehouse, sql_models = (
        resources["planhat"],
        resources["warehouse"],
        resources["sql_models"],
    )
    assert isinstance(planhat, PlanhatResource)
    assert isinstance(warehouse, WarehouseResource)
    assert isinstance(sql_models, SqlModelsResource)

    with PlanhatClient.from_env(env) as client:
        assert client.base_url == "https://api-eu.planhat.com" == planhat.base_url
    assert planhat.tenant_uuid == env["PLANHAT_TENANT_UUID"]

    direct = Warehouse.from_env(env)
    via_dagster = warehouse.get_warehouse()
    assert direct.path == via_dagster.path == tmp_path / "w.duckdb"
    assert direct.memory_limit == via_dagster.memory_limit == "256MB"
    assert sql_models.at_risk_threshold == 3.0


def test_the_client_and_the_dagster_resources_share_their_defaults() -> None:
    with PlanhatClient("http://127.0.0.1:9", "t") as client:
        assert client.retry.max_attempts == DEFAULT_MAX_ATTEMPTS
        assert client._http.timeout.read == DEFAULT_TIMEOUT_SECONDS
    resource = PlanhatResource()
    assert resource.max_attempts == DEFAULT_MAX_ATTEMPTS
    assert resource.timeout_seconds == DEFAULT_TIMEOUT_SECONDS
    assert SqlModelsResource().at_risk_threshold == DEFAULT_AT_RISK_THRESHOLD
    assert DEFAULT_VARIABLES["at_risk_threshold"] == DEFAULT_AT_RISK_THRESHOLD


@pytest.mark.parametrize("name", ["OBJECTIVES_AT_RISK_THRESHOLD", "OBJECTIVES_ALERT_WINDOW_DAYS"])
def test_a_bad_sql_model_variable_names_the_variable(name: str) -> None:
    from objectives_pipeline.planhat import ConfigError

    with pytest.raises(ConfigError, match=name):
        resources_from_env({name: "lots"})


DAEMONS = "query { instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_make_dev_s_dg_dev_serves_the_location_and_runs_the_daemon_without_warnings(
    tmp_path: Path,
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("PLANHAT_", "OBJECTIVES_"))
    }
    env |= {"DAGSTER_HOME": str(home), "OBJECTIVES_DUCKDB_PATH": str(tmp_path / "w.duckdb")}
    port, log = free_port(), tmp_path / "dg_dev.log"

    dg_dev = [str(BIN / "dg"), "dev", "--host", "127.0.0.1", "--port", str(port)]
    with process_group(dg_dev, env, log, cwd=REPO):
        gql = GraphQL(port)
        entry = wait_for("the code location", lambda: loaded_location(gql), 150, log)
        daemons = wait_for(
            "a healthy scheduler daemon",
            lambda: [
                d
                for d in gql(DAEMONS)["instance"]["daemonHealth"]["allDaemonStatuses"]
                if d["daemonType"] == "SCHEDULER" and d["healthy"]
            ],
            90,
            log,
        )

    assert entry["name"] == "objectives_pipeline"
    (repo,) = entry["locationOrLoadError"]["repositories"]
    assert {"objectives_elt", "push_objectives_to_planhat"} <= {j["name"] for j in repo["jobs"]}
    assert daemons
    output = log.read_text()
    assert "superseded" not in output.lower() and "Use 'dg dev'" not in output, output[-3000:]
