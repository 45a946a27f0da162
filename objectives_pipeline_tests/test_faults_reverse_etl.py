"""Fault 10, what test_reverse_etl.py leaves out: a token without write rights on every row.

(500 mid-push, 206 partial failures with some permission errors, an expired token mid-run
and dry runs are in test_reverse_etl.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from objectives_pipeline.sandbox import SandboxServer

from .fault_matrix import figures
from .test_reverse_etl import (
    by_source_id,
    failure,
    make_source,
    output_metadata,
    puts,
    query,
    run_push,
)

ROWS = 20


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer(objectives=10, companies=20, seed=7, token="tok-rights-check") as srv:
        yield srv


def test_a_token_without_rights_fails_every_row_and_a_rerun_with_rights_pushes_each_once(
    server: SandboxServer, tmp_path: Path
) -> None:
    db = tmp_path / "warehouse.duckdb"
    make_source(db, ROWS)
    objectives_before = server.store.count()
    server.faults.bulk_item_permission_source_ids = {f"src-{i:06d}" for i in range(ROWS)}

    denied = run_push(server, db, batch_size=8)

    assert not denied.success
    description, meta = failure(denied)
    assert f"{ROWS} of {ROWS} rows to send did not succeed" in description
    assert "run push_objectives_to_planhat again" in description
    assert "write access to objectives" in description
    assert (meta["created"], meta["failed"]) == (0, ROWS)
    assert "Permission denied for this objective" in meta["errors"]
    outcomes = query(
        db,
        "SELECT outcome, error, count(*) FROM reverse_etl.push_results WHERE run_id = ? "
        "GROUP BY ALL",
        [denied.run_id],
    )
    assert outcomes == [("failed", "permission denied: Permission denied for this objective", ROWS)]
    assert server.store.count() == objectives_before  # nothing was written
    assert [r.n_items for r in puts(server)] == [8, 8, 4]  # every batch was tried

    server.faults.bulk_item_permission_source_ids = set()
    granted = run_push(server, db, batch_size=8)

    assert granted.success
    assert output_metadata(granted)["created"] == ROWS
    stored = by_source_id(server)
    assert len(stored) == ROWS and all(len(objs) == 1 for objs in stored.values())
    figures(
        "push with a token lacking rights (permission error on every row), then with rights",
        rows=ROWS,
        failed_first_run=meta["failed"],
        created_first_run=meta["created"],
        created_rerun=ROWS,
        duplicates=sum(len(objs) - 1 for objs in stored.values()),
    )
