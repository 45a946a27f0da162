"""What a SELECT reads, from DuckDB's own parser.

:func:`inspect_select` checks that a text is exactly one SELECT statement and
lists the tables it reads and the ``getvariable('name')`` values it uses. It
walks the syntax tree DuckDB returns from ``json_serialize_sql``, so it sees
what DuckDB sees: CTE names are not tables, subqueries anywhere count, quoted
and qualified names are exact. No regular expression touches the SQL.

Why not ``duckdb.get_table_names``: in DuckDB 2.0.1 it binds the query rather
than only parsing it, so it fails on ``JOIN ... USING (col)`` (even when the
tables exist), runs table functions such as ``read_json('file')``, and with
``qualified=True`` returns aliases (``'raw.t AS a'``) as part of the names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import duckdb

__all__ = ["SelectInfo", "SqlRejected", "TableRef", "inspect_select"]


class SqlRejected(ValueError):
    """The text is not exactly one valid SELECT statement."""


@dataclass(frozen=True, order=True)
class TableRef:
    """A table name as written in the query; empty parts were not written."""

    catalog: str
    schema: str
    name: str

    @property
    def qualified(self) -> str:
        """``schema.name`` (``main`` when no schema was written), catalog first if given."""
        parts = [self.catalog] if self.catalog else []
        parts += [self.schema or "main", self.name]
        return ".".join(parts)


@dataclass(frozen=True)
class SelectInfo:
    """What :func:`inspect_select` found in a SELECT."""

    tables: frozenset[TableRef]
    variables: frozenset[str]


def inspect_select(sql: str, con: duckdb.DuckDBPyConnection | None = None) -> SelectInfo:
    """Check that ``sql`` is exactly one SELECT and list what it reads.

    Raises :class:`SqlRejected` with a one-line reason otherwise. ``con`` is
    only used to reach DuckDB's parser; nothing is executed against data.
    """
    own = con is None
    parser = duckdb.connect(":memory:") if con is None else con
    try:
        return _inspect(sql, parser)
    finally:
        if own:
            parser.close()


def _inspect(sql: str, con: duckdb.DuckDBPyConnection) -> SelectInfo:
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as error:
        raise SqlRejected(f"it does not parse: {str(error).strip()}") from error
    if not statements:
        raise SqlRejected("it holds no SQL statement; a model is one SELECT")
    if len(statements) > 1:
        raise SqlRejected(f"it holds {len(statements)} statements; a model is exactly one SELECT")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        raise SqlRejected(
            f"its statement type is {kind.name}; a model is one SELECT and nothing else"
        )
    row = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    assert row is not None
    tree = json.loads(row[0])
    if tree.get("error"):
        raise SqlRejected(f"DuckDB cannot read it: {tree.get('error_message', 'unknown error')}")
    tables: set[TableRef] = set()
    variables: set[str] = set()
    _walk(tree["statements"], frozenset(), tables, variables)
    return SelectInfo(tables=frozenset(tables), variables=frozenset(variables))


def _walk(node: Any, ctes: frozenset[str], tables: set[TableRef], variables: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, ctes, tables, variables)
        return
    if not isinstance(node, dict):
        return
    cte_map = node.get("cte_map")
    if isinstance(cte_map, dict):
        ctes = ctes | {str(entry["key"]).lower() for entry in cte_map.get("map", [])}
    if node.get("type") == "BASE_TABLE" and "table_name" in node:
        ref = TableRef(
            catalog=node.get("catalog_name") or "",
            schema=node.get("schema_name") or "",
            name=node["table_name"],
        )
        if ref.catalog or ref.schema or ref.name.lower() not in ctes:
            tables.add(ref)
    if node.get("class") == "FUNCTION" and str(node.get("function_name")).lower() == "getvariable":
        name = _constant_string_argument(node)
        if name is not None:
            variables.add(name)
    for value in node.values():
        _walk(value, ctes, tables, variables)


def _constant_string_argument(function: dict[str, Any]) -> str | None:
    arguments = function.get("arguments") or function.get("children") or []
    if not arguments:
        return None
    first = arguments[0]
    expression = first.get("expression", first) if isinstance(first, dict) else None
    if not isinstance(expression, dict) or expression.get("class") != "CONSTANT":
        return None
    literal = expression.get("literal") or expression.get("value") or {}
    text = literal.get("text") if isinstance(literal, dict) else None
    return text if isinstance(text, str) else None
