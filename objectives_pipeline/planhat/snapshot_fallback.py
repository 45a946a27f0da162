"""The fallback proof: pages in the server's own order, chained by the record they share.

Used by :func:`objectives_pipeline.planhat.snapshot.snapshot_pages` when the pages do not
keep the ``_id`` order (the server ignores ``sort``, or the ids are not ObjectIds whose
order can be assumed). It assumes less: only that the server lists the objectives in *some*
order that stays the same between requests (insertion order, an index, ``_id`` in the
server's own type order), whatever objectives are created or deleted meanwhile.

The argument. A page holds, at its fetch time, a run of consecutive records of that
order. Each page after the first is asked at the position of the latest page's last record
a (the anchor), and is accepted only if it holds a: then it holds every record that came
after a, up to its own last record, that existed when it was fetched. By induction the
accepted pages hold every objective that existed for the whole run, up to the last anchor;
the listing ends when a page asked at the anchor holds it and fewer records than a quarter
of the largest page (such a page was not cut by a cap: it holds all there was after the
anchor; objectives created at the end meanwhile are taken along). The anchor is
found by reading further back (8 records, then three quarters of a page) when records
before it were deleted; when it
cannot be found, ``GET /objectives/{id}`` tells whether it was deleted (then its
predecessor in the latest page becomes the anchor) or the order changed (then the run fails).

The order is checked as far as the pages show it: a record after the anchor that an
earlier page already held, or a record twice in one page, cannot happen in one stable order.
Such a page is read once more; if it still breaks the order, the run fails with what the
server did, instead of claiming a proof. Pages are fetched one at a time; every accepted
page may repeat records, so the load de-duplicates (one row per objective, the later
fetch wins).
"""

from __future__ import annotations

from collections.abc import Iterator

from .errors import BadResponseError, NotFoundError
from .models import ObjectivePage
from .snapshot import (
    Budget,
    Exists,
    FetchPage,
    SnapshotPage,
    SnapshotStats,
    empty_where_objectives_exist,
    label,
    record_ids,
    small_page,
    too_many,
)

_MAX_PAGES_WITHOUT_NEW_RECORDS = 4


class ConsistentOrderChain:
    """Pages chained by identity; see the module docstring. `seen_before`: records the
    abandoned sorted proof had accepted (an empty first page then fails the run)."""

    def __init__(
        self,
        fetch: FetchPage,
        limit: int,
        stats: SnapshotStats,
        budget: Budget,
        exists: Exists | None,
        seen_before: int = 0,
    ) -> None:
        self._fetch_page = fetch
        self._limit = limit
        self.stats = stats
        self._budget = budget
        self._exists = exists
        self._seen_before = seen_before
        self._seen: set[str] = set()
        self._tail: list[str] = []  # ids of the latest accepted page, in the server's order
        self._tail_offset = 0
        self._without_new = 0
        self._drift = 0  # how far before the anchor's last position to ask next

    def run(self) -> Iterator[SnapshotPage]:
        page, ids = self._fetch(0)
        if not ids:
            if self._seen_before:
                raise empty_where_objectives_exist(0, self._limit, self._seen_before)
            return
        if len(ids) == 1 and self._fetch(1)[1]:
            raise BadResponseError(
                "Planhat returned one record per page; overlapping pages need at least two. "
                "Raise the page size",
                request=label(1, self._limit),
                retryable=False,
            )
        yield self._accept(page, ids)
        while True:
            page, ids, anchor_at = self._next()
            after = ids[anchor_at + 1 :]
            if not after and anchor_at == 0:
                return  # asked at the anchor, and nothing came after it
            if len(ids) <= small_page(self.stats.page_size):
                yield self._accept(page, ids)  # not cut by a cap: all there is after the anchor
                return
            if len(after) <= small_page(self.stats.page_size):
                self._budget.confirmation(page.offset, self._limit)
            else:
                self._budget.confirmations = 0
            fresh = any(i not in self._seen for i in ids)
            self._without_new = 0 if fresh else self._without_new + 1
            if self._without_new >= _MAX_PAGES_WITHOUT_NEW_RECORDS:
                raise BadResponseError(
                    f"{self._without_new} pages in a row, up to offset {page.offset}, held "
                    "nothing past the objectives already paged: the server seems to ignore "
                    "`offset`, or its order changes between requests; no complete snapshot "
                    "can be proven, and paging stops instead of looping forever",
                    request=label(page.offset, self._limit),
                    retryable=False,
                )
            yield self._accept(page, ids)

    # -- fetching ---------------------------------------------------------------------------

    def _fetch(self, offset: int, *, repair: bool = False) -> tuple[ObjectivePage, list[str]]:
        if repair:
            self._budget.repair(offset, self._limit)
        page, ids = self._fetch_once(offset)
        if len(set(ids)) == len(ids):
            return page, ids
        self.stats.order_rereads += 1
        page, ids = self._fetch_once(offset)
        if len(set(ids)) != len(ids):
            twice = next(i for n, i in enumerate(ids) if i in ids[:n])
            raise BadResponseError(
                f"Planhat returned objective {twice} twice in one page (read twice): the page "
                "lost another objective in its place, so no complete snapshot can be proven. "
                "Nothing was loaded; report it to Planhat support if it persists",
                request=label(offset, self._limit),
                retryable=False,
            )
        return page, ids

    def _fetch_once(self, offset: int) -> tuple[ObjectivePage, list[str]]:
        self._budget.before_request(offset, self._limit)
        self.stats.requests += 1
        self.stats.fallback_requests += 1
        page = self._fetch_page(offset, self._limit)
        ids = record_ids(page)
        too_many(page, ids, self._limit)
        return page, ids

    # -- the chain --------------------------------------------------------------------------

    def _accept(self, page: ObjectivePage, ids: list[str]) -> SnapshotPage:
        self.stats.pages += 1
        self.stats.records += sum(1 for i in ids if i not in self._seen)
        if self._tail:
            self.stats.overlapping_pages += 1
        self.stats.page_size = max(self.stats.page_size, len(ids))
        self._seen.update(ids)
        self._tail = ids
        self._tail_offset = page.offset
        return SnapshotPage(page, repeats_first=False)

    def _next(self) -> tuple[ObjectivePage, list[str], int]:
        """The next page holding the anchor, its ids and the anchor's index in them."""
        anchor_index = len(self._tail) - 1
        at = self._tail_offset + anchor_index
        while True:
            found = self._find(at, anchor_index)
            if found is not None:
                page, _, anchor_at = found
                # How far deletions moved the anchor down: ask that much earlier next time.
                moved = at - (page.offset + anchor_at)
                self._drift = min(max(0, 2 * moved), self.stats.page_size // 4)
                return found
            self.stats.boundaries_repaired += 1
            anchor = self._tail[anchor_index]
            deleted = self._deleted(anchor, at)
            if not deleted:
                still = "still exists but " if deleted is False else ""
                raise BadResponseError(
                    f"Objective {anchor} {still}is no longer where the server listed it "
                    f"(offset {at}, nor up to a page before): the server's order "
                    "changes between requests, or objectives change faster than they can be "
                    "paged, so no complete snapshot can be proven. Nothing was loaded; run "
                    "the extraction again, and if it persists run `objectives-pipeline check` "
                    "to see how the server pages",
                    request=label(at, self._limit),
                    retryable=False,
                )
            self.stats.deleted_seen += 1
            if anchor_index == 0:
                raise BadResponseError(
                    f"Every objective of the page at offset {self._tail_offset} was deleted "
                    "while it was paged: the objectives change faster than they can be paged. "
                    "Run the extraction again later",
                    request=label(at, self._limit),
                    retryable=False,
                )
            anchor_index -= 1
            at = max(0, at - 1)

    def _find(self, at: int, anchor_index: int) -> tuple[ObjectivePage, list[str], int] | None:
        """The page holding the anchor near `at`: first where the drift says it moved, then
        a few records and a page further back (deletions before it moved it down)."""
        # The page read furthest back still reaches a quarter page past where it looks.
        size = self.stats.page_size
        page_back = max(1, size - 1 - size // 4)
        starts = [max(0, at - self._drift)]
        for back in (min(8, page_back), page_back):
            if starts[-1] > 0:
                starts.append(max(0, starts[0] - back))
        for n, start in enumerate(dict.fromkeys(starts)):
            found = self._read_at(start, anchor_index, repair=n > 0)
            if found is not None:
                return found
        return None

    def _read_at(
        self, offset: int, anchor_index: int, *, repair: bool = False
    ) -> tuple[ObjectivePage, list[str], int] | None:
        anchor = self._tail[anchor_index]
        followers = set(self._tail[anchor_index + 1 :])  # deleted, or not yet found deleted
        page, ids = self._fetch(offset, repair=repair)
        if anchor not in ids:
            return None
        anchor_at = ids.index(anchor)
        if self._repeats_after(ids, anchor_at, followers):
            self.stats.order_rereads += 1
            page, ids = self._fetch(offset)
            if anchor not in ids:
                return None
            anchor_at = ids.index(anchor)
            repeated = self._repeats_after(ids, anchor_at, followers)
            if repeated:
                raise BadResponseError(
                    f"Planhat listed objective {repeated} after {anchor} at offset {offset}, "
                    f"although an earlier page listed it before {anchor} (read twice): the "
                    "server's pages follow no one order, so no complete snapshot can be "
                    "proven. Nothing was loaded; report it to Planhat support if it persists",
                    request=label(offset, self._limit),
                    retryable=False,
                )
        return page, ids, anchor_at

    def _repeats_after(self, ids: list[str], anchor_at: int, followers: set[str]) -> str | None:
        """A record after the anchor that an earlier page held before it, if any."""
        return next(
            (i for i in ids[anchor_at + 1 :] if i in self._seen and i not in followers), None
        )

    def _deleted(self, anchor: str, at: int) -> bool | None:
        """Whether `anchor` is gone; None without a way to ask (the run then fails)."""
        if self._exists is None:
            return None
        self._budget.before_request(at, self._limit)
        self.stats.existence_checks += 1
        self.stats.requests += 1
        try:
            return not self._exists(anchor)
        except NotFoundError:
            return True
