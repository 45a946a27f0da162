"""Stage an extraction on disk, page by page, before it is loaded in one transaction.

:class:`SnapshotStager` writes each page body exactly as the API returned it
(the raw bytes of a JSON array) to a file in a private temporary folder, and
DuckDB types and flags its records right away into a staging database in the
same folder. Nothing is parsed in Python, so memory stays flat however many
objectives there are, and the typing runs in a background thread of its own (DuckDB
releases the GIL), overlapping the requests still in flight; the
transaction that replaces the partition only copies typed rows (see
:func:`objectives_pipeline.warehouse.load_snapshot`).

Typical use by the extract step::

    with SnapshotStager() as stager:
        for page in snapshot_pages:          # GET /objectives pages, raw bytes
            stager.add_page(page.body, repeated_id=page.repeated_id)
        result = load_snapshot(warehouse, stager, snapshot_date, captured_at)

Order matters: when a record appears more than once (overlapping pages repeat records
at page boundaries), the load keeps the copy staged last. A page staged with
``repeated_id`` repeats that record from the page before it (the exact one-record
overlap of a calm run): its copy is not typed at all, so a calm run has no repeats and
the load needs no de-duplication. The folder is removed on exit.
"""

from __future__ import annotations

import shutil
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType

import duckdb

from objectives_pipeline.settings import DEFAULT_MEMORY_LIMIT

from . import raw_sql
from .errors import SnapshotLoadError

__all__ = ["SnapshotStager"]

# Pages typed per statement: one statement per page costs about half as much again.
_TYPE_BATCH_PAGES = 8
_TYPED_DATABASE = "typed.duckdb"


class SnapshotStager:
    """A private temporary folder holding the pages of one extraction.

    Use it as a context manager; the folder and everything in it is deleted on
    exit. ``staging_dir`` chooses where that temporary folder is created
    (default: the system temporary folder). ``memory_limit``: DuckDB's memory limit while
    typing the pages (the warehouse's, ``OBJECTIVES_DUCKDB_MEMORY_LIMIT``, by default);
    DuckDB spills to the folder beyond it.
    """

    def __init__(
        self, staging_dir: str | Path | None = None, *, memory_limit: str = DEFAULT_MEMORY_LIMIT
    ) -> None:
        self._parent = None if staging_dir is None else Path(staging_dir)
        self._memory_limit = memory_limit
        self._root: Path | None = None
        self._pages: list[Path] = []
        self._repeats: list[tuple[int, str]] = []  # (page, _id) left out as known repeats
        self._repeats_typed = 0
        self._bytes = 0
        self._typed: duckdb.DuckDBPyConnection | None = None
        self._untyped: list[Path] = []
        self._typing: ThreadPoolExecutor | None = None
        self._batches: list[Future[None]] = []

    def __enter__(self) -> SnapshotStager:
        if self._root is not None:
            raise RuntimeError("this SnapshotStager is already open")
        if self._parent is not None and not self._parent.is_dir():
            raise SnapshotLoadError(f"The staging folder {self._parent} does not exist.")
        self._root = Path(tempfile.mkdtemp(prefix="objectives-snapshot-", dir=self._parent))
        (self._root / "records").mkdir()
        self._open_typed().execute(raw_sql.CREATE_TYPED)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Delete the staging folder. Safe to call twice."""
        self._untyped.clear()
        if self._typing is not None:
            self._typing.shutdown(wait=True, cancel_futures=True)
            self._typing = None
        self._batches.clear()
        self.seal()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    @property
    def directory(self) -> Path:
        """The private folder the pages are written to."""
        if self._root is None:
            raise RuntimeError("open the SnapshotStager with `with` before using it")
        return self._root

    @property
    def pages(self) -> tuple[Path, ...]:
        """Staged record files, in the order they were added."""
        return tuple(self._pages)

    @property
    def bytes_staged(self) -> int:
        """Total size of the staged record pages."""
        return self._bytes

    def add_page(self, body: bytes, *, repeated_id: str | None = None) -> Path:
        """Stage one page body: the raw bytes of a JSON array of objectives.

        ``repeated_id``: the ``_id`` of a record already staged that this page repeats;
        its copy here is left out. Pages are typed and flagged a few at a time as they
        arrive, in a background thread; a body DuckDB cannot read fails a later
        `add_page` or `typed_database` with :class:`SnapshotLoadError` naming the page.
        """
        number = len(self._pages) + 1
        _check_json_array(body, f"page {number}")
        path = self.directory / "records" / f"page-{number:08d}.json"
        path.write_bytes(body)
        self._pages.append(path)
        self._bytes += len(body)
        if repeated_id is not None:
            self._repeats.append((number, repeated_id))
        self._untyped.append(path)
        if len(self._untyped) >= _TYPE_BATCH_PAGES:
            self._type_pending()
        return path

    @property
    def repeats_left_out(self) -> int:
        """First records left out because they repeat the page before."""
        return len(self._repeats)

    def _type_pending(self) -> None:
        """Queue the pages not yet typed for the typing thread; raise its first failure."""
        self._raise_failed_batches()
        if not self._untyped:
            return
        pages = list(self._untyped)
        repeats = self._repeats[self._repeats_typed :]
        self._untyped.clear()
        self._repeats_typed = len(self._repeats)
        if self._typing is None:
            self._typing = ThreadPoolExecutor(1, thread_name_prefix="snapshot-typing")
        self._batches.append(self._typing.submit(self._type_batch, pages, repeats))

    def _raise_failed_batches(self, *, wait: bool = False) -> None:
        for batch in list(self._batches):
            if wait or batch.done():
                batch.result()  # raises the batch's SnapshotLoadError
                self._batches.remove(batch)

    def _type_batch(self, pages: list[Path], repeats: list[tuple[int, str]]) -> None:
        try:
            self._open_typed().execute(
                raw_sql.TYPE_PAGES,
                {
                    "files": [str(p) for p in pages],
                    "paths": raw_sql.FIELD_PATHS,
                    "known_keys": raw_sql.KNOWN_KEYS_AS_NULLS,
                    "repeat_pages": [page for page, _ in repeats],
                    "repeat_ids": [oid for _, oid in repeats],
                },
            )
        except duckdb.OutOfMemoryException as error:
            raise SnapshotLoadError(
                f"DuckDB ran out of memory staging pages {pages[0].name} to "
                f"{pages[-1].name} (memory_limit {self._memory_limit}), so the partition was "
                "left as it was. Raise OBJECTIVES_DUCKDB_MEMORY_LIMIT. "
                f"DuckDB said: {error}"
            ) from error
        except duckdb.Error as error:
            raise SnapshotLoadError(
                f"Could not read the staged pages {pages[0].name} to "
                f"{pages[-1].name}, so the partition was left as it was. "
                f"DuckDB said: {error}"
            ) from error

    def typed_database(self) -> Path:
        """Close the staging database and return its file, for the load to read.

        Staging more pages afterwards reopens it.
        """
        self._type_pending()
        self._raise_failed_batches(wait=True)
        self.seal()
        return self.directory / _TYPED_DATABASE

    def seal(self) -> None:
        """Close the staging database (safe to call twice)."""
        if self._typed is not None:
            self._typed.close()
            self._typed = None

    def _open_typed(self) -> duckdb.DuckDBPyConnection:
        if self._typed is None:
            self._typed = duckdb.connect(str(self.directory / _TYPED_DATABASE))
            self._typed.execute("SET memory_limit = ?", [self._memory_limit])
            self._typed.execute("SET threads = 1")
            self._typed.execute("SET temp_directory = ?", [str(self.directory / "spill")])
        return self._typed


def _check_json_array(body: bytes, what: str) -> None:
    """Refuse bodies that cannot be a JSON array, without parsing them."""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise TypeError(f"{what}: expected the response body as bytes, got {type(body).__name__}")
    head = bytes(body[:64]).lstrip()[:1]
    tail = bytes(body[-64:]).rstrip()[-1:]
    if head != b"[" or tail != b"]":
        raise SnapshotLoadError(
            f"Cannot stage {what}: the body ({len(body)} bytes) is not a JSON array "
            f"(it should start with '[' and end with ']'); it may be truncated."
        )
