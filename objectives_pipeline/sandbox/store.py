"""The sandbox's in-memory objective store.

Objectives live in a dict keyed by ``_id`` plus a list of ids in ``_id`` order
(ids increase with creation, so that is insertion order). Stored objects are
never mutated in place: a write builds a new dict. That lets the store hand out
cached JSON bytes, share nested values and snapshot cheaply.

Bulk upsert error entries (``createdErrors``, ``updatedErrors``,
``permissionErrors``) have the shape ``{"index": <position in the request>,
"_id"?, "sourceId"?, "externalId"?, "error": "<message>"}`` where the key
fields are those the item carried. ``modified`` lists the ``_id`` of every
updated objective.
"""

from __future__ import annotations

import bisect
import gc
import json
import random
import re
import threading
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any, Literal

from objectives_pipeline.sandbox.companies import CompanyTable, count_upsert, merged
from objectives_pipeline.sandbox.data import JsonObject, ObjectIdFactory, Tenant
from objectives_pipeline.sandbox.listing import project, sort_key

_KEYABLES = ("_id", "sourceId", "externalId")
_SERVER_MANAGED = frozenset({"_id", "companyName", "__v"})
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


class InvalidObjective(ValueError):
    """A write the API rejects with 400; `field` names the offending property."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, as the sandbox sends it."""
    return _encode(value).encode()


ListOrder = Literal["sort", "insertion", "page_sorted"]
PageMangle = Literal["two_pages_back", "repeat"]
_OBJECT_ID = re.compile(r"[0-9a-f]{24}")


def is_object_id(value: str) -> bool:
    """Whether `value` has the shape of a MongoDB ObjectId (24 lowercase hex digits)."""
    return bool(_OBJECT_ID.fullmatch(value))


def _id_order(value: str) -> tuple[bool, str]:
    """MongoDB's order of _id values: strings (e.g. UUIDs) before ObjectIds."""
    return (is_object_id(value), value)


def _loads(raw: bytes) -> JsonObject:
    value: JsonObject = json.loads(raw)
    return value


def _id_text(value: Any) -> str | None:
    """An id value as the API stores it (numbers become strings); None if not an id."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _normalise_id_value(value: Any, field: str) -> str | None:
    text = _id_text(value)
    if text is None and value is not None:
        raise InvalidObjective(f"{field} must be a string or a number", field)
    return text


def _item_keys(item: JsonObject) -> JsonObject:
    keys: JsonObject = {}
    for key in _KEYABLES:
        value = item.get(key)
        if key == "externalId":
            value = _id_text(value) or value
        if value is not None:
            keys[key] = value
    return keys


def _group_ids(objectives: Iterable[JsonObject], field: str) -> dict[str, list[str]]:
    """Ids of `objectives` (in _id order) grouped by their string `field`."""
    groups: dict[str, list[str]] = {}
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a million small lists would trigger many useless cyclic GC passes
    try:
        for obj in objectives:
            value = obj.get(field)
            if isinstance(value, str):
                ids = groups.get(value)
                if ids is None:
                    groups[value] = [obj["_id"]]
                else:
                    ids.append(obj["_id"])
    finally:
        if gc_was_enabled:
            gc.enable()
    return groups


class SandboxStore:
    """Thread-safe objective and company store behind the sandbox API."""

    def __init__(self, tenant: Tenant | None = None) -> None:
        self._lock = threading.RLock()
        self._listeners: list[Callable[[], None]] = []
        self.load(tenant or Tenant())

    # ---- loading and change notification -------------------------------------------

    def load(self, tenant: Tenant) -> None:
        """Replace the whole content with `tenant`."""
        objectives = sorted(tenant.objectives, key=lambda o: str(o["_id"]))
        order = [obj["_id"] for obj in objectives]
        if len(set(order)) != len(order):
            raise ValueError("objective _id values must be unique")
        with self._lock:
            self._company_table = CompanyTable(tenant.companies, tenant.metrics)
            # The table mutates both in place: the objective code reads them directly.
            self._companies = self._company_table.rows
            self._company_refs = self._company_table.refs
            self._order: list[str] = order
            self._objects: dict[str, JsonObject] = dict(zip(order, objectives, strict=True))
            self._raw: dict[str, bytes] = {}
            self._by_company = _group_ids(objectives, "companyId")
            self._by_source = _group_ids(objectives, "sourceId")
            self._by_external = _group_ids(objectives, "externalId")
            self._sorted: dict[tuple[str, bool], list[str]] = {}
            object_ids = [i for i in order if is_object_id(i)]
            self._odd_ids = len(object_ids) < len(order)
            self._ids = ObjectIdFactory(object_ids[-1] if object_ids else None)
            # Insertion order, for a server that ignores `sort`: not the _id order.
            shuffled = list(order)
            random.Random(len(order)).shuffle(shuffled)
            self._inserted: dict[str, int] = {oid: n for n, oid in enumerate(shuffled)}
            self._next_insert = len(shuffled)
            self._version = 0

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback` (cheaply, under the store lock) after every change."""
        with self._lock:
            self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.remove(callback)

    def _changed(self) -> None:
        self._sorted.clear()
        self._version += 1
        for callback in self._listeners:
            callback()

    @property
    def version(self) -> int:
        """A counter that increases with every change."""
        return self._version

    # ---- read access ---------------------------------------------------------------

    def count(self) -> int:
        with self._lock:
            return len(self._order)

    def all_objectives(self) -> list[JsonObject]:
        """Every objective in _id order, as the API returns them (fresh copies)."""
        with self._lock:
            return [_loads(self._raw_of(i)) for i in self._order]

    def ids(self) -> list[str]:
        """Every objective _id in order."""
        with self._lock:
            return list(self._order)

    def get(self, ref: str) -> JsonObject | None:
        """The objective for an _id, ``extid-<externalId>`` or ``srcid-<sourceId>`` ref."""
        with self._lock:
            obj = self._resolve(ref)
            return None if obj is None else _loads(self._raw_of(obj["_id"]))

    def get_raw(self, ref: str) -> bytes | None:
        """Like `get`, as the JSON bytes the API sends."""
        with self._lock:
            obj = self._resolve(ref)
            return None if obj is None else self._raw_of(obj["_id"])

    def find_by_source_id(self, source_id: str) -> list[JsonObject]:
        with self._lock:
            return [_loads(self._raw_of(i)) for i in self._by_source.get(source_id, [])]

    def find_by_external_id(self, external_id: str | int) -> list[JsonObject]:
        with self._lock:
            ids = self._by_external.get(str(external_id), [])
            return [_loads(self._raw_of(i)) for i in ids]

    def companies(self) -> list[JsonObject]:
        """Every company in _id order (copies)."""
        with self._lock:
            return [dict(c) for c in self._companies]

    def resolve_company(self, ref: str) -> JsonObject | None:
        """The company for an _id, ``extid-…`` or ``srcid-…`` ref."""
        with self._lock:
            company = self._company_refs.get(ref)
            return None if company is None else dict(company)

    def list_page(
        self,
        *,
        offset: int = 0,
        limit: int = 100,
        sort: str | None = None,
        company_refs: Sequence[str] | None = None,
        select: Sequence[str] | None = None,
        order: ListOrder = "sort",
        mangle: PageMangle | None = None,
    ) -> tuple[bytes, int]:
        """A list page as a JSON array body, and how many records it holds.

        `order`: ``sort`` honours `sort`; ``insertion`` ignores it and lists in insertion
        order (which is not the _id order); ``page_sorted`` takes the insertion-order page
        and sorts it by _id. `mangle` breaks the page (see `Faults.page_mangle`).
        """
        with self._lock:
            ordered = (
                self._ordered_ids(sort, company_refs) if order == "sort" else self._insertion()
            )
            ids = ordered[offset : offset + limit]
            if order == "page_sorted":
                ids = sorted(ids, key=_id_order)
            if mangle is not None and len(ids) >= 3:
                middle = len(ids) // 2
                earlier = offset - 2 * limit + middle
                if mangle == "repeat":
                    ids[middle] = ids[middle - 1]
                elif earlier >= 0:
                    ids[middle] = ordered[earlier]
            if select:
                body = dumps([project(self._objects[i], select) for i in ids])
            else:
                body = b"[" + b",".join([self._raw_of(i) for i in ids]) + b"]"
            return body, len(ids)

    def snapshot(self) -> tuple[list[JsonObject], list[bytes]]:
        """Companies and the JSON of every objective (in _id order) at this instant."""
        with self._lock:
            raw = self._raw
            pending = [(raw.get(i), self._objects[i]) for i in self._order]
            companies = list(self._companies)
        # Stored objects are never mutated, so the slow part can run without the lock.
        return companies, [cached or dumps(obj) for cached, obj in pending]

    def metric_rows(self) -> list[JsonObject]:
        """Every stored custom metric value (``companyId, dimensionId, day, value``)."""
        with self._lock:
            return self._company_table.metric_rows()

    # ---- companies and custom metrics ----------------------------------------------

    def company_page(
        self, *, offset: int, limit: int, sort: str | None, select: Sequence[str] | None
    ) -> list[JsonObject]:
        with self._lock:
            return self._company_table.page(offset=offset, limit=limit, sort=sort, select=select)

    def lean_companies(self) -> list[JsonObject]:
        with self._lock:
            return self._company_table.lean()

    def update_company(self, ref: str, changes: Any) -> JsonObject | None:
        """Apply `changes` (custom merged per key); None if no company matches; may raise
        `InvalidCompany`."""
        with self._lock:
            before = self._company_refs.get(ref)
            updated = self._company_table.update(ref, changes)
            if updated is not None and updated is not before:
                self._changed()
            return None if updated is None else dict(updated)

    def bulk_upsert_companies(
        self, items: Sequence[Any], *, failing: Collection[str] = (), forbidden: Collection[str] = ()
    ) -> JsonObject:
        with self._lock:
            result = self._company_table.bulk_upsert(items, failing=failing, forbidden=forbidden)
            if result["created"] or result["updated"]:
                self._changed()
            return result

    def add_metrics(self, items: Sequence[Any], today: int) -> JsonObject:
        with self._lock:
            result = self._company_table.add_metrics(items, today)
            if result["processed"]:
                self._changed()
            return result

    def read_metrics(
        self, company_id: str | None, dimension_id: str | None, first: int, last: int
    ) -> list[JsonObject]:
        with self._lock:
            return self._company_table.read_metrics(company_id, dimension_id, first, last)

    # ---- writes --------------------------------------------------------------------

    def create(self, item: JsonObject) -> JsonObject:
        """Create one objective; raises `InvalidObjective` for a bad item."""
        with self._lock:
            obj = self._create(item)
            self._changed()
            return _loads(self._raw_of(obj["_id"]))

    def update(self, ref: str, changes: JsonObject) -> JsonObject | None:
        """Apply `changes` to the referenced objective; None if there is none."""
        with self._lock:
            current = self._resolve(ref)
            if current is None:
                return None
            updated = self._update(current, changes)
            if updated is not current:
                self._changed()
            return _loads(self._raw_of(updated["_id"]))

    def delete(self, ref: str) -> bool:
        with self._lock:
            obj = self._resolve(ref)
            if obj is None:
                return False
            self._remove(obj)
            self._changed()
            return True

    def bulk_upsert(
        self,
        items: Sequence[Any],
        *,
        failing_source_ids: Collection[str] = (),
        forbidden_source_ids: Collection[str] = (),
    ) -> JsonObject:
        """Upsert `items` in order; the result has the shape of Planhat's bulk response."""
        result: JsonObject = {
            "created": 0, "createdErrors": [], "insertsKeys": [],
            "updated": 0, "updatedErrors": [], "updatesKeys": [],
            "nonupdates": 0, "modified": [], "upsertedIds": [], "permissionErrors": [],
        }  # fmt: skip
        with self._lock:
            try:
                for index, item in enumerate(items):
                    self._upsert_one(index, item, result, failing_source_ids, forbidden_source_ids)
            finally:
                if result["created"] or result["updated"]:
                    self._changed()
        return result

    def churn(self, count: int, rng: random.Random, *, anywhere: bool = False) -> None:
        """Delete `count` objectives from the first quarter of the _id order; create `count`.

        `anywhere`: delete from the whole order and create with random ids anywhere
        within it (new objectives then also land before older ones).
        """
        with self._lock:
            if count <= 0:
                return
            window = len(self._order) if anywhere else max(count, len(self._order) // 4)
            window = min(len(self._order), window)
            object_ids = [i for i in self._order if is_object_id(i)] if self._odd_ids else self._order
            bounds = (object_ids[0], object_ids[-1]) if anywhere and object_ids else None
            doomed = [self._order[i] for i in rng.sample(range(window), min(count, window))]
            for object_id in doomed:
                self._remove(self._objects[object_id])
            for _ in range(count if self._companies else 0):
                company = rng.choice(self._companies)
                serial = rng.getrandbits(48)
                self._create(
                    {
                        "name": f"Churned-in objective {serial:012x}",
                        "companyId": company["_id"],
                        "health": rng.randint(1, 5),
                        "externalId": f"churn-{serial:012x}",
                        "sourceId": f"churn-src-{serial:012x}",
                    },
                    object_id=None if bounds is None else self._free_id(bounds, rng),
                )
            self._changed()

    # ---- internals -----------------------------------------------------------------

    def _raw_of(self, object_id: str) -> bytes:
        raw = self._raw.get(object_id)
        if raw is None:
            raw = self._raw[object_id] = dumps(self._objects[object_id])
        return raw

    def _resolve(self, ref: str) -> JsonObject | None:
        if ref.startswith("extid-"):
            ids = self._by_external.get(ref[6:])
        elif ref.startswith("srcid-"):
            ids = self._by_source.get(ref[6:])
        else:
            return self._objects.get(ref)
        return self._objects[ids[0]] if ids else None

    def _insertion(self) -> list[str]:
        cached = self._sorted.get(("<insertion>", False))
        if cached is None:
            cached = sorted(self._order, key=self._inserted.__getitem__)
            self._sorted[("<insertion>", False)] = cached
        return cached

    def _ordered_ids(self, sort: str | None, company_refs: Sequence[str] | None) -> list[str]:
        descending = sort is not None and sort.startswith("-")
        field = (sort or "").lstrip("-+") or "_id"
        if company_refs is not None:
            chosen: set[str] = set()
            for ref in company_refs:
                company = self._company_refs.get(ref)
                if company is not None:
                    chosen.add(company["_id"])
            ids = sorted(i for cid in chosen for i in self._by_company.get(cid, []))
            if field == "_id":
                return ids[::-1] if descending else ids
            key = sort_key(field.split("."))
            return sorted(ids, key=lambda i: key(self._objects[i]), reverse=descending)
        if field == "_id" and not descending and not self._odd_ids:
            return self._order
        cached = self._sorted.get((field, descending))
        if cached is None:
            if field == "_id":
                cached = sorted(self._order, key=_id_order, reverse=descending)
            else:
                key = sort_key(field.split("."))
                objects = self._objects
                cached = sorted(self._order, key=lambda i: key(objects[i]), reverse=descending)
            self._sorted[(field, descending)] = cached
        return cached

    def _index(self, obj: JsonObject) -> None:
        object_id = obj["_id"]
        for index, value in (
            (self._by_company, obj.get("companyId")),
            (self._by_source, obj.get("sourceId")),
            (self._by_external, obj.get("externalId")),
        ):
            if isinstance(value, str):
                ids = index.setdefault(value, [])
                if not ids or ids[-1] < object_id:
                    ids.append(object_id)
                else:
                    bisect.insort(ids, object_id)

    def _unindex(self, obj: JsonObject) -> None:
        object_id = obj["_id"]
        for index, value in (
            (self._by_company, obj.get("companyId")),
            (self._by_source, obj.get("sourceId")),
            (self._by_external, obj.get("externalId")),
        ):
            if isinstance(value, str):
                ids = index[value]
                ids.pop(bisect.bisect_left(ids, object_id))
                if not ids:
                    del index[value]

    def _remove(self, obj: JsonObject) -> None:
        object_id = obj["_id"]
        self._unindex(obj)
        self._order.pop(bisect.bisect_left(self._order, object_id))
        self._inserted.pop(object_id, None)
        del self._objects[object_id]
        self._raw.pop(object_id, None)

    def _validated(self, changes: JsonObject, *, creating: bool) -> JsonObject:
        """The writable fields of `changes`, normalised; raises `InvalidObjective`."""
        if not isinstance(changes, dict):
            raise InvalidObjective("an objective must be a JSON object", "")
        fields = {k: v for k, v in changes.items() if k not in _SERVER_MANAGED}
        if creating or "name" in fields:
            name = fields.get("name")
            if not isinstance(name, str) or not name.strip():
                raise InvalidObjective("name is required and must be a non-empty string", "name")
        if creating or "companyId" in fields:
            ref = fields.get("companyId")
            if not isinstance(ref, str) or not ref:
                raise InvalidObjective("companyId is required", "companyId")
            company = self._company_refs.get(ref)
            if company is None:
                raise InvalidObjective(f"Company not found: {ref}", "companyId")
            fields["companyId"] = company["_id"]
            fields["companyName"] = company["name"]
        health = fields.get("health")
        if health is not None and (isinstance(health, bool) or not isinstance(health, int | float)):
            raise InvalidObjective("health must be a number", "health")
        if (
            "custom" in fields
            and fields["custom"] is not None
            and not isinstance(fields["custom"], dict)
        ):
            raise InvalidObjective("custom must be an object", "custom")
        for key in ("externalId", "sourceId"):
            if key in fields:
                fields[key] = _normalise_id_value(fields[key], key)
        return fields

    def _free_id(self, bounds: tuple[str, str], rng: random.Random) -> str:
        """An unused 24-hex id between `bounds` (or after them when they are too close)."""
        low, high = int(bounds[0], 16), int(bounds[1], 16)
        for _ in range(8):
            candidate = f"{rng.randrange(low, high + 1):024x}"
            if candidate not in self._objects:
                return candidate
        return self._ids.next()

    def _create(self, item: JsonObject, *, object_id: str | None = None) -> JsonObject:
        fields = self._validated(item, creating=True)
        obj: JsonObject = {
            "_id": object_id or self._ids.next(),
            "companyId": fields.pop("companyId"),
            "companyName": fields.pop("companyName"),
            "name": fields.pop("name"),
        }
        obj.update(fields)
        obj["__v"] = 0
        self._objects[obj["_id"]] = obj
        if not self._order or obj["_id"] > self._order[-1]:
            self._order.append(obj["_id"])
        else:
            bisect.insort(self._order, obj["_id"])
        self._inserted[obj["_id"]] = self._next_insert
        self._next_insert += 1
        self._index(obj)
        return obj

    def _update(self, current: JsonObject, changes: JsonObject) -> JsonObject:
        """Apply `changes`; returns `current` itself when nothing changes."""
        updated = merged(current, self._validated(changes, creating=False))
        if updated == current:
            return current
        self._unindex(current)
        self._objects[current["_id"]] = updated
        self._raw.pop(current["_id"], None)
        self._index(updated)
        return updated

    def _match(self, item: JsonObject) -> JsonObject | None:
        object_id = item.get("_id")
        if isinstance(object_id, str) and object_id in self._objects:
            return self._objects[object_id]
        for key, index in (("sourceId", self._by_source), ("externalId", self._by_external)):
            value = _id_text(item.get(key))
            ids = index.get(value) if value is not None else None
            if ids:
                return self._objects[ids[0]]
        return None

    def _upsert_one(
        self,
        index: int,
        item: Any,
        result: JsonObject,
        failing_source_ids: Collection[str],
        forbidden_source_ids: Collection[str],
    ) -> None:
        if not isinstance(item, dict):
            result["createdErrors"].append({"index": index, "error": "item must be an object"})
            return
        keys = _item_keys(item)
        match = self._match(item)
        source_id = _id_text(item.get("sourceId"))
        if source_id in forbidden_source_ids:
            error = {"index": index, **keys, "error": "Permission denied for this objective"}
            result["permissionErrors"].append(error)
            return
        errors = result["updatedErrors" if match else "createdErrors"]
        if source_id in failing_source_ids:
            errors.append({"index": index, **keys, "error": "Item rejected (sandbox fault)"})
            return
        try:
            record = self._create(item) if match is None else self._update(match, item)
        except InvalidObjective as exc:
            errors.append({"index": index, **keys, "error": exc.message})
            return
        count_upsert(result, match, record, _item_keys(record))
