"""One pass over ``GET /objectives`` that proves its own completeness, or says why it cannot.

Offset paging has no snapshot isolation: an objective deleted while we page shifts every
later record to a lower offset, and a plain page boundary can then skip a record. Here
pages overlap and every boundary is checked; :func:`snapshot_pages` takes a
``fetch(offset, limit)`` callable, so it runs the same against Planhat, the sandbox or a
test double. Two proofs are tried, and the one that ran is
:attr:`SnapshotStats.completeness_proof`:

``sorted_overlap`` (first). Pages are asked sorted by ``_id``. The order is *checked*, not
trusted: every ``_id`` of a page must be a lowercase 24-hex ObjectId (those compare as
strings the way the server orders them; any other id shape, uppercase hex, UUIDs or a mix,
has no order we may assume), the ids of a page must increase strictly, and a page asked
from inside the previous page must hold, before that page's last id, its records
and few others (objectives created meanwhile: at most two, or a quarter of those records). A page that breaks
this is read once more; if it still does, the proof is abandoned for the fallback.

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
page, can hide a gap (objectives before the boundary were deleted between the two
fetches). Such a boundary is *repaired*: the page is asked again from further back
(distance doubling, full records) until a fetched page starts at or before c; the chain
goes on from that page, overlapping by one, until the chain reaches the page that did not
join. Repairs re-read page ranges, never one objective at a time, and are bounded
(:data:`MAX_REPAIR_REQUESTS`, then :class:`BadResponseError`).

The end. No page ends the listing because it is short: the server's cap may vary from
request to request. The listing ends with a page that joins the chain and holds at most a
quarter of the largest page (or two records): a page that small was not cut by a cap, so
it holds every record from its first on that existed when it was fetched, and the chain
covers everything before (assumed, and refused when seen on the first page: a server
returns more than that when more are left). A calm listing's last page is such a page; any
other short page is followed by a confirmation, a page asked at the position of the chain's
last record (less the drift, at most an eighth of a page), accepted like any page if it is
not the end: objectives created at the end while we page are taken along, up to
:data:`MAX_CONFIRMATIONS` pages in a row. Every objective that existed for the whole run is
therefore in some accepted page; objectives created during the run are not owed. Pages in
flight arrive in any order; each page waits for its predecessors, since a boundary can be
judged only once both of its pages are in.

``fallback_consistent_order`` (see :mod:`.snapshot_fallback`): pages in whatever order the
server keeps, chained by the identity of the record they share, which holds for any order
that stays the same between requests. It pages from offset 0 again, one page at a time.

Drift: when repairs show that positions moved (deletions before a boundary between two
fetches), the step of the pages not yet sent shrinks by the observed shift (up to a
quarter page), so that later boundaries overlap by more than one record and still join.

Counted on the way (:class:`SnapshotStats`): requests, repaired boundaries, the drift, the
proof and why the first one was abandoned, and ``deleted_seen``: objectives seen in one
page and missing from a later page that covers them (deleted between the two fetches; a
lower bound: a deletion in a range read only once cannot be seen in one pass).
"""

from __future__ import annotations

import bisect
import itertools
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from objectives_pipeline.settings import DEFAULT_PAGES_IN_FLIGHT

from .errors import BadResponseError
from .models import ObjectivePage

__all__ = [
    "FALLBACK_PROOF",
    "MAX_CONFIRMATIONS",
    "MAX_REPAIR_REQUESTS",
    "SORTED_PROOF",
    "SnapshotPage",
    "SnapshotStats",
    "snapshot_pages",
]

FetchPage = Callable[[int, int], ObjectivePage]
"""Fetch the page at (offset, limit), asked sorted by ``_id``; `records` need only ``_id``."""
Exists = Callable[[str], bool]
"""Whether the objective with this ``_id`` exists now (``GET /objectives/{id}``)."""

MAX_REPAIR_REQUESTS = 1000
#: Confirmation pages in a row that found more objectives (created at the end) before
#: the run gives up chasing them.
MAX_CONFIRMATIONS = 50
SORTED_PROOF = "sorted_overlap"
FALLBACK_PROOF = "fallback_consistent_order"
_MAX_STALLED_PAGES = 8
_OBJECT_ID = re.compile(r"[0-9a-f]{24}")


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
    `completeness_proof`: :data:`SORTED_PROOF` or :data:`FALLBACK_PROOF`, the proof the
    pages satisfy; `order_problem`: why the sorted proof was abandoned (None if it was not).
    `order_rereads`: pages read again because they broke the order; `fallback_requests`:
    the requests of the fallback; `existence_checks`: single-objective GETs it needed.
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
    completeness_proof: str = SORTED_PROOF
    order_problem: str | None = None
    order_rereads: int = 0
    fallback_requests: int = 0
    existence_checks: int = 0


class OrderUnreliable(Exception):
    """The server's pages do not keep the order the sorted proof relies on."""


def snapshot_pages(
    fetch: FetchPage,
    *,
    limit: int,
    in_flight: int = DEFAULT_PAGES_IN_FLIGHT,
    stats: SnapshotStats | None = None,
    max_repair_requests: int = MAX_REPAIR_REQUESTS,
    expected: int | None = None,
    exists: Exists | None = None,
    deadline: float | None = None,
) -> Iterator[SnapshotPage]:
    """Every objective, as overlapping pages, in chain order.

    See the module docstring for why the result is complete. `stats` (optional) is filled
    in as pages are accepted. `expected`: about how many objectives there are (e.g. the
    previous snapshot's size); pages starting past it are sent one at a time, so that the
    window does not waste requests past the end. It never affects the result. `exists`
    lets the fallback tell a deleted objective from a moved one (without it, such a
    boundary fails the run). `deadline` (a :func:`time.monotonic` value): no request is
    started after it. Raises :class:`BadResponseError` when the server returns more
    records than asked, ignores `offset`, caps pages at one record, breaks every order
    the proofs can check, when repairs need more than `max_repair_requests` requests, or
    when the deadline passes.
    """
    if limit < 2:
        raise ValueError("overlapping pages need a limit of at least 2")
    stats = stats or SnapshotStats()
    budget = Budget(stats, max_repair_requests, deadline)
    sorted_chain = _Chain(fetch, limit, max(1, in_flight), stats, budget, expected)
    return _with_fallback(sorted_chain, fetch, limit, stats, budget, exists)


def _with_fallback(
    sorted_chain: _Chain,
    fetch: FetchPage,
    limit: int,
    stats: SnapshotStats,
    budget: Budget,
    exists: Exists | None,
) -> Iterator[SnapshotPage]:
    from .snapshot_fallback import ConsistentOrderChain

    try:
        yield from sorted_chain.run()
        return
    except OrderUnreliable as problem:
        stats.order_problem = str(problem)
    stats.completeness_proof = FALLBACK_PROOF
    stats.deleted_seen = 0  # counted under an order the server does not keep
    fallback = ConsistentOrderChain(fetch, limit, stats, budget, exists, sorted_chain.accepted)
    yield from fallback.run()


class Budget:
    """The bounds shared by both proofs (used by :mod:`.snapshot_fallback` too): repair requests and the run's deadline."""

    def __init__(self, stats: SnapshotStats, max_repairs: int, deadline: float | None) -> None:
        self.stats = stats
        self.max_repairs = max_repairs
        self.deadline = deadline
        self.confirmations = 0

    def confirmation(self, offset: int, limit: int) -> None:
        """Count a confirmation page that found more objectives past the end."""
        self.confirmations += 1
        if self.confirmations > MAX_CONFIRMATIONS:
            raise BadResponseError(
                f"{MAX_CONFIRMATIONS} pages in a row asked at the end of the listing found "
                "more objectives: they are created faster than the end can be confirmed. "
                "Nothing was loaded; run the extraction again when fewer are being created",
                request=label(offset, limit),
                retryable=False,
            )

    def before_request(self, offset: int, limit: int) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise BadResponseError(
                f"The extraction ran past its time budget after {self.stats.requests} "
                "requests, so it stops with nothing loaded. Raise the run's time budget "
                "(run_budget_seconds) if the tenant is this slow to page",
                request=label(offset, limit),
                retryable=False,
            )

    def repair(self, offset: int, limit: int) -> None:
        if self.stats.repair_requests >= self.max_repairs:
            raise BadResponseError(
                f"Repairing page boundaries took more than {self.max_repairs} requests: the "
                "objectives change faster than they can be paged. Run the extraction again "
                "when fewer objectives are being deleted",
                request=label(offset, limit),
                retryable=False,
            )
        self.stats.repair_requests += 1


def small_page(largest: int) -> int:
    """Pages of at most this many records were not cut by a cap (see the module docstring)."""
    return max(2, largest // 4)


def record_ids(page: ObjectivePage) -> list[str]:
    """The ``_id`` of every record of `page`; refuses a record without a string ``_id``."""
    ids: list[str] = []
    for record in page.records:
        value = record.get("_id")
        if not isinstance(value, str):
            raise BadResponseError(
                f"A record at offset {page.offset + len(ids)} has no string _id ({value!r}); "
                "pages cannot be checked for gaps without it",
                request=label(page.offset, page.limit),
                retryable=False,
            )
        ids.append(value)
    return ids


def label(offset: int, limit: int) -> str:
    return f"GET /objectives sort=_id offset={offset} limit={limit}"


def too_many(page: ObjectivePage, ids: list[str], limit: int) -> None:
    if len(ids) > limit:
        raise BadResponseError(
            f"Planhat returned {len(ids)} records where {limit} were asked; "
            "paging stops so that nothing is loaded on a wrong assumption",
            request=label(page.offset, limit),
            retryable=False,
        )


def empty_where_objectives_exist(offset: int, limit: int, seen: int) -> BadResponseError:
    return BadResponseError(
        f"Planhat returned no objectives from offset {offset} on (read back to offset 0), "
        f"although {seen} objectives were paged before: the server stopped returning objectives "
        "mid-run (a maintenance window, a proxy, or a token that lost its rights). Nothing "
        "was loaded; run the extraction again later",
        request=label(offset, limit),
        retryable=False,
    )


def sorted_order_problem(ids: list[str]) -> str | None:
    """Why `ids` cannot be a page sorted by ``_id`` as the sorted proof needs, or None."""
    if not all(map(_OBJECT_ID.fullmatch, ids)):
        odd = next(i for i in ids if not _OBJECT_ID.fullmatch(i))
        return (
            f"_id {odd!r} is not a lowercase 24-hex ObjectId, so how the server orders it "
            "is unknown"
        )
    for before, after in itertools.pairwise(ids):
        if after <= before:
            what = "twice in one page" if after == before else f"after {before!r}"
            return f"_id {after!r} came {what} in a page asked sorted by _id"
    return None


class _Chain:
    """The sorted proof: pages sorted by ``_id``, boundaries judged by id comparison."""

    def __init__(
        self,
        fetch: FetchPage,
        limit: int,
        in_flight: int,
        stats: SnapshotStats,
        budget: Budget,
        expected: int | None,
    ) -> None:
        self._fetch_page = fetch
        self._expected = expected
        self._limit = limit
        self._in_flight = in_flight
        self.stats = stats
        self._budget = budget
        self._size = 0  # effective page size: the largest page seen
        self._drift = 0  # step reduction for pages not yet sent
        self._last: str | None = None  # c: the greatest id accepted
        self._last_ids: list[str] = []  # ids of the latest accepted page
        self._last_set: set[str] = set()
        self._ended = False
        self._confirm = False  # the latest page was short: ask at its last record next
        self._last_offset = 0
        self._last_count = 0
        self._stalled = 0  # pages in a row that did not extend the chain
        self._lock = threading.Lock()

    @property
    def accepted(self) -> int:
        """Records accepted so far."""
        return self.stats.records

    # -- fetching -------------------------------------------------------------------------

    def _fetch(self, offset: int) -> tuple[ObjectivePage, list[str]]:
        page, ids = self._fetch_once(offset)
        problem = sorted_order_problem(ids)
        if problem is None:
            return page, ids
        with self._lock:
            self.stats.order_rereads += 1
        page, ids = self._fetch_once(offset)
        problem = sorted_order_problem(ids)
        if problem is not None:
            raise OrderUnreliable(f"{problem} (offset {offset}, read twice)")
        return page, ids

    def _fetch_once(self, offset: int) -> tuple[ObjectivePage, list[str]]:
        self._budget.before_request(offset, self._limit)
        with self._lock:
            self.stats.requests += 1
        page = self._fetch_page(offset, self._limit)
        ids = record_ids(page)
        too_many(page, ids, self._limit)
        return page, ids

    def _repair_fetch(self, offset: int) -> tuple[ObjectivePage, list[str]]:
        self._budget.repair(offset, self._limit)
        return self._fetch(offset)

    # -- the chain --------------------------------------------------------------------------

    def run(self) -> Iterator[SnapshotPage]:
        first, ids = self._fetch(0)
        if not ids:
            return
        yield from self._accept(first, ids)
        if len(ids) == 1 and self._limit > 1:
            self._single()
        yield from self._window()

    def _single(self) -> None:
        """One record came back: refuse a cap of one, which cannot overlap."""
        if self._fetch(1)[1]:
            raise BadResponseError(
                "Planhat returned one record per page; overlapping pages need at least two. "
                "Raise the page size",
                request=label(1, self._limit),
                retryable=False,
            )

    def _window(self) -> Iterator[SnapshotPage]:
        pending: deque[tuple[int, Future[tuple[ObjectivePage, list[str]]]]] = deque()
        pool = ThreadPoolExecutor(self._in_flight, thread_name_prefix="planhat-snapshot")
        next_offset = self._position_after_last()
        try:
            while not self._ended:
                window = 1 if self._confirm else self._in_flight
                while len(pending) < window and (
                    not pending or self._expected is None or next_offset < self._expected
                ):
                    pending.append((next_offset, pool.submit(self._fetch, next_offset)))
                    next_offset += self._step()
                offset, future = pending.popleft()
                page, ids = future.result()
                before = self._drift
                yield from self._settle(offset, page, ids)
                next_offset -= self._drift - before
                if self._confirm and not self._ended:
                    # Pages sent past a short page start at the wrong place: start again at
                    # its last record, one page at a time until a full page comes back.
                    for _, stale in pending:
                        stale.cancel()
                    pending.clear()
                    next_offset = self._position_after_last()
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
        drift = min(self._drift, self._size // 8) if self._confirm else self._drift
        return max(0, self._last_offset + self._last_count - 1 - drift)

    def _settle(self, offset: int, page: ObjectivePage, ids: list[str]) -> Iterator[SnapshotPage]:
        """Accept a page that joins the chain; repair the boundary when it does not."""
        if self._ended:
            return
        if self._starts_elsewhere(offset, ids):
            with self._lock:
                self.stats.order_rereads += 1
            page, ids = self._fetch(offset)
            if self._starts_elsewhere(offset, ids):
                raise OrderUnreliable(
                    f"the page at offset {offset} holds, before the last _id paged, ids that "
                    "are not among those of the page before it at those offsets (read twice)"
                )
        if not self._joins(offset, ids):
            yield from self._repair(offset, ids)
            if self._ended or not self._joins(offset, ids):
                return
        yield from self._accept(page, ids)

    def _starts_elsewhere(self, offset: int, ids: list[str]) -> bool:
        """A page asked from inside the latest page's offsets holds, before that page's last
        id, its records and at most a few created since (two, or a quarter of
        them): more unknown ids there mean the pages follow no one order."""
        if not (
            offset > 0
            and ids
            and self._last is not None
            and self._last_offset <= offset < self._last_offset + self._last_count
        ):
            return False
        below = ids[: bisect.bisect_left(ids, self._last_ids[-1])]
        unknown = sum(1 for oid in below if oid not in self._last_set)
        return unknown > max(2, len(below) // 4)

    def _joins(self, offset: int, ids: list[str]) -> bool:
        return offset == 0 or (bool(ids) and self._last is not None and ids[0] <= self._last)

    def _accept(
        self, page: ObjectivePage, ids: list[str], *, repair: bool = False
    ) -> Iterator[SnapshotPage]:
        previous = self._last
        if not ids:
            raise empty_where_objectives_exist(page.offset, page.limit, self.stats.records)
        ends = previous is not None and self._is_end(ids, page)
        if ends and ids[-1] == self._last_ids[-1]:
            self._ended = True  # nothing came after the chain's last record
            return
        exact = previous is not None and ids[0] == previous
        stalled = not repair and previous is not None and ids[-1] <= previous
        self._stalled = self._stalled + 1 if stalled else 0
        if self._stalled >= _MAX_STALLED_PAGES:
            raise BadResponseError(
                f"{self._stalled} pages in a row, up to offset {page.offset}, held nothing "
                f"past the objectives already paged ({previous}): the server seems to ignore "
                "`offset`; paging stops instead of looping forever",
                request=label(page.offset, page.limit),
                retryable=False,
            )
        present = set(ids)
        if previous is not None:
            self._count_deleted(ids, previous, present)
            if not exact:
                self.stats.overlapping_pages += 1
        self.stats.pages += 1
        added = len(ids) - (1 if exact else 0)
        self.stats.records += added
        if added >= self._size // 4:
            self._budget.confirmations = 0  # paging on, not chasing objectives being created
        self._confirm = len(ids) < (self._size if previous is not None else self._limit)
        self._size = max(self._size, len(ids))
        if previous is None or ids[-1] > previous:
            self._last = ids[-1]
        self._last_ids = ids
        self._last_set = present
        self._last_offset = page.offset
        self._last_count = len(ids)
        self.stats.page_size = self._size
        self.stats.drift = self._drift
        self._ended = ends
        yield SnapshotPage(page, repeats_first=exact, repair=repair)

    def _is_end(self, ids: list[str], page: ObjectivePage) -> bool:
        """Whether a page that joins the chain holds everything after its first record."""
        if len(ids) <= small_page(self._size):
            return True
        if self._confirm:
            self._budget.confirmation(page.offset, page.limit)
        return False

    def _count_deleted(self, ids: list[str], previous: str, present: set[str]) -> None:
        """Ids of the previous page within this page's range, missing from it."""
        low = bisect.bisect_left(self._last_ids, ids[0])
        high = bisect.bisect_right(self._last_ids, min(ids[-1], previous))
        if high > low:
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
            if ids:
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
