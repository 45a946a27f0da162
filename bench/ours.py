"""Our extraction, through the function the ``planhat_objectives`` asset calls.

:func:`objectives_pipeline.extract.extract_snapshot` into a fresh DuckDB file, with
the client and warehouse configured as the Dagster resources configure them for
the sandbox (no client-side rate limit: see bench/README.md), or, with
``spec.tenant_client``, the client the ``planhat`` resource builds for a real tenant.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from objectives_pipeline.extract import ExtractOptions, extract_snapshot
from objectives_pipeline.planhat import PlanhatClient, RetryPolicy
from objectives_pipeline.warehouse import Warehouse

from .common import SNAPSHOT_DATE, count_rows
from .worker import Outcome, RunSpec, Stopwatch

TABLE = "raw.planhat_objectives"


def client(spec: RunSpec) -> PlanhatClient:
    """A client as the ``planhat`` resource builds it for the sandbox: no client-side rate limit."""
    return PlanhatClient(
        spec.base_url,
        spec.token,
        timeout=60.0,
        retry=RetryPolicy(max_attempts=6),
        rate_limit_per_minute=None,
        max_in_flight=spec.concurrency,
    )


def warehouse(path: Path) -> Warehouse:
    """The warehouse as the ``warehouse`` resource builds it."""
    return Warehouse(path, lock_timeout=120.0)


def tenant_client_factory() -> Callable[[RunSpec], PlanhatClient]:
    """Builds clients as the ``planhat`` resource does when a token is set (a real tenant).

    Imports Dagster, so call it before timing starts, and only for runs that need it (the
    import adds to peak RSS).
    """
    from objectives_pipeline.resources import PlanhatResource

    def build(spec: RunSpec) -> PlanhatClient:
        return PlanhatResource(api_token=spec.token, base_url=spec.base_url).get_client()

    return build


def extract(spec: RunSpec) -> Outcome:
    database = Path(spec.workdir) / "ours.duckdb"
    options = ExtractOptions(page_size=spec.page_size, concurrency=spec.concurrency)
    make_client = tenant_client_factory() if spec.tenant_client else client
    with Stopwatch() as watch, make_client(spec) as planhat:
        result = extract_snapshot(planhat, warehouse(database), SNAPSHOT_DATE, options)
    stats = result.client_stats
    return Outcome(
        seconds=watch.seconds,
        records=count_rows(database, TABLE),
        client_requests=stats.requests,
        details={
            "database": str(database),
            "table": TABLE,
            "pages": result.pages,
            "load_seconds": round(result.load.seconds, 3),
            "boundaries_repaired": result.boundaries_repaired,
            "duplicates_removed": result.load.duplicates_removed,
            "client_stats": stats.model_dump(mode="json"),
        },
    )
