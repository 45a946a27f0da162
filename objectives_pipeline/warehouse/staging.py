"""Stage an extraction on disk, page by page, before it is loaded in one transaction.

:class:`SnapshotStager` writes each page body exactly as the API returned it
(the raw bytes of a JSON array) to a file in a private temporary folder. Nothing
is parsed in Python, so memory stays flat however many objectives there are;
DuckDB reads the files later, inside the transaction that replaces the
partition (see :func:`objectives_pipeline.warehouse.load_snapshot`).

Typical use by the extract step::

    with SnapshotStager() as stager:
        for body in page_bodies:            # GET /objectives pages, raw bytes
            stager.add_page(body)
        for body in id_page_bodies:         # GET /objectives?select=_id pages, raw bytes
            stager.add_id_page(body)
        check = stager.id_check()           # ids listed but not staged
        stager.add_records(fetch_each(check.missing))
        result = load_snapshot(warehouse, stager, snapshot_date, captured_at)

Order matters: when a record appears more than once (offset paging over a
changing collection repeats records at page boundaries), the load keeps the
copy staged last. Records added with :meth:`SnapshotStager.add_records` come
after every page and so win over them. The folder is removed on exit.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb

from .errors import SnapshotLoadError

__all__ = ["IdCheck", "SnapshotStager"]

_ID_CHECK_MEMORY_LIMIT = "256MB"


@dataclass(frozen=True)
class IdCheck:
    """Staged records compared with a separate listing of every ``_id``.

    Attributes:
        staged: distinct ``_id`` values among the staged records.
        listed: distinct ``_id`` values in the staged id listing.
        missing: ids that were listed but not staged (records the paging
            skipped); fetch them and :meth:`SnapshotStager.add_records` them.
        unlisted: staged ids absent from the listing (typically objectives
            deleted while the extraction ran).
    """

    staged: int
    listed: int
    missing: tuple[str, ...]
    unlisted: int


class SnapshotStager:
    """A private temporary folder holding the pages of one extraction.

    Use it as a context manager; the folder and everything in it is deleted on
    exit. ``staging_dir`` chooses where that temporary folder is created
    (default: the system temporary folder).
    """

    def __init__(self, staging_dir: str | Path | None = None) -> None:
        self._parent = None if staging_dir is None else Path(staging_dir)
        self._root: Path | None = None
        self._pages: list[Path] = []
        self._id_pages: list[Path] = []
        self._bytes = 0

    def __enter__(self) -> SnapshotStager:
        if self._root is not None:
            raise RuntimeError("this SnapshotStager is already open")
        if self._parent is not None and not self._parent.is_dir():
            raise SnapshotLoadError(f"The staging folder {self._parent} does not exist.")
        self._root = Path(tempfile.mkdtemp(prefix="objectives-snapshot-", dir=self._parent))
        (self._root / "records").mkdir()
        (self._root / "ids").mkdir()
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

    def add_page(self, body: bytes) -> Path:
        """Stage one page body: the raw bytes of a JSON array of objectives."""
        _check_json_array(body, f"page {len(self._pages) + 1}")
        path = self.directory / "records" / f"page-{len(self._pages) + 1:08d}.json"
        path.write_bytes(body)
        self._pages.append(path)
        self._bytes += len(body)
        return path

    def add_records(self, records: Sequence[Mapping[str, object]]) -> Path:
        """Stage records fetched one by one (e.g. the ids :meth:`id_check` found missing)."""
        return self.add_page(json.dumps(list(records), ensure_ascii=False).encode())

    def add_id_page(self, body: bytes) -> Path:
        """Stage one page of the ``select=_id`` listing used by :meth:`id_check`."""
        _check_json_array(body, f"id page {len(self._id_pages) + 1}")
        path = self.directory / "ids" / f"ids-{len(self._id_pages) + 1:08d}.json"
        path.write_bytes(body)
        self._id_pages.append(path)
        return path

    def id_check(self) -> IdCheck:
        """Compare the staged records' ids with the staged id listing, in DuckDB."""
        if not self._id_pages:
            raise SnapshotLoadError("No id listing was staged: call add_id_page() first.")
        pages = [str(p) for p in self._pages]
        id_pages = [str(p) for p in self._id_pages]
        spill = self.directory / "spill"
        with duckdb.connect(":memory:") as con:
            con.execute("SET memory_limit = ?", [_ID_CHECK_MEMORY_LIMIT])
            con.execute("SET temp_directory = ?", [str(spill)])
            con.execute(_IDS_TABLE.format(name="listed"), [id_pages])
            if pages:
                con.execute(_IDS_TABLE.format(name="staged"), [pages])
            else:
                con.execute("CREATE TEMP TABLE staged (id VARCHAR)")
            staged, listed, unlisted = _one(
                con,
                """
                SELECT (SELECT count(*) FROM staged),
                       (SELECT count(*) FROM listed),
                       (SELECT count(*) FROM staged ANTI JOIN listed USING (id))
                """,
            )
            missing = con.execute(
                "SELECT id FROM listed ANTI JOIN staged USING (id) ORDER BY id"
            ).fetchall()
        return IdCheck(
            staged=int(staged),
            listed=int(listed),
            missing=tuple(str(row[0]) for row in missing),
            unlisted=int(unlisted),
        )


_IDS_TABLE = """
CREATE TEMP TABLE {name} AS
SELECT DISTINCT json ->> '$._id' AS id
FROM read_json(?, format = 'array', records = false)
WHERE json_type(json, '$._id') = 'VARCHAR'
"""


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    row = con.execute(sql).fetchone()
    assert row is not None, "DuckDB returned no row for an aggregate query"
    return tuple(row)


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
