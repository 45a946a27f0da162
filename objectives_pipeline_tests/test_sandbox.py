"""The sandbox speaks the Planhat objectives API (plain httpx against a live server)."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from objectives_pipeline.sandbox import SandboxServer

TOKEN = "test-token-123"
MakeServer = Callable[..., SandboxServer]

BULK_KEYS = {
    "created", "createdErrors", "insertsKeys", "updated", "updatedErrors", "updatesKeys",
    "nonupdates", "modified", "upsertedIds", "permissionErrors",
}  # fmt: skip


@pytest.fixture
def make_server() -> Iterator[MakeServer]:
    servers: list[SandboxServer] = []

    def make(**options: Any) -> SandboxServer:
        options = {"objectives": 60, "companies": 8, "token": TOKEN, **options}
        server = SandboxServer(**options).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: MakeServer) -> SandboxServer:
    return make_server()


def client_for(server: SandboxServer, token: str | None = TOKEN) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=server.base_url, headers=headers, timeout=10, trust_env=False)


@pytest.fixture
def client(server: SandboxServer) -> Iterator[httpx.Client]:
    with client_for(server) as http:
        yield http


def list_ids(client: httpx.Client, **params: Any) -> list[str]:
    response = client.get("/objectives", params=params)
    assert response.status_code == 200, response.text
    return [obj["_id"] for obj in response.json()]


# ---- lifecycle and auth ------------------------------------------------------------


def test_server_serves_on_a_free_local_port_until_stopped() -> None:
    server = SandboxServer(objectives=5, companies=2, token=TOKEN)
    with server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.base_url)
        assert httpx.get(server.base_url + "/__sandbox/health", trust_env=False).status_code == 200
        base_url = server.base_url
    with pytest.raises(httpx.ConnectError):
        httpx.get(base_url + "/__sandbox/health", trust_env=False, timeout=2)
    with pytest.raises(RuntimeError):
        _ = server.base_url


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_requests_without_the_right_token_get_401_json(
    server: SandboxServer, token: str | None
) -> None:
    with client_for(server, token) as http:
        for response in (http.get("/objectives"), http.put("/objectives", json=[])):
            assert response.status_code == 401
            assert "error" in response.json()


def test_token_does_not_leak_into_reprs(server: SandboxServer) -> None:
    assert TOKEN not in repr(server)
    assert TOKEN not in repr(server.request_log)


def test_every_response_carries_rate_limit_headers(client: httpx.Client) -> None:
    responses = [
        client.get("/objectives"),
        client.get("/objectives/000000000000000000000000"),
        httpx.get(f"{client.base_url}/objectives", trust_env=False),
    ]
    assert [r.status_code for r in responses] == [200, 404, 401]
    for response in responses:
        assert int(response.headers["X-Rate-Limit-Limit"]) > 0
        assert int(response.headers["X-Rate-Limit-Remaining"]) >= 0


# ---- list --------------------------------------------------------------------------


def test_list_is_a_bare_array_of_100_in_id_order_by_default(make_server: MakeServer) -> None:
    server = make_server(objectives=250)
    with client_for(server) as http:
        body = http.get("/objectives").json()
    assert isinstance(body, list)
    assert body == server.store.all_objectives()[:100]
    assert [o["_id"] for o in body] == sorted(o["_id"] for o in body)


def test_limit_above_the_maximum_is_clamped_silently(make_server: MakeServer) -> None:
    server = make_server(objectives=2100, companies=20)
    with client_for(server) as http:
        assert len(list_ids(http, limit=5000)) == 2000
    small = make_server(objectives=30, max_limit=12)
    with client_for(small) as http:
        assert len(list_ids(http, limit=20)) == 12


def test_limit_and_offset_page_through_everything_once(
    server: SandboxServer, client: httpx.Client
) -> None:
    seen: list[str] = []
    for page in range(100):
        ids = list_ids(client, limit=7, offset=page * 7)
        if not ids:
            break
        seen += ids
    assert seen == server.store.ids()


@pytest.mark.parametrize("params", [{"limit": "x"}, {"limit": 0}, {"offset": -1}])
def test_bad_paging_parameters_get_400(client: httpx.Client, params: dict[str, Any]) -> None:
    assert client.get("/objectives", params=params).status_code == 400


def test_sort_descending_with_ties_in_id_order(client: httpx.Client) -> None:
    body = client.get("/objectives", params={"sort": "-name", "limit": 2000}).json()
    names = [o["name"] for o in body]
    assert names == sorted(names, reverse=True)
    for before, after in itertools.pairwise(body):
        if before["name"] == after["name"]:
            assert before["_id"] < after["_id"]


def test_sort_by_health_puts_missing_and_null_first(client: httpx.Client) -> None:
    body = client.get("/objectives", params={"sort": "health", "limit": 2000}).json()
    healths = [o.get("health") for o in body]
    nulls = [h for h in healths if h is None]
    assert healths[: len(nulls)] == nulls
    numbers = healths[len(nulls) :]
    assert numbers == sorted(numbers)


def test_select_returns_only_the_named_fields_plus_id(client: httpx.Client) -> None:
    body = client.get("/objectives", params={"select": "name,health", "limit": 20}).json()
    for obj in body:
        assert {"_id", "name"} <= set(obj) <= {"_id", "name", "health"}


def test_company_filter_accepts_lists_and_extid_srcid_refs(
    server: SandboxServer, client: httpx.Client
) -> None:
    by_company: dict[str, int] = {}
    for obj in server.store.all_objectives():
        by_company[obj["companyId"]] = by_company.get(obj["companyId"], 0) + 1
    companies = [c for c in server.store.companies() if c["_id"] in by_company][:2]
    first, second = companies
    refs = f"extid-{first['externalId']},srcid-{second['sourceId']}"
    body = client.get("/objectives", params={"companyId": refs, "limit": 2000}).json()
    assert {o["companyId"] for o in body} == {first["_id"], second["_id"]}
    assert len(body) == by_company[first["_id"]] + by_company[second["_id"]]
    only_first = client.get("/objectives", params={"companyId": first["_id"]}).json()
    assert len(only_first) == by_company[first["_id"]]


# ---- single objects ----------------------------------------------------------------


def test_get_by_id_external_id_and_source_id(server: SandboxServer, client: httpx.Client) -> None:
    obj = next(o for o in server.store.all_objectives() if "externalId" in o and "sourceId" in o)
    for ref in (obj["_id"], f"extid-{obj['externalId']}", f"srcid-{obj['sourceId']}"):
        assert client.get(f"/objectives/{ref}").json() == obj
    missing = client.get("/objectives/extid-no-such-id")
    assert missing.status_code == 404
    assert "error" in missing.json()


def test_create_fills_server_fields_and_keeps_unknown_ones(
    server: SandboxServer, client: httpx.Client
) -> None:
    company = server.store.companies()[0]
    last_id = server.store.ids()[-1]
    response = client.post(
        "/objectives",
        json={
            "name": "Objective name",
            "health": 5,
            "companyId": f"extid-{company['externalId']}",
            "externalId": 1234,
            "sourceId": "sfc-1234",
            "custom": {"field": "custom field"},
            "somethingNew": [1, {"x": None}],
        },
    )
    assert response.status_code == 200
    created = response.json()
    assert re.fullmatch(r"[0-9a-f]{24}", created["_id"]) and created["_id"] > last_id
    assert created["companyId"] == company["_id"]
    assert created["companyName"] == company["name"]
    assert created["externalId"] == "1234"
    assert created["__v"] == 0
    assert created["somethingNew"] == [1, {"x": None}]
    assert server.store.ids()[-1] == created["_id"]


def test_create_rejects_missing_name_as_text_and_unknown_company_as_json(
    server: SandboxServer, client: httpx.Client
) -> None:
    company_id = server.store.companies()[0]["_id"]
    no_name = client.post("/objectives", json={"companyId": company_id})
    assert no_name.status_code == 400
    assert no_name.headers["content-type"].startswith("text/plain")
    assert "name" in no_name.text
    bad_company = client.post("/objectives", json={"name": "x", "companyId": "extid-nope"})
    assert bad_company.status_code == 400
    assert "error" in bad_company.json()
    assert client.post("/objectives", json={"name": "x"}).status_code == 400
    assert server.store.count() == 60


def test_update_changes_given_fields_and_merges_custom(
    server: SandboxServer, client: httpx.Client
) -> None:
    obj = next(o for o in server.store.all_objectives() if "sourceId" in o)
    response = client.put(
        f"/objectives/srcid-{obj['sourceId']}", json={"health": 3.5, "custom": {"New": True}}
    )
    assert response.status_code == 200
    updated = response.json()
    assert updated["health"] == 3.5
    assert updated["custom"] == {**obj["custom"], "New": True}
    assert updated["name"] == obj["name"]
    assert server.store.get(obj["_id"]) == updated
    assert client.put("/objectives/" + "f" * 24, json={"health": 1}).status_code == 404


def test_delete_answers_like_mongo_and_removes_the_objective(
    server: SandboxServer, client: httpx.Client
) -> None:
    object_id = server.store.ids()[3]
    assert client.delete(f"/objectives/{object_id}").json() == {"n": 1, "ok": 1, "deletedCount": 1}
    assert client.get(f"/objectives/{object_id}").status_code == 404
    assert client.delete(f"/objectives/{object_id}").status_code == 404
    assert server.store.count() == 59


# ---- bulk upsert -------------------------------------------------------------------


def test_bulk_matches_by_id_then_source_id_then_external_id(
    server: SandboxServer, client: httpx.Client
) -> None:
    objs = [o for o in server.store.all_objectives() if "externalId" in o and "sourceId" in o]
    a, b, c, d, e = objs[:5]
    items = [
        {"externalId": int(c["externalId"]), "name": "by external id"},
        {"_id": "f" * 24, "sourceId": b["sourceId"], "externalId": d["externalId"], "name": "src"},
        {"_id": a["_id"], "sourceId": e["sourceId"], "name": "by id"},
    ]
    response = client.put("/objectives", json=items)
    assert response.status_code == 200
    result = response.json()
    assert set(result) == BULK_KEYS
    assert result["updated"] == 3 and result["created"] == 0
    assert result["modified"] == [c["_id"], b["_id"], a["_id"]]
    names = [(server.store.get(o["_id"]) or {}).get("name") for o in (a, b, c, d, e)]
    assert names == ["by id", "src", "by external id", d["name"], e["name"]]


def test_bulk_creates_unmatched_items_and_counts_identical_ones_as_nonupdates(
    server: SandboxServer, client: httpx.Client
) -> None:
    company = server.store.companies()[1]
    stored = server.store.all_objectives()[0]
    items = [
        {"name": "new keyed", "companyId": company["_id"], "sourceId": "sfc-new", "externalId": 9},
        {"name": "no keys", "companyId": f"srcid-{company['sourceId']}"},
        {"name": "no keys", "companyId": company["_id"]},
        {"_id": stored["_id"], "name": stored["name"]},
    ]
    result = client.put("/objectives", json=items).json()
    assert result["created"] == 3
    assert result["nonupdates"] == 1 and result["updated"] == 0
    assert result["insertsKeys"][0]["sourceId"] == "sfc-new"
    assert result["insertsKeys"][0]["externalId"] == "9"
    assert result["upsertedIds"] == [k["_id"] for k in result["insertsKeys"]]
    assert len([o for o in server.store.all_objectives() if o["name"] == "no keys"]) == 2
    again = client.put("/objectives", json=items[:1]).json()
    assert again["nonupdates"] == 1 and again["created"] == 0
    assert len(server.store.find_by_source_id("sfc-new")) == 1


def test_bulk_item_errors_answer_206_with_keys_and_messages(
    server: SandboxServer, client: httpx.Client
) -> None:
    existing = next(o for o in server.store.all_objectives() if "sourceId" in o)
    items = [
        {"sourceId": "sfc-nameless", "companyId": server.store.companies()[0]["_id"]},
        {"sourceId": existing["sourceId"], "companyId": "no-such-company"},
        {"name": "fine", "companyId": server.store.companies()[0]["_id"]},
    ]
    response = client.put("/objectives", json=items)
    assert response.status_code == 206
    result = response.json()
    assert result["created"] == 1
    [created_error] = result["createdErrors"]
    assert created_error["index"] == 0 and created_error["sourceId"] == "sfc-nameless"
    assert "name" in created_error["error"]
    [updated_error] = result["updatedErrors"]
    assert updated_error["index"] == 1 and updated_error["sourceId"] == existing["sourceId"]
    assert server.store.get(existing["_id"]) == existing


def test_bulk_over_the_item_limit_is_rejected_whole(
    server: SandboxServer, client: httpx.Client
) -> None:
    company_id = server.store.companies()[0]["_id"]
    items = [{"name": f"o{i}", "companyId": company_id} for i in range(5001)]
    response = client.put("/objectives", json=items)
    assert response.status_code == 400
    assert server.store.count() == 60
    assert server.request_log[-1].n_items == 5001
    assert client.put("/objectives", json=items[:5000]).status_code == 200
    assert server.store.count() == 5060


def test_bulk_rejects_a_body_that_is_not_an_array(client: httpx.Client) -> None:
    assert client.put("/objectives", json={"name": "x"}).status_code == 400
    assert client.put("/objectives", content=b"{not json").status_code == 400


def test_request_log_records_each_request(server: SandboxServer, client: httpx.Client) -> None:
    client.get("/objectives", params={"limit": 5, "offset": 10})
    client.put("/objectives", json=[{"_id": server.store.ids()[0]}])
    listing, bulk = server.request_log[-2:]
    assert (listing.method, listing.path, listing.query, listing.status, listing.n_items) == (
        "GET",
        "/objectives",
        {"limit": "5", "offset": "10"},
        200,
        5,
    )
    assert (bulk.method, bulk.status, bulk.n_items) == ("PUT", 200, 1)
