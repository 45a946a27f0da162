"""Objectives as they come from Planhat and as they are sent to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
)
from typing_extensions import TypedDict

from .refs import CompanyRef, is_company_ref


def _number_to_str(value: Any) -> Any:
    """Planhat takes externalId/sourceId as numbers on write and returns strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return value


IdString = Annotated[str, BeforeValidator(_number_to_str)]


class Objective(BaseModel):
    """One objective as Planhat returns it.

    Unknown fields are kept (``obj.model_extra``); ``model_dump()`` gives the API's
    field names (``_id``, ``companyId``, ...).
    """

    model_config = ConfigDict(
        extra="allow", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    id: str = Field(alias="_id")
    name: str | None = None
    health: float | None = None
    company_id: str | None = Field(default=None, alias="companyId")
    company_name: str | None = Field(default=None, alias="companyName")
    external_id: IdString | None = Field(default=None, alias="externalId")
    source_id: IdString | None = Field(default=None, alias="sourceId")
    custom: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    version: int | None = Field(default=None, alias="__v")


class Company(BaseModel):
    """One company as Planhat returns it; custom fields are in `custom`, keyed by their name.

    Unknown fields are kept (``company.model_extra``).
    """

    model_config = ConfigDict(
        extra="allow", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    id: str = Field(alias="_id")
    name: str | None = None
    external_id: IdString | None = Field(default=None, alias="externalId")
    source_id: IdString | None = Field(default=None, alias="sourceId")
    custom: dict[str, Any] | None = None


def _company_to_str(value: Any) -> Any:
    return value.value if isinstance(value, CompanyRef) else value


def _check_company(value: str) -> str:
    if not is_company_ref(value):
        raise ValueError(
            "companyId must be a company _id (24 hex digits) or a reference "
            "'extid-<company externalId>' / 'srcid-<company sourceId>' (see CompanyRef)"
        )
    return value


def _check_name(value: str) -> str:
    if not value.strip():
        raise ValueError("name must not be blank")
    return value


CompanyId = Annotated[str, BeforeValidator(_company_to_str), AfterValidator(_check_company)]


class ObjectiveIn(BaseModel):
    """An objective to create or upsert. `name` and `company_id` are required.

    Extra fields are sent as given. ``to_payload()`` gives the JSON body with
    the API's field names and only the fields that were set.
    """

    model_config = ConfigDict(
        extra="allow", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    name: Annotated[str, AfterValidator(_check_name)]
    company_id: CompanyId = Field(alias="companyId")
    id: str | None = Field(default=None, alias="_id")
    health: float | None = Field(default=None, allow_inf_nan=False)
    external_id: IdString | None = Field(default=None, alias="externalId")
    source_id: IdString | None = Field(default=None, alias="sourceId")
    custom: dict[str, Any] | None = None

    def to_payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class DeleteResult(BaseModel):
    """Planhat's answer to a delete: ``{"n": 1, "ok": 1, "deletedCount": 1}``."""

    model_config = ConfigDict(
        extra="allow", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    n: int | None = None
    ok: int | None = None
    deleted_count: int | None = Field(default=None, alias="deletedCount")


RECORDS = TypeAdapter(list[dict[str, Any]])


class _KeyedRecord(TypedDict):
    _id: NotRequired[Any]


#: Parses a page but keeps only each record's ``_id``: several times cheaper than `RECORDS`.
RECORD_IDS = TypeAdapter(list[_KeyedRecord])
PageParse = Literal["records", "ids"]


@dataclass(frozen=True, slots=True)
class ObjectivePage:
    """One page of ``GET /objectives``: the raw body and its records.

    `body` is the response exactly as received (a JSON array), e.g. for loading
    straight into DuckDB; `records` is the same array parsed into dicts.
    `offset` is where the page starts within its query; `limit` what was asked;
    `request_number` the client-wide number of the HTTP request that returned it;
    `attempts` how many tries it took.
    """

    offset: int
    limit: int
    body: bytes = field(repr=False)
    records: list[dict[str, Any]] = field(repr=False)
    request_number: int
    attempts: int

    def __len__(self) -> int:
        return len(self.records)

    @property
    def end(self) -> int:
        """The offset just after this page."""
        return self.offset + len(self.records)
