"""One extraction under churn, survivors checked: ``python -m bench.snapshot_churn N CHURN [IN_FLIGHT]``.

Serves N objectives from an in-process sandbox that deletes and creates CHURN objectives
before every list request (``--churn-per-list-request``), runs `extract_snapshot` with the
client's default 200 requests/minute limit, and prints requests, repaired boundaries, wall
time, and how many objectives that existed for the whole run are missing or repeated.
"""

import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb

from objectives_pipeline.extract import ExtractOptions, extract_snapshot
from objectives_pipeline.planhat import PlanhatClient
from objectives_pipeline.sandbox import Faults, SandboxServer
from objectives_pipeline.warehouse import Warehouse

n = int(sys.argv[1])
churn = int(sys.argv[2])
conc = int(sys.argv[3]) if len(sys.argv) > 3 else ExtractOptions().concurrency
with SandboxServer(objectives=n, companies=max(1, n // 100), seed=7) as s:
    before = set(s.store.ids())
    s.faults = Faults(churn_per_list_request=churn, seed=3)
    d = Path(tempfile.mkdtemp())
    with PlanhatClient(s.base_url, s.token, max_in_flight=conc) as c:  # default 200/minute
        t = time.perf_counter()
        r = extract_snapshot(
            c, Warehouse(d / "o.duckdb"), date(2026, 1, 1), ExtractOptions(concurrency=conc)
        )
        wall = time.perf_counter() - t
    s.faults = Faults()
    ids = [
        x[0]
        for x in duckdb.connect(str(d / "o.duckdb"))
        .execute("select objective_id from raw.planhat_objectives")
        .fetchall()
    ]
    surv = before & set(s.store.ids())
    print(
        f"N={n} churn={churn} in_flight={conc}: requests={r.client_stats.requests} pages={r.pages} "
        f"repaired={r.boundaries_repaired} wall={wall:.2f}s rows={r.load.rows} survivors={len(surv)} "
        f"survivors_missing={len(surv - set(ids))} duplicate_rows={len(ids) - len(set(ids))} "
        f"deleted_seen={r.deleted_during_run} created={r.created_during_run} quota_left={r.client_stats.rate_limit_remaining}"
    )
