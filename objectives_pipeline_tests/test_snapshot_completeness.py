"""One pass of overlapping pages is complete: every objective that exists for the whole
extraction lands exactly once, whatever is deleted or created between page fetches."""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objectives_pipeline.extract import ExtractOptions, extract_snapshot
from objectives_pipeline.planhat import BadResponseError, ObjectivePage, PlanhatClient
from objectives_pipeline.planhat.snapshot import SnapshotStats, snapshot_pages
from objectives_pipeline.sandbox import Faults, SandboxServer
from objectives_pipeline.sandbox.data import generate_tenant
from objectives_pipeline.warehouse import Warehouse

from .conftest import SandboxFactory
from .fault_matrix import landed

DAY = date(2026, 11, 5)
TENANT = generate_tenant(1000, 20, seed=9)


@pytest.fixture(scope="module")
def server(sandbox: SandboxFactory) -> SandboxServer:
    return sandbox(objectives=0, companies=0, seed=9)


def client(server: SandboxServer, concurrency: int) -> PlanhatClient:
    return PlanhatClient(
        server.base_url,
        server.token,  # type: ignore[arg-type]
        rate_limit_per_minute=None,
        max_in_flight=concurrency,
    )


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    objectives=st.integers(0, 1000),
    limit=st.integers(3, 400),
    cap=st.one_of(st.none(), st.integers(3, 400)),
    churn=st.integers(0, 8),
    concurrency=st.integers(1, 8),
    jitter_ms=st.sampled_from([0.0, 3.0, 10.0]),
    seed=st.integers(0, 2**16),
)
def test_every_objective_present_for_the_whole_run_lands_exactly_once(
    server: SandboxServer,
    objectives: int,
    limit: int,
    cap: int | None,
    churn: int,
    concurrency: int,
    jitter_ms: float,
    seed: int,
) -> None:
    page = min(limit, cap or limit)
    churn = min(churn, page // 4)  # faster churn than that cannot be paged at all
    server.faults = Faults()
    server.store.load(type(TENANT)(TENANT.companies, TENANT.objectives[:objectives]))
    before = set(server.store.ids())
    server.faults = Faults(
        page_cap=cap,
        churn_per_list_request=churn,
        churn_anywhere=True,
        latency_jitter_ms=jitter_ms,
        seed=seed,
    )
    with tempfile.TemporaryDirectory() as folder, client(server, concurrency) as api:
        db = Path(folder) / "o.duckdb"
        result = extract_snapshot(
            api, Warehouse(db), DAY, ExtractOptions(page_size=limit, concurrency=concurrency)
        )
        server.faults = Faults()
        rows, duplicates, ids = landed(db, DAY.isoformat())
    survivors = before & set(server.store.ids())
    assert duplicates == 0
    assert survivors <= ids, f"{len(survivors - ids)} objectives present all along are missing"
    assert result.load.rows == rows
    if churn == 0:
        assert ids == before and result.boundaries_repaired == 0


def test_a_calm_tenant_costs_one_request_per_1999_objectives(
    sandbox: SandboxFactory, tmp_path: Path
) -> None:
    big = sandbox(objectives=20_000, companies=50, seed=3)
    warehouse = Warehouse(tmp_path / "o.duckdb")
    runs = []
    for day in (DAY, DAY + timedelta(days=1)):
        with client(big, 4) as api:
            runs.append(extract_snapshot(api, warehouse, day, ExtractOptions(concurrency=4)))
    for result in runs:
        assert result.load.rows == 20_000 and result.load.duplicates_removed == 0
        # offsets 0, 1999, ..., 19990: ten pages of 2,000 and one of the last 10, which holds
        # the chain's last record and too few records to have been cut by a cap: the end
        assert result.pages == 11 and result.boundaries_repaired == 0
        assert result.paging.completeness_proof == "sorted_overlap"
        assert result.created_during_run == 0 and result.deleted_during_run == 0
    first, second = (r.client_stats.requests for r in runs)
    assert first <= 11 + 3  # no size known yet: up to 3 pages in flight past the end
    assert second == 11  # the first snapshot's size keeps the window from overshooting


def test_a_server_returning_more_than_asked_is_refused() -> None:
    def fetch(offset: int, limit: int) -> ObjectivePage:
        records = [{"_id": f"{i:024x}"} for i in range(limit + 1)]
        return ObjectivePage(offset, limit, b"", records, request_number=0, attempts=1)

    with pytest.raises(BadResponseError, match="3 records where 2 were asked"):
        list(snapshot_pages(fetch, limit=2))


def test_a_server_ignoring_offset_stops_instead_of_looping() -> None:
    def fetch(offset: int, limit: int) -> ObjectivePage:
        records = [{"_id": f"{i:024x}"} for i in range(limit)]
        return ObjectivePage(offset, limit, b"", records, request_number=0, attempts=1)

    with pytest.raises(BadResponseError, match="ignore `offset`"):
        list(snapshot_pages(fetch, limit=10, in_flight=3))


def test_a_cap_of_one_record_is_refused() -> None:
    data = [f"{i:024x}" for i in range(5)]

    def fetch(offset: int, limit: int) -> ObjectivePage:
        records = [{"_id": oid} for oid in data[offset : offset + 1]]
        return ObjectivePage(offset, limit, b"", records, request_number=0, attempts=1)

    with pytest.raises(BadResponseError, match="one record per page"):
        list(snapshot_pages(fetch, limit=100))


def test_repairs_are_bounded_and_fail_with_a_clear_error() -> None:
    """Every fetch deletes the records before it: no boundary can ever be joined."""
    data = [f"{i:024x}" for i in range(10_000)]

    def fetch(offset: int, limit: int) -> ObjectivePage:
        del data[: min(len(data) // 2, 50)]
        records = [{"_id": oid} for oid in data[offset : offset + limit]]
        return ObjectivePage(offset, limit, b"", records, request_number=0, attempts=1)

    stats = SnapshotStats()
    with pytest.raises(BadResponseError, match="change faster than they can be paged"):
        list(snapshot_pages(fetch, limit=10, stats=stats, max_repair_requests=20))
    assert stats.repair_requests == 20
