"""Retries, rate limits and bad answers, with the sandbox's fault knobs over real HTTP."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import pytest

from objectives_pipeline.planhat import (
    BadResponseError,
    PlanhatClient,
    PlanhatConnectionError,
    PlanhatTimeoutError,
    RateLimitedError,
    RateLimiter,
    RetryPolicy,
    ServerError,
)
from objectives_pipeline.planhat._http import parse_retry_after
from objectives_pipeline.sandbox import Faults, SandboxServer

FAST = RetryPolicy(initial_backoff=0.001, max_backoff=0.01, jitter=0.001)


@pytest.fixture(scope="module")
def server(sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return sandbox(objectives=2500, companies=20, seed=9)


@pytest.fixture(autouse=True)
def _reset(server: SandboxServer) -> Iterator[None]:
    yield
    server.faults = Faults()


def make(server: SandboxServer, retry: RetryPolicy = FAST, **options: object) -> PlanhatClient:
    options.setdefault("rate_limit_per_minute", None)
    return PlanhatClient(server.base_url, server.token, retry=retry, **options)  # type: ignore[arg-type]


def all_ids(api: PlanhatClient, *, limit: int = 500, concurrency: int = 4) -> list[str]:
    return [
        r["_id"] for p in api.iter_pages(limit=limit, concurrency=concurrency) for r in p.records
    ]


@pytest.mark.parametrize("retry_after", [None, 0.05])
def test_429_burst_is_retried_with_and_without_retry_after(
    server: SandboxServer, retry_after: float | None, caplog: pytest.LogCaptureFixture
) -> None:
    server.faults.burst_429 = 3
    server.faults.retry_after = retry_after
    caplog.set_level(logging.WARNING, logger="objectives_pipeline.planhat")
    with make(server) as api:
        assert all_ids(api, concurrency=1) == server.store.ids()
        stats = api.stats
    assert stats.rate_limited_count == 3 and stats.retries == 3
    assert stats.responses_by_status[429] == 3
    retries = [r for r in caplog.records if r.message.startswith("Retrying")]
    assert len(retries) == 3 and all(r.levelno == logging.WARNING for r in retries)
    assert "GET /objectives offset=0 limit=500 after HTTP 429" in retries[0].message
    if retry_after is not None:
        assert stats.retry_wait_seconds == pytest.approx(3 * retry_after)  # the server's wait
        assert "Retry-After 0.05s" in retries[0].message


def test_retry_after_is_capped(server: SandboxServer) -> None:
    server.faults.burst_429 = 2
    server.faults.retry_after = 3600
    policy = FAST.model_copy(update={"max_retry_after": 0.02})
    with make(server, policy) as api:
        assert len(api.list_objectives(limit=10)) == 10
        assert api.stats.retry_wait_seconds == pytest.approx(0.04)


def test_persistent_429_is_a_rate_limited_error(server: SandboxServer) -> None:
    server.faults.burst_429 = 100
    with (
        make(server, FAST.model_copy(update={"max_attempts": 3})) as api,
        pytest.raises(RateLimitedError) as info,
    ):
        api.list_objectives(limit=10)
    assert info.value.status == 429 and info.value.attempts == 3
    assert "rate_limit_per_minute" in str(info.value) and "after 3 attempts" in str(info.value)


def test_5xx_and_dropped_connections_are_retried_to_a_complete_result(
    server: SandboxServer,
) -> None:
    server.faults.error_rate = 0.2
    server.faults.drop_rate = 0.1
    server.faults.seed = 4
    with make(server, FAST.model_copy(update={"max_attempts": 10})) as api:
        ids = all_ids(api, limit=100)
        stats = api.stats
    assert ids == server.store.ids()
    assert stats.retries > 0 and stats.transport_errors > 0
    assert any(500 <= status < 600 for status in stats.responses_by_status)
    assert stats.requests == sum(stats.responses_by_status.values()) + stats.transport_errors


def test_server_error_after_every_retry(server: SandboxServer) -> None:
    server.faults.error_rate = 1.0
    with (
        make(server, FAST.model_copy(update={"max_attempts": 3})) as api,
        pytest.raises(ServerError) as info,
    ):
        api.get_objective(server.store.ids()[0])
    assert info.value.attempts == 3 and info.value.status in (500, 502, 503)


def test_dropped_connections_after_every_retry(server: SandboxServer) -> None:
    server.faults.drop_rate = 1.0
    with (
        make(server, FAST.model_copy(update={"max_attempts": 2})) as api,
        pytest.raises(PlanhatConnectionError, match="PLANHAT_BASE_URL") as info,
    ):
        api.list_objectives(limit=1)
    assert info.value.attempts == 2


@pytest.mark.parametrize("knob", ["truncate_rate", "non_json_rate"])
def test_unusable_bodies_are_retried(server: SandboxServer, knob: str) -> None:
    setattr(server.faults, knob, 0.4)
    with make(server, FAST.model_copy(update={"max_attempts": 10})) as api:
        assert all_ids(api, limit=250) == server.store.ids()
        assert api.stats.bad_responses > 0


@pytest.mark.parametrize(
    ("knob", "problem"), [("truncate_rate", "not valid JSON"), ("non_json_rate", "not valid JSON")]
)
def test_persistently_unusable_body_names_the_page(
    server: SandboxServer, knob: str, problem: str
) -> None:
    with make(server, FAST.model_copy(update={"max_attempts": 3})) as api:
        pages = api.iter_pages(limit=1000, concurrency=1)
        next(pages)
        setattr(server.faults, knob, 1.0)
        with pytest.raises(BadResponseError) as info:
            next(pages)
    message = str(info.value)
    assert "GET /objectives offset=1000 limit=1000" in message and problem in message
    assert info.value.attempts == 3


def test_timeout_is_retried_then_a_clear_error(server: SandboxServer) -> None:
    server.faults.latency_ms = 500
    with (
        make(server, FAST.model_copy(update={"max_attempts": 2}), timeout=0.1) as api,
        pytest.raises(PlanhatTimeoutError, match="timeout") as info,
    ):
        api.list_objectives(limit=5)
    assert info.value.attempts == 2 and info.value.request_sent
    assert "GET /objectives offset=0 limit=5" in str(info.value)


def test_create_is_not_retried_once_it_may_have_reached_planhat(server: SandboxServer) -> None:
    server.faults.error_rate = 1.0
    start = len(server.request_log)
    company = server.store.companies()[0]["_id"]
    with make(server) as api, pytest.raises(ServerError) as info:
        api.create_objective({"name": "once", "companyId": company})
    assert info.value.attempts == 1
    assert [r.method for r in server.request_log[start:]] == ["POST"]


def test_create_is_retried_on_429(server: SandboxServer) -> None:
    server.faults.burst_429 = 1
    company = server.store.companies()[0]["_id"]
    with make(server) as api:
        created = api.create_objective({"name": "after 429", "companyId": company})
    assert server.store.get(created.id) is not None


def test_a_falling_rate_limit_remaining_paces_the_client(server: SandboxServer) -> None:
    server.faults.rate_limit_window_requests = 4
    server.faults.rate_limit_window_seconds = 0.5
    with make(server, FAST.model_copy(update={"max_attempts": 20})) as api:
        assert all_ids(api, limit=200, concurrency=1) == server.store.ids()  # 14 requests
        stats = api.stats
    assert stats.server_rate_limit == 4 and stats.server_window_seconds is not None
    assert 0.3 <= stats.server_window_seconds <= 1.0
    assert stats.paced_seconds > 0
    assert stats.rate_limited_count <= stats.requests // 2


def test_client_side_rate_limit_counts_its_waits(server: SandboxServer) -> None:
    with make(server, rate_limiter=RateLimiter(3, 0.1)) as api:
        assert all_ids(api, limit=500, concurrency=2) == server.store.ids()
        stats = api.stats
    assert stats.requests >= 6 and stats.rate_limit_wait_seconds > 0


def test_stats_reset_returns_the_values_before(server: SandboxServer) -> None:
    with make(server) as api:
        api.list_objectives(limit=1)
        before = api.reset_stats()
        assert before.requests == 1 and before.responses_by_status == {200: 1}
        assert api.stats.requests == 0
        assert before.model_dump(mode="json")["responses_by_status"] == {"200": 1}


def test_rate_limiter_never_exceeds_its_window() -> None:
    now = [0.0]
    sent: list[float] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = RateLimiter(5, 1.0, clock=lambda: now[0], sleep=sleep)
    waits = []
    for i in range(23):
        now[0] += 0.07 * (i % 3)  # callers arrive unevenly
        waits.append(limiter.acquire())
        sent.append(now[0])
    assert waits[:5] == [0.0] * 5 and sum(waits) > 0
    for i in range(len(sent) - 5):
        assert sent[i + 5] - sent[i] >= 1.0 - 1e-9
    with pytest.raises(ValueError):
        RateLimiter(0)


def test_retry_after_header_formats() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.5") == 0.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
