"""`objectives-pipeline check` and the `check_planhat` job: first contact with a tenant."""

from __future__ import annotations

import argparse

import dagster as dg
import pytest

from objectives_pipeline.commands import check
from objectives_pipeline.sandbox import Faults, SandboxServer

from .conftest import SandboxFactory
from .dagster_helpers import defs_for


@pytest.fixture(scope="module")
def server(sandbox: SandboxFactory) -> SandboxServer:
    return sandbox(objectives=5000, companies=20, seed=5)


def run_check(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    token: str | None = None,
) -> tuple[int, str]:
    monkeypatch.setenv("PLANHAT_API_TOKEN", token or str(server.token))
    monkeypatch.setenv("PLANHAT_BASE_URL", server.base_url)
    status = check.run(argparse.Namespace())
    return status, capsys.readouterr().out


def test_a_well_behaved_server_gets_the_sorted_proof(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server.faults = Faults(rate_limit_per_second=50)
    status, out = run_check(server, monkeypatch, capsys)
    server.faults = Faults()
    assert status == 0
    assert "sorted by _id     yes" in out and "(sorted_overlap)" in out
    assert "rate limit        50 (X-Rate-Limit-Limit)" in out
    assert "requests sent     2" in out
    assert str(server.token) not in out


def test_a_server_ignoring_sort_is_named_and_the_fallback_announced(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    server.faults = Faults(list_order="insertion", page_cap=1000)
    status, out = run_check(server, monkeypatch, capsys)
    server.faults = Faults()
    assert status == 0
    assert "sorted by _id     no (_id" in out
    assert "page cap          1000" in out
    assert "(fallback_consistent_order)" in out


def test_a_refused_token_exits_1_and_says_what_to_check(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = run_check(server, monkeypatch, capsys, token="not-the-token")
    assert status == 1
    assert "token accepted    no" in out
    assert "Check PLANHAT_API_TOKEN" in out and "region" in out
    assert "not-the-token" not in out


def test_a_server_ignoring_offset_cannot_be_extracted(
    sandbox: SandboxFactory, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    capped = sandbox(objectives=3000, companies=5, seed=6)
    original = capped.store.list_page

    def first_page_always(**query: object) -> tuple[bytes, int]:
        return original(**{**query, "offset": 0})  # type: ignore[arg-type]

    capped.store.list_page = first_page_always  # type: ignore[method-assign]
    status, out = run_check(capped, monkeypatch, capsys)
    assert status == 1 and "ignores `offset`" in out


def test_the_check_job_runs_from_dagster_and_records_the_plan(
    server: SandboxServer, tmp_path: object
) -> None:
    defs = defs_for(server, tmp_path / "o.duckdb")  # type: ignore[operator]
    result = defs.resolve_job_def("check_planhat").execute_in_process()
    assert result.success
    observation = next(
        e.event_specific_data.asset_observation  # type: ignore[union-attr]
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION
    )
    metadata = {k: v.value for k, v in observation.metadata.items()}
    assert metadata["completeness_proof"] == "sorted_overlap"
    assert metadata["token_accepted"] is True and metadata["requests"] == 2
