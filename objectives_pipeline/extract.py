"""One complete, verified snapshot of every objective, from Planhat into the warehouse.

Knows the client and the warehouse, not Dagster. Offset paging has no snapshot isolation:
objectives deleted while we page shift later records to lower offsets, and a page boundary
can skip them. After paging we therefore list every `_id` again (`select=_id`, cheap), fetch
what the pages missed one by one, and repeat until a listing finds nothing new (bounded).
Records repeated across pages are removed by the load, which keeps one row per objective.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from objectives_pipeline.planhat import NotFoundError, PlanhatClient
from objectives_pipeline.warehouse import (
    SnapshotLoadResult,
    SnapshotStager,
    Warehouse,
    load_snapshot,
)

MAX_VERIFICATION_ROUNDS = 3


@dataclass(frozen=True)
class ExtractOptions:
    page_size: int = 2000
    concurrency: int = 4
    verify: bool = True


@dataclass
class ExtractResult:
    """What one extraction did: the load, the paging and how the collection moved meanwhile."""

    snapshot_date: date
    captured_at: datetime
    load: SnapshotLoadResult
    pages: int
    records_paged: int
    repaired: int = 0
    deleted_during_run: int = 0
    appeared_during_run: int = 0
    verification_rounds: int = 0
    seconds: float = 0.0
    client_stats: dict[str, object] = field(default_factory=dict)

    @property
    def records_per_second(self) -> float:
        return self.load.rows / self.seconds if self.seconds > 0 else 0.0


def extract_snapshot(
    client: PlanhatClient,
    warehouse: Warehouse,
    snapshot_date: date,
    options: ExtractOptions = ExtractOptions(),
    on_progress: Callable[[str], None] | None = None,
) -> ExtractResult:
    """Page every objective into staging files, repair what paging missed, load atomically."""
    started = time.perf_counter()
    captured_at = datetime.now(UTC).replace(tzinfo=None)
    pages = records = 0
    with SnapshotStager() as stager:
        for page in client.iter_pages(limit=options.page_size, concurrency=options.concurrency):
            if page.records:
                stager.add_page(page.body)
                pages += 1
                records += len(page.records)
        if pages == 0:
            stager.add_page(b"[]")  # an empty tenant is a valid, empty snapshot
        if on_progress:
            on_progress(f"paged {records} records in {pages} pages")
        repair = _repair_missed(client, stager, options) if options.verify else _Repair()
        if on_progress and repair.repaired:
            on_progress(f"verification fetched {repair.repaired} objectives the pages skipped")
        load = load_snapshot(warehouse, stager, snapshot_date, captured_at)
    return ExtractResult(
        snapshot_date=snapshot_date,
        captured_at=captured_at,
        load=load,
        pages=pages,
        records_paged=records,
        repaired=repair.repaired,
        deleted_during_run=repair.deleted_during_run,
        appeared_during_run=repair.appeared_during_run,
        verification_rounds=repair.rounds,
        seconds=time.perf_counter() - started,
        client_stats=client.stats.model_dump(),
    )


def _repair_missed(
    client: PlanhatClient, stager: SnapshotStager, options: ExtractOptions
) -> _Repair:
    """Fetch objectives that exist but were not staged, until a listing finds none missing."""
    repair = _Repair()
    gone: set[str] = set()
    for round_number in range(1, MAX_VERIFICATION_ROUNDS + 1):
        repair.rounds = round_number
        for page in client.iter_pages(
            limit=options.page_size, select="_id", concurrency=options.concurrency
        ):
            if page.records:
                stager.add_id_page(page.body)
        check = stager.id_check()
        if round_number == 1:
            repair.deleted_during_run = check.unlisted
            repair.appeared_during_run = len(check.missing)
        missing = [oid for oid in check.missing if oid not in gone]
        if not missing:
            break
        fetched: list[dict[str, Any]] = []
        for oid in missing:
            try:
                obj = client.get_objective(oid)
            except NotFoundError:
                gone.add(oid)
                repair.vanished += 1
            else:
                fetched.append(obj.model_dump(by_alias=True, mode="json", exclude_unset=True))
        if fetched:
            stager.add_records(fetched)
            repair.repaired += len(fetched)
    return repair


@dataclass
class _Repair:
    repaired: int = 0
    vanished: int = 0
    rounds: int = 0
    deleted_during_run: int = 0
    appeared_during_run: int = 0
