"""Row validation before anything is sent: what Planhat needs, and what keeps a push idempotent.

A row becomes a `PushRow` (pydantic) or a rejection with a reason a user can act on.
Checks run in pydantic-core where they can (this is on the path of every changed row);
the reasons are worded from the error types only when a row fails.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import ErrorDetails, from_json

from objectives_pipeline.planhat.refs import is_company_ref

ALLOW_CREATE_WITHOUT_KEY = "allow_create_without_key"
NO_KEY = (
    "no source_id or external_id: Planhat could not match the row on a later push and would "
    "create a duplicate (set allow_create_without_key to send it anyway)"
)


def _company_ref(value: str) -> str:
    if not is_company_ref(value):
        raise ValueError(
            f"{value!r} is not a company reference: use a Planhat company _id (24 hex digits), "
            "'extid-<company externalId>' or 'srcid-<company sourceId>'"
        )
    return value


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(f"must be a number, got {value!r}")
    return value


def _blank_is_none(value: str | None) -> str | None:
    return value or None


def _json_object(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = from_json(value)
        except ValueError:
            raise ValueError("is not valid JSON") from None
    if value is None or isinstance(value, dict):
        return value
    raise ValueError(f"must be a JSON object, got {_json_kind(value)}")


FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Key = Annotated[str | None, StringConstraints(strip_whitespace=True), AfterValidator(_blank_is_none)]


class PushRow(BaseModel):
    """One source row, valid for a bulk upsert.

    Validate with ``PushRow.model_validate(row, context={"allow_create_without_key": bool})``:
    without that flag a row needs a `source_id` or an `external_id`, so that sending it again
    updates the same objective instead of creating a second one. `health` may be a number
    or numeric text; `custom` a JSON object, also as JSON text.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", coerce_numbers_to_str=True)

    name: Text
    company_id: Annotated[Text, AfterValidator(_company_ref)]
    health: Annotated[FiniteFloat | None, BeforeValidator(_no_bool)] = None
    external_id: Key = None
    source_id: Key = None
    custom: Annotated[dict[str, Any] | None, BeforeValidator(_json_object)] = None

    @model_validator(mode="after")
    def _has_key(self, info: ValidationInfo) -> PushRow:
        allowed = bool(info.context and info.context.get(ALLOW_CREATE_WITHOUT_KEY))
        if self.source_id is None and self.external_id is None and not allowed:
            raise ValueError(NO_KEY)
        return self

    def payload(self, fields: tuple[str, ...]) -> dict[str, Any]:
        """The bulk-upsert item, with the fields of the source's columns.

        `health` is sent even when null (the source says "no health"); keys and `custom`
        only when set, so that a null never wipes what Planhat holds.
        """
        item: dict[str, Any] = {"name": self.name, "companyId": self.company_id}
        if "health" in fields:
            item["health"] = self.health
        if self.external_id is not None:
            item["externalId"] = self.external_id
        if self.source_id is not None:
            item["sourceId"] = self.source_id
        if self.custom is not None:
            item["custom"] = self.custom
        return item


_CONTEXTS = {flag: {ALLOW_CREATE_WITHOUT_KEY: flag} for flag in (False, True)}


def validate_row(row: dict[str, Any], *, allow_create_without_key: bool) -> PushRow | str:
    """The valid row, or the reason it is rejected."""
    try:
        return PushRow.model_validate(row, context=_CONTEXTS[bool(allow_create_without_key)])
    except ValidationError as exc:
        return rejection_reason(exc)


def rejection_reason(exc: ValidationError) -> str:
    """Every problem of a row in one line, e.g. ``name: required, but missing or blank``."""
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"])
        message = _message(error)
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def _message(error: ErrorDetails) -> str:
    kind, value, field = error["type"], error.get("input"), str(error["loc"][:1] or ("",))
    if kind == "value_error":
        return str(error["msg"]).removeprefix("Value error, ")
    if kind in ("missing", "string_too_short") or (kind == "string_type" and value is None):
        return "required, but missing or blank"
    if kind == "string_type":
        return f"must be text, got {type(value).__name__}"
    if kind in ("float_parsing", "float_type"):
        return f"must be a number, got {value!r}"
    if kind == "finite_number":
        return f"must be a finite number, got {value!r}"
    return f"{error['msg']} ({field})"


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, bool):
        return "a JSON boolean"
    if isinstance(value, int | float):
        return "a JSON number"
    if isinstance(value, str):
        return "a JSON string"
    return type(value).__name__
