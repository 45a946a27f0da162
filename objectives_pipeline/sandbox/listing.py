"""Sorting and field selection for list requests."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from objectives_pipeline.sandbox.data import JsonObject


def sort_key(path: Sequence[str]) -> Callable[[JsonObject], tuple[int, Any]]:
    """A sort key for the (dotted) property `path` that orders any mix of JSON values.

    Missing and null come first, then numbers, strings, objects, arrays, booleans
    (MongoDB's order of types).
    """

    def key(obj: JsonObject) -> tuple[int, Any]:
        value: Any = obj
        for part in path:
            if not isinstance(value, dict):
                return (0, 0)
            value = value.get(part)
        if value is None:
            return (0, 0)
        if isinstance(value, bool):
            return (5, value)
        if isinstance(value, int | float):
            return (1, value)
        if isinstance(value, str):
            return (2, value)
        return (3 if isinstance(value, dict) else 4, json.dumps(value, sort_keys=True))

    return key


def project(obj: JsonObject, fields: Iterable[str]) -> JsonObject:
    """`obj` reduced to `_id` and the (dotted) `fields` it has, as ``select=`` asks."""
    out: JsonObject = {"_id": obj["_id"]}
    for name in fields:
        parts = name.split(".")
        value: Any = obj
        for part in parts:
            if not isinstance(value, dict) or part not in value:
                break
            value = value[part]
        else:
            target = out
            for part in parts[:-1]:
                target = target.setdefault(part, {})
            target[parts[-1]] = value
    return out
