"""Faults 4 and 5: a server page cap below the limit, and objectives changing while we page."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from objectives_pipeline.planhat import PlanhatClient
from objectives_pipeline.sandbox import Faults, SandboxServer

from .dagster_helpers import materialization_metadata
from .fault_matrix import extract, extract_config, failure_text, figures, landed

DAY = "2026-10-03"


def test_a_page_cap_of_1000_under_a_limit_of_2000_loses_nothing(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox(objectives=4500, companies=30, seed=41, faults=Faults(page_cap=1000))
    result = extract(server, tmp_path / "o.duckdb", DAY)

    assert result.success
    rows, duplicates, ids = landed(tmp_path / "o.duckdb", DAY)
    assert (rows, duplicates) == (4500, 0) and ids == set(server.store.ids())
    record_pages = [
        r for r in server.request_log if r.path == "/objectives" and "select" not in r.query
    ]
    assert record_pages[0].query["limit"] == "2000"  # we asked for 2000 ...
    assert max(r.n_items or 0 for r in record_pages) == 1000  # ... and never got more than 1000
    meta = materialization_metadata(result, "planhat_objectives")
    # offsets 0, 999, 1998, 2997: 1,000 each; 3996: the last 504 (pages overlap by one)
    assert meta["pages"] == 5 and meta["boundaries_repaired"] == 0
    figures(
        "page cap 1000, limit 2000",
        requests=meta["requests"],
        pages=meta["pages"],
        expected=4500,
        landed=rows,
        duplicates=duplicates,
    )


CHURN = {"objectives": 1000, "companies": 10, "seed": 1}
# Pages of 100, one at a time, each list request deleting 10 objectives early in _id order
# (and creating 10): plain offset paging skips objectives at almost every boundary.
CHURNING = {"churn_per_list_request": 10, "seed": 2}
PAGING = {"page_size": 100, "concurrency": 1}
UNTHROTTLED = {"rate_limit_per_minute": 100_000, "rate_limit_window_seconds": 1.0}


def run_churned(
    sandbox: Callable[..., SandboxServer], db: Path, **paging: int
) -> tuple[SandboxServer, set[str], dict[str, object]]:
    """Extract while the collection churns; returns the server, the objectives that existed
    for the whole extraction, and the materialization metadata."""
    server = sandbox(**CHURN)
    before = set(server.store.ids())
    server.faults = Faults(**CHURNING)
    config = extract_config(**{**PAGING, **paging})
    result = extract(server, db, DAY, run_config=config, **UNTHROTTLED)
    server.faults = Faults()
    assert result.success, failure_text(result)
    survivors = before & set(server.store.ids())  # ids are never reused
    return server, survivors, materialization_metadata(result, "planhat_objectives")


def test_churn_while_paging_every_surviving_objective_lands_exactly_once(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    db = tmp_path / "o.duckdb"
    _, survivors, meta = run_churned(sandbox, db)

    _, duplicates, ids = landed(db, DAY)
    assert duplicates == 0
    assert survivors <= ids, f"{len(survivors - ids)} objectives that never changed are missing"
    assert meta["boundaries_repaired"] > 0  # deletions opened gaps, and they were read again
    assert meta["deleted_during_run"] > 0 and meta["created_during_run"] > 0
    # one pass: the pages, plus one re-read per repaired boundary, never one per objective
    assert meta["requests"] <= meta["pages"] + meta["boundaries_repaired"] + 1
    figures(
        "churn 10 deletions + 10 creations per list request, pages of 100 one at a time",
        survivors=len(survivors),
        survivors_landed=len(survivors & ids),
        requests=meta["requests"],
        pages=meta["pages"],
        boundaries_repaired=meta["boundaries_repaired"],
        deleted_during_run=meta["deleted_during_run"],
        created_during_run=meta["created_during_run"],
        duplicates=duplicates,
    )


def test_plain_offset_paging_under_the_same_churn_loses_objectives(
    sandbox: Callable[..., SandboxServer],
) -> None:
    """Why the boundaries are checked: pages that do not overlap skip objectives."""
    server = sandbox(**CHURN)
    before = set(server.store.ids())
    server.faults = Faults(**CHURNING)
    with PlanhatClient(server.base_url, server.token, rate_limit_per_minute=None) as api:
        paged = {str(r["_id"]) for p in api.iter_pages(limit=100, concurrency=1) for r in p.records}
    server.faults = Faults()
    survivors = before & set(server.store.ids())
    lost = survivors - paged
    assert len(lost) > 0
    figures("same churn, plain offset paging", survivors=len(survivors), lost=len(lost))


def test_churn_with_concurrent_pages_is_repaired_too(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    db = tmp_path / "o.duckdb"
    _, survivors, meta = run_churned(sandbox, db, page_size=200, concurrency=4)

    _, duplicates, ids = landed(db, DAY)
    assert duplicates == 0 and survivors <= ids
    assert meta["requests"] <= meta["pages"] + meta["boundaries_repaired"] + 4


def test_an_empty_tenant_is_an_empty_snapshot_not_an_error(
    sandbox: Callable[..., SandboxServer], tmp_path: Path
) -> None:
    server = sandbox(objectives=0, companies=3, seed=43)
    result = extract(server, tmp_path / "o.duckdb", DAY)

    assert result.success, failure_text(result)
    assert landed(tmp_path / "o.duckdb", DAY) == (0, 0, set())
    assert materialization_metadata(result, "planhat_objectives")["rows"] == 0
