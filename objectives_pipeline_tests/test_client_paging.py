"""Paging contract: every stored objective exactly once, in order, whatever the page size,
the server's page cap or the concurrency."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objectives_pipeline.planhat import (
    BadResponseError,
    CompanyRef,
    ConfigError,
    ObjectivePage,
    PlanhatClient,
    RetryPolicy,
)
from objectives_pipeline.planhat.paging import page_concurrently, page_sequentially
from objectives_pipeline.sandbox import Faults, SandboxServer

SandboxFactory = Callable[..., SandboxServer]
FAST = RetryPolicy(initial_backoff=0.001, max_backoff=0.01, jitter=0.001)
SIZES = [0, 1, 1999, 2000, 2001, 10_000]


def client(server: SandboxServer, **options: object) -> PlanhatClient:
    options.setdefault("retry", FAST)
    options.setdefault("rate_limit_per_minute", None)
    return PlanhatClient(server.base_url, server.token, **options)  # type: ignore[arg-type]


def list_requests(server: SandboxServer, since: int = 0) -> list[int | None]:
    """n_items of each GET /objectives served since request `since`."""
    return [
        r.n_items
        for r in server.request_log[since:]
        if r.method == "GET" and r.path == "/objectives"
    ]


@pytest.fixture(scope="module")
def servers(sandbox: SandboxFactory) -> dict[int, SandboxServer]:
    return {n: sandbox(objectives=n, companies=max(1, min(n, 50)), seed=n) for n in SIZES}


@pytest.fixture(scope="module")
def big(sandbox: SandboxFactory) -> SandboxServer:
    return sandbox(objectives=3000, companies=160, seed=7)


@pytest.fixture(autouse=True)
def _reset_faults(servers: dict[int, SandboxServer], big: SandboxServer) -> Iterator[None]:
    yield
    for server in [*servers.values(), big]:
        server.faults = Faults()


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("concurrency", [1, 4])
def test_paging_returns_every_objective_once_in_id_order(
    servers: dict[int, SandboxServer], size: int, concurrency: int
) -> None:
    server = servers[size]
    expected = [o["_id"] for o in server.store.all_objectives()]
    start = len(server.request_log)
    with client(server) as api:
        pages = list(api.iter_pages(concurrency=concurrency))
    ids = [r["_id"] for page in pages for r in page.records]
    assert ids == expected
    assert [p.offset for p in pages] == [i * 2000 for i in range(len(pages))]
    sequential_requests = math.ceil(size / 2000) + 1
    served = list_requests(server, start)
    if concurrency == 1:
        assert len(served) == sequential_requests
    # Past the end: one empty page that ends the paging, at most N-1 more in flight.
    assert len(served) <= sequential_requests + concurrency - 1
    assert served.count(0) <= concurrency


@pytest.mark.parametrize("concurrency", [1, 4])
def test_page_cap_below_limit_loses_nothing(
    servers: dict[int, SandboxServer], concurrency: int
) -> None:
    server = servers[10_000]
    server.faults.page_cap = 1000
    with client(server) as api:
        pages = list(api.iter_pages(limit=2000, concurrency=concurrency))
    assert [r["_id"] for p in pages for r in p.records] == server.store.ids()
    assert {len(p) for p in pages} == {1000}


def test_page_cap_lowered_mid_extraction_loses_nothing(servers: dict[int, SandboxServer]) -> None:
    server = servers[10_000]
    server.faults.page_cap = 700
    ids: list[str] = []
    with client(server) as api:
        for number, page in enumerate(api.iter_pages(limit=2000, concurrency=4)):
            ids.extend(r["_id"] for r in page.records)
            if number == 2:
                server.faults.page_cap = 250  # requests already in flight may see either cap
    assert ids == server.store.ids()


def test_body_is_the_raw_json_array_of_the_records(servers: dict[int, SandboxServer]) -> None:
    server = servers[2001]
    with client(server) as api:
        pages = list(api.iter_pages(limit=1500))
    assert [len(p) for p in pages] == [1500, 501]
    for page in pages:
        assert json.loads(page.body) == page.records
        assert page.request_number >= 1 and page.attempts == 1


def test_concurrent_paging_holds_a_bounded_number_of_pages(
    servers: dict[int, SandboxServer],
) -> None:
    server = servers[10_000]
    start = len(server.request_log)
    with client(server) as api:
        pages = api.iter_pages(limit=100, concurrency=3)
        consumed = [next(pages) for _ in range(3)]
        served = -1
        for _ in range(40):  # let requests already sent arrive, then count them
            time.sleep(0.05)
            if len(server.request_log) == served:
                break
            served = len(server.request_log)
        # 3 pages taken + at most 3 in flight or buffered; nothing runs ahead.
        assert len(list_requests(server, start)) <= 3 + 3
        rest = list(pages)
    assert [r["_id"] for p in consumed + rest for r in p.records] == server.store.ids()


def test_sort_and_select(big: SandboxServer) -> None:
    with client(big) as api:
        records = [
            r
            for p in api.iter_pages(limit=700, sort="-name", select="_id,name,health")
            for r in p.records
        ]
        first_page = api.list_objectives(limit=5, sort="-name", select=["name"])
    names = [r["name"] for r in records]
    assert names == sorted(names, reverse=True)
    assert sorted(r["_id"] for r in records) == big.store.ids()
    assert all(set(r) <= {"_id", "name", "health"} and "_id" in r for r in records)
    assert [o.name for o in first_page] == names[:5]
    assert all(o.company_id is None and o.id for o in first_page)


def test_list_objectives_is_one_page_at_an_offset(big: SandboxServer) -> None:
    with client(big) as api:
        page = api.list_objectives(limit=50, offset=100)
        default = api.list_objectives()
    assert [o.id for o in page] == big.store.ids()[100:150]
    assert len(default) == 100  # Planhat's default page size


def test_many_company_ids_are_split_into_short_queries(big: SandboxServer) -> None:
    companies = [c["_id"] for c in big.store.companies()][:150]
    assert all(len(c) == 24 for c in companies) and len(companies) == 150
    wanted = set(companies)
    expected = [o["_id"] for o in big.store.all_objectives() if o["companyId"] in wanted]
    start = len(big.request_log)
    with client(big) as api:
        listed = api.list_objectives(company_id=companies, limit=2000)
        paged = [
            r["_id"] for p in api.iter_pages(company_id=companies, limit=500) for r in p.records
        ]
    first_call = [r for r in big.request_log[start:] if r.query.get("offset") == "0"][:3]
    assert len(first_call) == 3
    sent = [cid for r in first_call for cid in r.query["companyId"].split(",")]
    assert sent == companies
    assert all(len(urlencode(r.query)) <= 2000 for r in big.request_log[start:])
    assert sorted(o.id for o in listed) == sorted(expected)
    assert sorted(paged) == sorted(expected)
    assert len(paged) == len(set(paged))


def test_company_filter_by_one_id_or_reference(big: SandboxServer) -> None:
    company = big.store.companies()[3]
    expected = sorted(
        o["_id"] for o in big.store.all_objectives() if o["companyId"] == company["_id"]
    )
    with client(big) as api:
        by_id = api.list_objective_ids(company_id=company["_id"])
        by_ext = [
            o.id for o in api.iter_objectives(company_id=CompanyRef.external(company["externalId"]))
        ]
        by_src = [
            o.id
            for o in api.iter_objectives(
                company_id=[CompanyRef.source(company["sourceId"])], concurrency=1
            )
        ]
        nothing = api.list_objectives(company_id=[])
    assert expected and by_id == expected and by_ext == expected and by_src == expected
    assert nothing == []


def test_list_objective_ids_matches_the_store(servers: dict[int, SandboxServer]) -> None:
    server = servers[2001]
    start = len(server.request_log)
    with client(server) as api:
        assert api.list_objective_ids() == server.store.ids()
    assert all(r.query.get("select") == "_id" for r in server.request_log[start:])


@pytest.mark.parametrize("limit", [0, -1, 2001, 10_000, 1.5, True])
def test_page_size_outside_1_to_2000_is_refused(
    servers: dict[int, SandboxServer], limit: object
) -> None:
    server = servers[1]
    start = len(server.request_log)
    with (
        client(server) as api,
        pytest.raises(ConfigError, match="limit must be an integer from 1 to 2000"),
    ):
        api.iter_pages(limit=limit)  # type: ignore[arg-type]
    with client(server) as api, pytest.raises(ValueError, match="2000"):
        list(api.iter_objectives(limit=limit))  # type: ignore[arg-type]
    assert len(server.request_log) == start


def test_concurrency_outside_1_to_50_is_refused(servers: dict[int, SandboxServer]) -> None:
    with client(servers[1]) as api, pytest.raises(ConfigError, match="concurrency"):
        api.iter_pages(concurrency=0)
    with pytest.raises(ConfigError, match="max_in_flight"):
        client(servers[1], max_in_flight=51)


@pytest.fixture(scope="module")
def small(sandbox: SandboxFactory) -> SandboxServer:
    return sandbox(objectives=300, companies=20, seed=3)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    limit=st.one_of(st.integers(1, 60), st.integers(61, 2000)),
    concurrency=st.integers(1, 4),
    cap=st.one_of(st.none(), st.integers(5, 100)),
)
def test_any_page_size_yields_exactly_the_stored_set(
    small: SandboxServer, limit: int, concurrency: int, cap: int | None
) -> None:
    small.faults.page_cap = cap
    try:
        with client(small) as api:
            ids = [
                r["_id"]
                for p in api.iter_pages(limit=limit, concurrency=concurrency)
                for r in p.records
            ]
    finally:
        small.faults.page_cap = None
    assert ids == small.store.ids()


# -- the paging algorithm on its own, with servers whose page size changes per request --


def _in_memory(
    records: list[int], caps: list[int]
) -> tuple[list[tuple[int, int]], Callable[[int, int], ObjectivePage]]:
    calls: list[tuple[int, int]] = []

    def fetch(offset: int, limit: int) -> ObjectivePage:
        calls.append((offset, limit))
        cap = caps[len(calls) % len(caps)]
        chunk = records[offset : offset + min(limit, cap)]
        return ObjectivePage(
            offset=offset,
            limit=limit,
            body=b"",
            records=[{"_id": r} for r in chunk],
            request_number=len(calls),
            attempts=1,
        )

    return calls, fetch


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(0, 120),
    limit=st.integers(1, 50),
    caps=st.lists(st.integers(1, 60), min_size=1, max_size=6),
    concurrency=st.integers(2, 5),
)
def test_concurrent_paging_equals_sequential_when_page_sizes_vary(
    total: int, limit: int, caps: list[int], concurrency: int
) -> None:
    records = list(range(total))
    calls, fetch = _in_memory(records, caps)
    pages = list(page_concurrently(fetch, start=0, limit=limit, concurrency=concurrency))
    assert [r["_id"] for p in pages for r in p.records] == records
    assert [p.offset for p in pages] == sorted(p.offset for p in pages)
    assert all(p.records for p in pages)
    assert max(offset for offset, _ in calls) <= total + concurrency * limit  # no storm
    _, sequential_fetch = _in_memory(records, caps)
    sequential = list(page_sequentially(sequential_fetch, start=0, limit=limit))
    assert [r["_id"] for p in sequential for r in p.records] == records


def test_a_server_that_ignores_offset_is_an_error_not_an_endless_loop() -> None:
    def fetch(offset: int, limit: int) -> ObjectivePage:
        return ObjectivePage(
            offset=offset,
            limit=limit,
            body=b"",
            records=[{"_id": str(i)} for i in range(limit)],
            request_number=1,
            attempts=1,
        )

    from objectives_pipeline.planhat.paging import guard_progress

    with pytest.raises(BadResponseError, match="ignore `offset`"):
        list(guard_progress(page_sequentially(fetch, start=0, limit=10)))
