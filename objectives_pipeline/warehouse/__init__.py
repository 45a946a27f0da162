"""The DuckDB warehouse: snapshot storage, atomic partition loads, and the SQL-model runner.

No Dagster here: the orchestration layer wires these functions into assets.

Connections (:mod:`.connection`)
    ``Warehouse(path, *, lock_timeout=30.0, memory_limit=None, threads=None)`` and
    ``Warehouse.from_env()`` (``OBJECTIVES_DUCKDB_PATH``, default
    ``data/objectives.duckdb``; ``md:`` paths pass through). ``warehouse.connect(
    read_only=False)`` is a context manager yielding a DuckDB connection; it waits
    for another process's lock up to ``lock_timeout``, then raises
    :class:`WarehouseLockedError`.

Extract-load (:mod:`.staging`, :mod:`.raw`)
    ``SnapshotStager`` stages raw page bodies on disk (``add_page(bytes,
    repeats_first=False)``). ``load_snapshot(warehouse, stager, snapshot_date,
    captured_at)`` replaces one partition of ``raw.planhat_objectives`` in one
    transaction and returns a :class:`SnapshotLoadResult`.
    ``snapshot_quality(warehouse, snapshot_date, health_low, health_high)``
    returns the figures the asset checks need (:class:`SnapshotQuality`);
    ``latest_snapshot_rows(warehouse)`` the size of the latest snapshot (a paging hint).

Company health (:mod:`.health`)
    ``health_summary(warehouse, at_risk_threshold)`` (:class:`HealthSummary`) and
    ``read_health_alerts(warehouse)`` (:class:`HealthAlert` rows) read what the
    health models built.

SQL models (:mod:`.models`)
    ``discover_models(sql_dir=None)`` (default: the shipped ``dbt_like_sql``)
    returns :class:`SqlModel` objects in dependency order;
    ``build_model(warehouse_or_connection, model, variables)`` builds one
    and returns a :class:`ModelBuildResult`.

Errors (:mod:`.errors`)
    Everything raised on purpose is a :class:`WarehouseError`, with a message
    meant for the user.
"""

from .connection import (
    DEFAULT_DATABASE_PATH,
    DEFAULT_MEMORY_LIMIT,
    DUCKDB_PATH_ENV_VAR,
    MEMORY_LIMIT_ENV_VAR,
    Warehouse,
)
from .errors import (
    ModelError,
    RowDropError,
    SnapshotLoadError,
    WarehouseError,
    WarehouseLockedError,
    WarehouseNotFoundError,
)
from .health import (
    ALERT_COLUMNS,
    HealthAlert,
    HealthSummary,
    health_summary,
    read_health_alerts,
)
from .models import (
    DEFAULT_VARIABLES,
    ModelBuildResult,
    SqlModel,
    build_model,
    discover_models,
    topological_order,
)
from .quality import (
    PREVIEW_COLUMNS,
    SnapshotQuality,
    latest_snapshot_rows,
    quality_on,
    snapshot_quality,
)
from .raw import (
    LOAD_MEMORY_LIMIT,
    LOAD_THREADS,
    RAW_OBJECTIVES_TABLE,
    LoadStep,
    SnapshotLoadResult,
    ensure_raw_table,
    load_snapshot,
)
from .sql_refs import TableRef
from .staging import SnapshotStager

__all__ = [
    "ALERT_COLUMNS",
    "DEFAULT_DATABASE_PATH",
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_VARIABLES",
    "DUCKDB_PATH_ENV_VAR",
    "LOAD_MEMORY_LIMIT",
    "LOAD_THREADS",
    "MEMORY_LIMIT_ENV_VAR",
    "PREVIEW_COLUMNS",
    "RAW_OBJECTIVES_TABLE",
    "HealthAlert",
    "HealthSummary",
    "LoadStep",
    "ModelBuildResult",
    "ModelError",
    "RowDropError",
    "SnapshotLoadError",
    "SnapshotLoadResult",
    "SnapshotQuality",
    "SnapshotStager",
    "SqlModel",
    "TableRef",
    "Warehouse",
    "WarehouseError",
    "WarehouseLockedError",
    "WarehouseNotFoundError",
    "build_model",
    "discover_models",
    "ensure_raw_table",
    "health_summary",
    "latest_snapshot_rows",
    "load_snapshot",
    "quality_on",
    "read_health_alerts",
    "snapshot_quality",
    "topological_order",
]
