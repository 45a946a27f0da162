"""Company filters for ``GET /objectives``: normalising ids and keeping queries short."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import httpx

from .errors import ConfigError
from .refs import CompanyRef

MAX_QUERY_LENGTH = 2000
"""Public Planhat clients keep the query string under about 2,000 characters."""


def company_ids(value: str | CompanyRef | Sequence[str | CompanyRef] | None) -> list[str] | None:
    """The ids of a company filter, in order, without duplicates; None for no filter.

    A string may hold several comma-separated ids.
    """
    if value is None:
        return None
    items = [value] if isinstance(value, str | CompanyRef) else list(value)
    ids: list[str] = []
    for item in items:
        text = item.value if isinstance(item, CompanyRef) else item
        if not isinstance(text, str):
            raise ConfigError(
                f"company_id takes strings or CompanyRef values, got {type(text).__name__}"
            )
        ids.extend(part.strip() for part in text.split(",") if part.strip())
    return list(dict.fromkeys(ids))


def _encoded_length(value: str) -> int:
    return len(str(httpx.QueryParams({"c": value}))) - len("c=")


def company_chunks(
    ids: Sequence[str], params: Mapping[str, str], max_length: int
) -> list[list[str]]:
    """Split `ids` so that each query (with `params`, offset and limit) stays within
    `max_length` characters; an id too long on its own gets a query of its own."""
    room = {**params, "companyId": "", "offset": "9" * 10, "limit": "2000"}
    budget = max_length - len(str(httpx.QueryParams(room)))
    comma = _encoded_length(",")
    chunks: list[list[str]] = []
    chunk: list[str] = []
    used = 0
    for company in ids:
        size = _encoded_length(company)
        if chunk and used + comma + size > budget:
            chunks.append(chunk)
            chunk, used = [], 0
        used += size + (comma if chunk else 0)
        chunk.append(company)
    if chunk:
        chunks.append(chunk)
    return chunks
