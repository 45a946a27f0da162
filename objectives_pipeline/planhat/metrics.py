"""Custom metrics (``POST /dimensiondata/<tenant>``): items, batching and results."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from pydantic_core import to_json

from .errors import ConfigError, InvalidItemError
from .models import IdString

MAX_METRIC_BATCH = 5000
MAX_BODY_BYTES = 32 * 1024 * 1024
_DIMENSION_ID = re.compile(r"[A-Za-z0-9_]+")


def check_dimension_id(value: str) -> str:
    """`value` if Planhat accepts it as a dimensionId (letters, digits, underscore)."""
    if not isinstance(value, str) or not _DIMENSION_ID.fullmatch(value):
        raise ValueError(f"a dimensionId has only letters, digits and underscores, got {value!r}")
    return value


def check_tenant_uuid(value: str | None) -> str | None:
    """The tenant UUID normalised (lower case), None when unset; `ConfigError` when malformed."""
    if value is None or not value.strip():
        return None
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        raise ConfigError(
            f"PLANHAT_TENANT_UUID {value.strip()!r} is not a UUID: copy your tenant's UUID from "
            "Planhat (Settings > Private apps shows it next to the API endpoint for metrics)"
        ) from None


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("value must be a finite number")
    return value


def _check_external(value: str) -> str:
    if not value.strip():
        raise ValueError("externalId must not be blank: companies without one cannot get metrics")
    return value


class MetricItem(BaseModel):
    """One value of a custom metric for one company and day."""

    model_config = ConfigDict(
        validate_by_name=True, validate_by_alias=True, serialize_by_alias=True, frozen=True
    )

    dimension_id: Annotated[str, AfterValidator(check_dimension_id)] = Field(alias="dimensionId")
    value: Annotated[float, AfterValidator(_finite)]
    external_id: Annotated[IdString, AfterValidator(_check_external)] = Field(alias="externalId")
    model: Literal["Company"] = "Company"
    date: date

    def to_payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


class MetricError(BaseModel):
    """One item Planhat did not process: `item_index` is its position in the input, if known."""

    message: str
    item_index: int | None = None
    item: dict[str, Any] | None = None


class MetricsResult(BaseModel):
    """What `push_metrics` did: items processed, per-item errors, requests sent."""

    processed: int = 0
    errors: list[MetricError] = Field(default_factory=list)
    requests: int = 0
    items: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors and self.processed == self.items


def metric_payloads(items: Iterable[MetricItem | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validated payloads; `InvalidItemError` naming the first bad item."""
    payloads = []
    for position, item in enumerate(items):
        try:
            model = item if isinstance(item, MetricItem) else MetricItem.model_validate(item)
        except PydanticValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"]) or "item"
            raise InvalidItemError(
                f"Metric item {position} not sent ({where}: {problem['msg']}); nothing was sent"
            ) from None
        payloads.append(model.to_payload())
    return payloads


def metric_batches(
    payloads: list[dict[str, Any]], *, batch_size: int = MAX_METRIC_BATCH
) -> Iterator[tuple[int, int, bytes]]:
    """(offset of the first item, item count, JSON body): at most `batch_size` items, 32 MB."""
    start = 0
    while start < len(payloads):
        end, size = start, 2
        while end < len(payloads) and end - start < batch_size:
            item_size = len(to_json(payloads[end])) + 1
            if end > start and size + item_size > MAX_BODY_BYTES:
                break
            size += item_size
            end += 1
        yield start, end - start, to_json(payloads[start:end])
        start = end


def batch_errors(
    body: Mapping[str, Any], payloads: list[dict[str, Any]], offset: int
) -> tuple[int, list[MetricError]]:
    """`processed` and the errors of one response, tied to input positions where possible."""
    processed = body.get("processed")
    count = processed if isinstance(processed, int) and not isinstance(processed, bool) else 0
    by_key: dict[tuple[str, str, str], int] = {}
    for position, payload in enumerate(payloads):
        by_key.setdefault(_key(payload), offset + position)
    errors = []
    entries = body.get("errors")
    for entry in entries if isinstance(entries, list) else []:
        item = entry.get("item") if isinstance(entry, dict) else None
        message = entry.get("error") if isinstance(entry, dict) else entry
        index = by_key.get(_key(item)) if isinstance(item, dict) else None
        errors.append(
            MetricError(
                message=message if isinstance(message, str) else str(to_json(message), "utf-8"),
                item_index=index,
                item=item if isinstance(item, dict) else None,
            )
        )
    return count, errors


def _key(item: Mapping[str, Any]) -> tuple[str, str, str]:
    return (str(item.get("dimensionId")), str(item.get("externalId")), str(item.get("date")))
