"""The ELT job through real Dagster runs: sandbox over HTTP into a temp DuckDB file."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from objectives_pipeline.defs.jobs import objectives_elt_daily
from objectives_pipeline.defs.partitions import daily_partitions
from objectives_pipeline.sandbox import SandboxServer

from .dagster_helpers import defs_for, materialization_metadata, query, run_elt

DAY = "2026-11-20"


@pytest.fixture(scope="module")
def server(sandbox) -> SandboxServer:  # type: ignore[no-untyped-def]
    return sandbox(objectives=4321, companies=137, seed=11)


def expected_health(server: SandboxServer) -> dict[str, tuple[int, int, float | None]]:
    """(objectives, with health, average health) per company, from the sandbox's own data."""
    healths: dict[str, list[float]] = defaultdict(list)
    counts: dict[str, int] = defaultdict(int)
    for obj in server.store.all_objectives():
        company = obj.get("companyId")
        if not company:
            continue
        counts[company] += 1
        health = obj.get("health")
        if isinstance(health, int | float) and not isinstance(health, bool):
            healths[company].append(float(health))
    return {
        c: (n, len(healths[c]), sum(healths[c]) / len(healths[c]) if healths[c] else None)
        for c, n in counts.items()
    }


def test_elt_lands_every_objective_and_company_health_matches_the_source(
    server: SandboxServer, tmp_path: Path
) -> None:
    db = tmp_path / "objectives.duckdb"
    result = run_elt(defs_for(server, db), DAY)
    assert result.success

    assert query(
        db, "SELECT count(*) FROM raw.planhat_objectives WHERE snapshot_date = ?", [DAY]
    ) == [(server.store.count(),)]
    stored_ids = {o["_id"] for o in server.store.all_objectives()}
    landed_ids = {r[0] for r in query(db, "SELECT objective_id FROM raw.planhat_objectives")}
    assert landed_ids == stored_ids

    expected = expected_health(server)
    rows = query(
        db,
        "SELECT company_id, objective_count, objectives_with_health, avg_health "
        "FROM company_objective_health",
    )
    assert {r[0] for r in rows} == set(expected)
    for company_id, count, with_health, avg in rows:
        exp_count, exp_with, exp_avg = expected[company_id]
        assert (count, with_health) == (exp_count, exp_with), company_id
        assert (avg is None) == (exp_avg is None)
        if avg is not None:
            assert avg == pytest.approx(exp_avg)

    meta = materialization_metadata(result, "planhat_objectives")
    assert meta["rows"] == server.store.count()
    assert meta["companies"] == len(expected)
    assert meta["pages"] == 3  # 4321 objectives at 2000 per page
    assert meta["requests"] >= 3
    assert meta["records_per_second"] > 0
    assert "objective_id" in meta["preview"]
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["unique_objective_per_snapshot"] and checks["company_id_present"]
    assert checks["row_count_stable"]


def test_running_a_partition_twice_replaces_it_without_duplicates(
    server: SandboxServer, tmp_path: Path
) -> None:
    db = tmp_path / "objectives.duckdb"
    defs = defs_for(server, db)
    assert run_elt(defs, DAY).success
    first = query(db, "SELECT objective_id, name, health FROM raw.planhat_objectives ORDER BY 1")
    assert run_elt(defs, DAY).success
    second = query(db, "SELECT objective_id, name, health FROM raw.planhat_objectives ORDER BY 1")
    assert first == second
    assert query(
        db, "SELECT count(*) - count(DISTINCT objective_id) FROM raw.planhat_objectives"
    ) == [(0,)]


def test_a_run_that_fails_mid_paging_leaves_the_previous_partition_intact(
    server: SandboxServer, tmp_path: Path
) -> None:
    db = tmp_path / "objectives.duckdb"
    defs = defs_for(server, db)
    assert run_elt(defs, DAY).success
    before = query(db, "SELECT objective_id, captured_at FROM raw.planhat_objectives ORDER BY 1")

    server.faults.expire_token_after_requests = 2  # page 3 of 5 gets 401
    try:
        failed = run_elt(defs, DAY, run_config=_page_size(1000))
    finally:
        server.faults.expire_token_after_requests = None
    assert not failed.success
    failure = next(e for e in failed.all_events if e.is_step_failure)
    message = failure.step_failure_data.error.message  # type: ignore[union-attr]
    assert "401" in message and "PLANHAT_API_TOKEN" in message
    assert server.token not in message
    assert (
        query(db, "SELECT objective_id, captured_at FROM raw.planhat_objectives ORDER BY 1")
        == before
    )

    assert run_elt(defs, DAY).success  # and the next run works


def test_backfill_of_three_days_snapshots_each_date(server: SandboxServer, tmp_path: Path) -> None:
    db = tmp_path / "objectives.duckdb"
    defs = defs_for(server, db)
    keys = daily_partitions.get_partition_keys_in_range(
        dg.PartitionKeyRange("2026-11-01", "2026-11-03")
    )
    assert keys == ["2026-11-01", "2026-11-02", "2026-11-03"]
    with dg.DagsterInstance.ephemeral() as instance:
        for key in keys:
            assert run_elt(defs, key, instance=instance).success
        materialized = instance.get_materialized_partitions(dg.AssetKey("planhat_objectives"))
    assert materialized == set(keys)
    per_day = query(
        db,
        "SELECT snapshot_date::VARCHAR, count(*) FROM raw.planhat_objectives GROUP BY 1 ORDER BY 1",
    )
    assert per_day == [(k, server.store.count()) for k in keys]
    daily = query(db, "SELECT count(DISTINCT snapshot_date) FROM company_objective_health_daily")
    assert daily == [(3,)]


def test_daily_schedule_requests_the_partition_of_the_day_it_fires() -> None:
    from objectives_pipeline.definitions import defs

    context = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 29, 6, 0, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    request = objectives_elt_daily.evaluate_tick(context).run_requests
    assert request is not None and len(request) == 1
    assert request[0].partition_key == "2026-11-29"


def test_page_size_over_2000_is_refused_before_any_request(
    server: SandboxServer, tmp_path: Path
) -> None:
    defs = defs_for(server, tmp_path / "objectives.duckdb")
    requests_before = len(server.request_log)
    result = run_elt(defs, DAY, run_config=_page_size(5000))
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.error  # type: ignore[union-attr]
    text = error.to_string() if error else ""
    assert "page_size" in text and "less than or equal to 2000" in text
    assert len(server.request_log) == requests_before


def _page_size(size: int) -> dict[str, object]:
    return {"ops": {"planhat_objectives": {"config": {"page_size": size}}}}
