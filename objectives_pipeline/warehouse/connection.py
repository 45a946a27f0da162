"""Where the DuckDB database lives, and short-lived connections that wait for its lock.

DuckDB lets one process write a database file, or several processes read it,
never both. A pipeline run that writes therefore blocks every reader (the
``health`` command, a DuckDB CLI, another asset) for as long as it holds its
connection. :class:`Warehouse` keeps that window small and makes waiting on it
polite:

* :meth:`Warehouse.connect` opens a connection for one unit of work and closes
  it on exit. Writers use ``read_only=False`` only around the write itself.
* If another process holds the file, ``connect`` retries with backoff until
  ``lock_timeout`` seconds have passed (logging once that it waits), then
  raises :class:`WarehouseLockedError`, whose message says who holds the
  database, how long we waited, and what to do.
* A path in a folder that does not exist or cannot be written is refused
  before DuckDB is called, naming the folder.

Example::

    warehouse = Warehouse.from_env()          # OBJECTIVES_DUCKDB_PATH or data/objectives.duckdb
    with warehouse.connect(read_only=True) as con:
        con.sql("SELECT * FROM company_objective_health").show()

MotherDuck paths (``md:...``) are passed to DuckDB unchanged.
"""

from __future__ import annotations

import logging
import os
import random
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import duckdb

from objectives_pipeline.settings import (
    DEFAULT_COMMAND_LOCK_TIMEOUT_SECONDS,
    DEFAULT_DATABASE_PATH,
    DEFAULT_MEMORY_LIMIT,
    DUCKDB_PATH_ENV_VAR,
    MEMORY_LIMIT_ENV_VAR,
    read_env,
)

from .errors import WarehouseError, WarehouseLockedError, WarehouseNotFoundError

__all__ = [
    "DEFAULT_DATABASE_PATH",
    "DEFAULT_MEMORY_LIMIT",
    "DUCKDB_PATH_ENV_VAR",
    "MEMORY_LIMIT_ENV_VAR",
    "Warehouse",
]


_REMOTE_PREFIXES = ("md:", "motherduck:")
_LOCK_MESSAGE = "Could not set lock on file"
_SAME_PROCESS_MESSAGE = "different configuration than existing connections"
_FIRST_RETRY_DELAY = 0.05
_MAX_RETRY_DELAY = 1.0

logger = logging.getLogger(__name__)


class Warehouse:
    """A DuckDB database file (or MotherDuck database) and how to connect to it.

    Args:
        path: a local file path, or a MotherDuck path starting with ``md:``.
            Relative local paths are resolved against the current directory now.
        lock_timeout: seconds :meth:`connect` waits for another process to
            release the database before raising :class:`WarehouseLockedError`.
        memory_limit: DuckDB ``memory_limit`` applied to every connection
            (default :data:`DEFAULT_MEMORY_LIMIT`); DuckDB spills to disk beyond
            it. ``None`` keeps DuckDB's default (80% of RAM).
        threads: DuckDB ``threads`` applied to every connection; ``None`` keeps
            DuckDB's default (one per core).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        lock_timeout: float = DEFAULT_COMMAND_LOCK_TIMEOUT_SECONDS,
        memory_limit: str | None = DEFAULT_MEMORY_LIMIT,
        threads: int | None = None,
    ) -> None:
        if lock_timeout < 0:
            raise ValueError(f"lock_timeout must be >= 0 seconds, got {lock_timeout}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        text = str(path)
        if not text:
            raise WarehouseError("The DuckDB database path is empty.")
        self._remote = text.startswith(_REMOTE_PREFIXES)
        self._path: Path | None = None if self._remote else Path(text).expanduser().absolute()
        self._database = text if self._remote else str(self._path)
        self.lock_timeout = lock_timeout
        self.memory_limit = memory_limit
        self.threads = threads

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        lock_timeout: float = DEFAULT_COMMAND_LOCK_TIMEOUT_SECONDS,
        threads: int | None = None,
    ) -> Warehouse:
        """The warehouse at ``$OBJECTIVES_DUCKDB_PATH``, else ``data/objectives.duckdb``, with
        ``$OBJECTIVES_DUCKDB_MEMORY_LIMIT`` (default :data:`DEFAULT_MEMORY_LIMIT`)."""
        settings = read_env(environ)
        return cls(
            settings.duckdb_path,
            lock_timeout=lock_timeout,
            memory_limit=settings.memory_limit,
            threads=threads,
        )

    @property
    def database(self) -> str:
        """The string handed to ``duckdb.connect``."""
        return self._database

    @property
    def path(self) -> Path | None:
        """The local database file, or ``None`` for a MotherDuck database."""
        return self._path

    @property
    def is_remote(self) -> bool:
        """True for MotherDuck (``md:``) databases."""
        return self._remote

    def exists(self) -> bool:
        """True if the local database file exists (always True for MotherDuck)."""
        return self._path is None or self._path.is_file()

    def __repr__(self) -> str:
        return f"Warehouse({self._database!r}, lock_timeout={self.lock_timeout})"

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """Open a connection for one unit of work; it is closed when the block ends.

        Waits up to ``lock_timeout`` seconds for another process to release the
        database. Raises :class:`WarehouseLockedError` when it does not,
        :class:`WarehouseNotFoundError` when ``read_only`` and the file does not
        exist yet, and :class:`WarehouseError` for an unusable path.
        """
        self._check_path(read_only)
        con = self._open(read_only)
        try:
            con.execute("SET enable_progress_bar = false")  # no bars in run logs or the CLI
            if self.memory_limit is not None:
                con.execute("SET memory_limit = ?", [self.memory_limit])
            if self.threads is not None:
                con.execute("SET threads = ?", [self.threads])
            yield con
        finally:
            con.close()

    def _check_path(self, read_only: bool) -> None:
        path = self._path
        if path is None:
            return
        folder = path.parent
        if path.is_dir():
            raise WarehouseError(
                f"The DuckDB database path {path} is a folder, not a file. "
                f"Set {DUCKDB_PATH_ENV_VAR} to a file path such as {path / 'objectives.duckdb'}."
            )
        if read_only:
            if not path.exists():
                raise WarehouseNotFoundError(
                    f"There is no DuckDB database at {path} yet. Run the pipeline once to "
                    f"create it, or set {DUCKDB_PATH_ENV_VAR} to the database you mean."
                )
            return
        if not folder.is_dir():
            problem = "is not a folder" if folder.exists() else "does not exist"
            raise WarehouseError(
                f"Cannot use the DuckDB database {path}: its folder {folder} {problem}. "
                f"Create the folder, or set {DUCKDB_PATH_ENV_VAR} to a path in an existing folder."
            )
        if not os.access(folder, os.W_OK | os.X_OK):
            raise WarehouseError(
                f"Cannot write the DuckDB database {path}: its folder {folder} is not writable "
                f"by this user. DuckDB needs to create files next to the database (its "
                f"write-ahead log); fix the folder's permissions or set {DUCKDB_PATH_ENV_VAR}."
            )

    def _open(self, read_only: bool) -> duckdb.DuckDBPyConnection:
        started = time.monotonic()
        deadline = started + self.lock_timeout
        delay = _FIRST_RETRY_DELAY
        announced = False
        while True:
            try:
                return duckdb.connect(self._database, read_only=read_only)
            except (duckdb.IOException, duckdb.ConnectionException) as error:
                if not _is_lock_conflict(error):
                    raise WarehouseError(
                        f"Cannot open the DuckDB database {self._database}: {error}"
                    ) from error
                holder = _lock_holder(error)
            now = time.monotonic()
            if now >= deadline:
                raise WarehouseLockedError(
                    _locked_message(self._database, holder, now - started, read_only),
                    database=self._database,
                    waited_seconds=now - started,
                ) from None
            if not announced:
                logger.info(
                    "DuckDB database %s is locked by %s; waiting up to %.1f s for it",
                    self._database,
                    holder,
                    self.lock_timeout,
                )
                announced = True
            time.sleep(min(delay * random.uniform(0.5, 1.0), deadline - now))
            delay = min(delay * 2, _MAX_RETRY_DELAY)


def _is_lock_conflict(error: duckdb.Error) -> bool:
    text = str(error)
    return _LOCK_MESSAGE in text or _SAME_PROCESS_MESSAGE in text


def _lock_holder(error: duckdb.Error) -> str:
    text = str(error)
    if _SAME_PROCESS_MESSAGE in text:
        return "another connection in this process"
    match = re.search(r"\(PID (\d+)\)", text)
    return f"another process (PID {match.group(1)})" if match else "another process"


def _locked_message(database: str, holder: str, waited: float, read_only: bool) -> str:
    purpose = "read" if read_only else "write"
    return (
        f"Cannot {purpose} the DuckDB database {database}: {holder} holds it, for example "
        f"a running pipeline or an open DuckDB session. Waited {waited:.1f} s for it to be "
        f"released. Try again when that run has finished, close the other session, or "
        f"allow a longer wait with lock_timeout."
    )
