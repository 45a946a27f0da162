"""Each sandbox fault knob does what it says, as a plain HTTP client sees it."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from objectives_pipeline.sandbox import Faults, SandboxServer

TOKEN = "fault-token"


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    with SandboxServer(objectives=40, companies=5, token=TOKEN) as running:
        yield running


@pytest.fixture
def client(server: SandboxServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(
        base_url=server.base_url, headers=headers, timeout=10, trust_env=False
    ) as http:
        yield http


def statuses(client: httpx.Client, count: int, path: str = "/objectives") -> list[int]:
    return [client.get(path, params={"limit": 5}).status_code for _ in range(count)]


def test_latency_lets_a_client_hit_its_timeout(server: SandboxServer, client: httpx.Client) -> None:
    server.faults.latency_ms = 600
    with pytest.raises(httpx.ReadTimeout):
        client.get("/objectives", timeout=0.05)
    server.faults.latency_ms = 0
    assert client.get("/objectives").status_code == 200


def test_error_rate_one_answers_only_server_errors(
    server: SandboxServer, client: httpx.Client
) -> None:
    server.faults.error_rate = 1.0
    seen = statuses(client, 30)
    assert set(seen) <= {500, 502, 503}
    assert len(set(seen)) > 1
    assert all(r.fault and r.fault.startswith("error_") for r in server.request_log[-30:])


def test_error_rate_is_a_share_and_deterministic_for_a_seed() -> None:
    runs = []
    for _ in range(2):
        faults = Faults(error_rate=0.5, seed=7)
        with SandboxServer(objectives=5, companies=1, token=TOKEN, faults=faults) as server:
            headers = {"Authorization": f"Bearer {TOKEN}"}
            with httpx.Client(base_url=server.base_url, headers=headers, trust_env=False) as http:
                runs.append(statuses(http, 40))
    assert runs[0] == runs[1]
    assert 200 in runs[0] and any(status >= 500 for status in runs[0])


def test_drop_closes_the_connection_without_a_response(
    server: SandboxServer, client: httpx.Client
) -> None:
    server.faults.drop_rate = 1.0
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/objectives")
    assert (server.request_log[-1].status, server.request_log[-1].fault) == (0, "drop")
    server.faults.drop_rate = 0.0
    assert client.get("/objectives").status_code == 200


def test_rate_limit_per_second_answers_429_past_the_limit(
    server: SandboxServer, client: httpx.Client
) -> None:
    server.faults.rate_limit_per_second = 2
    seen = statuses(client, 12)
    assert seen[:2] == [200, 200]
    assert 429 in seen


def test_rate_limit_per_second_advertises_its_limit_and_what_is_left_of_it(
    server: SandboxServer, client: httpx.Client
) -> None:
    server.faults.rate_limit_per_second = 3
    responses = [client.get("/objectives") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert {r.headers["X-Rate-Limit-Limit"] for r in responses} == {"3"}
    assert [r.headers["X-Rate-Limit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert "Retry-After" not in responses[-1].headers


def test_window_quota_can_say_when_it_resets_in_retry_after(
    server: SandboxServer, client: httpx.Client
) -> None:
    server.faults.rate_limit_window_requests = 2
    server.faults.rate_limit_window_seconds = 30.0
    server.faults.retry_after_window_reset = True
    server.faults.retry_after = 0.5  # the reset time wins for the quota's own 429s
    responses = [client.get("/objectives") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert 29 <= int(responses[-1].headers["Retry-After"]) <= 30


def test_window_quota_counts_down_in_headers_then_answers_429(
    server: SandboxServer, client: httpx.Client
) -> None:
    server.faults.rate_limit_window_requests = 3
    responses = [client.get("/objectives") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert {r.headers["X-Rate-Limit-Limit"] for r in responses} == {"3"}
    assert [r.headers["X-Rate-Limit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert "Retry-After" not in responses[-1].headers


def test_window_quota_resets_after_the_window(server: SandboxServer, client: httpx.Client) -> None:
    server.faults.rate_limit_window_requests = 1
    server.faults.rate_limit_window_seconds = 0.0
    assert statuses(client, 3) == [200, 200, 200]


def test_burst_429_serves_the_next_n_requests_with_retry_after(
    server: SandboxServer, client: httpx.Client
) -> None:
    server.faults.burst_429 = 2
    server.faults.retry_after = 0.2
    responses = [client.get("/objectives") for _ in range(3)]
    assert [r.status_code for r in responses] == [429, 429, 200]
    assert [r.headers.get("Retry-After") for r in responses[:2]] == ["0.2", "0.2"]
    assert server.faults.burst_429 == 0
    server.faults.burst_429 = 1
    server.faults.retry_after = 3
    assert client.get("/objectives").headers["Retry-After"] == "3"


def test_page_cap_returns_fewer_records_than_asked(
    server: SandboxServer, client: httpx.Client
) -> None:
    server.faults.page_cap = 5
    assert len(client.get("/objectives", params={"limit": 20}).json()) == 5


def test_truncated_list_body_is_a_200_that_is_not_json(
    server: SandboxServer, client: httpx.Client
) -> None:
    whole = client.get("/objectives", params={"limit": 10}).content
    server.faults.truncate_rate = 1.0
    response = client.get("/objectives", params={"limit": 10})
    assert response.status_code == 200
    assert whole.startswith(response.content) and len(response.content) < len(whole)
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_non_json_list_body_is_a_200_html_page(server: SandboxServer, client: httpx.Client) -> None:
    server.faults.non_json_rate = 1.0
    response = client.get("/objectives")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert client.get(f"/objectives/{server.store.ids()[0]}").status_code == 200


def test_churn_deletes_early_objectives_and_creates_new_ones(
    server: SandboxServer, client: httpx.Client
) -> None:
    before = server.store.ids()
    server.faults.churn_per_list_request = 2
    client.get("/objectives", params={"limit": 1})
    after = server.store.ids()
    assert len(after) == len(before)
    removed = set(before) - set(after)
    assert len(removed) == 2 and removed <= set(before[: len(before) // 4])
    assert after[-2:] > before[-1:] and set(after[-2:]).isdisjoint(before)


def test_bulk_item_faults_answer_206_with_created_updated_and_permission_errors(
    server: SandboxServer, client: httpx.Client
) -> None:
    company_id = server.store.companies()[0]["_id"]
    existing = next(o for o in server.store.all_objectives() if "sourceId" in o)
    server.faults.bulk_item_error_source_ids = {"bad-new", existing["sourceId"]}
    server.faults.bulk_item_permission_source_ids = {"forbidden"}
    items = [
        {"name": "a", "companyId": company_id, "sourceId": "bad-new"},
        {"name": "b", "sourceId": existing["sourceId"]},
        {"name": "c", "companyId": company_id, "sourceId": "forbidden"},
        {"name": "d", "companyId": company_id, "sourceId": "fine"},
    ]
    response = client.put("/objectives", json=items)
    assert response.status_code == 206
    result = response.json()
    assert [e["sourceId"] for e in result["createdErrors"]] == ["bad-new"]
    assert [e["sourceId"] for e in result["updatedErrors"]] == [existing["sourceId"]]
    assert [e["sourceId"] for e in result["permissionErrors"]] == ["forbidden"]
    assert result["created"] == 1 and result["updated"] == 0
    assert server.store.find_by_source_id("bad-new") == []


def test_bulk_500_applies_part_of_the_nth_batch_once(
    server: SandboxServer, client: httpx.Client
) -> None:
    company_id = server.store.companies()[0]["_id"]

    def batch(tag: str) -> list[dict[str, str]]:
        return [{"name": tag, "companyId": company_id, "sourceId": f"{tag}-{i}"} for i in range(6)]

    server.faults.bulk_500_on_request = 2
    server.faults.bulk_500_after_items = 4
    assert client.put("/objectives", json=batch("first")).status_code == 200
    assert client.put("/objectives", json=batch("second")).status_code == 500
    assert client.put("/objectives", json=batch("third")).status_code == 200
    created = [o["name"] for o in server.store.all_objectives()[40:]]
    assert created == ["first"] * 6 + ["second"] * 4 + ["third"] * 6
    assert server.faults.bulk_500_on_request is None


def test_token_expires_after_n_authorised_requests(
    server: SandboxServer, client: httpx.Client
) -> None:
    server.faults.expire_token_after_requests = 2
    assert statuses(client, 4) == [200, 200, 401, 401]
    assert client.get("/__sandbox/health").status_code == 200
    server.faults.expire_token_after_requests = None
    assert client.get("/objectives").status_code == 200
