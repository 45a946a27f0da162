"""The push job against the sandbox over HTTP, with a real DuckDB file and real Dagster runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import pytest

from objectives_pipeline.defs.extract_assets import planhat_objectives
from objectives_pipeline.defs.reverse_etl import crm_objectives, push_objectives_to_planhat
from objectives_pipeline.defs.sql_assets import build_sql_model_assets
from objectives_pipeline.resources import PlanhatResource, SqlModelsResource, WarehouseResource
from objectives_pipeline.reverse_etl import generate_crm_objectives, write_crm_csv
from objectives_pipeline.sandbox import SandboxServer

COMPANIES = 20
TOKEN = "test-token-5f1d2c9b8a7e"


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer(objectives=30, companies=COMPANIES, seed=7, token=TOKEN) as srv:
        yield srv


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "warehouse.duckdb"


def make_source(db: Path, rows: int, *, table: str = "objectives_to_push") -> None:
    """`rows` valid objectives: keys src-000000..., companies C1000..C1019 of the sandbox."""
    with duckdb.connect(str(db)) as con:
        con.execute(
            f"""
            CREATE OR REPLACE TABLE {table} AS
            SELECT 'Objective ' || i AS name,
                   'extid-C' || (1000 + i % {COMPANIES}) AS company_id,
                   CASE WHEN i % 10 = 0 THEN NULL ELSE (i % 9) / 2.0 END AS health,
                   'ext-' || i AS external_id,
                   'src-' || lpad(CAST(i AS VARCHAR), 6, '0') AS source_id,
                   json_object('tier', CASE WHEN i % 2 = 0 THEN 'gold' ELSE 'silver' END,
                               'seats', i % 50, 'tags', ['a', 'b']) AS custom
            FROM range({rows}) t(i)
            """
        )


def run_push(
    srv: SandboxServer, db: Path, *, max_attempts: int = 4, timeout: float = 60.0, **config: Any
) -> dg.ExecuteInProcessResult:
    # The sandbox stands in for a real tenant here: writing it is enabled, as a user would.
    config.setdefault("enabled", True)
    return push_objectives_to_planhat.execute_in_process(
        run_config={"ops": {"push_objectives": {"config": config}}},
        resources={
            "planhat": PlanhatResource(
                api_token=srv.token,
                base_url=srv.base_url,
                max_attempts=max_attempts,
                timeout_seconds=timeout,
            ),
            "warehouse": WarehouseResource(path=str(db)),
        },
        raise_on_error=False,
    )


def puts(srv: SandboxServer) -> list[Any]:
    return [r for r in srv.request_log if r.method == "PUT" and r.path == "/objectives"]


def output_metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    for event in result.all_node_events:
        if event.is_successful_output:
            return {k: v.value for k, v in event.step_output_data.metadata.items()}
    raise AssertionError("the push op produced no output")


def failure(result: dg.ExecuteInProcessResult) -> tuple[str, dict[str, Any]]:
    for event in result.all_node_events:
        if event.is_step_failure:
            data = event.step_failure_data.user_failure_data
            assert data is not None, event.step_failure_data.error
            return data.description or "", {k: v.value for k, v in data.metadata.items()}
    raise AssertionError("the push did not fail")


def query(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def by_source_id(srv: SandboxServer, prefix: str = "src-") -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for obj in srv.store.all_objectives():
        sid = obj.get("sourceId")
        if isinstance(sid, str) and sid.startswith(prefix):
            found.setdefault(sid, []).append(obj)
    return found


def test_push_sends_rows_in_batches_then_only_changes(server: SandboxServer, db: Path) -> None:
    make_source(db, 12_345)
    before = server.store.count()

    first = run_push(server, db)

    assert first.success
    assert [r.n_items for r in puts(server)] == [5000, 5000, 2345]
    meta = output_metadata(first)
    assert (meta["rows_read"], meta["to_send"], meta["created"], meta["requests"]) == (
        12_345, 12_345, 12_345, 3,
    )
    assert server.store.count() == before + 12_345
    stored = by_source_id(server)
    companies = {c["externalId"]: c["_id"] for c in server.store.companies()}
    source = query(db, "SELECT name, company_id, health, external_id, source_id, custom "
                       "FROM objectives_to_push")
    assert len(stored) == len(source) == 12_345
    for name, company_id, health, external_id, source_id, custom in source:
        [obj] = stored[source_id]
        assert obj["name"] == name
        assert obj["companyId"] == companies[company_id.removeprefix("extid-")]
        assert obj["health"] == (None if health is None else float(health))
        assert obj["externalId"] == external_id
        assert obj["custom"] == json.loads(custom)
    [(status, created, sent)] = query(
        db, "SELECT status, created, sent FROM reverse_etl.push_runs WHERE run_id = ?",
        [first.run_id],
    )
    assert (status, created, sent) == ("succeeded", 12_345, 12_345)
    ids = query(db, "SELECT count(DISTINCT planhat_id) FROM reverse_etl.push_results "
                    "WHERE run_id = ? AND outcome = 'created'", [first.run_id])
    assert ids == [(12_345,)]

    second = run_push(server, db)

    assert second.success
    assert len(puts(server)) == 3, "an unchanged source sends no request"
    meta = output_metadata(second)
    assert (meta["unchanged"], meta["to_send"], meta["requests"]) == (12_345, 0, 0)

    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE objectives_to_push SET health = 4.75 "
                    "WHERE source_id IN (SELECT source_id FROM objectives_to_push "
                    "ORDER BY source_id LIMIT 10)")
    third = run_push(server, db)

    assert third.success
    assert [r.n_items for r in puts(server)[3:]] == [10]
    assert output_metadata(third)["updated"] == 10
    assert server.store.find_by_source_id("src-000003")[0]["health"] == 4.75
    assert server.store.count() == before + 12_345


def test_invalid_rows_are_rejected_with_reasons_and_the_rest_pushed(
    server: SandboxServer, db: Path
) -> None:
    make_source(db, 20)
    with duckdb.connect(str(db)) as con:
        con.execute("ALTER TABLE objectives_to_push ALTER health TYPE VARCHAR")
        con.execute("ALTER TABLE objectives_to_push ALTER custom TYPE VARCHAR")
        con.execute(
            """
            INSERT INTO objectives_to_push VALUES
              ('', 'extid-C1000', '3', 'x1', 'bad-name', NULL),
              ('Bad company', 'Acme Corp', '3', 'x2', 'bad-company', NULL),
              ('Bad health', 'extid-C1001', 'n/a', 'x3', 'bad-health', NULL),
              ('No key', 'extid-C1002', '2', NULL, NULL, NULL),
              ('Bad custom', 'extid-C1003', '2', 'x5', 'bad-custom', '[1, 2]'),
              ('Twin A', 'extid-C1004', '1', NULL, 'twin', NULL),
              ('Twin B', 'extid-C1005', '1', NULL, 'twin', NULL)
            """
        )

    result = run_push(server, db, max_rejected_share=0.5)

    assert result.success
    meta = output_metadata(result)
    assert (meta["rows_read"], meta["rejected"], meta["created"]) == (27, 7, 20)
    reasons = dict(query(db, "SELECT json_extract_string(row_data, '$.name'), reason "
                             "FROM reverse_etl.rejected_rows WHERE run_id = ?", [result.run_id]))
    assert reasons[""].startswith("name: required")
    assert "'Acme Corp' is not a company reference" in reasons["Bad company"]
    assert reasons["Bad health"] == "health: must be a number, got 'n/a'"
    assert reasons["No key"].startswith("no source_id or external_id")
    assert reasons["Bad custom"] == "custom: must be a JSON object, got a JSON array"
    assert "2 source rows share a key with this one (sourceId twin" in reasons["Twin A"]
    assert "2 source rows share a key with this one (sourceId twin" in reasons["Twin B"]
    assert len(by_source_id(server)) == 20
    assert server.store.find_by_source_id("bad-health") == []
    assert "| sourceId bad-health | rejected | health: must be a number, got 'n/a' |" in meta["errors"]

    strict = run_push(server, db)  # default max_rejected_share 0.1: 7 of 27 is too many

    assert not strict.success
    description, _ = failure(strict)
    assert "7 of 27 source rows were rejected" in description
    assert "reverse_etl.rejected_rows" in description
    assert len(puts(server)) == 1, "rejected rows are never sent; the valid ones are unchanged"


def test_rows_without_keys_are_sent_only_when_allowed(server: SandboxServer, db: Path) -> None:
    make_source(db, 3)
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE objectives_to_push SET source_id = NULL, external_id = NULL "
                    "WHERE name = 'Objective 2'")
    before = server.store.count()

    result = run_push(server, db, allow_create_without_key=True)
    again = run_push(server, db, allow_create_without_key=True)

    assert result.success and again.success
    assert output_metadata(result)["created"] == 3
    assert output_metadata(again)["unchanged"] == 3, "an unchanged keyless row is not resent"
    assert server.store.count() == before + 3


def test_items_planhat_refuses_fail_the_run_and_a_rerun_sends_only_them(
    server: SandboxServer, db: Path
) -> None:
    make_source(db, 50)
    server.faults.bulk_item_error_source_ids = {"src-000004", "src-000017", "src-000033"}
    server.faults.bulk_item_permission_source_ids = {"src-000008", "src-000040"}

    result = run_push(server, db)

    assert not result.success
    description, meta = failure(result)
    assert "5 of 50 rows to send did not succeed (5 failed, 0 not sent; 10.0%" in description
    assert "run push_objectives_to_planhat again" in description
    assert (meta["created"], meta["failed"]) == (45, 5)
    assert "Item rejected (sandbox fault)" in meta["errors"]
    failed = dict(query(db, "SELECT source_id, error FROM reverse_etl.push_results "
                            "WHERE run_id = ? AND outcome = 'failed'", [result.run_id]))
    assert failed == {
        "src-000004": "create failed: Item rejected (sandbox fault)",
        "src-000017": "create failed: Item rejected (sandbox fault)",
        "src-000033": "create failed: Item rejected (sandbox fault)",
        "src-000008": "permission denied: Permission denied for this objective",
        "src-000040": "permission denied: Permission denied for this objective",
    }
    [(status, failed_count)] = query(
        db, "SELECT status, failed FROM reverse_etl.push_runs WHERE run_id = ?", [result.run_id]
    )
    assert (status, failed_count) == ("failed", 5)

    server.faults.bulk_item_error_source_ids = set()
    server.faults.bulk_item_permission_source_ids = set()
    rerun = run_push(server, db)

    assert rerun.success
    assert [r.n_items for r in puts(server)] == [50, 5]
    assert output_metadata(rerun)["created"] == 5
    assert all(len(objs) == 1 for objs in by_source_id(server).values())
    assert len(by_source_id(server)) == 50


def test_a_500_in_the_second_batch_is_retried_without_duplicates(
    server: SandboxServer, db: Path
) -> None:
    make_source(db, 12)
    server.faults.bulk_500_on_request = 2
    server.faults.bulk_500_after_items = 3
    before = server.store.count()

    result = run_push(server, db, batch_size=5)

    assert result.success
    assert [(r.n_items, r.status) for r in puts(server)] == [
        (5, 200), (5, 500), (5, 200), (2, 200),
    ]
    stored = by_source_id(server)
    assert len(stored) == 12 and all(len(objs) == 1 for objs in stored.values())
    assert server.store.count() == before + 12
    meta = output_metadata(result)
    assert meta["requests"] == 4
    # the 3 items the crashed attempt applied are found unchanged by the retry: created
    assert (meta["created"], meta["unmodified"], meta["failed"]) == (12, 0, 0)


def test_a_batch_that_keeps_failing_stops_the_push_and_a_rerun_completes_it(
    server: SandboxServer, db: Path
) -> None:
    make_source(db, 12)
    server.faults.bulk_500_on_request = 2
    server.faults.bulk_500_after_items = 3

    result = run_push(server, db, batch_size=5, max_attempts=1)

    assert not result.success
    description, meta = failure(result)
    assert "batch 2 of 3 (5 rows) failed after the client's retries" in description
    assert (meta["created"], meta["failed"], meta["not_sent"]) == (5, 5, 2)
    outcomes = query(db, "SELECT outcome, count(*) FROM reverse_etl.push_results "
                         "WHERE run_id = ? GROUP BY ALL ORDER BY ALL", [result.run_id])
    assert outcomes == [("created", 5), ("failed", 5), ("not_sent", 2)]

    rerun = run_push(server, db, batch_size=5, max_attempts=1)

    assert rerun.success
    assert [r.n_items for r in puts(server)[2:]] == [5, 2]
    stored = by_source_id(server)
    assert len(stored) == 12 and all(len(objs) == 1 for objs in stored.values())


def test_a_push_that_times_out_fails_cleanly_and_a_rerun_leaves_no_duplicates(
    server: SandboxServer, db: Path
) -> None:
    make_source(db, 8)
    server.faults.latency_ms = 400  # every answer comes after the client stopped waiting

    result = run_push(server, db, timeout=0.1, max_attempts=2)

    assert not result.success
    description, meta = failure(result)
    assert "batch 1 of 1 (8 rows) failed after the client's retries" in description
    assert meta["failed"] == 8

    server.faults.latency_ms = 0
    rerun = run_push(server, db)

    assert rerun.success
    stored = by_source_id(server)
    assert len(stored) == 8 and all(len(objs) == 1 for objs in stored.values())


def test_dry_run_sends_nothing_and_reports_what_would_change(
    server: SandboxServer, db: Path
) -> None:
    make_source(db, 30)

    result = run_push(server, db, dry_run=True)

    assert result.success
    assert server.request_log == [], "a dry run makes no request at all"
    meta = output_metadata(result)
    assert (meta["would_create"], meta["would_update"], meta["created"]) == (30, 0, 0)
    assert query(db, "SELECT dry_run, status FROM reverse_etl.push_runs") == [(True, "succeeded")]
    assert query(db, "SELECT count(*) FROM reverse_etl.push_state") == [(0,)]

    assert run_push(server, db).success
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE objectives_to_push SET name = name || ' (renamed)' "
                    "WHERE source_id = 'src-000001'")
    preview = run_push(server, db, dry_run=True)

    assert [r.n_items for r in puts(server)] == [30]
    meta = output_metadata(preview)
    assert (meta["would_create"], meta["would_update"], meta["unchanged"]) == (0, 1, 29)


def test_an_expired_token_stops_the_push_and_says_what_to_do(
    server: SandboxServer, db: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    make_source(db, 12)
    server.faults.expire_token_after_requests = 1

    result = run_push(server, db, batch_size=5)

    assert not result.success
    description, meta = failure(result)
    assert "Planhat refused the token (HTTP 401) at batch 2 of 3" in description
    assert "Set a valid PLANHAT_API_TOKEN" in description
    assert (meta["created"], meta["not_sent"]) == (5, 7)
    assert [r.status for r in puts(server)] == [200, 401]
    captured = capfd.readouterr()
    everything = "".join(repr(event) for event in result.all_events) + captured.out + captured.err
    assert "Planhat refused the token" in everything
    assert TOKEN not in everything + json.dumps(meta, default=str)

    server.faults.expire_token_after_requests = None
    rerun = run_push(server, db, batch_size=5)

    assert rerun.success
    assert [r.n_items for r in puts(server)[2:]] == [5, 2]
    assert len(by_source_id(server)) == 12


def test_the_source_name_never_reaches_sql_unchecked(server: SandboxServer, db: Path) -> None:
    make_source(db, 5)

    result = run_push(server, db, source="objectives_to_push; DROP TABLE objectives_to_push; --")
    quoted = run_push(server, db, source="objectives_to_push' OR '1'='1")
    missing = run_push(server, db, source="crm.no_such_table")

    assert not result.success and not quoted.success and not missing.success
    assert "is not a table or view name" in failure(result)[0]
    assert "is not a table or view name" in failure(quoted)[0]
    assert "crm.no_such_table does not exist" in failure(missing)[0]
    assert query(db, "SELECT count(*) FROM objectives_to_push") == [(5,)]
    assert server.request_log == []


def test_a_batch_size_over_planhats_limit_is_refused(server: SandboxServer, db: Path) -> None:
    make_source(db, 5)

    result = run_push(server, db, batch_size=6000)

    assert not result.success
    [error] = [
        e.step_failure_data.error for e in result.all_node_events if e.is_step_failure
    ]
    assert error is not None
    assert "batch_size" in error.message and "less than or equal to 5000" in error.message
    assert server.request_log == []


def test_the_crm_export_goes_through_the_model_into_planhat(
    server: SandboxServer, db: Path, tmp_path: Path
) -> None:
    export = write_crm_csv(
        tmp_path / "crm" / "crm_objectives.csv",
        generate_crm_objectives(server.store.companies(), 60, seed=5),
    )
    resources = {
        "planhat": PlanhatResource(api_token=server.token, base_url=server.base_url),
        "warehouse": WarehouseResource(path=str(db)),
        "sql_models": SqlModelsResource(),
    }
    built = dg.materialize(
        [
            crm_objectives,
            *build_sql_model_assets([planhat_objectives, crm_objectives]),
        ],
        selection=["crm_objectives", "objectives_to_push"],
        resources=resources,
        run_config={"ops": {"crm_objectives": {"config": {"csv_path": str(export)}}}},
    )
    assert built.success

    result = run_push(server, db)

    assert result.success
    meta = output_metadata(result)
    assert (meta["rows_read"], meta["rejected"], meta["created"]) == (60, 4, 56)
    reasons = sorted(r for (r,) in query(db, "SELECT reason FROM reverse_etl.rejected_rows"))
    assert [r.split(":")[0] for r in reasons] == ["company_id", "health", "name", "no source_id or external_id"]
    stored = by_source_id(server, prefix="crm-")
    assert len(stored) == 56
    one = stored["crm-OPP-000001"][0]
    assert set(one["custom"]) == {"Owner", "Renewal date", "Notes"}
    assert one["companyName"]


def test_rows_planhat_would_match_through_different_keys_are_one_conflict(
    server: SandboxServer, db: Path
) -> None:
    """Row A has sourceId xk-1 and externalId xk-e, row B externalId xk-e only: Planhat
    would match both to one objective, so neither is sent and neither is audited as pushed."""
    make_source(db, 3)
    with duckdb.connect(str(db)) as con:
        con.execute(
            """
            INSERT INTO objectives_to_push VALUES
              ('Row A', 'extid-C1004', 1, 'xk-e', 'xk-1', NULL),
              ('Row B', 'extid-C1005', 2, 'xk-e', NULL, NULL)
            """
        )

    result = run_push(server, db, max_rejected_share=0.5)

    assert result.success
    meta = output_metadata(result)
    assert (meta["rejected"], meta["created"]) == (2, 3)
    assert server.store.find_by_external_id("xk-e") == []
    reasons = dict(query(db, "SELECT json_extract_string(row_data, '$.name'), reason "
                             "FROM reverse_etl.rejected_rows WHERE run_id = ?", [result.run_id]))
    assert "share a key with this one (sourceId xk-1, externalId xk-e)" in reasons["Row A"]
    assert "share a key with this one (externalId xk-e)" in reasons["Row B"]
    confirmed = query(db, "SELECT count(*) FROM reverse_etl.push_results WHERE run_id = ? "
                          "AND external_id = 'xk-e' AND outcome IN ('created', 'updated', "
                          "'unmodified')", [result.run_id])
    assert confirmed == [(0,)]
