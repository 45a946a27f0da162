"""SQL models: one SELECT per ``.sql`` file, built into a table named after the file.

Layout (by default the ``dbt_like_sql/`` folder the project ships, see
:func:`objectives_pipeline.package_files.sql_models_dir`)::

    dbt_like_sql/
      staging/stg_objectives.sql            -> main.stg_objectives, group "staging"
      marts/company_objective_health.sql    -> main.company_objective_health, group "marts"
      reverse_etl/objectives_to_push.sql    -> main.objectives_to_push, group "reverse_etl"

Adding a model is adding a file. :func:`discover_models` reads every file, and
refuses, naming the file: SQL that does not parse, more than one statement,
anything but a SELECT, a file name that is not a plain identifier, two files
with the same name, and dependency cycles. A model's dependencies come from the
tables its SELECT reads (see :mod:`.sql_refs`): a table named like another
model (unqualified or in schema ``main``) is an ``upstream`` model; anything
else (``raw.planhat_objectives``, ``crm.objectives``) is a ``source``. Sources
need not exist when models are discovered; they must exist when a model is
built, or :func:`build_model` says which file reads which missing table.

Parameters reach SQL only as bound values. A model reads one with
``getvariable('at_risk_threshold')``; :func:`build_model` runs
``SET VARIABLE at_risk_threshold = ?`` with the value bound, never formatted
into the SQL. Values not passed come from :data:`DEFAULT_VARIABLES`.

Example::

    warehouse = Warehouse.from_env()
    for model in discover_models():                     # dependency order
        result = build_model(warehouse, model, {"at_risk_threshold": 2.5})
        print(model.name, result.rows, result.columns)
"""

from __future__ import annotations

import heapq
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb

from objectives_pipeline.package_files import sql_models_dir
from objectives_pipeline.settings import (
    DEFAULT_ALERT_DROP,
    DEFAULT_ALERT_WINDOW_DAYS,
    DEFAULT_AT_RISK_THRESHOLD,
)

from .connection import Warehouse
from .errors import ModelError
from .sql_refs import SqlRejected, TableRef, inspect_select

__all__ = [
    "DEFAULT_VARIABLES",
    "ModelBuildResult",
    "SqlModel",
    "build_model",
    "discover_models",
    "topological_order",
]

DEFAULT_VARIABLES: Mapping[str, object] = {
    "at_risk_threshold": DEFAULT_AT_RISK_THRESHOLD,
    "alert_drop": DEFAULT_ALERT_DROP,
    "alert_window_days": DEFAULT_ALERT_WINDOW_DAYS,
}
"""Values for the ``getvariable`` names the shipped models use, unless given."""

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODEL_SCHEMA = "main"


@dataclass(frozen=True)
class SqlModel:
    """One model file.

    Attributes:
        name: the file stem, and the table the model builds in schema ``main``.
        group: the folder below the models folder (``staging``, ``marts``, ...),
            nested folders joined with ``_``; ``default`` for files at the top.
        path: the file.
        sql: the file's text, one SELECT.
        upstream: names of the models it reads.
        sources: qualified names of the other tables it reads (``raw.planhat_objectives``).
        variables: names it reads with ``getvariable('...')``.
        tables: every table reference in the SELECT, as written.
        description: the comment block at the top of the file, without ``--``.
    """

    name: str
    group: str
    path: Path
    sql: str
    upstream: frozenset[str]
    sources: frozenset[str]
    variables: frozenset[str]
    tables: frozenset[TableRef]
    description: str


@dataclass(frozen=True)
class ModelBuildResult:
    """The table :func:`build_model` built: row count, ``(column, type)`` pairs, wall time."""

    name: str
    rows: int
    columns: list[tuple[str, str]]
    seconds: float


def discover_models(sql_dir: str | Path | None = None) -> list[SqlModel]:
    """Every ``*.sql`` file under ``sql_dir`` (default: the shipped models) as a model, in
    dependency order.

    Raises :class:`ModelError` naming the offending file(s) for any file that
    is not exactly one SELECT, a file name that is not an identifier, two files
    with the same name, or a dependency cycle.
    """
    root = Path(sql_dir) if sql_dir is not None else sql_models_dir()
    if not root.is_dir():
        raise ModelError(f"The SQL models folder {root} does not exist.", path=root)
    files = sorted(
        p
        for p in root.rglob("*.sql")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
    by_name: dict[str, Path] = {}
    for path in files:
        if not _IDENTIFIER.fullmatch(path.stem):
            raise ModelError(
                f"{path}: the file name must be a plain identifier (letters, digits, _), "
                f"because it becomes the table name {path.stem!r}.",
                path=path,
            )
        other = by_name.get(path.stem.lower())
        if other is not None:
            raise ModelError(
                f"{path} and {other} both define model {path.stem!r}; model names must be "
                f"unique across folders. Rename one of the files.",
                path=path,
            )
        by_name[path.stem.lower()] = path

    with duckdb.connect(":memory:") as parser:
        parsed = [(path, _read_select(path, parser)) for path in files]
    models = [
        _model(root, path, sql, tables, variables, by_name)
        for path, (sql, tables, variables) in parsed
    ]
    return topological_order(models)


def topological_order(models: Iterable[SqlModel]) -> list[SqlModel]:
    """``models`` with every model after its upstream models; ties in name order.

    Upstream names that are not among ``models`` are ignored. Raises
    :class:`ModelError` naming the files of a dependency cycle.
    """
    by_name = {m.name.lower(): m for m in models}
    waiting = {
        name: {u.lower() for u in m.upstream if u.lower() in by_name} for name, m in by_name.items()
    }
    ready = [name for name, deps in waiting.items() if not deps]
    heapq.heapify(ready)
    ordered: list[SqlModel] = []
    while ready:
        name = heapq.heappop(ready)
        ordered.append(by_name[name])
        for other, deps in waiting.items():
            if name in deps:
                deps.discard(name)
                if not deps:
                    heapq.heappush(ready, other)
    if len(ordered) < len(by_name):
        cycle = _find_cycle({n: d for n, d in waiting.items() if d})
        chain = " -> ".join(f"{by_name[n].name} ({by_name[n].path})" for n in cycle)
        raise ModelError(
            f"SQL models depend on each other in a cycle: {chain}. "
            f"A model cannot read, directly or through others, the table it builds.",
            path=by_name[cycle[0]].path,
        )
    return ordered


def build_model(
    target: Warehouse | duckdb.DuckDBPyConnection,
    model: SqlModel,
    variables: Mapping[str, object] | None = None,
) -> ModelBuildResult:
    """Build ``main.<model.name>`` with ``CREATE OR REPLACE TABLE ... AS <model.sql>``.

    ``target`` is a :class:`Warehouse` (a read-write connection is opened for
    the build only) or an open connection, which must not be inside a
    transaction. The build runs in its own transaction: on failure the
    previous table is kept. ``variables`` override :data:`DEFAULT_VARIABLES`
    and reach the SQL as bound values of ``getvariable('name')``.

    Raises :class:`ModelError` naming the file when a table the model reads
    does not exist, a variable it reads has no value, or DuckDB fails.
    """
    for identifier in (model.name, *model.variables):
        if not _IDENTIFIER.fullmatch(identifier):
            raise ModelError(
                f"{model.path}: {identifier!r} is not a plain identifier.", path=model.path
            )
    values = {**DEFAULT_VARIABLES, **(variables or {})}
    missing = sorted(model.variables - values.keys())
    if missing:
        raise ModelError(
            f"{model.path}: model {model.name} reads getvariable({missing[0]!r}) but no "
            f"value was given; pass variables={{{missing[0]!r}: ...}}.",
            path=model.path,
        )
    if isinstance(target, Warehouse):
        with target.connect() as con:
            return _build(con, model, values, target.database)
    return _build(target, model, values, "the database")


def _read_select(
    path: Path, parser: duckdb.DuckDBPyConnection
) -> tuple[str, frozenset[TableRef], frozenset[str]]:
    try:
        sql = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ModelError(f"{path}: cannot read the file: {error}", path=path) from error
    try:
        info = inspect_select(sql, parser)
    except SqlRejected as error:
        raise ModelError(f"{path}: not a valid SQL model: {error}", path=path) from error
    for name in info.variables:
        if not _IDENTIFIER.fullmatch(name):
            raise ModelError(
                f"{path}: getvariable({name!r}): variable names must be plain identifiers.",
                path=path,
            )
    return sql, info.tables, info.variables


def _model(
    root: Path,
    path: Path,
    sql: str,
    tables: frozenset[TableRef],
    variables: frozenset[str],
    model_files: Mapping[str, Path],
) -> SqlModel:
    upstream: set[str] = set()
    sources: set[str] = set()
    for ref in tables:
        if _names_model(ref, model_files):
            upstream.add(model_files[ref.name.lower()].stem)
        else:
            sources.add(ref.qualified)
    folder = path.parent.relative_to(root).parts
    return SqlModel(
        name=path.stem,
        group="_".join(folder) if folder else "default",
        path=path,
        sql=sql,
        upstream=frozenset(upstream),
        sources=frozenset(sources),
        variables=variables,
        tables=tables,
        description=_header_comment(sql),
    )


def _header_comment(sql: str) -> str:
    """The ``--`` comment lines that open the file, as plain text."""
    lines: list[str] = []
    for line in sql.lstrip().splitlines():
        stripped = line.strip()
        if not stripped.startswith("--"):
            break
        text = stripped[2:]
        lines.append(text[1:] if text.startswith(" ") else text)
    return "\n".join(lines).strip()


def _names_model(ref: TableRef, model_files: Mapping[str, Path]) -> bool:
    return (
        not ref.catalog
        and ref.schema.lower() in ("", _MODEL_SCHEMA)
        and ref.name.lower() in model_files
    )


def _find_cycle(edges: Mapping[str, set[str]]) -> list[str]:
    """A cycle in a graph where every node has an outgoing edge."""
    node = min(edges)
    seen: list[str] = []
    while node not in seen:
        seen.append(node)
        node = min(edges[node])
    return [*seen[seen.index(node) :], node]


def _build(
    con: duckdb.DuckDBPyConnection,
    model: SqlModel,
    values: Mapping[str, object],
    database: str,
) -> ModelBuildResult:
    started = time.perf_counter()
    _check_inputs(con, model, database)
    table = f'{_MODEL_SCHEMA}."{model.name}"'
    try:
        for name in sorted(model.variables):
            con.execute(f"SET VARIABLE {name} = ?", [values[name]])
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"CREATE OR REPLACE TABLE {table} AS\n{model.sql}\n")
            count = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            columns = con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() "
                "WHERE database_name = current_database() AND schema_name = ? "
                "AND table_name = ? ORDER BY column_index",
                [_MODEL_SCHEMA, model.name],
            ).fetchall()
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    except duckdb.Error as error:
        raise ModelError(
            f"{model.path}: building model {model.name} failed; its previous table was kept. "
            f"DuckDB said: {error}",
            path=model.path,
        ) from error
    finally:
        for name in sorted(model.variables):
            con.execute(f"RESET VARIABLE {name}")
    assert count is not None
    return ModelBuildResult(
        name=model.name,
        rows=int(count[0]),
        columns=[(str(n), str(t)) for n, t in columns],
        seconds=time.perf_counter() - started,
    )


def _check_inputs(con: duckdb.DuckDBPyConnection, model: SqlModel, database: str) -> None:
    row = con.execute("SELECT current_database()").fetchone()
    assert row is not None
    here = str(row[0]).lower()
    existing = {
        (str(c).lower(), str(s).lower(), str(t).lower())
        for c, s, t in con.execute(
            "SELECT database_name, schema_name, table_name FROM duckdb_tables() "
            "UNION ALL SELECT database_name, schema_name, view_name FROM duckdb_views()"
        ).fetchall()
    }
    upstream = {name.lower() for name in model.upstream}
    for ref in sorted(model.tables):
        key = (
            (ref.catalog or here).lower(),
            (ref.schema or _MODEL_SCHEMA).lower(),
            ref.name.lower(),
        )
        if key in existing:
            continue
        if not ref.catalog and key[1] == _MODEL_SCHEMA and key[2] in upstream:
            raise ModelError(
                f"{model.path}: model {model.name} reads model {ref.name}, whose table does "
                f"not exist in {database} yet. Build {ref.name} first (models build in "
                f"dependency order).",
                path=model.path,
            )
        raise ModelError(
            f"{model.path}: model {model.name} reads table {ref.qualified}, which does not "
            f"exist in {database} and is not a model. Load it first, "
            f"or fix the table name in the file.",
            path=model.path,
        )
