"""A load killed with SIGKILL in the middle of its transaction leaves the previous partition intact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from objectives_pipeline.warehouse import LoadStep, SnapshotStager, Warehouse, load_snapshot

REPO_ROOT = Path(__file__).resolve().parents[1]
DAY = date(2024, 3, 1)

# Stages more than one DuckDB row group (122,880 rows), so the killed transaction has
# already written data blocks to the database file, then loads it and, at the step
# named in argv[3], announces "reached" and blocks until it is killed.
VICTIM = """
import json, sys, threading
from datetime import UTC, date, datetime
from objectives_pipeline.warehouse import SnapshotStager, Warehouse, load_snapshot

db, staging, step = sys.argv[1], sys.argv[2], sys.argv[3]

def on_step(reached):
    if reached.name == step:
        print("reached", flush=True)
        threading.Event().wait()

with SnapshotStager(staging_dir=staging) as stager:
    for p in range(65):
        stager.add_page(json.dumps([
            {"_id": f"new-{p}-{i}", "name": "new", "companyId": f"c{i % 50}", "health": i % 5}
            for i in range(2000)
        ]).encode())
    load_snapshot(Warehouse(db), stager, date(2024, 3, 1), datetime.now(UTC), on_step=on_step)
print("finished", flush=True)
"""


def load(warehouse: Warehouse, day: date, ids: list[str]) -> None:
    records = [{"_id": i, "name": "before", "companyId": "c1", "health": 4} for i in ids]
    with SnapshotStager() as stager:
        stager.add_page(json.dumps(records).encode())
        load_snapshot(warehouse, stager, day, datetime.now(UTC))


def partition(warehouse: Warehouse, day: date) -> list[tuple[str, str]]:
    with warehouse.connect(read_only=True) as con:
        return [
            (str(oid), str(name))
            for oid, name in con.execute(
                "SELECT objective_id, name FROM raw.planhat_objectives "
                "WHERE snapshot_date = ? ORDER BY objective_id",
                [day],
            ).fetchall()
        ]


@pytest.mark.parametrize("step", [LoadStep.PREVIOUS_DELETED, LoadStep.INSERTED])
def test_sigkill_inside_the_load_transaction_keeps_the_previous_partition(
    tmp_path: Path, step: LoadStep
) -> None:
    warehouse = Warehouse(tmp_path / "objectives.duckdb")
    load(warehouse, DAY, ["a", "b", "c"])
    load(warehouse, DAY - timedelta(days=1), ["y"])
    staging = tmp_path / "staging"
    staging.mkdir()

    victim = subprocess.Popen(
        [sys.executable, "-c", VICTIM, str(warehouse.path), str(staging), step.name],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert victim.stdout is not None
        assert victim.stdout.readline().strip() == "reached"
        os.kill(victim.pid, signal.SIGKILL)
    finally:
        victim.kill()
        victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL

    expected = [("a", "before"), ("b", "before"), ("c", "before")]
    assert partition(warehouse, DAY) == expected
    assert partition(warehouse, DAY - timedelta(days=1)) == [("y", "before")]

    load(warehouse, DAY, ["after-the-crash"])
    assert partition(warehouse, DAY) == [("after-the-crash", "before")]
