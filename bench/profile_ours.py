"""Where our extraction spends its time: ``python -m bench.profile_ours``.

Serves a sandbox in a separate process (so it shares no interpreter with the
extraction), warms it up, then runs `extract_snapshot` as bench/ours.py does and
prints a timeline of its phases: paging, the ``select=_id`` listing, the id check
and the load. With ``--cprofile`` it also prints the main thread's profile (the
page requests themselves run on worker threads and show up as waits).

The phases are timed by wrapping functions the extraction looks up at call time
(`SnapshotStager.add_page`, `.add_id_page`, `.id_check` and
`objectives_pipeline.extract.load_snapshot`); nothing in the product is changed.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import objectives_pipeline.extract as extract_module
from objectives_pipeline.extract import ExtractOptions, extract_snapshot
from objectives_pipeline.planhat import PlanhatClient, RetryPolicy
from objectives_pipeline.warehouse import SnapshotStager, Warehouse

from .sandbox_host import warm_up
from .scenarios import PAGE_SIZE, SEED


@contextmanager
def sandbox_process(objectives: int, latency_ms: float) -> Iterator[tuple[str, str]]:
    """(base_url, token) of a sandbox served by ``python -m objectives_pipeline.sandbox``."""
    token = secrets.token_urlsafe(24)
    folder = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    info = folder / "sandbox.json"
    command = [
        sys.executable,
        "-m",
        "objectives_pipeline.sandbox",
        "--host=127.0.0.1",
        "--port=0",
        f"--objectives={objectives}",
        f"--companies={max(objectives // 50, 20)}",
        f"--seed={SEED}",
        f"--latency-ms={latency_ms}",
        f"--info-file={info}",
    ]
    env = {**os.environ, "PLANHAT_SANDBOX_TOKEN": token}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not info.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the sandbox did not start")
            time.sleep(0.1)
        yield json.loads(info.read_text())["base_url"], token
    finally:
        process.terminate()
        process.wait(timeout=30)
        info.unlink(missing_ok=True)
        folder.rmdir()


class Timeline:
    """Seconds since `start` at which each wrapped call began and how long it took."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.calls: dict[str, list[tuple[float, float]]] = {}

    def wrap(self, owner: Any, name: str) -> Callable[[], None]:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                ended = time.perf_counter()
                self.calls.setdefault(name, []).append((began - self.start, ended - began))

        setattr(owner, name, timed)
        return lambda: setattr(owner, name, original)

    def summary(self, total: float) -> str:
        pages = self.calls.get("add_page", [])
        ids = self.calls.get("add_id_page", [])
        check = self.calls.get("id_check", [])
        load = self.calls.get("load_snapshot", [])
        parts = [f"total {total:.2f}s"]
        if pages:
            parts.append(f"paging 0-{pages[-1][0]:.2f}s ({len(pages)} pages)")
        if ids:
            parts.append(f"id listing {ids[0][0]:.2f}-{ids[-1][0]:.2f}s ({len(ids)} pages)")
        parts += [f"id check {at:.2f}s +{took:.2f}s" for at, took in check]
        parts += [f"load {at:.2f}s +{took:.2f}s" for at, took in load]
        writes = sum(took for _, took in pages) + sum(took for _, took in ids)
        parts.append(f"staging writes {writes:.2f}s")
        return "; ".join(parts)


def run_once(base_url: str, token: str, concurrency: int, folder: Path, number: int) -> str:
    timeline = Timeline()
    restore = [
        timeline.wrap(SnapshotStager, "add_page"),
        timeline.wrap(extract_module, "load_snapshot"),
    ]
    try:
        client = PlanhatClient(
            base_url,
            token,
            timeout=60.0,
            retry=RetryPolicy(max_attempts=6),
            rate_limit_per_minute=None,
            max_in_flight=concurrency,
        )
        options = ExtractOptions(page_size=PAGE_SIZE, concurrency=concurrency)
        timeline.start = time.perf_counter()
        with client:
            extract_snapshot(
                client, Warehouse(folder / f"run-{number}.duckdb"), date(2026, 1, 31), options
            )
        return timeline.summary(time.perf_counter() - timeline.start)
    finally:
        for undo in restore:
            undo()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_ours", description=__doc__)
    parser.add_argument("--objectives", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--concurrency", type=int, default=ExtractOptions().concurrency)
    parser.add_argument("--runs", type=int, default=2, help="timed runs (the last is profiled)")
    parser.add_argument("--cprofile", action="store_true", help="profile the last run")
    args = parser.parse_args(argv)
    with (
        sandbox_process(args.objectives, args.latency_ms) as (base_url, token),
        tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp,
    ):
        warm_up(base_url, token, args.objectives, PAGE_SIZE)
        for number in range(1, max(args.runs, 1) + 1):
            profiler = cProfile.Profile() if args.cprofile and number == args.runs else None
            if profiler:
                profiler.enable()
            line = run_once(base_url, token, args.concurrency, Path(tmp), number)
            if profiler:
                profiler.disable()
            print(f"run {number}: {line}", flush=True)
            if profiler:
                pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
