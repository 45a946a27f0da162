"""Subcommands of `objectives-pipeline` (each: add_arguments(parser), run(args) -> int)."""
