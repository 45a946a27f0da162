"""Per-row outcomes of one bulk request: Planhat's answer matched back to the rows sent.

Planhat reports created and updated items by their keys (``insertsKeys``,
``updatesKeys``) and failed items in ``createdErrors`` / ``updatedErrors`` /
``permissionErrors``, whose entries name the item's keys (the client locates them).
A row in no error list succeeded: ``created`` or ``updated`` when a key list names it,
else ``unmodified`` (Planhat's ``nonupdates``). A row's outcome is unknown, and the row
counts as failed so that the next run sends it again (items are matched by key: resending
creates nothing twice), when Planhat reports an error it does not tie to any item, and for
a row Planhat never confirmed before (no known id) that is in no list when Planhat's
``nonupdates`` count does not cover every such row. In a batch that was sent again after a
lost answer, such a row that Planhat found unchanged is ``created``: the lost attempt made it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from objectives_pipeline.planhat.bulk import BulkItemError, BulkUpsertResult

from .audit import RowOutcome

_ERROR_KIND = {
    "created": "create failed",
    "updated": "update failed",
    "permission": "permission denied",
}


@dataclass(frozen=True)
class OutgoingRow:
    """A validated row, ready to send."""

    row_number: int
    push_key: str
    payload_hash: str
    known_id: str | None
    payload: dict[str, Any]
    source_id: str | None = field(init=False)
    external_id: str | None = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "source_id", _text(self.payload.get("sourceId")))
        object.__setattr__(self, "external_id", _text(self.payload.get("externalId")))

    def outcome(
        self,
        outcome: str,
        *,
        batch: int | None,
        planhat_id: str | None = None,
        error: str | None = None,
    ) -> RowOutcome:
        return RowOutcome(
            row_number=self.row_number,
            push_key=self.push_key,
            payload_hash=self.payload_hash,
            source_id=self.source_id,
            external_id=self.external_id,
            outcome=outcome,
            payload=self.payload,
            batch=batch,
            planhat_id=planhat_id,
            error=error,
        )


def match_batch(
    rows: Sequence[OutgoingRow], result: BulkUpsertResult, batch: int
) -> list[RowOutcome]:
    """One outcome per row of a batch, in the batch's order."""
    locate = _Locator(rows)
    offset = result.requests[0].offset if result.requests else 0
    errors: dict[int, list[str]] = {}
    unlocated: list[str] = []
    for error in result.errors:
        position = _error_position(error, locate, offset, len(rows))
        text = f"{_ERROR_KIND[error.kind]}: {error.message}"
        if position is None:
            unlocated.append(text)
        else:
            errors.setdefault(position, []).append(text)

    done: dict[int, tuple[str, str | None]] = {}
    for kind, keys_list in (("created", result.inserts_keys), ("updated", result.updates_keys)):
        leftover_ids: list[str | None] = []
        for keys in keys_list:
            position = locate(keys)
            object_id = _text(keys.get("_id"))
            if position is None or position in done or position in errors:
                leftover_ids.append(object_id)
            else:
                done[position] = (kind, object_id)
        if kind == "created":
            _assign_keyless(rows, errors, done, leftover_ids)

    unconfirmed = _unconfirmed_reason(rows, errors, done, result, unlocated)
    retried = any(request.attempts > 1 for request in result.requests)
    outcomes = []
    for position, row in enumerate(rows):
        if position in errors:
            outcome = row.outcome("failed", batch=batch, error="; ".join(errors[position]))
        elif position in done:
            kind, object_id = done[position]
            outcome = row.outcome(kind, batch=batch, planhat_id=object_id or row.known_id)
        elif unlocated:
            outcome = row.outcome(
                "failed",
                batch=batch,
                error="outcome unknown: Planhat reported errors it did not tie to an item: "
                + "; ".join(unlocated[:3]),
            )
        elif row.known_id is None and unconfirmed is not None:
            outcome = row.outcome("failed", batch=batch, error=unconfirmed)
        elif row.known_id is None and retried:
            # Planhat found it unchanged on the retry: the attempt whose answer was lost made it.
            outcome = row.outcome("created", batch=batch)
        else:
            outcome = row.outcome("unmodified", batch=batch, planhat_id=row.known_id)
        outcomes.append(outcome)
    return outcomes


def _unconfirmed_reason(
    rows: Sequence[OutgoingRow],
    errors: Mapping[int, list[str]],
    done: Mapping[int, tuple[str, str | None]],
    result: BulkUpsertResult,
    unlocated: list[str],
) -> str | None:
    """Why rows in no list cannot be taken as unchanged, if they cannot."""
    if unlocated:
        return None
    silent = sum(1 for p in range(len(rows)) if p not in errors and p not in done)
    if silent > result.nonupdates:
        return (
            f"outcome unknown: Planhat counted {result.nonupdates} unchanged items but "
            f"{silent} rows are in none of its lists; the next run sends them again"
        )
    return None


def all_failed(rows: Sequence[OutgoingRow], batch: int | None, error: str) -> list[RowOutcome]:
    return [row.outcome("failed", batch=batch, error=error) for row in rows]


def all_not_sent(rows: Sequence[OutgoingRow], batch: int | None, error: str) -> list[RowOutcome]:
    return [row.outcome("not_sent", batch=batch, error=error) for row in rows]


def dry_run(rows: Sequence[OutgoingRow], batch: int) -> list[RowOutcome]:
    """What a real push would do, as far as the state and the latest snapshot know."""
    return [
        row.outcome("would_update" if row.known_id else "would_create", batch=batch,
                    planhat_id=row.known_id)
        for row in rows
    ]


class _Locator:
    """Finds a row of a batch by its sourceId, else its externalId (Planhat's order)."""

    def __init__(self, rows: Sequence[OutgoingRow]) -> None:
        self._by: dict[tuple[str, str], int] = {}
        for position, row in enumerate(rows):
            if row.source_id is not None:
                self._by.setdefault(("sourceId", row.source_id), position)
            if row.external_id is not None:
                self._by.setdefault(("externalId", row.external_id), position)

    def __call__(self, keys: Mapping[str, Any]) -> int | None:
        for key in ("sourceId", "externalId"):
            value = _text(keys.get(key))
            if value is not None and (key, value) in self._by:
                return self._by[(key, value)]
        return None


def _error_position(
    error: BulkItemError, locate: _Locator, offset: int, size: int
) -> int | None:
    if error.item_index is not None and 0 <= error.item_index - offset < size:
        return error.item_index - offset
    return locate({"sourceId": error.source_id, "externalId": error.external_id})


def _assign_keyless(
    rows: Sequence[OutgoingRow],
    errors: Mapping[int, list[str]],
    done: dict[int, tuple[str, str | None]],
    created_ids: list[str | None],
) -> None:
    """Rows without keys can only be matched to created _ids by order."""
    keyless = [
        p for p, row in enumerate(rows)
        if row.source_id is None and row.external_id is None and p not in errors
    ]
    for position, object_id in zip(keyless, created_ids, strict=False):
        done[position] = ("created", object_id)


def _text(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    return str(value)
