"""Our extraction vs a plain pager that retries 429s, under a server-side rate limit.

Scenarios against an in-process sandbox on 127.0.0.1:

- ``per_second``: 5 requests per rolling second, 429 without ``Retry-After``;
- ``quota``: 100 requests per fixed 10 s window (a per-minute quota scaled down),
  429 with ``Retry-After`` until the window resets;
- ``none``: no limit, the baseline for the other two.

Run ``python -m bench.ratelimit_probe [--scenario NAME] [--objectives N] [--page-size N]``;
:func:`probe` returns the figures for other bench code.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx

from objectives_pipeline.extract import ExtractOptions, extract_snapshot
from objectives_pipeline.planhat import PlanhatClient, RetryPolicy
from objectives_pipeline.sandbox import Faults, SandboxServer
from objectives_pipeline.warehouse import Warehouse

SCENARIOS: dict[str, tuple[Faults, int]] = {
    # name: (server faults, default objectives)
    "none": (Faults(), 100_000),  # the baseline: no server-side limit
    "per_second": (Faults(rate_limit_per_second=5), 20_000),
    "quota": (
        Faults(
            rate_limit_window_requests=100,
            rate_limit_window_seconds=10.0,
            retry_after_window_reset=True,
        ),
        100_000,
    ),
}
MAX_PAGER_ATTEMPTS = 12
MAX_PAGER_REQUESTS = 10_000


@dataclass(frozen=True)
class Figures:
    """One client's run: wall seconds, requests the server saw, 429s among them, records."""

    client: str
    seconds: float
    requests: int
    throttled: int
    records: int
    client_stats: dict[str, Any] | None = None

    @property
    def floor_seconds(self) -> float:
        """The wall time the rate limit alone imposes on these requests (5/s scenario)."""
        return self.requests / 5


def plain_pager(base_url: str, token: str, page_size: int) -> int:
    """Page ``GET /objectives`` by offset; on 429 wait Retry-After or back off with jitter."""
    records = 0
    sent = 0
    with httpx.Client(
        base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as http:
        offset = 0
        while sent < MAX_PAGER_REQUESTS:
            for attempt in range(MAX_PAGER_ATTEMPTS):
                sent += 1
                response = http.get(
                    "/objectives", params={"limit": page_size, "offset": offset, "sort": "_id"}
                )
                if response.status_code != 429:
                    break
                after = response.headers.get("retry-after")
                wait = float(after) if after else min(30.0, 0.5 * 2**attempt)
                time.sleep(wait + random.uniform(0, 0.5))
            response.raise_for_status()
            page = response.json()
            if not page:
                return records
            records += len(page)
            offset += len(page)
    raise RuntimeError(f"the plain pager stopped after {sent} requests")


def _measure(
    server: SandboxServer,
    faults: Faults,
    name: str,
    run: Any,
    stats: dict[str, Any] | None = None,
) -> Figures:
    server.faults = Faults(**asdict(faults))  # a fresh window for each client
    first = len(server.request_log)
    started = time.perf_counter()
    records = run()
    seconds = time.perf_counter() - started
    log = server.request_log[first:]
    return Figures(
        client=name,
        seconds=round(seconds, 2),
        requests=len(log),
        throttled=sum(1 for r in log if r.status == 429),
        records=records,
        client_stats=stats,
    )


def probe(
    scenario: str = "per_second",
    *,
    objectives: int | None = None,
    page_size: int = 2000,
    concurrency: int = 4,
) -> list[Figures]:
    """Run our extraction and the plain pager against one scenario; their figures."""
    faults, default_objectives = SCENARIOS[scenario]
    count = default_objectives if objectives is None else objectives
    with (
        tempfile.TemporaryDirectory() as workdir,
        SandboxServer(objectives=count, companies=max(1, count // 100), seed=7) as server,
    ):
        database = Path(workdir) / "probe.duckdb"
        stats: dict[str, Any] = {}

        def ours() -> int:
            options = ExtractOptions(page_size=page_size, concurrency=concurrency, verify=True)
            with PlanhatClient(
                server.base_url,
                server.token,
                retry=RetryPolicy(max_attempts=12),
                rate_limit_per_minute=None,
                max_in_flight=concurrency,
            ) as client:
                result = extract_snapshot(client, Warehouse(database), date(2026, 10, 1), options)
            pacing = result.client_stats.model_dump(
                include={
                    "paced_seconds",
                    "retry_wait_seconds",
                    "in_flight_limit_reductions",
                    "min_in_flight_limit",
                    "server_rate_limit",
                    "server_window_seconds",
                }
            )
            stats.update(pacing)
            return result.load.rows

        return [
            _measure(server, faults, "ours", ours, stats),
            _measure(
                server,
                faults,
                "plain pager",
                lambda: plain_pager(server.base_url, server.token, page_size),
            ),
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), default="per_second")
    parser.add_argument("--objectives", type=int, default=None)
    parser.add_argument("--page-size", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    figures = probe(
        args.scenario,
        objectives=args.objectives,
        page_size=args.page_size,
        concurrency=args.concurrency,
    )
    for figure in figures:
        print(json.dumps({**asdict(figure), "requests_over_5_per_s": figure.floor_seconds}))


if __name__ == "__main__":
    main()
