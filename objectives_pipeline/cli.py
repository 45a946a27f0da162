"""The `objectives-pipeline` command.

Each subcommand lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; this file only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "check": (
        "objectives_pipeline.commands.check",
        "First contact with the tenant: token, region, sort order, page cap, rate limits.",
    ),
    "demo": (
        "objectives_pipeline.commands.demo",
        "Run the whole pipeline end to end on the embedded sandbox.",
    ),
    "health": (
        "objectives_pipeline.commands.health",
        "Show per-company objective health from the DuckDB file (read-only).",
    ),
    "push": (
        "objectives_pipeline.commands.push",
        "Push the source system's objectives into Planhat (bulk upsert, changes only).",
    ),
    "query": (
        "objectives_pipeline.commands.query",
        "Run one read-only SQL query on the DuckDB file (table, CSV or JSON).",
    ),
    "sandbox": (
        "objectives_pipeline.sandbox.cli",
        "Serve a seeded Planhat-compatible sandbox until stopped.",
    ),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only `command`'s module is imported (Dagster is slow to import)."""
    parser = argparse.ArgumentParser(
        prog="objectives-pipeline",
        description="Planhat Objectives pipeline: extract-load, SQL models, reverse ETL.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        if name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(sub)
            sub.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
