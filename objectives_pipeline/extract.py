"""One complete, verified snapshot of every objective, from Planhat into the warehouse.

Knows the client and the warehouse, not Dagster. Offset paging has no snapshot isolation:
objectives deleted while we page shift later records to lower offsets, and a page boundary
can skip them. After paging we therefore list every `_id` again (`select=_id`, cheap), fetch
what the pages missed one by one, and repeat until a listing finds nothing new (bounded).
Records repeated across pages are removed by the load, which keeps one row per objective.

When the collection did not change, that listing (pages in flight, ids only) has exactly
the staged ids, and we are done. When it changed, a listing in flight could skip the same
records as the pages (with steady churn the skipped positions line up from pass to pass), so
the ids are listed again one page at a time: each id page starts at the last id listed before
it, and a page that does not reach back to that id (objectives before it were deleted
meanwhile) is asked again from further back. Every objective that exists for the whole
listing is then listed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from objectives_pipeline.planhat import (
    BadResponseError,
    ClientStats,
    NotFoundError,
    PlanhatClient,
)
from objectives_pipeline.warehouse import (
    SnapshotLoadResult,
    SnapshotStager,
    Warehouse,
    load_snapshot,
)

MAX_VERIFICATION_ROUNDS = 3
MAX_LISTING_REQUESTS = 100_000


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
    client_stats: ClientStats = field(default_factory=ClientStats)

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
        pages_iter = client.iter_pages(
            limit=options.page_size, concurrency=options.concurrency, parse="ids"
        )
        for page in pages_iter:
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
        client_stats=client.stats,
    )


def _repair_missed(
    client: PlanhatClient, stager: SnapshotStager, options: ExtractOptions
) -> _Repair:
    """Check the staged ids against a second listing; repair what the pages skipped.

    A page boundary can only skip an objective when an objective paged before it is deleted
    before the next page is read; that objective is then staged but missing from a later
    listing. So when a quick listing (pages in flight, ids only) has exactly the staged ids,
    nothing moved and nothing was skipped. Otherwise the collection changed during the run,
    and the ids are listed again with pages that overlap, which skip nothing, until nothing
    is missing (bounded).
    """
    repair = _Repair(rounds=1)
    listed = 0
    for page in client.iter_pages(
        limit=options.page_size,
        select="_id",
        concurrency=options.concurrency,
        parse="ids",
    ):
        if page.records:
            stager.add_id_page(page.body)
            listed += len(page.records)
    if listed == 0:
        stager.add_id_page(b"[]")  # an empty tenant lists no id
    check = stager.id_check()
    repair.deleted_during_run = check.unlisted
    repair.appeared_during_run = len(check.missing)
    if not check.missing and not check.unlisted:
        return repair
    gone: set[str] = set()
    for round_number in range(2, MAX_VERIFICATION_ROUNDS + 2):
        repair.rounds = round_number
        for ids in _list_ids_overlapping(client, options.page_size):
            stager.add_id_page(json.dumps([{"_id": oid} for oid in ids]).encode())
        missing = [oid for oid in stager.id_check().missing if oid not in gone]
        if not missing:
            break
        fetched: list[dict[str, Any]] = []
        for oid in missing:
            try:  # as received, like the pages: the load flags what does not fit
                fetched.append(client.get_objective_record(oid))
            except NotFoundError:
                gone.add(oid)
        if fetched:
            stager.add_records(fetched)
            repair.repaired += len(fetched)
    return repair


def _list_ids_overlapping(client: PlanhatClient, page_size: int) -> Iterator[list[str]]:
    """Every `_id` in ascending order, in pages that each start at the last id listed before.

    A page is contiguous with what was listed when it starts at or before the greatest id
    listed so far: every id up to its end that existed when it was fetched is then in it. A
    page that does not reach back is asked again from further back (doubling). The listing
    ends on a contiguous page shorter than the longest page seen.
    """
    limit = max(page_size, 2)  # a page must hold the overlap and something new
    last: str | None = None
    position = 0  # the index of the last page's last id, as of that page
    back = 0
    longest = 2
    for _ in range(MAX_LISTING_REQUESTS):
        start = max(0, position - back)
        page = client.list_objectives(limit=limit, offset=start, sort="_id", select="_id")
        ids = [objective.id for objective in page]
        longest = max(longest, len(ids))
        if last is not None and start > 0 and (not ids or ids[0] > last):
            back = max(1, back * 2)  # objectives before it were deleted: reach further back
            continue
        new = [oid for oid in ids if last is None or oid > last]
        if new:
            yield new
            last = new[-1]
        if len(ids) < longest:
            return  # the collection ended within this page when it was fetched
        position, back = start + len(ids) - 1, back // 2
    raise BadResponseError(
        f"Listing every objective id took more than {MAX_LISTING_REQUESTS} requests: the "
        "objectives change faster than they can be listed",
        request=f"GET /objectives select=_id limit={limit}",
        retryable=False,
    )


@dataclass
class _Repair:
    repaired: int = 0
    rounds: int = 0
    deleted_during_run: int = 0
    appeared_during_run: int = 0
