"""The wheel: built, installed into a fresh virtual environment outside the repository, demo run."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import pytest

from objectives_pipeline.package_files import sql_models_dir
from objectives_pipeline.sandbox.embedded import stop_sandbox

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DROPPED_ENV = {"PYTHONPATH", "VIRTUAL_ENV", "DAGSTER_HOME", "UV_PROJECT_ENVIRONMENT", "PYTHONHOME"}


def _uv() -> str:
    uv = REPO / ".tools" / "bin" / "uv"
    found = str(uv) if uv.exists() else shutil.which("uv")
    if found is None:
        pytest.fail("uv is needed to build the wheel: run `make install` first")
    return found


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: float) -> str:
    done = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert done.returncode == 0, (
        f"{command[:3]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done.stdout


@pytest.mark.timeout(600)
def test_the_wheel_installed_outside_the_repository_runs_the_demo(tmp_path: Path) -> None:
    uv = _uv()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in DROPPED_ENV and not k.startswith(("PLANHAT_", "OBJECTIVES_"))
    }
    dist, work, venv = tmp_path / "dist", tmp_path / "work", tmp_path / "venv"
    work.mkdir()

    _run([uv, "build", "--wheel", "--out-dir", str(dist), str(REPO)], REPO, env, 180)
    (wheel,) = dist.glob("objectives_pipeline-*.whl")
    shipped = {
        f"objectives_pipeline/dbt_like_sql/{p.relative_to(sql_models_dir()).as_posix()}"
        for p in sql_models_dir().rglob("*.sql")
    }
    assert shipped and shipped | {"objectives_pipeline/dagster.yaml"} <= set(
        zipfile.ZipFile(wheel).namelist()
    )
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        _run(
            [uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project", "-q"],
            REPO,
            env,
            60,
        )
    )
    _run([uv, "venv", "-q", "--python", sys.executable, str(venv)], work, env, 60)
    python = venv / "bin" / "python"
    _run(
        [uv, "pip", "install", "-q", "--python", str(python), "-r", str(requirements), str(wheel)],
        work,
        env,
        300,
    )

    location = _run(
        [str(python), "-c", "import objectives_pipeline; print(objectives_pipeline.__file__)"],
        work,
        env,
        60,
    )
    assert Path(location.strip()).is_relative_to(venv), location

    demo_env = {**env, "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    try:
        output = _run([str(venv / "bin" / "objectives-pipeline"), "demo"], work, demo_env, 300)
    finally:
        stop_sandbox(work / "data" / "sandbox")

    assert "company_objective_health: dagster/row_count=" in output
    assert "Company objective health, latest snapshot (" in output and "avg_health" in output
    pushed = re.search(r"(\d+) created", output)
    assert pushed is not None and int(pushed.group(1)) > 0
    database = work / "data" / "objectives.duckdb"
    assert f"DuckDB file: {database}" in output
    with duckdb.connect(str(database), read_only=True) as con:
        companies = con.execute("SELECT count(*) FROM company_objective_health").fetchone()
    assert companies is not None and companies[0] > 0
    assert f"{companies[0]} companies" in output
    assert (tmp_path / "dagster_home" / "dagster.yaml").read_text() == (
        REPO / "dagster.yaml"
    ).read_text()
