"""References to objectives and companies: a Planhat ``_id``, ``extid-…`` or ``srcid-…``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Self

OBJECT_ID = re.compile(r"[0-9a-fA-F]{24}")
EXTERNAL_PREFIX = "extid-"
SOURCE_PREFIX = "srcid-"


def _key(value: str | int, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError(f"{what} must be a string or an integer, got {type(value).__name__}")
    text = str(value)
    if not text.strip():
        raise ValueError(f"{what} must not be empty")
    return text


@dataclass(frozen=True, slots=True)
class _Ref:
    value: str

    @classmethod
    def id(cls, object_id: str) -> Self:
        """A Planhat ``_id`` (24 hex digits)."""
        if not isinstance(object_id, str) or not OBJECT_ID.fullmatch(object_id):
            raise ValueError(f"A Planhat _id is 24 hex digits, got {object_id!r}")
        return cls(object_id)

    @classmethod
    def external(cls, external_id: str | int) -> Self:
        """By your system's id: ``extid-<externalId>``."""
        return cls(EXTERNAL_PREFIX + _key(external_id, "externalId"))

    @classmethod
    def source(cls, source_id: str | int) -> Self:
        """By an integration's id: ``srcid-<sourceId>``."""
        return cls(SOURCE_PREFIX + _key(source_id, "sourceId"))

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class ObjectiveRef(_Ref):
    """Names one objective for get/update/delete.

    ``ObjectiveRef.external("1234")`` is ``extid-1234``,
    ``ObjectiveRef.source("sfc-1")`` is ``srcid-sfc-1``.
    """


@dataclass(frozen=True, slots=True)
class CompanyRef(_Ref):
    """Names a company in ``companyId`` on writes and in list filters."""


def is_company_ref(value: str) -> bool:
    """True for a 24-hex ``_id`` or a non-empty ``extid-``/``srcid-`` reference."""
    if OBJECT_ID.fullmatch(value):
        return True
    for prefix in (EXTERNAL_PREFIX, SOURCE_PREFIX):
        if value.startswith(prefix) and value[len(prefix) :].strip():
            return True
    return False
