"""Companies and custom metrics: the client against the sandbox over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from objectives_pipeline.planhat import (
    CompanyRef,
    ConfigError,
    InvalidItemError,
    MetricItem,
    PlanhatClient,
)
from objectives_pipeline.sandbox import Faults, SandboxServer

TOKEN = "companies-secret-91ac"
DAY = date(2026, 3, 2)
EPOCH_DAY = (DAY - date(1970, 1, 1)).days


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(objectives=0, companies=6001, seed=4, token=TOKEN) as srv:
        yield srv


@pytest.fixture
def api(server: SandboxServer) -> Iterator[PlanhatClient]:
    server.faults = Faults()
    with PlanhatClient(
        server.base_url, server.token, tenant_uuid=server.tenant_uuid, analytics_url=server.base_url
    ) as client:
        yield client


def test_companies_page_at_5000_and_come_back_complete(
    server: SandboxServer, api: PlanhatClient
) -> None:
    start = len(server.request_log)

    companies = list(api.iter_companies(concurrency=1))

    assert [c.id for c in companies] == [c["_id"] for c in server.store.companies()]
    pages = [r for r in server.request_log[start:] if r.path == "/companies"]
    # No total in Planhat's answer: paging ends at the first empty page.
    assert [(r.query["limit"], r.n_items) for r in pages] == [
        ("5000", 5000), ("5000", 1001), ("5000", 0),
    ]
    assert len(api.list_companies(limit=10, offset=5995)) == 6
    lean = api.list_lean_companies()
    assert len(lean) == 6001 and lean[37].external_id is None and lean[0].external_id == "C1000"
    with pytest.raises(ConfigError, match="from 1 to 5000"):
        api.list_companies(limit=5001)


def test_bulk_upsert_merges_custom_per_key_and_get_by_reference(
    server: SandboxServer, api: PlanhatClient
) -> None:
    first, second = server.store.companies()[:2]
    api.update_company(first["_id"], {"custom": {"Tier": "Gold"}})

    result = api.bulk_upsert_companies(
        [
            {"_id": first["_id"], "custom": {"Avg objective health": 3.4}},
            {"_id": second["_id"], "custom": {"Avg objective health": 1.5}},
            {"name": "Brand new AB", "externalId": "NEW-1"},
            {"externalId": "NEW-2"},
        ]
    )

    assert (result.updated, result.created, len(result.created_errors)) == (2, 1, 1)
    assert result.created_errors[0].item_index == 3 and "name" in result.created_errors[0].message
    assert api.get_company(first["_id"]).custom == {"Tier": "Gold", "Avg objective health": 3.4}
    by_ext = api.get_company(CompanyRef.external("NEW-1"))
    assert by_ext.name == "Brand new AB"
    by_src = api.get_company(CompanyRef.source(second["sourceId"]))
    assert by_src.custom == {"Avg objective health": 1.5}


def test_bulk_errors_of_a_206_are_matched_to_their_companies(
    server: SandboxServer, api: PlanhatClient
) -> None:
    companies = server.store.companies()[10:15]
    server.faults = Faults(bulk_item_error_source_ids={companies[3]["_id"]})

    result = api.bulk_upsert_companies(
        [{"_id": c["_id"], "custom": {"Score": n}} for n, c in enumerate(companies)]
    )

    assert result.requests[0].status == 206 and result.partial
    assert [(e.item_index, e.id) for e in result.errors] == [(3, companies[3]["_id"])]
    assert result.updated == 4


def test_metrics_are_batched_and_errors_matched_to_items(
    server: SandboxServer, api: PlanhatClient
) -> None:
    companies = server.store.companies()[:7]
    items = [
        MetricItem(
            dimension_id="avg_objective_health",
            value=n + 0.5,
            external_id=c.get("externalId") or "missing",
            date=DAY,
        )
        for n, c in enumerate(companies)
    ]
    items[4] = items[4].model_copy(update={"external_id": "nobody"})
    start = len(server.request_log)

    result = api.push_metrics(items, batch_size=3)

    posts = [r for r in server.request_log[start:] if r.method == "POST"]
    assert [r.n_items for r in posts] == [3, 3, 1]
    assert (result.processed, result.requests, result.items) == (6, 3, 7)
    assert [(e.item_index, "nobody" in e.message) for e in result.errors] == [(4, True)]
    stored = server.store.read_metrics(None, "avg_objective_health", EPOCH_DAY, EPOCH_DAY)
    assert {r["companyId"]: r["value"] for r in stored} == {
        c["_id"]: n + 0.5 for n, c in enumerate(companies) if n != 4
    }
    # A later value of the same day replaces the earlier one (aggregation LAST).
    api.push_metrics([items[0].model_copy(update={"value": 9.0})])
    stored = server.store.read_metrics(companies[0]["_id"], None, EPOCH_DAY, EPOCH_DAY)
    assert [r["value"] for r in stored] == [9.0]


def test_bad_metric_items_and_missing_tenant_are_refused_before_sending(
    server: SandboxServer, api: PlanhatClient
) -> None:
    start = len(server.request_log)
    good = {"dimensionId": "ok_1", "value": 1, "externalId": "C1000", "date": "2026-03-02"}
    with pytest.raises(InvalidItemError, match=r"item 1 .*dimensionId"):
        api.push_metrics([good, {**good, "dimensionId": "avg health"}])
    with pytest.raises(InvalidItemError, match="externalId"):
        api.push_metrics([{**good, "externalId": " "}])
    no_tenant = PlanhatClient(server.base_url, server.token, analytics_url=server.base_url)
    with no_tenant, pytest.raises(ConfigError, match="PLANHAT_TENANT_UUID"):
        no_tenant.push_metrics([good])
    assert server.request_log[start:] == []
    with pytest.raises(ConfigError, match="not a UUID"):
        PlanhatClient(server.base_url, server.token, tenant_uuid="tenant-1")


def test_metrics_never_go_over_plain_http_to_a_remote_host_and_the_token_stays_hidden() -> None:
    with pytest.raises(ConfigError, match="plain http"):
        PlanhatClient("https://api.planhat.com", TOKEN, analytics_url="http://analytics.example")
    client = PlanhatClient.from_env(
        {
            "PLANHAT_API_TOKEN": TOKEN,
            "PLANHAT_TENANT_UUID": "0F8FAD5B-D9CB-469F-A165-70867728950E",
            "PLANHAT_ANALYTICS_URL": "https://analytics.example.com/",
        }
    )
    with client:
        assert client.tenant_uuid == "0f8fad5b-d9cb-469f-a165-70867728950e"
        assert client.analytics_url == "https://analytics.example.com"
        assert TOKEN not in repr(client)


def test_companies_and_metrics_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with SandboxServer(objectives=20, companies=5, seed=1, state_file=state) as srv:
        company = srv.store.companies()[1]
        with PlanhatClient(
            srv.base_url, srv.token, tenant_uuid=srv.tenant_uuid, analytics_url=srv.base_url
        ) as client:
            client.bulk_upsert_companies([{"_id": company["_id"], "custom": {"X": 2.5}}])
            client.push_metrics(
                [{"dimensionId": "d", "value": 4, "externalId": company["externalId"], "date": DAY}]
            )
    with SandboxServer(objectives=20, companies=5, seed=1, state_file=state) as srv:
        assert srv.store.resolve_company(company["_id"])["custom"] == {"X": 2.5}  # type: ignore[index]
        rows = srv.store.read_metrics(company["_id"], "d", EPOCH_DAY, EPOCH_DAY)
        assert [r["value"] for r in rows] == [4.0]
