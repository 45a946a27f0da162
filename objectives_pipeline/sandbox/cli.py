"""`objectives-pipeline sandbox`: serve a seeded sandbox until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from objectives_pipeline.sandbox.faults import Faults
from objectives_pipeline.sandbox.server import DEFAULT_TOKEN, TOKEN_ENV, SandboxServer

DEFAULT_PORT = 8765


def _source_ids(text: str) -> set[str]:
    return {part.strip() for part in text.split(",") if part.strip()}


def _choice(*options: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise argparse.ArgumentTypeError(f"choose one of {', '.join(options)}")
        return text

    return parse


# (Faults field, metavar, argparse type, help). Each becomes --field-name.
_FAULT_FLAGS: list[tuple[str, str, Any, str]] = [
    ("latency_ms", "MS", float, "delay added to every request, in milliseconds"),
    ("latency_jitter_ms", "MS", float, "random extra delay of up to MS per request"),
    ("error_rate", "RATE", float, "share of requests answered 500/502/503 (0..1)"),
    ("drop_rate", "RATE", float, "share of requests whose connection is closed with no response"),
    ("rate_limit_per_second", "N", float, "answer 429 past this many requests per second"),
    ("rate_limit_window_requests", "N", int, "request quota per window (429 once exhausted)"),
    ("rate_limit_window_seconds", "SECONDS", float, "length of the quota window (default 60)"),
    ("burst_429", "N", int, "answer 429 to the next N requests"),
    ("retry_after", "SECONDS", float, "send Retry-After: SECONDS with every 429"),
    ("page_cap", "N", int, "list responses hold at most this many records"),
    ("page_cap_min", "N", int, "with --page-cap: each response's cap varies from N up"),
    (
        "list_order",
        "ORDER",
        _choice("sort", "insertion", "page_sorted"),
        "sort (honour sort=), insertion (ignore it), page_sorted (only within a page)",
    ),
    ("page_mangle", "KIND", _choice("two_pages_back", "repeat"), "two_pages_back or repeat: break each list page's middle"),
    ("empty_pages_from_request", "N", int, "from the Nth list request on, pages are []"),
    ("trickle_bytes_per_second", "N", float, "send list bodies this slowly"),
    ("truncate_rate", "RATE", float, "share of list responses whose JSON body is cut in half"),
    ("non_json_rate", "RATE", float, "share of list responses with an HTML body"),
    (
        "churn_per_list_request",
        "N",
        int,
        "delete and create N objectives before each list response",
    ),
    (
        "bulk_item_error_source_ids",
        "IDS",
        _source_ids,
        "comma list: bulk items with these sourceIds fail",
    ),
    (
        "bulk_item_permission_source_ids",
        "IDS",
        _source_ids,
        "comma list: bulk items with these sourceIds get permission errors",
    ),
    ("bulk_500_on_request", "N", int, "the Nth bulk PUT crashes with 500 mid-batch (once)"),
    ("bulk_500_after_items", "N", int, "items applied before that crash"),
    (
        "expire_token_after_requests",
        "N",
        int,
        "answer 401 to everything after N authorised requests",
    ),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the sandbox flags on `parser`."""
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = free)"
    )
    parser.add_argument(
        "--objectives", type=int, default=1000, metavar="N", help="objectives to seed (1000)"
    )
    parser.add_argument(
        "--companies", type=int, default=100, metavar="N", help="companies to seed (100)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument(
        "--token",
        default=None,
        help=f"bearer token to accept (default: ${TOKEN_ENV}, else {DEFAULT_TOKEN!r})",
    )
    parser.add_argument("--show-token", action="store_true", help="print the token at start")
    parser.add_argument(
        "--state-file",
        type=Path,
        metavar="PATH",
        help="load data from / save data to this JSON file",
    )
    parser.add_argument(
        "--info-file",
        type=Path,
        metavar="PATH",
        help="write {base_url, pid} as JSON here once listening",
    )
    parser.add_argument(
        "--max-bulk-items", type=int, default=5000, metavar="N", help="bulk PUT item limit"
    )
    parser.add_argument(
        "--max-limit", type=int, default=2000, metavar="N", help="largest list page served"
    )
    faults = parser.add_argument_group("fault injection")
    for name, metavar, kind, help_text in _FAULT_FLAGS:
        flag = f"--{name.replace('_', '-')}"
        faults.add_argument(flag, dest=name, metavar=metavar, type=kind, help=help_text)
    faults.add_argument(
        "--retry-after-window-reset",
        action="store_true",
        help="429s of an exhausted window quota carry Retry-After: seconds until it resets",
    )
    faults.add_argument(
        "--fault-seed", type=int, default=0, metavar="SEED", help="seed of the random fault choices"
    )


def faults_from_args(args: argparse.Namespace) -> Faults:
    """The `Faults` the parsed flags ask for."""
    chosen = {name: getattr(args, name) for name, _, _, _ in _FAULT_FLAGS}
    return Faults(
        seed=args.fault_seed,
        retry_after_window_reset=args.retry_after_window_reset,
        **{k: v for k, v in chosen.items() if v is not None},
    )


def _write_info(path: Path, info: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(info, handle)
    os.replace(temp, path)


def _remove_info(path: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; returns the exit code."""
    token = args.token or os.environ.get(TOKEN_ENV) or DEFAULT_TOKEN
    if args.show_token or token == DEFAULT_TOKEN:
        token_note = f"token {token!r}"
    else:
        token_note = "token from --token" if args.token else f"token from ${TOKEN_ENV}"
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = SandboxServer(
        objectives=args.objectives,
        companies=args.companies,
        seed=args.seed,
        token=token,
        host=args.host,
        port=args.port,
        faults=faults_from_args(args),
        state_file=args.state_file,
        max_bulk_items=args.max_bulk_items,
        max_limit=args.max_limit,
    )
    try:
        server.start()
        if args.info_file is not None:
            _write_info(args.info_file, {"base_url": server.base_url, "pid": os.getpid()})
        print(
            f"Planhat sandbox: {server.store.count()} objectives at {server.base_url} "
            f"({token_note}); custom metrics at {server.base_url}/dimensiondata/"
            f"{server.tenant_uuid}. Ctrl+C to stop.",
            flush=True,
        )
        while not stop.wait(0.5):
            pass
        return 0
    finally:
        server.stop()
        if args.info_file is not None:
            _remove_info(args.info_file)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m objectives_pipeline.sandbox",
        description="Serve a seeded Planhat-compatible sandbox until stopped.",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
