"""The relation a push reads: a validated, quoted name and the SELECT that normalises it.

The relation name comes from run configuration, so it is never formatted into SQL
as given: it must be a plain identifier path (``table``, ``schema.table`` or
``catalog.schema.table``) and every part is double-quoted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb

from .errors import SourceError

IDENTIFIER_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}")
REQUIRED_COLUMNS = ("name", "company_id")
OPTIONAL_COLUMNS = ("health", "external_id", "source_id", "custom")
_NESTED_TYPES = ("STRUCT", "MAP", "LIST", "UNION")


@dataclass(frozen=True)
class SourceRelation:
    """A table or view name that is safe to put into SQL."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not IDENTIFIER_PATH.fullmatch(self.name):
            raise SourceError(
                f"Source relation {self.name!r} is not a table or view name. Use letters, digits "
                "and underscores, optionally qualified: objectives_to_push, crm.objectives_export "
                "or catalog.schema.table."
            )

    @property
    def quoted(self) -> str:
        return ".".join(f'"{part}"' for part in self.name.split("."))


@dataclass(frozen=True)
class SourceColumns:
    """Which objective columns the relation has, and their DuckDB types (by lower-case name)."""

    types: dict[str, str]

    @property
    def fields(self) -> tuple[str, ...]:
        """The objective fields a push sends: the required ones and the optional ones present."""
        return (*REQUIRED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in self.types))

    def select_list(self) -> str:
        """Column expressions in a fixed shape; absent optional columns read as NULL."""
        health = '"health"' if "health" in self.types else "CAST(NULL AS DOUBLE)"
        custom_type = self.types.get("custom")
        if custom_type is None:
            custom = "CAST(NULL AS VARCHAR)"
        elif custom_type.upper().startswith(_NESTED_TYPES) or custom_type.upper().endswith("[]"):
            custom = 'CAST(to_json("custom") AS VARCHAR)'
        else:
            custom = 'CAST("custom" AS VARCHAR)'
        texts = [
            f'CAST("{c}" AS VARCHAR)' if c in self.types else "CAST(NULL AS VARCHAR)"
            for c in ("name", "company_id", "external_id", "source_id")
        ]
        return (
            f"{texts[0]} AS name, {texts[1]} AS company_id, {health} AS health, "
            f"{texts[2]} AS external_id, {texts[3]} AS source_id, {custom} AS custom"
        )


def describe_source(con: duckdb.DuckDBPyConnection, relation: SourceRelation) -> SourceColumns:
    """The relation's objective columns; `SourceError` if it is missing or lacks required ones."""
    try:
        described = con.execute(f"DESCRIBE SELECT * FROM {relation.quoted}").fetchall()
    except duckdb.CatalogException:
        raise SourceError(
            f"Source relation {relation.name} does not exist in the warehouse. Build it first "
            "(materialize the objectives_to_push model, e.g. with the crm_objectives asset), or "
            "set the push's `source` to a table or view that exists."
        ) from None
    types = {str(row[0]).lower(): str(row[1]) for row in described}
    missing = [c for c in REQUIRED_COLUMNS if c not in types]
    if missing:
        raise SourceError(
            f"Source relation {relation.name} has no column {', '.join(missing)}. A push source "
            f"needs {', '.join(REQUIRED_COLUMNS)} and may have {', '.join(OPTIONAL_COLUMNS)}; "
            f"it has {', '.join(sorted(types))}."
        )
    return SourceColumns({c: types[c] for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in types})
