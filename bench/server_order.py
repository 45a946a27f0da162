"""What the extraction does when the server breaks its assumptions: ``python -m bench.server_order``.

Serves 20,000 objectives from an in-process sandbox, takes a calm snapshot into a fresh DuckDB
file, then extracts the same day again under each server behaviour below (sandbox fault
knobs) and prints a markdown table: the outcome, rows landed, objectives that existed for the
whole run and are missing, requests, the proof used, and the first words of a failure.
docs/reliability.md quotes one run.
"""

from __future__ import annotations

import random
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb

from objectives_pipeline.extract import ExtractOptions, extract_snapshot
from objectives_pipeline.planhat import PlanhatClient, PlanhatError, RetryPolicy
from objectives_pipeline.sandbox import Faults, SandboxServer
from objectives_pipeline.sandbox.data import Tenant, generate_tenant
from objectives_pipeline.warehouse import Warehouse, WarehouseError

DAY = date(2026, 11, 20)
CHURN = {"churn_per_list_request": 5, "churn_anywhere": True}


def _uuids(tenant: Tenant) -> Tenant:
    rng = random.Random(1)
    objectives = [dict(o) for o in tenant.objectives]
    for obj in rng.sample(objectives, 3000):
        obj["_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    return Tenant(tenant.companies, objectives)


def _big_record(tenant: Tenant) -> Tenant:
    objectives = [dict(o) for o in tenant.objectives]
    objectives[123]["custom"] = {"notes": "x" * 1_000_000}
    return Tenant(tenant.companies, objectives)


Case = tuple[str, Faults, Callable[[Tenant], Tenant] | None, dict[str, object]]
CASES: list[Case] = [
    ("sort ignored (insertion order), 5 deleted + 5 created per list request",
     Faults(list_order="insertion", **CHURN), None, {}),  # type: ignore[arg-type]
    ("sort ignored, no churn", Faults(list_order="insertion"), None, {}),
    ("each page sorted on its own (insertion-order pages), no churn",
     Faults(list_order="page_sorted"), None, {}),
    ("sorted, a record from two pages back in each page's middle",
     Faults(page_mangle="two_pages_back"), None, {}),
    ("page cap varies per request, 500-2000", Faults(page_cap=2000, page_cap_min=500), None, {}),
    ("page cap varies per request, 1900-2000",
     Faults(page_cap=2000, page_cap_min=1900), None, {}),
    ("3,000 UUID _ids ordered before ObjectIds, churn", Faults(**CHURN), _uuids, {}),  # type: ignore[arg-type]
    ("the same _id twice inside one page", Faults(page_mangle="repeat"), None, {}),
    ("body trickles in at 64 bytes/s (request deadline 5 s, 2 attempts)",
     Faults(trickle_bytes_per_second=64), None, {"deadline": 5.0}),
    ("one objective with a 1 MB string in custom", Faults(), _big_record, {}),
    ("every page [] from the 3rd list request on", Faults(empty_pages_from_request=3), None, {}),
]


def main() -> None:
    base = generate_tenant(20_000, 50, seed=20)
    print("| server behaviour | outcome | rows in the partition after | missing | requests | proof / error |")
    print("|---|---|--:|--:|--:|---|")
    with SandboxServer(objectives=0, companies=0) as server:
        for name, faults, shape, options in CASES:
            tenant = shape(base) if shape else base
            db = Path(tempfile.mkdtemp()) / "o.duckdb"
            deadline = float(options.get("deadline", 300.0))  # type: ignore[arg-type]
            retry = RetryPolicy(max_attempts=2, request_deadline=deadline)
            for step in ("calm", "faulty"):
                server.faults = Faults()
                server.store.load(tenant)
                before = set(server.store.ids())
                server.faults = faults if step == "faulty" else Faults()
                started = time.perf_counter()
                with PlanhatClient(server.base_url, server.token, retry=retry,  # type: ignore[arg-type]
                                   rate_limit_per_minute=None) as client:
                    try:
                        result = extract_snapshot(
                            client, Warehouse(db), DAY, ExtractOptions(max_row_drop_share=0.2)
                        )
                        paging = result.paging
                        outcome, detail = "success", paging.completeness_proof
                        if paging.order_problem:
                            detail += f" ({paging.order_problem[:90]})"
                    except (PlanhatError, WarehouseError) as error:
                        outcome, detail = "fails", str(error)[:110]
                    requests = client.stats.requests
                server.faults = Faults()
            survivors = before & set(server.store.ids())
            with duckdb.connect(str(db), read_only=True) as con:
                landed = {r[0] for r in con.execute(
                    "SELECT objective_id FROM raw.planhat_objectives").fetchall()}
            missing = len(survivors - landed) if outcome == "success" else "-"
            seconds = time.perf_counter() - started
            print(f"| {name} | {outcome} ({seconds:.1f} s) | {len(landed)} | {missing} | "
                  f"{requests} | {detail} |")


if __name__ == "__main__":
    main()
