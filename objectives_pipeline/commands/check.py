"""`objectives-pipeline check`: first contact with the configured Planhat tenant.

Reads ``PLANHAT_API_TOKEN`` and ``PLANHAT_BASE_URL`` like the pipeline (no token: the
embedded sandbox), sends two list requests and prints what the server does and what the
extraction will do with it. Exit status 0 when the extraction can run, 1 when it cannot,
2 for a configuration error.
"""

from __future__ import annotations

import argparse

from objectives_pipeline.planhat import ConfigError
from objectives_pipeline.planhat.probe import ServerProbe, probe_server
from objectives_pipeline.resources import PlanhatResource
from objectives_pipeline.settings import read_env


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # no options: everything comes from the environment


def report_lines(probe: ServerProbe) -> list[str]:
    """The probe as the lines `check` prints."""

    def yes_no(value: bool | None) -> str:
        return "unknown" if value is None else ("yes" if value else "no")

    limit = (
        f"{probe.rate_limit} (X-Rate-Limit-Limit), {probe.rate_limit_remaining} left"
        if probe.rate_limit
        else "no X-Rate-Limit-* headers"
    )
    lines = [
        f"Planhat API       {probe.base_url}",
        f"token accepted    {yes_no(probe.token_accepted)}",
        f"sorted by _id     {yes_no(probe.sort_kept)}"
        + (f" ({probe.order_problem})" if probe.order_problem else ""),
        f"offset honoured   {yes_no(probe.offset_kept)}",
        f"page cap          {probe.page_cap or 'none seen'}",
        f"rate limit        {limit}",
        f"requests sent     {probe.requests}",
    ]
    lines += [f"note              {note}" for note in probe.notes]
    return [*lines, "", probe.plan()]


def run(args: argparse.Namespace) -> int:
    del args
    settings = read_env()
    resource = PlanhatResource(api_token=settings.api_token, base_url=settings.base_url)
    try:
        client = resource.get_client()
    except ConfigError as error:
        print(f"Cannot check: {error}")
        return 2
    with client:
        if resource.uses_sandbox:
            print("PLANHAT_API_TOKEN is not set: checking the embedded sandbox.")
        probe = probe_server(client)
    print("\n".join(report_lines(probe)))
    return 0 if probe.ok else 1
