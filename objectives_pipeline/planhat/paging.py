"""Offset paging, one page after another or several in flight.

Both strategies advance by the number of records actually received and end on
an empty page, so a server that returns fewer records than asked (a page cap
below the requested limit) loses nothing. Both yield the same records in the
same order.

Offset paging has no snapshot isolation: when objectives are created or
deleted while paging, records can be skipped or repeated at page boundaries.
A caller that needs completeness uses `PlanhatClient.iter_snapshot_pages`
(see :mod:`.snapshot`) instead.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from .errors import BadResponseError
from .models import ObjectivePage

FetchPage = Callable[[int, int], ObjectivePage]
"""Fetch the page at (offset, limit)."""


def page_sequentially(
    fetch: FetchPage, *, start: int, limit: int
) -> Generator[ObjectivePage, None, None]:
    """One request after another, until an empty page."""
    offset = start
    while True:
        page = fetch(offset, limit)
        if not page.records:
            return
        yield page
        offset = page.end


def guard_progress(pages: Generator[ObjectivePage, None, None]) -> Iterator[ObjectivePage]:
    """Stop with an error when a server ignores ``offset`` and repeats a page forever."""
    previous: object = None
    try:
        for page in pages:
            first = page.records[0].get("_id") if page.records else None
            if first is not None and first == previous:
                raise BadResponseError(
                    f"Planhat returned a page starting with the same objective ({first}) as "
                    "the page before it: the server seems to ignore `offset`; paging stops "
                    "instead of looping forever",
                    request=f"GET /objectives offset={page.offset} limit={page.limit}",
                    retryable=False,
                )
            previous = first
            yield page
    finally:
        pages.close()


def page_concurrently(
    fetch: FetchPage, *, start: int, limit: int, concurrency: int
) -> Generator[ObjectivePage, None, None]:
    """Keep up to `concurrency` requests in flight; yield pages in offset order.

    The first page is fetched alone. If it holds fewer records than `limit`, the
    next offset is probed alone too: an empty probe means the end, otherwise the
    server caps pages and the larger of the two sizes becomes the step. Then
    requests go out at offsets one step apart, each asking for one step. A page
    that returns fewer records than it asked for is followed by a request for
    the gap; an empty page ends the paging, and nothing is scheduled past an
    offset known to be empty, so at most ``concurrency - 1`` requests are
    wasted past the end. At most `concurrency` pages are in flight or buffered.
    """
    if concurrency <= 1:
        yield from page_sequentially(fetch, start=start, limit=limit)
        return
    first = fetch(start, limit)
    if not first.records:
        return
    yield first
    step = len(first)
    frontier = first.end
    if step < limit:
        probe = fetch(frontier, limit)
        if not probe.records:
            return
        yield probe
        step = max(step, len(probe))
        frontier = probe.end
    yield from _Window(fetch, frontier=frontier, step=step, concurrency=concurrency).pages()


class _Window:
    def __init__(self, fetch: FetchPage, *, frontier: int, step: int, concurrency: int) -> None:
        self._fetch = fetch
        self._frontier = frontier
        self._next = frontier
        self._step = step
        self._concurrency = concurrency
        self._end: int | None = None  # lowest offset seen to be empty
        self._pending: dict[int, tuple[int, Future[ObjectivePage]]] = {}

    def pages(self) -> Iterator[ObjectivePage]:
        pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="planhat-page")
        try:
            self._fill(pool)
            while True:
                if self._frontier not in self._pending:
                    self._submit(pool, self._frontier, self._step)
                asked, future = self._pending.pop(self._frontier)
                page = future.result()
                received = len(page.records)
                if received > asked:
                    raise BadResponseError(
                        f"Planhat returned {received} records where {asked} were asked; "
                        "paging stops so that no record is loaded twice",
                        request=f"GET /objectives offset={page.offset} limit={asked}",
                        retryable=False,
                    )
                if received == 0:
                    return
                self._frontier = page.end
                if received < asked:
                    self._submit(pool, self._frontier, asked - received)
                self._fill(pool)
                yield page
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _submit(self, pool: ThreadPoolExecutor, offset: int, limit: int) -> None:
        self._pending[offset] = (limit, pool.submit(self._fetch, offset, limit))

    def _fill(self, pool: ThreadPoolExecutor) -> None:
        for offset, (_, future) in self._pending.items():
            if future.done() and future.exception() is None and not future.result().records:
                self._end = offset if self._end is None else min(self._end, offset)
        self._next = max(self._next, self._frontier)
        while len(self._pending) < self._concurrency and (
            self._end is None or self._next < self._end
        ):
            if self._next not in self._pending:
                self._submit(pool, self._next, self._step)
            self._next += self._step
