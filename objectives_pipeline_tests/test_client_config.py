"""Configuration checks and secrecy: bad settings fail early, the token never leaks."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Callable, Iterator

import pytest

from objectives_pipeline.planhat import (
    AuthError,
    ConfigError,
    PlanhatClient,
    PlanhatConnectionError,
    PlanhatError,
    RetryPolicy,
)
from objectives_pipeline.sandbox import Faults, SandboxServer

TOKEN = "sandbox-SECRET-token-4242"
FAST = RetryPolicy(initial_backoff=0.001, max_backoff=0.01, jitter=0.001, max_attempts=2)


@pytest.fixture(scope="module")
def server(sandbox: Callable[..., SandboxServer]) -> SandboxServer:
    return sandbox(objectives=300, companies=5, seed=2, token=TOKEN)


@pytest.fixture(autouse=True)
def _reset(server: SandboxServer) -> Iterator[None]:
    yield
    server.faults = Faults()


@pytest.mark.parametrize(
    "url",
    [
        "",
        "api.planhat.com",
        "ftp://api.planhat.com",
        "https://",
        "http://host:notaport",
        "https://api.planhat.com/?x=1",
    ],
)
def test_base_url_must_be_an_http_url(url: str) -> None:
    with pytest.raises(ConfigError, match=r"PLANHAT_BASE_URL|base URL"):
        PlanhatClient(url, "t")


@pytest.mark.parametrize(
    "url", ["http://api.planhat.com", "http://example.com:8080", "http://10.0.0.5"]
)
def test_token_is_never_sent_over_plain_http_to_a_remote_host(url: str) -> None:
    with pytest.raises(ConfigError, match="Refusing to send the Planhat API token") as info:
        PlanhatClient(url, TOKEN)
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize("url", ["http://127.0.0.1:1", "http://localhost:8080/", "http://[::1]:9"])
def test_plain_http_is_fine_for_loopback(url: str) -> None:
    with PlanhatClient(url, TOKEN) as client:
        assert client.base_url == url.rstrip("/")


@pytest.mark.parametrize("url", ["https://api.planhat.com", "https://api-eu.planhat.com"])
@pytest.mark.parametrize("token", [None, "", "   "])
def test_real_planhat_needs_a_token(url: str, token: str | None) -> None:
    with pytest.raises(ConfigError, match="set PLANHAT_API_TOKEN"):
        PlanhatClient(url, token)


def test_regional_hosts_and_from_env(server: SandboxServer) -> None:
    with PlanhatClient("https://api-us4.planhat.com/", TOKEN) as regional:
        assert regional.base_url == "https://api-us4.planhat.com"
    env = {"PLANHAT_BASE_URL": server.base_url, "PLANHAT_API_TOKEN": TOKEN}
    with PlanhatClient.from_env(env, retry=FAST) as client:
        assert client.base_url == server.base_url
        assert len(client.list_objectives(limit=3)) == 3
    with pytest.raises(ConfigError, match=r"No Planhat API token for api\.planhat\.com"):
        PlanhatClient.from_env({})


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"rate_limit_per_minute": 0}, "rate_limit_per_minute"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"timeout": 0}, "timeout"),
    ],
)
def test_bad_numbers_are_config_errors(options: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        PlanhatClient("http://127.0.0.1:1", TOKEN, **options)  # type: ignore[arg-type]


def test_repr_hides_the_token() -> None:
    with PlanhatClient("https://api.planhat.com", TOKEN) as client:
        assert TOKEN not in repr(client) and TOKEN not in str(client)
        assert "**********" in repr(client)


def test_create_is_retried_when_the_connection_was_never_made() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with (
        PlanhatClient(f"http://127.0.0.1:{port}", TOKEN, retry=FAST) as client,
        pytest.raises(PlanhatConnectionError) as info,
    ):
        client.create_objective({"name": "x", "companyId": "a" * 24})
    assert info.value.attempts == 2 and not info.value.request_sent


def test_a_token_echoed_by_the_server_is_redacted(server: SandboxServer) -> None:
    # The sandbox answers 401 with {"error": "Unauthorized"}: with that as the token,
    # the server's message contains the token and must be redacted.
    with (
        PlanhatClient(server.base_url, "Unauthorized", retry=FAST) as client,
        pytest.raises(AuthError) as info,
    ):
        client.list_objectives(limit=1)
    assert info.value.server_message == "[token]"
    assert "Unauthorized" not in str(info.value)


def _texts(exc: BaseException) -> Iterator[str]:
    yield from (str(exc), repr(exc), repr(exc.args), *getattr(exc, "__notes__", []))
    yield "".join(traceback.format_exception(exc))
    for linked in (exc.__cause__, exc.__context__):
        if linked is not None:
            yield from _texts(linked)


def test_token_never_appears_in_logs_or_exceptions(
    server: SandboxServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    errors: list[BaseException] = []

    def expect_error(call: Callable[[], object]) -> None:
        try:
            call()
        except PlanhatError as exc:
            errors.append(exc)
        else:
            raise AssertionError("expected a PlanhatError")

    patient = FAST.model_copy(update={"max_attempts": 20})
    with PlanhatClient(server.base_url, TOKEN, retry=patient) as busy:
        server.faults = Faults(burst_429=1, error_rate=0.3, truncate_rate=0.2, drop_rate=0.1)
        assert sum(len(p) for p in busy.iter_pages(limit=50, concurrency=3)) == 300
        assert busy.stats.retries > 0
    with PlanhatClient(server.base_url, TOKEN, retry=FAST, timeout=0.2) as client:
        server.faults = Faults(error_rate=1.0)
        expect_error(lambda: client.list_objectives(limit=5))
        server.faults = Faults(truncate_rate=1.0)
        expect_error(lambda: client.list_objective_ids())
        server.faults = Faults(latency_ms=400)
        expect_error(lambda: client.get_objective(server.store.ids()[0]))
        server.faults = Faults(drop_rate=1.0)
        expect_error(lambda: client.delete_objective("0" * 24))
        server.faults = Faults()
        expect_error(lambda: client.get_objective("f" * 24))
        expect_error(lambda: client.create_objective({"name": "x", "companyId": "extid-none"}))
        expect_error(lambda: client.create_objective({"name": "x"}))
        server.faults.expire_token_after_requests = 0
        expect_error(lambda: client.bulk_upsert([{"name": "x", "sourceId": "s"}]))
        assert TOKEN not in repr(client.stats)
    with PlanhatClient(server.base_url, TOKEN + "-wrong", retry=FAST) as wrong:
        expect_error(lambda: wrong.list_objectives())

    assert len(errors) == 9
    assert any(
        r.name.startswith("httpx") or r.name.startswith("httpcore") for r in caplog.records
    ), "the check must see httpx's own debug logs"
    assert any(r.levelno == logging.WARNING for r in caplog.records)
    assert TOKEN not in caplog.text
    for record in caplog.records:
        assert TOKEN not in record.getMessage() and TOKEN not in repr(record.args)
    for exc in errors:
        for text in _texts(exc):
            assert TOKEN not in text
