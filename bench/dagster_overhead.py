"""What Dagster adds around the extraction: ``python -m bench.dagster_overhead``.

Serves a sandbox in a separate process, materializes `planhat_objectives` (asset checks
included) with `dg.materialize`, and prints, per run, the step's wall time (from the
step's start and success events), `extract_snapshot`'s own time, and the difference: the
overhead of the asset around the extraction. The first run fills an empty warehouse;
later runs replace the partition of an existing one, as daily runs do.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dagster as dg

from objectives_pipeline.defs import extract_assets
from objectives_pipeline.resources import PlanhatResource, SqlModelsResource, WarehouseResource
from objectives_pipeline.sandbox.server import TOKEN_ENV


@contextmanager
def sandbox(objectives: int, latency_ms: float, folder: Path) -> Iterator[tuple[str, str]]:
    token = secrets.token_urlsafe(24)
    info = folder / "sandbox.json"
    command = [
        sys.executable, "-m", "objectives_pipeline.sandbox", "--port", "0",
        "--objectives", str(objectives), "--companies", str(max(1, objectives // 100)),
        "--info-file", str(info), "--latency-ms", str(latency_ms),
    ]  # fmt: skip
    process = subprocess.Popen(
        command,
        env={**os.environ, TOKEN_ENV: token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        while not info.exists():
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("the sandbox did not start")
            time.sleep(0.2)
        yield json.loads(info.read_text())["base_url"], token
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objectives", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    timings: list[float] = []
    original = extract_assets.extract_snapshot

    def timed(*a: Any, **k: Any) -> Any:
        began = time.perf_counter()
        try:
            return original(*a, **k)
        finally:
            timings.append(time.perf_counter() - began)

    extract_assets.extract_snapshot = timed  # type: ignore[assignment]
    with (
        tempfile.TemporaryDirectory() as tmp,
        sandbox(args.objectives, args.latency_ms, Path(tmp)) as (base_url, token),
    ):
        resources = {
            "planhat": PlanhatResource(
                api_token=token, base_url=base_url, rate_limit_per_minute=100_000
            ),
            "warehouse": WarehouseResource(path=str(Path(tmp) / "o.duckdb")),
            "sql_models": SqlModelsResource(),
        }
        config = {"ops": {"planhat_objectives": {"config": {"concurrency": args.concurrency}}}}
        for run in range(args.runs):
            instance = dg.DagsterInstance.ephemeral()
            result = dg.materialize(
                [extract_assets.planhat_objectives],
                partition_key="2026-01-31",
                resources=resources,
                run_config=config,
                instance=instance,
            )
            events = {
                entry.dagster_event.event_type_value: entry.timestamp
                for entry in instance.all_logs(result.run_id)
                if entry.dagster_event is not None and entry.dagster_event.step_key
            }
            step = events["STEP_SUCCESS"] - events["STEP_START"]
            meta = result.asset_materializations_for_node("planhat_objectives")[0].metadata
            print(
                f"run {run + 1}: {args.objectives} objectives, step {step:.3f}s, "
                f"extract_snapshot {timings[-1]:.3f}s, overhead {step - timings[-1]:.3f}s, "
                f"requests {meta['requests'].value}"
            )


if __name__ == "__main__":
    main()
