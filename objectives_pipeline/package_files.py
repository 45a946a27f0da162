"""Files the package ships besides its code: the SQL models and the Dagster instance settings.

In a wheel they live inside the package (``objectives_pipeline/dbt_like_sql/``,
``objectives_pipeline/dagster.yaml``); in a source checkout they stay at the
repository's top level, where they are edited.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["PackageFileMissingError", "dagster_yaml", "sql_models_dir"]

_SOURCE_ROOT = Path(__file__).resolve().parent.parent


class PackageFileMissingError(FileNotFoundError):
    """A file the package ships is in neither the installed package nor the source tree."""


def sql_models_dir() -> Path:
    """The ``dbt_like_sql`` folder of SQL models shipped with the project."""
    return _shipped("dbt_like_sql")


def dagster_yaml() -> Path:
    """The project's ``dagster.yaml`` (pools, run queue), the template for ``$DAGSTER_HOME``."""
    return _shipped("dagster.yaml")


def _shipped(name: str) -> Path:
    packaged = resources.files("objectives_pipeline") / name
    if isinstance(packaged, Path) and packaged.exists():
        return packaged
    source = _SOURCE_ROOT / name
    if source.exists():
        return source
    raise PackageFileMissingError(
        f"{name} is missing: it is neither in the installed package ({packaged}) nor in the "
        f"source tree ({source}). Reinstall objectives-pipeline from its wheel or checkout."
    )
