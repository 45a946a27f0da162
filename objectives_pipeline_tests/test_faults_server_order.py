"""A snapshot is complete, or the run fails saying why and keeps the previous snapshot,
whatever the server does with `sort`, its page cap, its ids and its pages.

Each server behaviour of the reliability table has a test here against the sandbox over
HTTP; the property test at the end draws them at random, together.
"""

from __future__ import annotations

import random
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objectives_pipeline.extract import ExtractOptions, ExtractResult, extract_snapshot
from objectives_pipeline.planhat import (
    BadResponseError,
    PlanhatClient,
    PlanhatError,
    PlanhatTimeoutError,
    RetryPolicy,
)
from objectives_pipeline.sandbox import Faults, SandboxServer
from objectives_pipeline.sandbox.data import Tenant, generate_tenant
from objectives_pipeline.warehouse import RowDropError, Warehouse, WarehouseError

from .conftest import SandboxFactory
from .dagster_helpers import materialization_metadata
from .fault_matrix import extract, extract_config, failure_text, figures, landed

DAY = date(2026, 11, 20)
BIG = generate_tenant(20_000, 50, seed=20)
SMALL = generate_tenant(1500, 20, seed=21)
FAST = RetryPolicy(max_attempts=2, initial_backoff=0.01, jitter=0.01)


@pytest.fixture(scope="module")
def server(sandbox: SandboxFactory) -> SandboxServer:
    return sandbox(objectives=0, companies=0, seed=20)


def api(server: SandboxServer, **options: Any) -> PlanhatClient:
    options.setdefault("retry", FAST)
    return PlanhatClient(
        server.base_url,
        server.token,  # type: ignore[arg-type]
        rate_limit_per_minute=None,
        **options,
    )


def with_uuid_ids(tenant: Tenant, count: int, seed: int) -> Tenant:
    """`tenant` with the _id of `count` objectives replaced by UUIDs (the sandbox, like
    MongoDB, orders such string ids before every ObjectId)."""
    rng = random.Random(seed)
    objectives = [dict(o) for o in tenant.objectives]
    for obj in rng.sample(objectives, min(count, len(objectives))):
        obj["_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return Tenant(tenant.companies, objectives)


def run(
    server: SandboxServer,
    tenant: Tenant,
    faults: Faults,
    db: Path,
    options: ExtractOptions | None = None,
    **client_options: Any,
) -> tuple[ExtractResult | PlanhatError | WarehouseError, set[str]]:
    """Extract `tenant` under `faults`; the outcome and the objectives present all along."""
    server.faults = Faults()
    server.store.load(tenant)
    before = set(server.store.ids())
    server.faults = faults
    outcome: ExtractResult | PlanhatError | WarehouseError
    try:
        with api(server, **client_options) as client:
            outcome = extract_snapshot(client, Warehouse(db), DAY, options or ExtractOptions())
    except (PlanhatError, WarehouseError) as error:
        outcome = error
    finally:
        server.faults = Faults()
    return outcome, before & set(server.store.ids())


def assert_complete(outcome: object, survivors: set[str], db: Path) -> ExtractResult:
    assert isinstance(outcome, ExtractResult), f"the run failed: {outcome}"
    rows, duplicates, ids = landed(db, DAY.isoformat())
    assert duplicates == 0
    missing = survivors - ids
    assert not missing, f"{len(missing)} objectives present for the whole run are missing"
    assert rows == outcome.load.rows
    return outcome


def assert_clear_failure(outcome: object, db: Path, before: set[str], *causes: str) -> str:
    """The run failed with a message naming one of `causes`; the partition is as before."""
    assert isinstance(outcome, PlanhatError | WarehouseError), f"the run succeeded: {outcome}"
    message = str(outcome)
    assert any(cause in message for cause in causes), message
    for python_noise in ("IndexError", "KeyError", "Traceback", "list index"):
        assert python_noise not in message
    assert landed(db, DAY.isoformat())[2] == before
    return message


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "o.duckdb"


def previous_partition(server: SandboxServer, tenant: Tenant, db: Path) -> set[str]:
    """A calm snapshot of `tenant` in the partition the next run replaces."""
    outcome, survivors = run(server, tenant, Faults(), db)
    assert_complete(outcome, survivors, db)
    return survivors


# -- the order ---------------------------------------------------------------------------


def test_sort_ignored_under_churn_falls_back_and_lands_every_objective(
    server: SandboxServer, db: Path
) -> None:
    faults = Faults(list_order="insertion", churn_per_list_request=5, churn_anywhere=True)
    outcome, survivors = run(server, BIG, faults, db)
    result = assert_complete(outcome, survivors, db)
    paging = result.paging
    assert paging.completeness_proof == "fallback_consistent_order"
    assert paging.order_problem and "offset 0" in paging.order_problem
    assert paging.overlapping_pages > 0  # the load de-duplicated what pages repeated
    figures(
        "sort ignored, 20k, 5 deleted + 5 created per list request",
        survivors=len(survivors),
        landed=result.load.rows,
        requests=result.client_stats.requests,
        fallback_requests=paging.fallback_requests,
        existence_checks=paging.existence_checks,
        proof=paging.completeness_proof,
    )


def test_sort_ignored_without_churn_is_complete_and_costs_one_listing_more(
    server: SandboxServer, db: Path
) -> None:
    outcome, survivors = run(server, BIG, Faults(list_order="insertion"), db)
    result = assert_complete(outcome, survivors, db)
    assert result.load.rows == 20_000 and result.deleted_during_run == 0
    # the sorted proof gave up on the first page (read twice); the fallback paged once:
    # offsets 0, 1999, ..., 19990, the last page (10 records) too small to have been capped
    assert result.paging.fallback_requests == 11
    assert result.client_stats.requests == 2 + 11


def test_pages_sorted_only_within_themselves_fail_the_run(
    server: SandboxServer, db: Path
) -> None:
    """Insertion-order pages, each sorted by _id: no order holds across requests."""
    before = previous_partition(server, BIG, db)
    outcome, _ = run(server, BIG, Faults(list_order="page_sorted"), db)
    assert_clear_failure(outcome, db, before, "changes between requests")


def test_uuid_ids_ordered_before_objectids_fall_back(server: SandboxServer, db: Path) -> None:
    tenant = with_uuid_ids(BIG, 3000, seed=1)
    faults = Faults(churn_per_list_request=5, churn_anywhere=True)
    outcome, survivors = run(server, tenant, faults, db)
    result = assert_complete(outcome, survivors, db)
    assert result.paging.completeness_proof == "fallback_consistent_order"
    assert "not a lowercase 24-hex ObjectId" in (result.paging.order_problem or "")


def test_a_record_from_two_pages_back_fails_the_run(server: SandboxServer, db: Path) -> None:
    before = previous_partition(server, BIG, db)
    outcome, _ = run(server, BIG, Faults(page_mangle="two_pages_back"), db)
    assert_clear_failure(outcome, db, before, "follow no one order")


def test_a_record_twice_in_one_page_fails_the_run(server: SandboxServer, db: Path) -> None:
    before = previous_partition(server, BIG, db)
    outcome, _ = run(server, BIG, Faults(page_mangle="repeat"), db)
    assert_clear_failure(outcome, db, before, "twice in one page")


# -- the cap and the end -----------------------------------------------------------------


@pytest.mark.parametrize("low", [500, 1900])
def test_a_cap_that_varies_per_request_loses_nothing(
    server: SandboxServer, db: Path, low: int
) -> None:
    faults = Faults(page_cap=2000, page_cap_min=low, seed=low)
    outcome, survivors = run(server, BIG, faults, db)
    result = assert_complete(outcome, survivors, db)
    assert result.load.rows == 20_000
    assert result.paging.completeness_proof == "sorted_overlap"
    figures(
        f"page cap varying {low}-2000, 20k",
        landed=result.load.rows,
        requests=result.client_stats.requests,
        repaired=result.boundaries_repaired,
    )


def test_empty_pages_mid_run_fail_clearly(server: SandboxServer, db: Path) -> None:
    before = previous_partition(server, BIG, db)
    outcome, _ = run(server, BIG, Faults(empty_pages_from_request=3), db)
    assert_clear_failure(outcome, db, before, "stopped returning objectives mid-run")


def test_a_snapshot_much_smaller_than_the_one_it_replaces_is_refused(
    server: SandboxServer, db: Path
) -> None:
    before = previous_partition(server, BIG, db)
    shrunk = Tenant(BIG.companies, BIG.objectives[:4000])
    options = ExtractOptions(max_row_drop_share=0.2)
    outcome, _ = run(server, shrunk, Faults(), db, options)
    message = assert_clear_failure(outcome, db, before, "80% fewer than the 20000 rows")
    assert isinstance(outcome, RowDropError) and "allow_row_drop" in message
    allowed, survivors = run(server, shrunk, Faults(), db)
    assert assert_complete(allowed, survivors, db).load.rows == 4000


# -- time and memory ---------------------------------------------------------------------


def test_a_body_that_trickles_in_meets_the_request_deadline(
    server: SandboxServer, db: Path
) -> None:
    started = time.monotonic()
    outcome, _ = run(
        server,
        SMALL,
        Faults(trickle_bytes_per_second=64),
        db,
        retry=RetryPolicy(max_attempts=1, request_deadline=1.0),
    )
    assert time.monotonic() - started < 30
    assert isinstance(outcome, PlanhatTimeoutError)
    assert "did not arrive within 1 s" in str(outcome)


def test_the_run_budget_stops_paging(server: SandboxServer, db: Path) -> None:
    outcome, _ = run(
        server,
        SMALL,
        Faults(latency_ms=150),
        db,
        ExtractOptions(page_size=100, concurrency=1, run_budget_seconds=0.5),
    )
    assert isinstance(outcome, BadResponseError)
    assert "ran past its time budget" in str(outcome)


def test_an_objective_of_several_megabytes_loads(server: SandboxServer, db: Path) -> None:
    objectives = [dict(o) for o in SMALL.objectives]
    objectives[700]["custom"] = {"notes": "x" * 6_000_000}
    outcome, survivors = run(server, Tenant(SMALL.companies, objectives), Faults(), db)
    assert_complete(outcome, survivors, db)


# -- every behaviour at once -------------------------------------------------------------


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    objectives=st.integers(0, 1500),
    uuids=st.sampled_from([0, 0, 50, 400]),
    order=st.sampled_from(["sort", "sort", "insertion", "page_sorted"]),
    limit=st.integers(20, 300),
    cap=st.one_of(st.none(), st.tuples(st.integers(3, 300), st.booleans())),
    churn=st.integers(0, 6),
    anywhere=st.booleans(),
    mangle=st.sampled_from([None, None, None, "two_pages_back", "repeat"]),
    empty_from=st.sampled_from([None, None, None, 2, 5]),
    concurrency=st.integers(1, 4),
    seed=st.integers(0, 2**16),
)
def test_every_run_is_complete_or_fails_keeping_the_previous_snapshot(
    server: SandboxServer,
    objectives: int,
    uuids: int,
    order: str,
    limit: int,
    cap: tuple[int, bool] | None,
    churn: int,
    anywhere: bool,
    mangle: str | None,
    empty_from: int | None,
    concurrency: int,
    seed: int,
) -> None:
    page = min(limit, cap[0] if cap else limit)
    churn = min(churn, page // 4)  # faster churn than that cannot be paged at all
    tenant = with_uuid_ids(Tenant(SMALL.companies, SMALL.objectives[:objectives]), uuids, seed)
    faults = Faults(
        list_order=order,  # type: ignore[arg-type]
        page_cap=cap[0] if cap else None,
        page_cap_min=max(3, cap[0] // 3) if cap and cap[1] else None,
        churn_per_list_request=churn,
        churn_anywhere=anywhere,
        page_mangle=mangle,  # type: ignore[arg-type]
        empty_pages_from_request=empty_from,
        seed=seed,
    )
    # the run budget is the bound of last resort: a run that pages on and on fails with it
    options = ExtractOptions(
        page_size=limit, concurrency=concurrency, max_row_drop_share=0.5, run_budget_seconds=20
    )
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "o.duckdb"
        before = previous_partition(server, tenant, db)
        outcome, survivors = run(server, tenant, faults, db, options)
        if isinstance(outcome, ExtractResult):
            assert_complete(outcome, survivors, db)
        else:
            assert_clear_failure(
                outcome,
                db,
                before,
                "no complete snapshot can be proven",
                "stopped returning objectives",
                "fewer than",
                "change faster than they can be paged",
                "created faster than the end can be confirmed",
                "ran past its time budget",
                "ignore `offset`",
                "one record per page",
            )


# -- through Dagster ---------------------------------------------------------------------


def test_through_dagster_a_sharp_drop_fails_the_run_unless_allowed(
    sandbox: SandboxFactory, tmp_path: Path
) -> None:
    shop = sandbox(objectives=3000, companies=10, seed=30)
    db = tmp_path / "o.duckdb"
    first = extract(shop, db, "2026-11-19")
    assert first.success
    meta = materialization_metadata(first, "planhat_objectives")
    assert meta["completeness_proof"] == "sorted_overlap" and meta["order_problem"] == ""
    for oid in shop.store.ids()[:1500]:
        shop.store.delete(oid)

    refused = extract(shop, db, "2026-11-20")
    assert not refused.success
    text = failure_text(refused)
    assert "50% fewer than the 3000 rows of snapshot 2026-11-19" in text
    assert "allow_row_drop" in text
    assert landed(db, "2026-11-20")[0] == 0  # nothing written

    allowed = extract(
        shop, db, "2026-11-20", run_config=extract_config(allow_row_drop=True)
    )
    assert allowed.success and landed(db, "2026-11-20")[0] == 1500


def test_through_dagster_the_fallback_is_named_in_the_metadata(
    sandbox: SandboxFactory, tmp_path: Path
) -> None:
    shuffled = sandbox(
        objectives=3000, companies=10, seed=31, faults=Faults(list_order="insertion")
    )
    result = extract(shuffled, tmp_path / "o.duckdb", "2026-11-19")
    assert result.success
    meta = materialization_metadata(result, "planhat_objectives")
    assert meta["completeness_proof"] == "fallback_consistent_order"
    assert "came after" in str(meta["order_problem"])
    # offsets 0 (2000), 1999 (1001: too many to tell the end from a cap), 2999 (the last alone)
    assert meta["rows"] == 3000 and meta["fallback_requests"] == 3
