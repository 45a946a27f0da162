"""One complete snapshot of every objective, from Planhat into the warehouse, in one pass.

Knows the client and the warehouse, not Dagster. The client pages ``GET /objectives``
sorted by ``_id`` with pages that overlap by one record and checks every boundary
(:func:`objectives_pipeline.planhat.snapshot.snapshot_pages` says why that is complete);
each page body goes to staging as received, where DuckDB types it. Records are never
parsed into Python objects: the client reads only each record's ``_id``.

What moved during the run is counted, not chased: ``created_during_run`` counts the
loaded objectives whose ``_id`` (a MongoDB ObjectId: its first 8 hex digits are the
creation second) is not older than the second the run started; ``deleted_during_run``
counts objectives seen in one page and missing from a later page covering their ids (a
lower bound: one pass cannot see a deletion in a range it read once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from objectives_pipeline.planhat import ClientStats, PlanhatClient
from objectives_pipeline.planhat.snapshot import SnapshotStats
from objectives_pipeline.settings import (
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_PAGE_SIZE,
    DEFAULT_PAGES_IN_FLIGHT,
    DEFAULT_RUN_BUDGET_SECONDS,
)
from objectives_pipeline.warehouse import (
    SnapshotLoadResult,
    SnapshotStager,
    Warehouse,
    latest_snapshot_rows,
    load_snapshot,
)


@dataclass(frozen=True)
class ExtractOptions:
    """`expected_objectives`: about how many objectives there are (default: the latest
    snapshot's size), so that pages in flight stop at the end; it never changes the result.
    `health_range`: compute the quality figures in the load (`ExtractResult.load.quality`).
    `run_budget_seconds`: no request starts after the extraction has paged this long.
    `max_row_drop_share`: refuse to replace the partition with a snapshot that has this
    share fewer rows than the one it replaces or the previous snapshot (None: never)."""

    page_size: int = DEFAULT_PAGE_SIZE
    concurrency: int = DEFAULT_PAGES_IN_FLIGHT
    expected_objectives: int | None = None
    health_range: tuple[float, float] | None = None
    run_budget_seconds: float = DEFAULT_RUN_BUDGET_SECONDS
    max_row_drop_share: float | None = None


@dataclass
class ExtractResult:
    """What one extraction did: the load, the paging and how the collection moved meanwhile."""

    snapshot_date: date
    captured_at: datetime
    load: SnapshotLoadResult
    paging: SnapshotStats
    seconds: float = 0.0
    client_stats: ClientStats = field(default_factory=ClientStats)

    @property
    def pages(self) -> int:
        return self.paging.pages

    @property
    def boundaries_repaired(self) -> int:
        return self.paging.boundaries_repaired

    @property
    def deleted_during_run(self) -> int:
        return self.paging.deleted_seen

    @property
    def created_during_run(self) -> int:
        return self.load.created_since

    @property
    def records_per_second(self) -> float:
        return self.load.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def requests_per_1000_objectives(self) -> float | None:
        rows = self.load.rows
        return round(1000 * self.client_stats.requests / rows, 3) if rows else None


def extract_snapshot(
    client: PlanhatClient,
    warehouse: Warehouse,
    snapshot_date: date,
    options: ExtractOptions = ExtractOptions(),
    on_progress: Callable[[str], None] | None = None,
) -> ExtractResult:
    """Page every objective into staging files in one checked pass, then load atomically."""
    started = time.perf_counter()
    captured_at = datetime.now(UTC).replace(tzinfo=None)
    paging = SnapshotStats()
    expected = options.expected_objectives
    if expected is None:
        expected = latest_snapshot_rows(warehouse)
    with SnapshotStager(memory_limit=warehouse.memory_limit or DEFAULT_MEMORY_LIMIT) as stager:
        pages = client.iter_snapshot_pages(
            limit=options.page_size,
            concurrency=options.concurrency,
            stats=paging,
            expected=expected,
            deadline=time.monotonic() + options.run_budget_seconds,
        )
        for page in pages:
            stager.add_page(page.page.body, repeated_id=page.repeated_id)
        if not stager.pages:
            stager.add_page(b"[]")  # an empty tenant is a valid, empty snapshot
        if on_progress:
            repaired = (
                f", {paging.boundaries_repaired} page boundaries read again"
                if paging.boundaries_repaired
                else ""
            )
            on_progress(f"paged {paging.records} records in {paging.pages} pages{repaired}")
        load = load_snapshot(
            warehouse,
            stager,
            snapshot_date,
            captured_at,
            created_since=captured_at,
            health_range=options.health_range,
            max_row_drop_share=options.max_row_drop_share,
        )
    return ExtractResult(
        snapshot_date=snapshot_date,
        captured_at=captured_at,
        load=load,
        paging=paging,
        seconds=time.perf_counter() - started,
        client_stats=client.stats,
    )
