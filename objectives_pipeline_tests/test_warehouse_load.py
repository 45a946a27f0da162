"""Staging pages and loading a snapshot partition: types, flags, repeats, atomic replace."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from objectives_pipeline.warehouse import (
    LoadStep,
    SnapshotLoadError,
    SnapshotStager,
    Warehouse,
    load_snapshot,
    snapshot_quality,
)

DAY = date(2024, 3, 1)
NOW = datetime(2024, 3, 1, 6, 30, tzinfo=UTC)


def page(*records: Any) -> bytes:
    return json.dumps(list(records), ensure_ascii=False).encode()


def objective(oid: str, **fields: Any) -> dict[str, Any]:
    return {"_id": oid, "name": f"Objective {oid}", "companyId": "c1", "health": 3, **fields}


def load(warehouse: Warehouse, *pages: bytes, day: date = DAY, **kwargs: Any) -> Any:
    with SnapshotStager() as stager:
        for body in pages:
            stager.add_page(body)
        return load_snapshot(warehouse, stager, day, NOW, **kwargs)


def rows(warehouse: Warehouse, day: date = DAY) -> dict[Any, dict[str, Any]]:
    with warehouse.connect(read_only=True) as con:
        cursor = con.execute(
            "SELECT * FROM raw.planhat_objectives WHERE snapshot_date = ? ORDER BY objective_id",
            [day],
        )
        names = [d[0] for d in cursor.description or []]
        result = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return {r["objective_id"]: r for r in result}


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path / "objectives.duckdb")


def test_every_field_shape_is_loaded_typed_and_flagged_never_dropped(
    warehouse: Warehouse,
) -> None:
    records = [
        {
            "_id": "a1",
            "name": "  Ünïcødé objective ✓ 目标 ",
            "health": 4.25,
            "companyId": "c1",
            "companyName": "Tenet",
            "externalId": 4467,
            "sourceId": "sfc-1",
            "custom": {"Main Product": ["Recipe Database"], "Nested": {"a": [1, {"b": None}]}},
            "usage": {"6053b728fa96fa0262729a3d": 0},
            "__v": 0,
            "futureField": {"x": 1},
        },
        objective("a2", health=None),
        objective("a3", health="abc"),
        objective("a4", health="4.5"),
        objective("a5", custom=["not", "an", "object"]),
        {"_id": "a6", "name": "No company", "health": 2},
        objective("a7", health=True, usage="nope", companyId="c2"),
    ]
    result = load(warehouse, page(*records))
    got = rows(warehouse)

    first = got["a1"]
    assert first["name"] == "  Ünïcødé objective ✓ 目标 "
    assert first["health"] == 4.25
    assert (first["company_id"], first["company_name"]) == ("c1", "Tenet")
    assert (first["external_id"], first["source_id"]) == ("4467", "sfc-1")
    assert json.loads(first["custom"]) == records[0]["custom"]
    assert json.loads(first["usage"]) == {"6053b728fa96fa0262729a3d": 0}
    assert json.loads(first["extra"]) == {"__v": 0, "futureField": {"x": 1}}
    assert first["load_issues"] == [] and first["raw_record"] is None
    assert first["captured_at"] == datetime(2024, 3, 1, 6, 30)

    assert got["a2"]["health"] is None and got["a2"]["load_issues"] == []
    assert got["a3"]["health"] is None
    assert got["a3"]["load_issues"] == ["health is not a number"]
    assert got["a4"]["health"] == 4.5
    assert got["a4"]["load_issues"] == ["health is a numeric string"]
    assert got["a5"]["custom"] is None
    assert got["a5"]["load_issues"] == ["custom is not an object"]
    assert json.loads(got["a5"]["raw_record"])["custom"] == ["not", "an", "object"]
    assert got["a6"]["company_id"] is None and got["a6"]["health"] == 2
    assert got["a6"]["load_issues"] == ["companyId missing"]
    assert got["a7"]["load_issues"] == ["health is not a number", "usage is not an object"]
    for flagged in ("a3", "a4", "a5", "a6", "a7"):
        assert json.loads(got[flagged]["raw_record"]) == records[int(flagged[1]) - 1]

    assert (result.rows, result.companies, result.flagged_rows) == (7, 2, 5)
    assert result.issues == {
        "companyId missing": 1,
        "custom is not an object": 1,
        "health is a numeric string": 1,
        "health is not a number": 2,
        "usage is not an object": 1,
    }


def test_values_that_are_not_objects_are_kept_as_flagged_rows(warehouse: Warehouse) -> None:
    result = load(
        warehouse, b'[7, "text", null, [1, 2], {"_id": "ok", "name": "n", "companyId": "c"}]'
    )
    assert result.rows == 5 and result.flagged_rows == 4
    assert result.issues == {"record is not an object": 4}
    with warehouse.connect(read_only=True) as con:
        kept = con.execute(
            "SELECT raw_record::VARCHAR, load_issues FROM raw.planhat_objectives "
            "WHERE objective_id IS NULL ORDER BY 1"
        ).fetchall()
    assert kept == [
        ('"text"', ["record is not an object"]),
        ("7", ["record is not an object"]),
        ("[1, 2]", ["record is not an object"]),
        ("null", ["record is not an object"]),
    ]
    assert rows(warehouse)["ok"]["load_issues"] == []


def test_a_record_repeated_across_pages_keeps_the_copy_from_the_latest_page(
    warehouse: Warehouse,
) -> None:
    result = load(
        warehouse,
        page(objective("x", name="page 1"), objective("y", name="page 1")),
        page(objective("y", name="page 2"), objective("z", name="page 2")),
        b"[]",
        page(objective("x", name="page 4")),
    )
    got = rows(warehouse)
    assert {k: v["name"] for k, v in got.items()} == {"x": "page 4", "y": "page 2", "z": "page 2"}
    assert (result.rows, result.duplicates_removed, result.pages) == (3, 2, 4)


def test_repeats_resolve_by_page_order_on_many_pages_and_threads(warehouse: Warehouse) -> None:
    # Overlapping pages, as offset paging over a changing collection produces:
    # page p holds ids p*100 .. p*100+149, so 50 ids of every page repeat in the next.
    pages = [
        page(*(objective(f"id{i:06d}", name=f"page {p}") for i in range(p * 100, p * 100 + 150)))
        for p in range(120)
    ]
    result = load(warehouse, *pages, threads=2, memory_limit=None)
    got = rows(warehouse)
    assert result.rows == len(got) == 12050
    assert result.duplicates_removed == 119 * 50
    wrong = {
        k: v["name"] for k, v in got.items() if v["name"] != f"page {min(int(k[2:]) // 100, 119)}"
    }
    assert wrong == {}


def test_a_later_page_wins_and_one_page_may_repeat_an_id(warehouse: Warehouse) -> None:
    with SnapshotStager() as stager:
        stager.add_page(page(objective("a", name="paged"), objective("b"), objective("b")))
        stager.add_page(page(objective("a", name="read again by a repair")))
        result = load_snapshot(warehouse, stager, DAY, NOW)
    got = rows(warehouse)
    assert got["a"]["name"] == "read again by a repair"
    assert sorted(got) == ["a", "b"]
    assert result.duplicates_removed == 2


def test_a_page_that_repeats_the_last_record_before_it_is_loaded_without_it(
    warehouse: Warehouse,
) -> None:
    with SnapshotStager() as stager:
        stager.add_page(page(objective("a"), objective("b", name="first copy")))
        stager.add_page(page(objective("b", name="repeat"), objective("c")), repeated_id="b")
        stager.add_page(page(objective("c", name="kept"), objective("d")))
        result = load_snapshot(warehouse, stager, DAY, NOW)
    got = rows(warehouse)
    assert sorted(got) == ["a", "b", "c", "d"]
    assert got["b"]["name"] == "first copy"  # the repeat was never typed
    assert got["c"]["name"] == "kept"  # an unmarked repeat is de-duplicated, later wins
    assert result.duplicates_removed == 1 and stager.repeats_left_out == 1


def test_created_since_counts_objectids_not_older_than_that_second(
    warehouse: Warehouse,
) -> None:
    since = datetime(2026, 1, 1, 12, 0, 0)
    second = int(since.replace(tzinfo=UTC).timestamp())
    old, new = f"{second - 1:08x}" + "0" * 16, f"{second:08x}" + "0" * 15 + "1"
    with SnapshotStager() as stager:
        stager.add_page(page(objective(old), objective(new), objective("not-an-objectid")))
        result = load_snapshot(warehouse, stager, DAY, NOW, created_since=since)
    assert result.created_since == 1


def test_loading_a_partition_again_replaces_it_and_leaves_other_days_alone(
    warehouse: Warehouse,
) -> None:
    other_day = DAY - timedelta(days=1)
    load(warehouse, page(objective("old")), day=other_day)
    load(warehouse, page(objective("a"), objective("b")))
    again = load(warehouse, page(objective("b", name="new name"), objective("c")))
    assert again.replaced_rows == 2
    assert {k: v["name"] for k, v in rows(warehouse).items()} == {
        "b": "new name",
        "c": "Objective c",
    }
    assert list(rows(warehouse, other_day)) == ["old"]


def test_an_unreadable_page_fails_the_load_and_keeps_the_previous_partition(
    warehouse: Warehouse,
) -> None:
    load(warehouse, page(objective("keep-me")))
    steps: list[LoadStep] = []
    with pytest.raises(SnapshotLoadError) as caught:
        load(
            warehouse,
            page(objective("new")),
            b'[{"_id": "broken", "name": ]',
            on_step=steps.append,
        )
    assert "page-00000002.json" in str(caught.value)
    assert "left as it was" in str(caught.value)
    assert LoadStep.COMMITTED not in steps
    assert list(rows(warehouse)) == ["keep-me"]


@pytest.mark.parametrize(
    "body",
    [b'{"message": "not a list"}', b'[{"_id": "a"}, {"_id": "trunc', b"", b"<html>oops</html>"],
)
def test_a_body_that_is_not_a_json_array_is_refused_when_staged(body: bytes) -> None:
    with SnapshotStager() as stager:
        stager.add_page(page(objective("fine")))
        with pytest.raises(SnapshotLoadError, match="page 2") as caught:
            stager.add_page(body)
        assert "not a JSON array" in str(caught.value)
        assert len(stager.pages) == 1


def test_nothing_staged_is_refused_but_an_empty_extraction_empties_the_partition(
    warehouse: Warehouse,
) -> None:
    load(warehouse, page(objective("a")))
    with SnapshotStager() as stager, pytest.raises(SnapshotLoadError, match="Nothing was staged"):
        load_snapshot(warehouse, stager, DAY, NOW)
    assert list(rows(warehouse)) == ["a"]
    result = load(warehouse, b"[]")
    assert (result.rows, result.replaced_rows) == (0, 1)
    assert rows(warehouse) == {}


def test_captured_at_is_stored_in_utc(warehouse: Warehouse) -> None:
    in_berlin = datetime(2024, 3, 1, 8, 30, tzinfo=timezone(timedelta(hours=2)))
    with SnapshotStager() as stager:
        stager.add_page(page(objective("a")))
        load_snapshot(warehouse, stager, DAY, in_berlin)
        assert rows(warehouse)["a"]["captured_at"] == datetime(2024, 3, 1, 6, 30)
        load_snapshot(warehouse, stager, DAY, datetime(2024, 3, 1, 7, 0))
        assert rows(warehouse)["a"]["captured_at"] == datetime(2024, 3, 1, 7, 0)


def test_the_staging_folder_is_private_and_removed_even_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), SnapshotStager(staging_dir=tmp_path) as stager:
        folder = stager.directory
        stager.add_page(page(objective("a")))
        assert folder.parent == tmp_path and (folder.stat().st_mode & 0o077) == 0
        raise RuntimeError("extraction failed")
    assert not folder.exists()


def test_snapshot_quality_reports_what_the_checks_need(warehouse: Warehouse) -> None:
    load(warehouse, *(page(objective(f"o{i}")) for i in range(4)), day=DAY - timedelta(days=1))
    load(
        warehouse,
        page(objective("o1", health=9), objective("o2", health=None), {"_id": "o3", "name": "x"}),
    )
    quality = snapshot_quality(warehouse, DAY, 0.0, 5.0, preview_rows=2)
    assert (quality.rows, quality.duplicate_ids, quality.missing_company_id) == (3, 0, 1)
    assert (quality.health_out_of_range, quality.health_max, quality.flagged_rows) == (1, 9, 1)
    assert (quality.previous_snapshot_date, quality.previous_rows) == (DAY - timedelta(days=1), 4)
    assert quality.row_drop_share == pytest.approx(0.25)
    assert [r["objective_id"] for r in quality.preview] == ["o1", "o2"]
