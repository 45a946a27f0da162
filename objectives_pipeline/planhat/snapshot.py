"""One pass over ``GET /objectives`` that proves its own completeness.

Offset paging has no snapshot isolation: an objective deleted while we page shifts every
later record to a lower offset, and a plain page boundary can then skip a record. Here
pages are sorted by ``_id`` and overlap by (at least) one record, and every boundary is
checked; :func:`snapshot_pages` takes a ``fetch(offset, limit)`` callable, so it runs the
same against Planhat, the sandbox or a test double.

The argument. Let L be the effective page size (the server's cap when it caps) and page k
ask ``offset = o_k``, ``limit = L``. A page holds, at its fetch time, the records at
offsets ``o_k .. o_k + L - 1`` of the collection sorted by ``_id``: every objective whose
id lies between its first id f and its last id l that existed at that moment is in it.
Let c be the greatest id of the pages accepted so far ("the chain"). The first page
(offset 0) covers every id up to its l. A later page *joins* the chain when its f <= c;
then the chain and the page together cover every id up to max(c, l), whatever was created
or deleted meanwhile: nothing is skipped. With f == c (the calm case: the step is L - 1,
the shared record is the only repeat) the load drops the page's first record instead of
de-duplicating; with f < c (objectives created before the boundary) the extra repeats are
removed by the load (one row per objective, the later fetch wins). Only f > c, or an empty
page after a full one, can hide a gap (objectives before the boundary were deleted between
the two fetches). Such a boundary is *repaired*: the page is asked again from further back
(distance doubling, full records) until a fetched page starts at or before c; the chain
goes on from that page, overlapping by one, until the chain reaches the page that did not
join. Repairs re-read page ranges, never one objective at a time, and are bounded
(:data:`MAX_REPAIR_REQUESTS`, then :class:`BadResponseError`).

The end: a page that joins and holds fewer records than the effective page size holds
every id from its f on that existed at its fetch time, so the chain covers everything
that existed then. Every objective that existed for the whole run is therefore in some
accepted page; objectives created during the run are not owed (they may or may not be
there). Pages in flight arrive in any order; each page waits for its predecessors, since
a boundary can be judged only once both of its pages are in.

The cap: the first page is fetched alone. If it holds fewer records than asked, the server
caps pages there or the collection is that small; the next page overlaps it by one, and
tells: a page that joins with fewer records ends the paging, one with as many goes on with
that cap, one with more raises the effective size. A cap of one record cannot overlap and
is refused. Assumed: the cap does not shrink during a run (a page shorter than an earlier
one is taken as the end).

Drift: when repairs show that positions moved (deletions before a boundary between two
fetches), the step of the pages not yet sent shrinks by the observed shift (up to a
quarter page), so that later boundaries overlap by more than one record and still join.

Counted on the way (:class:`SnapshotStats`): requests, repaired boundaries, the drift,
and ``deleted_seen``: ids of an accepted page that are missing from the next accepted
page although it covers their id range (deleted between the two fetches). That is a lower
bound: a deletion in a range read only once cannot be seen in one pass.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from objectives_pipeline.settings import DEFAULT_PAGES_IN_FLIGHT

from .errors import BadResponseError
from .models import ObjectivePage

__all__ = ["MAX_REPAIR_REQUESTS", "SnapshotPage", "SnapshotStats", "snapshot_pages"]

FetchPage = Callable[[int, int], ObjectivePage]
"""Fetch the page at (offset, limit), sorted by ``_id``; `records` need only ``_id``."""

MAX_REPAIR_REQUESTS = 1000
_MAX_STALLED_PAGES = 8


@dataclass(frozen=True, slots=True)
class SnapshotPage:
    """One accepted page. `repeats_first`: its first record is the chain's last record
    (the exact one-record overlap), so a loader can drop it instead of de-duplicating."""

    page: ObjectivePage
    repeats_first: bool
    repair: bool = False

    @property
    def repeated_id(self) -> str | None:
        """The ``_id`` of the first record when it repeats the chain's last one."""
        return str(self.page.records[0]["_id"]) if self.repeats_first else None


@dataclass
class SnapshotStats:
    """What :func:`snapshot_pages` did; complete once its iterator is exhausted.

    `requests`: pages fetched (accepted or not, retries not included).
    `boundaries_repaired`: boundaries that did not join and were read again.
    `repair_requests`: requests those repairs cost.
    `overlapping_pages`: accepted pages repeating more than one record (the load must
    de-duplicate when this is not 0).
    `deleted_seen`: see the module docstring (a lower bound).
    `page_size`: the effective page size; `drift`: the step reduction in force at the end.
    """

    requests: int = 0
    pages: int = 0
    records: int = 0
    boundaries_repaired: int = 0
    repair_requests: int = 0
    overlapping_pages: int = 0
    deleted_seen: int = 0
    page_size: int = 0
    drift: int = 0


def snapshot_pages(
    fetch: FetchPage,
    *,
    limit: int,
    in_flight: int = DEFAULT_PAGES_IN_FLIGHT,
    stats: SnapshotStats | None = None,
    max_repair_requests: int = MAX_REPAIR_REQUESTS,
    expected: int | None = None,
) -> Iterator[SnapshotPage]:
    """Every objective, as overlapping pages sorted by ``_id``, in chain order.

    See the module docstring for why the result is complete. `stats` (optional) is filled
    in as pages are accepted. `expected`: about how many objectives there are (e.g. the
    previous snapshot's size); pages starting past it are sent one at a time, so that the
    window does not waste requests past the end. It never affects the result. Raises :class:`BadResponseError` when the server returns more
    records than asked, ignores `offset`, caps pages at one record, or when repairs need
    more than `max_repair_requests` requests.
    """
    if limit < 2:
        raise ValueError("overlapping pages need a limit of at least 2")
    chain = _Chain(
        fetch, limit, max(1, in_flight), stats or SnapshotStats(), max_repair_requests, expected
    )
    return chain.run()


def _ids(page: ObjectivePage) -> list[str]:
    ids: list[str] = []
    for record in page.records:
        value = record.get("_id")
        if not isinstance(value, str):
            raise BadResponseError(
                f"A record at offset {page.offset + len(ids)} has no string _id ({value!r}); "
                "pages sorted by _id cannot be checked for gaps without it",
                request=_label(page.offset, page.limit),
                retryable=False,
            )
        ids.append(value)
    return ids


def _label(offset: int, limit: int) -> str:
    return f"GET /objectives sort=_id offset={offset} limit={limit}"


class _Chain:
    def __init__(
        self,
        fetch: FetchPage,
        limit: int,
        in_flight: int,
        stats: SnapshotStats,
        max_repair_requests: int,
        expected: int | None,
    ) -> None:
        self._fetch_page = fetch
        self._expected = expected
        self._limit = limit
        self._in_flight = in_flight
        self.stats = stats
        self._max_repairs = max_repair_requests
        self._size = 0  # effective page size, known after the first page
        self._drift = 0  # step reduction for pages not yet sent
        self._last: str | None = None  # c: the greatest id accepted
        self._last_ids: list[str] = []  # ids of the latest accepted page
        self._ended = False
        self._last_offset = 0
        self._last_count = 0
        self._stalled = 0  # pages in a row that did not extend the chain
        self._lock = threading.Lock()

    # -- fetching -------------------------------------------------------------------------

    def _fetch(self, offset: int) -> tuple[ObjectivePage, list[str]]:
        with self._lock:
            self.stats.requests += 1
        page = self._fetch_page(offset, self._limit)
        if len(page.records) > self._limit:
            raise BadResponseError(
                f"Planhat returned {len(page.records)} records where {self._limit} were asked; "
                "paging stops so that nothing is loaded on a wrong assumption",
                request=_label(offset, self._limit),
                retryable=False,
            )
        return page, _ids(page)

    def _repair_fetch(self, offset: int) -> tuple[ObjectivePage, list[str]]:
        if self.stats.repair_requests >= self._max_repairs:
            raise BadResponseError(
                f"Repairing page boundaries took more than {self._max_repairs} requests: the "
                "objectives change faster than they can be paged. Run the extraction again "
                "when fewer objectives are being deleted",
                request=_label(offset, self._limit),
                retryable=False,
            )
        self.stats.repair_requests += 1
        return self._fetch(offset)

    # -- the chain --------------------------------------------------------------------------

    def run(self) -> Iterator[SnapshotPage]:
        first, ids = self._fetch(0)
        if not ids:
            return
        self._size = len(ids)
        yield from self._accept(first, ids)
        if len(ids) == 1 and self._limit > 1:
            self._single()
            return
        if len(ids) < self._limit:
            # A cap, or the whole collection: the next page overlapping by one tells which.
            yield from self._sequential(len(ids) - 1)
            if self._ended:
                return
        yield from self._window()

    def _single(self) -> None:
        """One record came back: refuse a cap of one, which cannot overlap."""
        if self._fetch(1)[1]:
            raise BadResponseError(
                "Planhat returned one record per page; overlapping pages need at least two. "
                "Raise the page size",
                request=_label(1, self._limit),
                retryable=False,
            )

    def _sequential(self, offset: int) -> Iterator[SnapshotPage]:
        """One page after another from `offset`, until the size is settled or the end."""
        page, ids = self._fetch(offset)
        yield from self._settle(offset, page, ids)

    def _window(self) -> Iterator[SnapshotPage]:
        pending: deque[tuple[int, Future[tuple[ObjectivePage, list[str]]]]] = deque()
        pool = ThreadPoolExecutor(self._in_flight, thread_name_prefix="planhat-snapshot")
        next_offset = self._position_after_last()
        try:
            while not self._ended:
                while len(pending) < self._in_flight and (
                    not pending or self._expected is None or next_offset < self._expected
                ):
                    pending.append((next_offset, pool.submit(self._fetch, next_offset)))
                    next_offset += self._step()
                offset, future = pending.popleft()
                page, ids = future.result()
                before = self._drift
                yield from self._settle(offset, page, ids)
                next_offset -= self._drift - before
                if self._expected is not None and offset >= self._expected and not self._ended:
                    self._expected = None  # far more than expected: back to a full window
        finally:
            for _, future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def _step(self) -> int:
        return max(1, self._size - 1 - self._drift)

    def _position_after_last(self) -> int:
        """Where the next page starts: at the chain's last record as of the latest page,
        less the drift."""
        return max(0, self._last_offset + self._last_count - 1 - self._drift)

    def _settle(self, offset: int, page: ObjectivePage, ids: list[str]) -> Iterator[SnapshotPage]:
        """Accept a page that joins the chain; repair the boundary when it does not."""
        if self._ended:
            return
        if not self._joins(offset, ids):
            yield from self._repair(offset, ids)
            if self._ended or not self._joins(offset, ids):
                return
        yield from self._accept(page, ids)

    def _joins(self, offset: int, ids: list[str]) -> bool:
        return offset == 0 or (bool(ids) and self._last is not None and ids[0] <= self._last)

    def _accept(
        self, page: ObjectivePage, ids: list[str], *, repair: bool = False
    ) -> Iterator[SnapshotPage]:
        previous = self._last
        exact = previous is not None and ids[0] == previous
        stalled = not repair and previous is not None and ids[-1] <= previous
        self._stalled = self._stalled + 1 if stalled else 0
        if self._stalled >= _MAX_STALLED_PAGES:
            raise BadResponseError(
                f"{self._stalled} pages in a row, up to offset {page.offset}, held nothing "
                f"past the objectives already paged ({previous}): the server seems to ignore "
                "`offset`; paging stops instead of looping forever",
                request=_label(page.offset, page.limit),
                retryable=False,
            )
        if previous is not None:
            self._count_deleted(ids, previous)
            if not exact:
                self.stats.overlapping_pages += 1
        self.stats.pages += 1
        self.stats.records += len(ids) - (1 if exact else 0)
        if len(ids) > self._size:
            self._size = len(ids)  # a larger cap than the first page showed
        elif len(ids) < self._size and previous is not None:
            self._ended = True  # a short page that joins: the end, as of its fetch
        if previous is None or ids[-1] > previous:
            self._last = ids[-1]
        self._last_ids = ids
        self._last_offset = page.offset
        self._last_count = len(ids)
        self.stats.page_size = self._size
        self.stats.drift = self._drift
        yield SnapshotPage(page, repeats_first=exact, repair=repair)

    def _count_deleted(self, ids: list[str], previous: str) -> None:
        """Ids of the previous page within this page's range, missing from it."""
        low = bisect.bisect_left(self._last_ids, ids[0])
        high = bisect.bisect_right(self._last_ids, min(ids[-1], previous))
        if high > low:
            present = set(ids)
            self.stats.deleted_seen += sum(
                1 for oid in self._last_ids[low:high] if oid not in present
            )

    def _repair(self, offset: int, target: list[str]) -> Iterator[SnapshotPage]:
        """Read from further back until the chain reaches `target` (or the end)."""
        self.stats.boundaries_repaired += 1
        back = min(max(self._size // 8, 2 * self._drift, 1), offset)
        start = offset
        while not self._ended and not self._joins(offset, target):
            at = max(0, start - back)
            page, ids = self._repair_fetch(at)
            if at > 0 and not (ids and self._last is not None and ids[0] <= self._last):
                back = min(max(1, back * 2), start)
                continue
            self._note_shift(offset, at, ids)
            yield from self._accept(page, ids, repair=True)
            start, back = at + len(ids) - 1, 0

    def _note_shift(self, expected: int, at: int, ids: list[str]) -> None:
        """Shrink the step by how far the chain's last record moved down."""
        assert self._last is not None
        now = at + bisect.bisect_left(ids, self._last)
        shift = expected - now
        if shift > self._drift:
            self._drift = min(shift, self._size // 4)
