"""How a push is started: the `push` command (a real subprocess) and the sensor."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from objectives_pipeline.defs.reverse_etl import (
    push_after_objectives_to_push,
    push_objectives_to_planhat,
)
from objectives_pipeline.reverse_etl import generate_crm_objectives, write_crm_csv
from objectives_pipeline.sandbox import SandboxServer

REPO = Path(__file__).resolve().parents[1]
TOKEN = "cli-secret-token-93a1f0"
PUSH_COMMAND = (
    "import argparse, sys\n"
    "from objectives_pipeline.commands import push\n"
    "parser = argparse.ArgumentParser()\n"
    "push.add_arguments(parser)\n"
    "sys.exit(push.run(parser.parse_args(sys.argv[1:])))\n"
)


def _push(srv: SandboxServer, cwd: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(
        PLANHAT_API_TOKEN=srv.token,
        PLANHAT_BASE_URL=srv.base_url,
        OBJECTIVES_DUCKDB_PATH=str(cwd / "warehouse.duckdb"),
        PYTHONPATH=str(REPO),
    )
    return subprocess.run(
        [sys.executable, "-c", PUSH_COMMAND, *flags],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False,
    )


@pytest.mark.slow
def test_the_push_command_runs_the_job_and_prints_what_happened(tmp_path: Path) -> None:
    with SandboxServer(objectives=5, companies=10, seed=3, token=TOKEN) as srv:
        rows = generate_crm_objectives(srv.store.companies(), 40, seed=1)
        write_crm_csv(tmp_path / "data" / "crm" / "crm_objectives.csv", rows)
        dry = _push(srv, tmp_path, "--refresh", "--dry-run")
        srv.faults.bulk_item_error_source_ids = {"crm-OPP-000003", "crm-OPP-000011"}
        real = _push(srv, tmp_path, "--batch-size", "25", "--yes")
        put_sizes = [r.n_items for r in srv.request_log if r.method == "PUT"]

    assert dry.returncode == 0, dry.stderr[-2000:]
    assert "Dry run: would push objectives_to_push" in dry.stdout
    assert "40 rows read, 0 unchanged, 4 rejected" in dry.stdout
    assert "36 would be created" in dry.stdout
    assert real.returncode == 1
    assert "the push failed" in real.stderr
    assert "2 of 36 rows to send did not succeed" in real.stderr
    assert put_sizes == [25, 11]
    assert TOKEN not in dry.stdout + dry.stderr + real.stdout + real.stderr


def test_the_sensor_requests_a_push_after_each_objectives_to_push_build() -> None:
    instance = dg.DagsterInstance.ephemeral()
    before = push_after_objectives_to_push.evaluate_tick(
        dg.build_sensor_context(instance=instance)
    )
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key="objectives_to_push"))
    after = push_after_objectives_to_push.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=before.cursor)
    )
    again = push_after_objectives_to_push.evaluate_tick(
        dg.build_sensor_context(instance=instance, cursor=after.cursor)
    )

    assert push_after_objectives_to_push.default_status == dg.DefaultSensorStatus.STOPPED
    assert before.run_requests == []
    assert len(after.run_requests or []) == 1
    assert push_after_objectives_to_push.job_name == push_objectives_to_planhat.name
    assert again.run_requests == []
