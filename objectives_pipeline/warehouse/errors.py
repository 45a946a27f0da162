"""Exceptions raised by the warehouse package.

Every error message says what went wrong, where (database path, staged page or
SQL file) and what to do about it, so callers can show ``str(error)`` to a user
as is.

    WarehouseError              base class; also bad paths and unusable databases
    ├── WarehouseNotFoundError  a reader asked for a database file that does not exist yet
    ├── WarehouseLockedError    another process held the database for longer than lock_timeout
    ├── SnapshotLoadError       a snapshot could not be staged or loaded (nothing was changed)
    └── ModelError              a SQL model file is invalid, or building it failed
"""

from __future__ import annotations

from pathlib import Path


class WarehouseError(Exception):
    """Base class for every error raised by ``objectives_pipeline.warehouse``."""


class WarehouseNotFoundError(WarehouseError):
    """A reader asked for a database file that does not exist yet."""


class WarehouseLockedError(WarehouseError):
    """Another process kept the database locked for longer than ``lock_timeout``."""

    def __init__(self, message: str, *, database: str, waited_seconds: float) -> None:
        super().__init__(message)
        self.database = database
        self.waited_seconds = waited_seconds


class SnapshotLoadError(WarehouseError):
    """A snapshot could not be staged or loaded; the warehouse was left unchanged."""


class RowDropError(SnapshotLoadError):
    """A snapshot had sharply fewer rows than the one it would replace or the day before;
    the warehouse was left unchanged."""


class ModelError(WarehouseError):
    """A SQL model file is invalid, or building its table failed."""

    def __init__(self, message: str, *, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path
