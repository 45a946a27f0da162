"""Bulk upsert results: per-batch outcomes, item errors, and merging them."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from .models import IdString

KEYABLES = ("_id", "sourceId", "externalId")
ErrorKind = Literal["created", "updated", "permission"]
_ERROR_LISTS: dict[ErrorKind, str] = {
    "created": "createdErrors",
    "updated": "updatedErrors",
    "permission": "permissionErrors",
}


class BulkItemError(BaseModel):
    """One failed item of a bulk upsert.

    Planhat does not document the shape of an error entry, so any entry is
    accepted: `message` is its text, `raw` the entry as received. `item_index`
    is the item's position in the input of `bulk_upsert` when the entry names a
    keyable (``_id``, ``sourceId`` or ``externalId``) of an item of its batch,
    or else carries an integer ``index`` within the batch.
    """

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    kind: ErrorKind
    message: str
    id: IdString | None = Field(default=None, alias="_id")
    source_id: IdString | None = Field(default=None, alias="sourceId")
    external_id: IdString | None = Field(default=None, alias="externalId")
    batch_index: int
    item_index: int | None = None
    raw: Any = None


class BatchOutcome(BaseModel):
    """What one ``PUT /objectives`` request did."""

    index: int
    offset: int = Field(description="position of the batch's first item in the whole input")
    item_count: int
    status: int
    partial: bool
    attempts: int = 1


def _count(value: Any) -> Any:
    return 0 if value is None else value


def _ids(value: Any) -> Any:
    if isinstance(value, list):
        return [
            item.get("_id", json.dumps(item)) if isinstance(item, dict) else item for item in value
        ]
    return [] if value is None else value


Count = Annotated[int, BeforeValidator(_count)]


class BulkUpsertResult(BaseModel):
    """The merged result of one or more bulk upsert requests.

    `partial` is true when any request answered 206, or any item failed; `ok`
    is its opposite. `requests` holds one `BatchOutcome` per request sent.
    """

    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    created: Count = 0
    updated: Count = 0
    nonupdates: Count = 0
    inserts_keys: list[dict[str, Any]] = Field(default_factory=list, alias="insertsKeys")
    updates_keys: list[dict[str, Any]] = Field(default_factory=list, alias="updatesKeys")
    upserted_ids: Annotated[list[str], BeforeValidator(_ids)] = Field(
        default_factory=list, alias="upsertedIds"
    )
    modified: list[Any] = Field(default_factory=list)
    created_errors: list[BulkItemError] = Field(default_factory=list, alias="createdErrors")
    updated_errors: list[BulkItemError] = Field(default_factory=list, alias="updatedErrors")
    permission_errors: list[BulkItemError] = Field(default_factory=list, alias="permissionErrors")
    requests: list[BatchOutcome] = Field(default_factory=list)

    @property
    def errors(self) -> list[BulkItemError]:
        return [*self.created_errors, *self.updated_errors, *self.permission_errors]

    @property
    def partial(self) -> bool:
        return any(r.partial for r in self.requests) or bool(self.errors)

    @property
    def ok(self) -> bool:
        return not self.partial

    @property
    def item_count(self) -> int:
        return sum(r.item_count for r in self.requests)

    def merge(self, other: BulkUpsertResult) -> BulkUpsertResult:
        """A new result with the counts added and the lists concatenated."""
        return BulkUpsertResult(
            created=self.created + other.created,
            updated=self.updated + other.updated,
            nonupdates=self.nonupdates + other.nonupdates,
            inserts_keys=self.inserts_keys + other.inserts_keys,
            updates_keys=self.updates_keys + other.updates_keys,
            upserted_ids=self.upserted_ids + other.upserted_ids,
            modified=self.modified + other.modified,
            created_errors=self.created_errors + other.created_errors,
            updated_errors=self.updated_errors + other.updated_errors,
            permission_errors=self.permission_errors + other.permission_errors,
            requests=self.requests + other.requests,
        )


def has_keyable(item: Mapping[str, Any]) -> bool:
    """True when Planhat can match the item to an existing objective."""
    return any(item.get(key) not in (None, "") for key in KEYABLES)


def batch_result(
    body: Any, *, items: Sequence[Mapping[str, Any]], outcome: BatchOutcome
) -> BulkUpsertResult:
    """Read one bulk response body; tie its error entries to input positions."""
    data: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
    locate = _Locator(items, outcome.offset)
    for kind, key in _ERROR_LISTS.items():
        entries = data.get(key)
        if entries is None:
            entries = []
        elif not isinstance(entries, list):
            entries = [entries]
        data[key] = [_item_error(entry, kind, outcome.index, locate) for entry in entries]
    result = BulkUpsertResult.model_validate({**data, "requests": []})
    partial = outcome.partial or bool(result.errors)
    return result.model_copy(update={"requests": [outcome.model_copy(update={"partial": partial})]})


class _Locator:
    """Finds an item of a batch by its ``index`` (when its keys agree) or by a keyable."""

    def __init__(self, items: Sequence[Mapping[str, Any]], offset: int) -> None:
        self._items = items
        self._offset = offset
        self._index: dict[tuple[str, str], int] = {}
        for position, item in enumerate(items):
            for key in KEYABLES:
                value = item.get(key)
                if value not in (None, ""):
                    self._index.setdefault((key, str(value)), position)

    def __call__(self, keys: Mapping[str, Any], position: Any = None) -> int | None:
        if self._agrees(position, keys):
            return self._offset + int(position)
        for key in KEYABLES:
            value = keys.get(key)
            if value not in (None, ""):
                found = self._index.get((key, str(value)))
                if found is not None:
                    return self._offset + found
        return None

    def _agrees(self, position: Any, keys: Mapping[str, Any]) -> bool:
        if isinstance(position, bool) or not isinstance(position, int):
            return False
        if not 0 <= position < len(self._items):
            return False
        item = self._items[position]
        return all(str(item.get(key)) == str(value) for key, value in keys.items())


def _is_key(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and value != ""


def _item_error(entry: Any, kind: ErrorKind, batch: int, locate: _Locator) -> BulkItemError:
    keys: dict[str, Any] = {}
    message: Any = entry
    position: Any = None
    if isinstance(entry, dict):
        position = entry.get("index")
        nested = [
            v for k in ("item", "object", "data", "doc") if isinstance(v := entry.get(k), dict)
        ]
        for source in (*nested, entry):
            keys.update({k: source[k] for k in KEYABLES if _is_key(source.get(k))})
        if "_id" not in keys and _is_key(entry.get("id")):
            keys["_id"] = entry["id"]
        message = next(
            (entry[k] for k in ("error", "message", "msg", "reason") if entry.get(k)), entry
        )
    text = message if isinstance(message, str) else json.dumps(message, default=str)
    return BulkItemError(
        kind=kind,
        message=text,
        id=keys.get("_id"),
        source_id=keys.get("sourceId"),
        external_id=keys.get("externalId"),
        batch_index=batch,
        item_index=locate(keys, position),
        raw=entry,
    )
