"""Stage an extraction on disk, page by page, before it is loaded in one transaction.

:class:`SnapshotStager` writes each page body exactly as the API returned it
(the raw bytes of a JSON array) to a file in a private temporary folder, and
DuckDB types and flags its records right away into a staging database in the
same folder. Nothing is parsed in Python, so memory stays flat however many
objectives there are, and the typing overlaps the requests still in flight; the
transaction that replaces the partition only copies typed rows (see
:func:`objectives_pipeline.warehouse.load_snapshot`).

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

from . import raw_sql
from .errors import SnapshotLoadError

__all__ = ["IdCheck", "SnapshotStager"]

_STAGING_MEMORY_LIMIT = "128MB"
# Pages typed per statement: one statement per page costs about half as much again.
_TYPE_BATCH_PAGES = 8
_TYPED_DATABASE = "typed.duckdb"


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
        self._typed: duckdb.DuckDBPyConnection | None = None
        self._untyped: list[Path] = []

    def __enter__(self) -> SnapshotStager:
        if self._root is not None:
            raise RuntimeError("this SnapshotStager is already open")
        if self._parent is not None and not self._parent.is_dir():
            raise SnapshotLoadError(f"The staging folder {self._parent} does not exist.")
        self._root = Path(tempfile.mkdtemp(prefix="objectives-snapshot-", dir=self._parent))
        (self._root / "records").mkdir()
        (self._root / "ids").mkdir()
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

    def add_page(self, body: bytes) -> Path:
        """Stage one page body: the raw bytes of a JSON array of objectives.

        Pages are typed and flagged a few at a time as they arrive; a body DuckDB
        cannot read fails that step with :class:`SnapshotLoadError` naming the page.
        """
        number = len(self._pages) + 1
        _check_json_array(body, f"page {number}")
        path = self.directory / "records" / f"page-{number:08d}.json"
        path.write_bytes(body)
        self._pages.append(path)
        self._bytes += len(body)
        self._untyped.append(path)
        if len(self._untyped) >= _TYPE_BATCH_PAGES:
            self._type_pending()
        return path

    def _type_pending(self) -> None:
        if not self._untyped:
            return
        files = [str(p) for p in self._untyped]
        try:
            self._open_typed().execute(
                raw_sql.TYPE_PAGES,
                {
                    "files": files,
                    "paths": raw_sql.FIELD_PATHS,
                    "known_keys": raw_sql.KNOWN_KEYS_AS_NULLS,
                },
            )
        except duckdb.OutOfMemoryException as error:
            raise SnapshotLoadError(
                f"DuckDB ran out of memory staging pages {self._untyped[0].name} to "
                f"{self._untyped[-1].name}, so the partition was left as it was. "
                f"DuckDB said: {error}"
            ) from error
        except duckdb.Error as error:
            raise SnapshotLoadError(
                f"Could not read the staged pages {self._untyped[0].name} to "
                f"{self._untyped[-1].name}, so the partition was left as it was. "
                f"DuckDB said: {error}"
            ) from error
        self._untyped.clear()

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

    def typed_database(self) -> Path:
        """Close the staging database and return its file, for the load to read.

        Staging more pages afterwards reopens it.
        """
        self._type_pending()
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
            self._typed.execute("SET memory_limit = ?", [_STAGING_MEMORY_LIMIT])
            self._typed.execute("SET threads = 1")
            self._typed.execute("SET temp_directory = ?", [str(self.directory / "spill")])
        return self._typed

    def id_check(self) -> IdCheck:
        """Compare the staged records' ids with the staged id listing, in DuckDB."""
        if not self._id_pages:
            raise SnapshotLoadError("No id listing was staged: call add_id_page() first.")
        id_pages = [str(p) for p in self._id_pages]
        self._type_pending()
        con = self._open_typed()
        try:
            con.execute(_IDS_TABLE.format(name="listed"), [id_pages])
            con.execute(
                "CREATE OR REPLACE TEMP TABLE staged AS "
                "SELECT DISTINCT objective_id AS id FROM typed WHERE objective_id IS NOT NULL"
            )
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
        finally:
            con.execute("DROP TABLE IF EXISTS listed; DROP TABLE IF EXISTS staged")
        return IdCheck(
            staged=int(staged),
            listed=int(listed),
            missing=tuple(str(row[0]) for row in missing),
            unlisted=int(unlisted),
        )


# read_json_objects hands each record over as unparsed JSON text; extracting one field from
# that is an order of magnitude faster than read_json(records = false) building JSON values.
_IDS_TABLE = """
CREATE OR REPLACE TEMP TABLE {name} AS
SELECT DISTINCT json_extract_string(json, '$._id') AS id
FROM read_json_objects(?, format = 'array')
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
