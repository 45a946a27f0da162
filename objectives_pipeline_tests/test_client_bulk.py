"""Bulk upsert over HTTP: batching, merged results, partial failures, safe retries."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from objectives_pipeline.planhat import (
    AuthError,
    BulkUpsertResult,
    ConfigError,
    ObjectiveIn,
    PlanhatClient,
    RetryPolicy,
    ServerError,
)
from objectives_pipeline.sandbox import Faults, SandboxServer

FAST = RetryPolicy(initial_backoff=0.001, max_backoff=0.01, jitter=0.001)


@pytest.fixture(scope="module")
def server(sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return sandbox(objectives=50, companies=10, seed=5)


@pytest.fixture
def api(server: SandboxServer) -> Iterator[PlanhatClient]:
    with PlanhatClient(
        server.base_url, server.token, retry=FAST, rate_limit_per_minute=None
    ) as client:
        yield client
    server.faults = Faults()


def rows(
    server: SandboxServer, prefix: str, count: int, *, keyed: bool = True
) -> list[dict[str, Any]]:
    companies = [c["_id"] for c in server.store.companies()]
    return [
        {
            "name": f"{prefix} {i}",
            "companyId": companies[i % len(companies)],
            "health": (i % 5) + 1,
            **({"sourceId": f"{prefix}-{i}"} if keyed else {}),
        }
        for i in range(count)
    ]


def bulk_requests(server: SandboxServer, since: int) -> list[tuple[int, int | None]]:
    return [
        (r.status, r.n_items)
        for r in server.request_log[since:]
        if r.method == "PUT" and r.path == "/objectives"
    ]


def test_12001_items_go_in_3_requests_and_a_repeat_creates_nothing(
    server: SandboxServer, api: PlanhatClient
) -> None:
    items = rows(server, "big", 12_001)
    before = server.store.count()
    start = len(server.request_log)
    first = api.bulk_upsert(items)
    assert bulk_requests(server, start) == [(200, 5000), (200, 5000), (200, 2001)]
    assert first.ok and not first.partial
    assert first.created == 12_001 and first.updated == 0
    assert len(first.upserted_ids) == 12_001 == len(set(first.upserted_ids))
    assert [(r.index, r.offset, r.item_count, r.status) for r in first.requests] == [
        (0, 0, 5000, 200),
        (1, 5000, 5000, 200),
        (2, 10_000, 2001, 200),
    ]
    assert server.store.count() == before + 12_001

    again = api.bulk_upsert(items)
    assert again.created == 0 and again.updated + again.nonupdates == 12_001
    assert server.store.count() == before + 12_001
    assert all(len(server.store.find_by_source_id(f"big-{i}")) == 1 for i in (0, 5000, 12_000))


def test_batches_are_never_empty_and_batch_size_is_checked(
    server: SandboxServer, api: PlanhatClient
) -> None:
    start = len(server.request_log)
    empty = api.bulk_upsert([])
    assert empty.requests == [] and empty.ok and bulk_requests(server, start) == []

    items = rows(server, "even", 10)
    result = api.bulk_upsert(iter(items), batch_size=5)  # any iterable, exact multiple
    assert [(r.offset, r.item_count) for r in result.requests] == [(0, 5), (5, 5)]
    assert bulk_requests(server, start) == [(200, 5), (200, 5)]
    for size in (0, 5001, -1):
        with pytest.raises(ConfigError, match="batch_size"):
            api.bulk_upsert(items, batch_size=size)


def test_partial_failures_are_reported_with_their_rows(
    server: SandboxServer, api: PlanhatClient
) -> None:
    server.faults.bulk_item_error_source_ids = {"part-3"}
    server.faults.bulk_item_permission_source_ids = {"part-5"}
    items = [ObjectiveIn.model_validate(r) for r in rows(server, "part", 10)]
    seen: list[BulkUpsertResult] = []
    result = api.bulk_upsert(items, batch_size=4, on_batch=seen.append)

    assert result.partial and not result.ok
    assert [r.status for r in result.requests] == [206, 206, 200]
    assert [r.partial for r in result.requests] == [True, True, False]
    assert result.created == 8
    (created_error,) = result.created_errors
    assert (created_error.source_id, created_error.item_index, created_error.batch_index) == (
        "part-3",
        3,
        0,
    )
    assert created_error.message == "Item rejected (sandbox fault)"
    (permission,) = result.permission_errors
    assert (permission.source_id, permission.item_index, permission.batch_index) == ("part-5", 5, 1)
    assert [e.kind for e in result.errors] == ["created", "permission"]
    assert [len(b.requests) for b in seen] == [1, 1, 1]
    assert seen[1].permission_errors[0].item_index == 5


def test_iter_bulk_upsert_yields_each_batch_as_it_is_sent(
    server: SandboxServer, api: PlanhatClient
) -> None:
    start = len(server.request_log)
    batches = api.iter_bulk_upsert(rows(server, "lazy", 7), batch_size=3)
    assert bulk_requests(server, start) == []  # nothing sent before asked
    first = next(batches)
    assert first.requests[0].item_count == 3 and len(bulk_requests(server, start)) == 1
    rest = list(batches)
    assert [b.requests[0].offset for b in rest] == [3, 6]


def test_500_mid_batch_is_retried_without_duplicates_when_items_are_keyed(
    server: SandboxServer, api: PlanhatClient
) -> None:
    server.faults.bulk_500_on_request = 1
    server.faults.bulk_500_after_items = 2  # two items land, then the server fails
    start = len(server.request_log)
    result = api.bulk_upsert(rows(server, "crash", 6))
    assert bulk_requests(server, start) == [(500, 6), (200, 6)]
    assert result.ok and result.requests[0].attempts == 2
    assert result.created == 4 and result.updated + result.nonupdates == 2
    assert all(len(server.store.find_by_source_id(f"crash-{i}")) == 1 for i in range(6))


def test_500_is_not_retried_when_items_have_no_keyables(
    server: SandboxServer, api: PlanhatClient
) -> None:
    server.faults.bulk_500_on_request = 2
    server.faults.bulk_500_after_items = 1
    start = len(server.request_log)
    seen: list[BulkUpsertResult] = []
    with pytest.raises(ServerError) as info:
        api.bulk_upsert(rows(server, "loose", 4, keyed=False), batch_size=2, on_batch=seen.append)
    assert bulk_requests(server, start) == [(200, 2), (500, 2)]  # no retry: it would duplicate
    assert info.value.status == 500 and info.value.attempts == 1
    assert "PUT /objectives batch=1" in str(info.value)
    assert any("1 batch(es) with 2 items were applied" in n for n in info.value.__notes__)
    assert len(seen) == 1


def test_token_expiring_mid_push_stops_with_an_auth_error(
    server: SandboxServer, api: PlanhatClient
) -> None:
    server.faults.expire_token_after_requests = 1
    seen: list[BulkUpsertResult] = []
    with pytest.raises(AuthError) as info:
        api.bulk_upsert(rows(server, "expire", 4), batch_size=2, on_batch=seen.append)
    assert info.value.status == 401
    assert [b.requests[0].status for b in seen] == [200]


def test_lenient_error_entries_are_kept() -> None:
    from objectives_pipeline.planhat.bulk import BatchOutcome, batch_result

    outcome = BatchOutcome(index=2, offset=100, item_count=3, status=206, partial=True)
    items: list[dict[str, Any]] = [{"externalId": 7}, {"sourceId": "b"}, {"name": "no keys"}]
    result = batch_result(
        {
            "created": 1,
            "createdErrors": ["plain text error", {"item": {"externalId": "7"}, "message": "dup"}],
            "updatedErrors": [{"index": 2, "error": {"code": 1}}],
            "upsertedIds": None,
        },
        items=items,
        outcome=outcome,
    )
    text, nested = result.created_errors
    assert (text.message, text.item_index, text.raw) == (
        "plain text error",
        None,
        "plain text error",
    )
    assert (nested.message, nested.external_id, nested.item_index) == ("dup", "7", 100)
    (by_index,) = result.updated_errors
    assert (by_index.item_index, by_index.message) == (102, '{"code": 1}')
    assert result.partial and result.upserted_ids == []
