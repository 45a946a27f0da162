"""Row-level rules of the push: validation, source names, outcome matching, the CRM export."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

from objectives_pipeline.planhat import BatchOutcome, BulkUpsertResult
from objectives_pipeline.planhat.bulk import batch_result
from objectives_pipeline.reverse_etl import (
    CRM_COLUMNS,
    PushRow,
    SourceError,
    SourceRelation,
    generate_crm_objectives,
    validate_row,
    write_crm_csv,
)
from objectives_pipeline.reverse_etl.crm import PROBLEMS, sandbox_companies
from objectives_pipeline.reverse_etl.outcomes import OutgoingRow, match_batch

GOOD = {"name": "Renewal", "company_id": "extid-C1000", "source_id": "crm-1"}


def test_numbers_in_text_columns_are_accepted_and_sent_as_numbers() -> None:
    row = validate_row({**GOOD, "health": " 3.5 ", "external_id": 1234}, allow_create_without_key=False)

    assert isinstance(row, PushRow)
    assert row.payload(("name", "company_id", "health", "external_id", "source_id")) == {
        "name": "Renewal", "companyId": "extid-C1000", "health": 3.5, "externalId": "1234",
        "sourceId": "crm-1",
    }


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"health": True}, "health: must be a number, got True"),
        ({"health": "NaN"}, "health: must be a finite number, got 'NaN'"),
        ({"company_id": "extid-   "}, "company_id: 'extid-' is not a company reference"),
        ({"company_id": "60df26bfa259250cba9cf81"}, "is not a company reference"),
        ({"custom": "{broken"}, "custom: is not valid JSON"),
        ({"name": None, "health": "x"}, "name: required, but missing or blank; health: must be"),
    ],
)
def test_invalid_values_get_a_reason_naming_the_field(change: dict[str, object], reason: str) -> None:
    result = validate_row({**GOOD, **change}, allow_create_without_key=False)

    assert isinstance(result, str)
    assert reason in result


def test_null_health_is_sent_to_clear_it_but_null_keys_and_custom_are_left_out() -> None:
    row = validate_row({**GOOD, "health": None, "custom": None}, allow_create_without_key=False)

    assert isinstance(row, PushRow)
    fields = ("name", "company_id", "health", "external_id", "source_id", "custom")
    assert row.payload(fields) == {
        "name": "Renewal", "companyId": "extid-C1000", "health": None, "sourceId": "crm-1",
    }
    assert "health" not in row.payload(("name", "company_id", "source_id"))


@pytest.mark.parametrize("name", ["objectives_to_push", "crm.export_2026", "db.main.t_1"])
def test_plain_relation_names_are_quoted_part_by_part(name: str) -> None:
    assert SourceRelation(name).quoted == ".".join(f'"{p}"' for p in name.split("."))


@pytest.mark.parametrize(
    "name", ['t"; DROP TABLE x; --', "t' OR 1=1", "a.b.c.d", "1table", "", "t x", "read_csv('/etc')"]
)
def test_anything_but_a_relation_name_is_refused(name: str) -> None:
    with pytest.raises(SourceError, match="is not a table or view name"):
        SourceRelation(name)


def _rows(*keys: tuple[str | None, str | None]) -> list[OutgoingRow]:
    rows = []
    for n, (sid, eid) in enumerate(keys):
        payload = {"name": f"o{n}", "companyId": "extid-C1000"}
        if sid:
            payload["sourceId"] = sid
        if eid:
            payload["externalId"] = eid
        rows.append(OutgoingRow(n + 1, f"key{n}", "hash", None, payload))
    return rows


def _answer(rows: list[OutgoingRow], body: dict[str, Any], status: int) -> BulkUpsertResult:
    """Planhat's bulk answer to `rows`, read by the client as it reads a response."""
    outcome = BatchOutcome(
        index=0, offset=0, item_count=len(rows), status=status, partial=status != 200
    )
    return batch_result(body, items=[r.payload for r in rows], outcome=outcome)


def test_created_and_updated_items_are_matched_by_source_id_then_external_id() -> None:
    rows = _rows(("s1", None), (None, "e2"), ("s3", "e3"))
    result = _answer(rows, {
        "created": 2, "updated": 1,
        "insertsKeys": [{"_id": "a" * 24, "externalId": "e2"}, {"_id": "c" * 24, "sourceId": "s3"}],
        "updatesKeys": [{"_id": "b" * 24, "sourceId": "s1"}],
    }, 200)

    outcomes = match_batch(rows, result, batch=0)

    assert [(o.outcome, o.planhat_id) for o in outcomes] == [
        ("updated", "b" * 24), ("created", "a" * 24), ("created", "c" * 24),
    ]


def test_an_error_planhat_does_not_tie_to_an_item_leaves_the_unconfirmed_rows_failed() -> None:
    rows = _rows(("s1", None), ("s2", None))
    result = _answer(rows, {
        "created": 1, "insertsKeys": [{"_id": "a" * 24, "sourceId": "s1"}],
        "createdErrors": [{"error": "Something failed"}],
    }, 206)

    outcomes = match_batch(rows, result, batch=0)

    assert outcomes[0].outcome == "created"
    assert outcomes[1].outcome == "failed"
    assert "outcome unknown" in (outcomes[1].error or "")
    assert "Something failed" in (outcomes[1].error or "")


def test_the_crm_export_is_deterministic_and_refers_to_sandbox_companies(tmp_path: Path) -> None:
    companies = sandbox_companies(50, seed=42)
    rows = generate_crm_objectives(companies, 200, seed=42)

    assert rows == generate_crm_objectives(sandbox_companies(50, seed=42), 200, seed=42)
    assert rows != generate_crm_objectives(companies, 200, seed=43)
    known = {c["externalId"] for c in companies if c.get("externalId")}
    problems = [r for r in rows if "(export problem)" in r["notes"]]
    assert len(problems) == len(PROBLEMS)
    assert {r["company_external_id"] for r in rows if r not in problems} <= known
    path = write_crm_csv(tmp_path / "crm" / "crm_objectives.csv", rows)
    with path.open(newline="", encoding="utf-8") as handle:
        read = list(csv.DictReader(handle))
    assert tuple(read[0]) == CRM_COLUMNS
    assert read == rows
