"""The sandbox's companies and custom metric values (not thread-safe: `SandboxStore` locks).

Companies are matched on writes by ``_id``, then ``sourceId``, then ``externalId``;
``custom`` is merged per key. Metric values are kept one per (company, dimension,
day): a later value for the same day replaces the earlier one (aggregation LAST).
Bulk error entries have the shape of the objectives' (``{"index", keys…, "error"}``).
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime
from typing import Any

from objectives_pipeline.sandbox.data import JsonObject, ObjectIdFactory
from objectives_pipeline.sandbox.listing import project, sort_key

_KEYABLES = ("_id", "sourceId", "externalId")
_LEAN = ("_id", "name", "externalId", "sourceId")
_DIMENSION_ID = re.compile(r"[A-Za-z0-9_]+")
_EPOCH = date(1970, 1, 1)


class InvalidCompany(ValueError):
    """A company write the API rejects with 400."""


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value) if isinstance(value, str | int | float) else None


def _keys(company: JsonObject) -> JsonObject:
    return {k: company[k] for k in _KEYABLES if company.get(k) is not None}


def _company_id(company: JsonObject) -> str:
    return str(company["_id"])


def day_number(value: Any) -> int | None:
    """Days since 1970-01-01 of an ISO date or date-time string; None if it is neither."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC)
    return (parsed.date() - _EPOCH).days


class CompanyTable:
    """Companies in ``_id`` order, their ``extid-``/``srcid-`` references and metric values."""

    def __init__(self, companies: Sequence[JsonObject], metrics: Sequence[JsonObject] = ()) -> None:
        self.rows: list[JsonObject] = sorted((dict(c) for c in companies), key=lambda c: c["_id"])
        self.refs: dict[str, JsonObject] = {}
        for company in self.rows:
            self._index(company)
        self._ids = ObjectIdFactory(self.rows[-1]["_id"] if self.rows else None)
        self.metrics: dict[tuple[str, str, int], float] = {}
        for value in metrics:
            self.metrics[(value["companyId"], value["dimensionId"], int(value["day"]))] = float(
                value["value"]
            )

    def metric_rows(self) -> list[JsonObject]:
        """The metric values in a JSON-friendly form (for the state file)."""
        return [
            {"companyId": c, "dimensionId": d, "day": day, "value": v}
            for (c, d, day), v in sorted(self.metrics.items())
        ]

    # ---- companies -------------------------------------------------------------------

    def page(
        self, *, offset: int, limit: int, sort: str | None, select: Sequence[str] | None
    ) -> list[JsonObject]:
        rows = self.rows
        field = (sort or "").lstrip("-+") or "_id"
        descending = bool(sort) and str(sort).startswith("-")
        if field != "_id" or descending:
            rows = sorted(rows, key=sort_key(field.split(".")), reverse=descending)
        chosen = rows[offset : offset + limit]
        return [project(c, select) if select else dict(c) for c in chosen]

    def lean(self) -> list[JsonObject]:
        return [{k: c[k] for k in _LEAN if k in c} for c in self.rows]

    def update(self, ref: str, changes: Any) -> JsonObject | None:
        """Apply `changes` to the referenced company; None if there is none."""
        current = self.refs.get(ref)
        if current is None:
            return None
        return self._update(current, self._validated(changes, creating=False))

    def bulk_upsert(
        self, items: Sequence[Any], *, failing: Collection[str], forbidden: Collection[str]
    ) -> JsonObject:
        """Upsert in order; `failing`/`forbidden` hold sourceIds or _ids whose items fail."""
        result: JsonObject = {
            "created": 0, "createdErrors": [], "insertsKeys": [],
            "updated": 0, "updatedErrors": [], "updatesKeys": [],
            "nonupdates": 0, "modified": [], "upsertedIds": [], "permissionErrors": [],
        }  # fmt: skip
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                result["createdErrors"].append({"index": index, "error": "item must be an object"})
                continue
            match = self._match(item)
            keys = _keys(item)
            marks = {_text(item.get("sourceId")), _text(item.get("_id"))}
            if match is not None:
                marks |= {match["_id"], _text(match.get("sourceId"))}
            if marks & set(forbidden):
                error = {"index": index, **keys, "error": "Permission denied for this company"}
                result["permissionErrors"].append(error)
                continue
            errors = result["updatedErrors" if match else "createdErrors"]
            if marks & set(failing):
                errors.append({"index": index, **keys, "error": "Item rejected (sandbox fault)"})
                continue
            try:
                fields = self._validated(item, creating=match is None)
            except InvalidCompany as exc:
                errors.append({"index": index, **keys, "error": str(exc)})
                continue
            record = self._create(fields) if match is None else self._update(match, fields)
            count_upsert(result, match, record, _keys(record))
        return result

    # ---- metrics ---------------------------------------------------------------------

    def add_metrics(self, items: Sequence[Any], today: int) -> JsonObject:
        """Store values of ``POST /dimensiondata``; the answer ``{"processed", "errors"}``."""
        by_external = {
            _text(c.get("externalId")): c["_id"] for c in self.rows if c.get("externalId")
        }
        processed, errors = 0, []
        for item in items:
            problem, key = self._metric_key(item, by_external, today)
            if problem is not None or key is None:
                errors.append({"item": item, "error": problem})
                continue
            self.metrics[key] = float(item["value"])
            processed += 1
        return {"processed": processed, "errors": errors}

    def read_metrics(
        self, company_id: str | None, dimension_id: str | None, first: int, last: int
    ) -> list[JsonObject]:
        """Values with `first` <= day <= `last`, for one company and/or dimension if given."""
        return [
            {"companyId": c, "dimensionId": d, "day": day,
             "date": date.fromordinal(_EPOCH.toordinal() + day).isoformat(), "value": v}
            for (c, d, day), v in sorted(self.metrics.items())
            if (company_id is None or c == company_id)
            and (dimension_id is None or d == dimension_id)
            and first <= day <= last
        ]  # fmt: skip

    # ---- internals -------------------------------------------------------------------

    def _metric_key(
        self, item: Any, by_external: dict[str | None, str], today: int
    ) -> tuple[str | None, tuple[str, str, int] | None]:
        if not isinstance(item, dict):
            return "item must be an object", None
        dimension = item.get("dimensionId")
        if not isinstance(dimension, str) or not _DIMENSION_ID.fullmatch(dimension):
            return "dimensionId must be letters, digits and underscores", None
        value = item.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return "value must be a number", None
        if item.get("model", "Company") != "Company":
            return "model must be Company", None
        company_id = by_external.get(_text(item.get("externalId")))
        if company_id is None:
            return f"No Company with externalId {item.get('externalId')!r}", None
        day = today if item.get("date") is None else day_number(item.get("date"))
        if day is None:
            return "date must be an ISO date", None
        return None, (company_id, dimension, day)

    def _index(self, company: JsonObject) -> None:
        self.refs[company["_id"]] = company
        if company.get("externalId") is not None:
            self.refs.setdefault(f"extid-{company['externalId']}", company)
        if company.get("sourceId") is not None:
            self.refs.setdefault(f"srcid-{company['sourceId']}", company)

    def _unindex(self, company: JsonObject) -> None:
        for ref in (
            company["_id"], f"extid-{company.get('externalId')}", f"srcid-{company.get('sourceId')}"
        ):
            if self.refs.get(ref) is company:
                del self.refs[ref]

    def _match(self, item: JsonObject) -> JsonObject | None:
        company_id = item.get("_id")
        if isinstance(company_id, str) and company_id in self.refs:
            return self.refs[company_id]
        for key, prefix in (("sourceId", "srcid-"), ("externalId", "extid-")):
            value = _text(item.get(key))
            if value is not None and prefix + value in self.refs:
                return self.refs[prefix + value]
        return None

    def _validated(self, changes: Any, *, creating: bool) -> JsonObject:
        if not isinstance(changes, dict):
            raise InvalidCompany("a company must be a JSON object")
        fields = {k: v for k, v in changes.items() if k not in ("_id", "__v")}
        if creating or "name" in fields:
            name = fields.get("name")
            if not isinstance(name, str) or not name.strip():
                raise InvalidCompany("name is required and must be a non-empty string")
        custom = fields.get("custom")
        if custom is not None and not isinstance(custom, dict):
            raise InvalidCompany("custom must be an object")
        for key in ("externalId", "sourceId"):
            if key in fields:
                fields[key] = _text(fields[key])
        return fields

    def _create(self, fields: JsonObject) -> JsonObject:
        company = {"_id": self._ids.next(), **fields}
        self.rows.append(company)
        self._index(company)
        return company

    def _update(self, current: JsonObject, fields: JsonObject) -> JsonObject:
        updated = merged(current, fields)
        if updated == current:
            return current
        self._unindex(current)
        self.rows[bisect.bisect_left(self.rows, current["_id"], key=_company_id)] = updated
        self._index(updated)
        return updated


def merged(current: JsonObject, fields: JsonObject) -> JsonObject:
    """`current` with `fields` applied, as Planhat updates a record: `custom` merged per key."""
    updated = dict(current)
    for key, value in fields.items():
        old = updated.get(key)
        if key == "custom" and isinstance(old, dict) and isinstance(value, dict):
            updated[key] = {**old, **value}
        else:
            updated[key] = value
    return updated


def count_upsert(
    result: JsonObject, match: JsonObject | None, record: JsonObject, keys: JsonObject
) -> None:
    """Count one applied bulk item in Planhat's bulk answer: created (no `match`), updated, or
    not changed (`record` is `match` itself)."""
    if match is None:
        result["created"] += 1
        result["insertsKeys"].append(keys)
        result["upsertedIds"].append(record["_id"])
    elif record is match:
        result["nonupdates"] += 1
    else:
        result["updated"] += 1
        result["updatesKeys"].append(keys)
        result["modified"].append(record["_id"])
