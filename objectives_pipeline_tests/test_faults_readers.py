"""Fault 9: `objectives-pipeline health` while another process holds the database for writing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from objectives_pipeline.sandbox import SandboxServer

from .dagster_helpers import defs_for, query, run_elt
from .fault_matrix import figures

REPO_ROOT = Path(__file__).resolve().parents[1]

# Opens the database read-write (as a run's load does), says so, and keeps it until stdin closes.
HOLDER = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("BEGIN TRANSACTION")
con.execute("UPDATE company_objective_health SET avg_health = avg_health")
print("holding", flush=True)
sys.stdin.read()
con.execute("COMMIT")
con.close()
"""


@pytest.fixture(scope="module")
def db(sandbox: Callable[..., SandboxServer], tmp_path_factory: pytest.TempPathFactory) -> Path:
    server = sandbox(objectives=400, companies=25, seed=91)
    path = tmp_path_factory.mktemp("readers") / "objectives.duckdb"
    assert run_elt(defs_for(server, path), "2026-10-09").success
    return path


@contextmanager
def write_lock(db: Path) -> Iterator[subprocess.Popen[str]]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        yield holder
    finally:
        if holder.stdin is not None and not holder.stdin.closed:
            holder.stdin.close()
        holder.wait(timeout=30)


# The CLI, saying "ready" once its code is loaded, so the test knows when it tries the database.
CLI = """
import sys
from objectives_pipeline.cli import main
import objectives_pipeline.commands.health
print("ready", file=sys.stderr, flush=True)
sys.exit(main(sys.argv[1:]))
"""


def health(db: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CLI, "health", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "OBJECTIVES_DUCKDB_PATH": str(db)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_health_waits_for_a_writer_and_then_prints_the_table(db: Path) -> None:
    [(companies,)] = query(db, "SELECT count(*) FROM company_objective_health")
    with write_lock(db) as holder:
        reader = health(db, "--all", "--lock-timeout", "60")
        assert reader.stderr is not None and reader.stderr.readline().strip() == "ready"
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:  # it keeps waiting while the writer holds on
            assert reader.poll() is None, reader.communicate()
            time.sleep(0.1)
        assert holder.stdin is not None
        holder.stdin.close()  # the writer commits and lets go
        out, err = reader.communicate(timeout=60)

    assert reader.returncode == 0, err
    assert out.startswith("company_id") and len(out.splitlines()) == 2 + companies
    assert "Traceback" not in err
    figures(
        "health CLI during a write (waits)",
        outcome=f"waited, then printed {companies} companies",
        exit_code=reader.returncode,
    )


def test_health_gives_up_after_its_lock_timeout_with_a_clear_message(db: Path) -> None:
    with write_lock(db) as holder:
        reader = health(db, "--lock-timeout", "0.5")
        out, err = reader.communicate(timeout=60)
        err = err.removeprefix("ready\n")

    assert reader.returncode == 2
    assert out == ""
    assert err.startswith("error: Cannot read the DuckDB database")
    assert f"another process (PID {holder.pid}) holds it" in err
    assert re.search(r"Waited \d+\.\d s for it to be released", err)
    assert "Traceback" not in err and "Could not set lock" not in err
    figures(
        "health CLI during a write, --lock-timeout 0.5",
        outcome="exit 2: names the holder's PID and the wait",
        exit_code=reader.returncode,
    )
