"""A realistic source system for the demo and the tests: a CRM export of objectives as CSV.

Rows refer to companies by their ``externalId``, drawn from the companies of a sandbox
tenant so that every reference resolves there. A few rows carry the problems real
exports have (no name, no linked account, a health score that is not a number, no
CRM id); the push rejects them with their reasons and sends the rest.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

CRM_COLUMNS = (
    "crm_objective_id",
    "objective_name",
    "company_external_id",
    "health_score",
    "owner_email",
    "renewal_date",
    "notes",
)
#: Column a demo export carries on every row, with `DEMO_MARK`: such a file is never pushed to
#: a real tenant, wherever it is copied.
DEMO_MARK_COLUMN = "generated_by"
DEMO_MARK = "objectives-pipeline demo: sandbox only"
PROBLEMS = (
    ("objective_name", "", "name missing"),
    ("company_external_id", "", "account not linked"),
    ("health_score", "n/a", "health not scored"),
    ("crm_objective_id", "", "no CRM id"),
)

_NAMES = [
    "Expand seats in EMEA", "Renewal secured", "Adopt analytics module", "Executive sponsor",
    "Onboarding complete", "Reduce support tickets", "QBR held", "Launch SSO",
    "Migrer les données", "导入完成", "Pilot → production", "Train 20 power users",
]
_OWNERS = ["ana", "bjorn", "chloe", "dmitri", "eunji", "femi"]
_NOTES = ["", "On track", "Waiting on IT, \"soon\"", "Champion left; re-engage", "Très bien 👍"]


def generate_crm_objectives(
    companies: Sequence[Mapping[str, Any]], rows: int, *, seed: int, with_problems: bool = True
) -> list[dict[str, str]]:
    """`rows` CRM objective rows (strings, as in the export), deterministic for `seed`.

    With `with_problems`, one row of each kind in `PROBLEMS` is spread through the export
    (when `rows` allows).
    """
    external_ids = [str(c["externalId"]) for c in companies if c.get("externalId") is not None]
    if rows and not external_ids:
        raise ValueError("the CRM export needs companies with an externalId")
    rng = random.Random(seed)
    start = date(2026, 1, 1)
    out: list[dict[str, str]] = []
    for i in range(rows):
        roll = rng.random()
        health = "" if roll < 0.05 else f"{rng.choice([1, 2, 3, 4, 5, 2.5, 3.5, 4.5]):g}"
        out.append(
            {
                "crm_objective_id": f"OPP-{i + 1:06d}",
                "objective_name": rng.choice(_NAMES),
                "company_external_id": rng.choice(external_ids),
                "health_score": health,
                "owner_email": f"{rng.choice(_OWNERS)}@example.com",
                "renewal_date": (start + timedelta(days=rng.randrange(0, 540))).isoformat(),
                "notes": rng.choice(_NOTES),
            }
        )
    if with_problems and rows >= 2 * len(PROBLEMS):
        step = rows // len(PROBLEMS)
        for n, (column, value, note) in enumerate(PROBLEMS):
            row = out[n * step + step // 2]
            row[column] = value
            row["notes"] = f"{note} (export problem)"
    return out


def sandbox_companies(companies: int, seed: int) -> list[dict[str, Any]]:
    """The companies of the sandbox tenant seeded with `seed` and `companies` companies."""
    from objectives_pipeline.sandbox.data import generate_tenant  # demo data only

    return generate_tenant(0, companies, seed).companies


def write_crm_csv(
    path: str | Path, rows: Sequence[Mapping[str, str]], *, demo: bool = False
) -> Path:
    """Write `rows` as a CSV export with a header; creates the folder. With `demo`, every
    row is marked as generated for the sandbox (`DEMO_MARK_COLUMN`)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    columns = [*CRM_COLUMNS, DEMO_MARK_COLUMN] if demo else list(CRM_COLUMNS)
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows({**row, DEMO_MARK_COLUMN: DEMO_MARK} if demo else row for row in rows)
    return target
