"""Fault 7: a real run process killed with SIGKILL while it writes the partition."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from objectives_pipeline.sandbox import SandboxServer

from .dagster_helpers import query
from .fault_matrix import extract, figures, landed, partition_rows

REPO_ROOT = Path(__file__).resolve().parents[1]
DAY = "2026-10-07"

# Materializes planhat_objectives in a real Dagster run in this process. The load's own
# on_step callback announces the moment the new rows are inserted in the open transaction
# (the previous rows already deleted) and then blocks, so the kill lands inside the write.
RUN = """
import os, sys, threading
import dagster as dg
import objectives_pipeline.extract as extract
from objectives_pipeline.defs.extract_assets import planhat_objectives
from objectives_pipeline.resources import PlanhatResource, SqlModelsResource, WarehouseResource
from objectives_pipeline.warehouse import LoadStep, load_snapshot

base_url, db, day = sys.argv[1:]

def load_and_stop_inside(*args, **kwargs):
    def on_step(step):
        if step is LoadStep.INSERTED:
            print("inserted, not committed", flush=True)
            threading.Event().wait()
    return load_snapshot(*args, on_step=on_step, **kwargs)

extract.load_snapshot = load_and_stop_inside
dg.materialize(
    [planhat_objectives],
    partition_key=day,
    resources={
        "planhat": PlanhatResource(api_token=os.environ["PLANHAT_API_TOKEN"], base_url=base_url),
        "warehouse": WarehouseResource(path=db),
        "sql_models": SqlModelsResource(),
    },
)
print("finished", flush=True)
"""


@pytest.mark.slow
def test_sigkill_while_the_run_writes_keeps_the_previous_partition_and_the_next_run_works(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox(objectives=20_000, companies=100, seed=71)
    db = tmp_path / "o.duckdb"
    assert extract(server, db, DAY).success
    assert extract(server, db, "2026-10-06").success
    before = partition_rows(db, DAY)
    other_day = partition_rows(db, "2026-10-06")

    company = server.store.companies()[0]["_id"]
    for i in range(500):  # the killed run would have landed 20,500 rows
        server.store.create({"name": f"created before the crash {i}", "companyId": company})

    victim = subprocess.Popen(
        [sys.executable, "-c", RUN, server.base_url, str(db), DAY],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "PLANHAT_API_TOKEN": server.token},
    )
    try:
        assert victim.stdout is not None
        assert victim.stdout.readline().strip() == "inserted, not committed"
        os.kill(victim.pid, signal.SIGKILL)
    finally:
        victim.kill()
        victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL

    # The file opens, the partition holds exactly what it held, the other day too.
    after_kill = partition_rows(db, DAY)
    assert after_kill == before
    assert partition_rows(db, "2026-10-06") == other_day

    after = extract(server, db, DAY)
    assert after.success
    rows, duplicates, ids = landed(db, DAY)
    assert (rows, duplicates) == (20_500, 0) and ids == set(server.store.ids())
    captured = query(
        db,
        "SELECT count(DISTINCT captured_at) FROM raw.planhat_objectives WHERE snapshot_date = ?",
        [DAY],
    )
    assert captured == [(1,)]
    figures(
        "SIGKILL of the run process inside the load transaction",
        rows_before=len(before),
        rows_after_kill=len(after_kill),
        rows_next_run=rows,
        expected_next_run=20_500,
        duplicates=duplicates,
    )
