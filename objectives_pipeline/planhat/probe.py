"""First contact with a tenant: what the server does that the extraction relies on.

:func:`probe_server` sends two list requests and reports the token, the host, the
``_id`` order of sorted pages, the page cap and the rate-limit headers, and what the
extraction will do with this server (:class:`ServerProbe.plan`). It changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .client import PlanhatClient
from .config import MAX_PAGE_SIZE
from .errors import AuthError, PlanhatError
from .snapshot import FALLBACK_PROOF, SORTED_PROOF, record_ids, sorted_order_problem

__all__ = ["ServerProbe", "probe_server"]


@dataclass
class ServerProbe:
    """What :func:`probe_server` found. `ok` is False when the extraction cannot run."""

    base_url: str
    token_accepted: bool = False
    error: str | None = None
    first_page: int = 0
    page_cap: int | None = None
    sort_kept: bool | None = None
    order_problem: str | None = None
    offset_kept: bool | None = None
    rate_limit: int | None = None
    rate_limit_remaining: int | None = None
    requests: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.token_accepted and self.error is None and self.offset_kept is not False

    @property
    def proof(self) -> str | None:
        """The completeness proof the extraction will use, if it can run."""
        if not self.ok:
            return None
        return SORTED_PROOF if self.sort_kept else FALLBACK_PROOF

    def plan(self) -> str:
        """One paragraph: what the extraction will do with this server."""
        if not self.token_accepted:
            return f"The extraction cannot run: {self.error}"
        if not self.ok:
            return f"The extraction cannot run: {self.error or 'the server ignores offset'}"
        size = self.page_cap or MAX_PAGE_SIZE
        if self.sort_kept:
            how = (
                f"pages of {size} sorted by _id, overlapping by one record, several in flight "
                f"({SORTED_PROOF})"
            )
        else:
            how = (
                f"the server does not keep the _id order ({self.order_problem}); after "
                f"two requests it pages in the server's own order, one page at a time, "
                f"chained by the records pages share ({FALLBACK_PROOF})"
            )
        pace = (
            f"; requests are paced to the {self.rate_limit} the server advertises"
            if self.rate_limit
            else "; the server sends no X-Rate-Limit-* headers, so the client's own limit applies"
        )
        return f"The extraction will use {how}{pace}."


def probe_server(client: PlanhatClient) -> ServerProbe:
    """Probe the server `client` talks to (see the module docstring)."""
    probe = ServerProbe(client.base_url)
    before = client.stats.requests
    try:
        page = client.objective_page(offset=0)
        probe.token_accepted = True
        ids = record_ids(page)
        probe.first_page = len(ids)
        problem = sorted_order_problem(ids)
        probe.sort_kept = problem is None
        probe.order_problem = problem
        if ids:
            _probe_second_page(client, probe, ids)
    except AuthError as error:
        probe.error = (
            f"Planhat refused the token ({error.message}). Check PLANHAT_API_TOKEN, and that "
            "PLANHAT_BASE_URL is your tenant's region (api.planhat.com, api-eu.planhat.com, ...)"
        )
    except PlanhatError as error:
        probe.error = str(error)
    stats = client.stats
    probe.rate_limit = stats.server_rate_limit
    probe.rate_limit_remaining = stats.rate_limit_remaining
    probe.requests = stats.requests - before
    return probe


def _probe_second_page(client: PlanhatClient, probe: ServerProbe, ids: list[str]) -> None:
    """The page at the first page's last record: it shows the cap and whether offset and
    the order hold across requests."""
    offset = len(ids) - 1
    second = record_ids(client.objective_page(offset=offset))
    if second and second == ids[: len(second)] and offset > 0:
        probe.offset_kept = False
        probe.error = (
            f"The server returned the same records at offset {offset} as at offset 0: it "
            "ignores `offset`, so no listing can page past its first page"
        )
        return
    probe.offset_kept = True
    if not second:
        probe.notes.append(f"{len(ids)} objectives in all (the second page was empty)")
        return
    if second[0] != ids[-1]:
        probe.notes.append(
            f"the page at offset {offset} did not start with the first page's last record: "
            "objectives changed meanwhile, or the order does not hold across requests"
        )
        if probe.sort_kept:
            probe.sort_kept = False
            probe.order_problem = "pages do not follow one another"
    later_problem = sorted_order_problem(second) if probe.sort_kept else None
    if later_problem:
        probe.sort_kept = False
        probe.order_problem = later_problem
    if len(ids) < MAX_PAGE_SIZE and len(second) > 1:
        probe.page_cap = len(ids)
        probe.notes.append(f"the server caps pages at {len(ids)} records (asked {MAX_PAGE_SIZE})")
    elif len(ids) < MAX_PAGE_SIZE:
        probe.notes.append(f"{len(ids)} objectives in all")
