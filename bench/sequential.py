"""The peers' strategy, written plainly: one limit/offset request after another into DuckDB.

This is how Airbyte's Planhat connector and the public Python clients page: ask for
2,000 objectives, parse the JSON, move the offset on by what came back, stop on an
empty page. Each page goes into DuckDB as it arrives with one INSERT of the page's
columns as lists (``unnest``), which is the fast way to insert Python rows into
DuckDB without pandas or Arrow. ``executemany`` would be the most literal choice,
but DuckDB runs it row by row (about 500 rows/s measured here): the comparison
would then be about a DuckDB API pitfall instead of the paging strategy.

With ``spec.retry_429`` it also does what those connectors do against a rate limit:
a 429 is retried after the ``Retry-After`` seconds when the server sends them, else
after an exponential backoff (0.5 s, doubling, at most 30 s: our client's defaults,
without jitter), at most `MAX_ATTEMPTS` times per page. Without it, a 429 fails the run.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx

from .common import SNAPSHOT_DATE, count_rows
from .worker import Outcome, RunSpec, Stopwatch

TABLE = "planhat_objectives"
MAX_ATTEMPTS = 12
INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 30.0

_CREATE = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    snapshot_date DATE, objective_id VARCHAR, name VARCHAR, health DOUBLE,
    company_id VARCHAR, company_name VARCHAR, external_id VARCHAR, source_id VARCHAR,
    custom JSON, usage JSON, captured_at TIMESTAMP
)
"""
_INSERT = f"""
INSERT INTO {TABLE}
SELECT $snapshot_date, unnest($ids), unnest($names), unnest($healths), unnest($company_ids),
       unnest($company_names), unnest($external_ids), unnest($source_ids),
       unnest($customs)::JSON, unnest($usages)::JSON, $captured_at
"""


def extract(spec: RunSpec) -> Outcome:
    database = Path(spec.workdir) / "sequential.duckdb"
    requests = throttled = 0
    waited = 0.0
    with Stopwatch() as watch:
        captured_at = datetime.now(UTC).replace(tzinfo=None)
        headers = {"Authorization": f"Bearer {spec.token}"}
        with (
            httpx.Client(base_url=spec.base_url, headers=headers, timeout=60.0) as http,
            duckdb.connect(str(database)) as con,
        ):
            con.execute(_CREATE)
            offset = 0
            for _ in range(spec.max_pages):
                params: dict[str, str | int] = {
                    "limit": spec.page_size,
                    "offset": offset,
                    "sort": "_id",
                }
                for attempt in range(MAX_ATTEMPTS):
                    response = http.get("/objectives", params=params)
                    requests += 1
                    if response.status_code != 429 or not spec.retry_429:
                        break
                    throttled += 1
                    pause = _backoff(response, attempt)
                    time.sleep(pause)
                    waited += pause
                response.raise_for_status()
                records = response.json()
                if not records:
                    break
                con.execute(_INSERT, _columns(records, captured_at))
                offset += len(records)
            else:
                raise RuntimeError(f"no empty page after {spec.max_pages} pages")
    return Outcome(
        seconds=watch.seconds,
        records=count_rows(database, TABLE),
        client_requests=requests,
        details={
            "database": str(database),
            "table": TABLE,
            "throttled": throttled,
            "retry_wait_seconds": round(waited, 3),
        },
    )


def _backoff(response: httpx.Response, attempt: int) -> float:
    """Seconds to wait after a 429: its Retry-After seconds, else exponential backoff."""
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return float(min(INITIAL_BACKOFF * 2**attempt, MAX_BACKOFF))


def _columns(records: list[dict[str, Any]], captured_at: datetime) -> dict[str, Any]:
    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    def as_json(value: Any) -> str | None:
        return None if value is None else json.dumps(value)

    return {
        "snapshot_date": SNAPSHOT_DATE,
        "captured_at": captured_at,
        "ids": [r["_id"] for r in records],
        "names": [r.get("name") for r in records],
        "healths": [r.get("health") for r in records],
        "company_ids": [r.get("companyId") for r in records],
        "company_names": [r.get("companyName") for r in records],
        "external_ids": [text(r.get("externalId")) for r in records],
        "source_ids": [text(r.get("sourceId")) for r in records],
        "customs": [as_json(r.get("custom")) for r in records],
        "usages": [as_json(r.get("usage")) for r in records],
    }
