"""`check_planhat_server`: first contact with the configured tenant, runnable from the UI.

The same probe as ``objectives-pipeline check``: the token, the host, whether pages sorted by
``_id`` keep that order, the page cap and the rate-limit headers, and what the extraction
will do with this server. It reads two pages and changes nothing.
"""

from typing import Any

import dagster as dg

from objectives_pipeline.planhat.probe import ServerProbe, probe_server
from objectives_pipeline.resources import PlanhatResource


def probe_metadata(probe: ServerProbe) -> dict[str, Any]:
    """The probe's findings as run metadata (never the token)."""
    return {
        "base_url": probe.base_url,
        "token_accepted": probe.token_accepted,
        "sort_by_id_kept": probe.sort_kept,
        "order_problem": probe.order_problem or "",
        "page_cap": probe.page_cap,
        "rate_limit": probe.rate_limit,
        "rate_limit_remaining": probe.rate_limit_remaining,
        "completeness_proof": probe.proof or "",
        "requests": probe.requests,
        "plan": probe.plan(),
    }


@dg.op(
    description=(
        "Probe the configured Planhat tenant: token, host, _id order of sorted pages, page cap "
        "and rate-limit headers, and what the extraction will do with it."
    )
)
def check_planhat_server(context: dg.OpExecutionContext, planhat: PlanhatResource) -> None:
    with planhat.get_client(context.log) as client:
        probe = probe_server(client)
    metadata = probe_metadata(probe)
    context.log.info(probe.plan())
    for note in probe.notes:
        context.log.info(note)
    if not probe.ok:
        raise dg.Failure(description=probe.plan(), metadata=metadata)
    context.log_event(dg.AssetObservation(asset_key="planhat_objectives", metadata=metadata))


@dg.job(
    name="check_planhat",
    description="First contact with the tenant; run it before the first extraction.",
)
def check_planhat() -> None:
    check_planhat_server()
