"""Sandbox data, durability, CLI and the embedded background process."""

from __future__ import annotations

import argparse
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

import objectives_pipeline
from objectives_pipeline.sandbox import SandboxServer, generate_tenant
from objectives_pipeline.sandbox.cli import add_arguments, faults_from_args
from objectives_pipeline.sandbox.embedded import SandboxEndpoint, ensure_sandbox, stop_sandbox

PROJECT_ROOT = Path(objectives_pipeline.__file__).resolve().parent.parent


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ---- generated data ----------------------------------------------------------------


def test_generated_tenant_is_deterministic_for_a_seed() -> None:
    assert generate_tenant(200, 20, seed=3) == generate_tenant(200, 20, seed=3)
    assert generate_tenant(200, 20, seed=3) != generate_tenant(200, 20, seed=4)


def test_companies_depend_only_on_seed_and_count() -> None:
    # Other tools regenerate a tenant's companies with objectives=0 to build matching data.
    assert generate_tenant(0, 20, seed=5).companies == generate_tenant(500, 20, seed=5).companies


def test_generated_tenant_looks_like_a_real_one() -> None:
    tenant = generate_tenant(3000, 60, seed=1)
    objectives = tenant.objectives
    assert len(objectives) == 3000 and len(tenant.companies) == 60
    ids = [o["_id"] for o in objectives]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(c.get("sourceId") for c in tenant.companies)
    # Most companies have an externalId; one in 50 has none (custom metrics must skip it).
    without = [i for i, c in enumerate(tenant.companies) if not c.get("externalId")]
    assert without == [37]
    assert any(not c["name"].isascii() for c in tenant.companies)
    assert any(not o["name"].isascii() for o in objectives)
    per_company: dict[str, int] = {}
    for obj in objectives:
        per_company[obj["companyId"]] = per_company.get(obj["companyId"], 0) + 1
    assert len(set(per_company.values())) > 5
    healths = [o.get("health") for o in objectives]
    assert None in healths
    assert any(isinstance(h, float) and not h.is_integer() for h in healths)
    assert sum(h in (1, 2, 3, 4, 5) for h in healths) > len(healths) // 2
    without_external = sum("externalId" not in o for o in objectives) / len(objectives)
    without_source = sum("sourceId" not in o for o in objectives) / len(objectives)
    assert 0.08 < without_external < 0.25 and 0.08 < without_source < 0.25
    assert all(isinstance(o["externalId"], str) for o in objectives if "externalId" in o)
    custom_types = {type(v) for o in objectives for v in o["custom"].values()}
    assert {str, int, float, list, type(None), bool, dict} <= custom_types
    assert any("undefined" in o["custom"].values() for o in objectives)
    assert any(o.get("usage") for o in objectives)
    assert all("__v" in o for o in objectives)


# ---- state file --------------------------------------------------------------------


def test_state_file_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state" / "objectives.json"
    with SandboxServer(objectives=30, companies=4, token="t", state_file=state) as server:
        company_id = server.store.companies()[0]["_id"]
        deleted_id, updated_id = server.store.ids()[:2]
        with httpx.Client(base_url=server.base_url, headers=auth("t"), trust_env=False) as http:
            created = http.post("/objectives", json={"name": "kept", "companyId": company_id})
            http.delete(f"/objectives/{deleted_id}")
            http.put(f"/objectives/{updated_id}", json={"health": 4.5})
        before = server.store.all_objectives()
    assert json.loads(state.read_text())["objectives"] == before

    with SandboxServer(objectives=5, companies=1, seed=9, token="t", state_file=state) as again:
        assert again.store.all_objectives() == before
        assert again.store.get(created.json()["_id"]) is not None
        assert again.store.get(deleted_id) is None
        assert (again.store.get(updated_id) or {}).get("health") == 4.5
    assert [p.name for p in state.parent.iterdir()] == ["objectives.json"]


# ---- CLI ---------------------------------------------------------------------------


def test_cli_help_lists_the_fault_flags() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "objectives_pipeline.sandbox", "--help"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    for flag in (
        "--port",
        "--state-file",
        "--drop-rate",
        "--retry-after",
        "--page-cap",
        "--rate-limit-per-second",
        "--retry-after-window-reset",
    ):
        assert flag in result.stdout
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--port", "0", "--error-rate", "0.5", "--bulk-item-error-source-ids", "a,b"]
    )
    faults = faults_from_args(args)
    assert args.port == 0
    assert (faults.error_rate, faults.bulk_item_error_source_ids) == (0.5, {"a", "b"})
    assert faults.drop_rate == 0.0 and faults.retry_after is None
    assert not faults.retry_after_window_reset
    quota = faults_from_args(
        parser.parse_args(
            [
                "--rate-limit-window-requests",
                "100",
                "--rate-limit-window-seconds",
                "10",
                "--retry-after-window-reset",
            ]
        )
    )
    assert (quota.rate_limit_window_requests, quota.rate_limit_window_seconds) == (100, 10.0)
    assert quota.retry_after_window_reset


def test_cli_serves_until_sigterm_without_printing_the_token(tmp_path: Path) -> None:
    info = tmp_path / "info.json"
    token = "cli-secret-token-value"
    command = [
        sys.executable, "-m", "objectives_pipeline.sandbox", "--port", "0",
        "--objectives", "12", "--companies", "3", "--token", token, "--info-file", str(info),
    ]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while not info.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        details = json.loads(info.read_text())
        assert details["pid"] == process.pid
        response = httpx.get(
            details["base_url"] + "/objectives", headers=auth(token), trust_env=False
        )
        assert len(response.json()) == 12
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0
    assert details["base_url"] in output
    assert token not in output
    assert not info.exists()


# ---- embedded background process ---------------------------------------------------


def test_ensure_sandbox_starts_once_reuses_and_stop_sandbox_stops(tmp_path: Path) -> None:
    state_dir = tmp_path / "sandbox"
    try:
        results: list[SandboxEndpoint] = []
        threads = [
            threading.Thread(
                target=lambda: results.append(ensure_sandbox(state_dir, objectives=25, companies=3))
            )
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
        first, second = results
        assert first == second
        assert first.token not in repr(first)
        token_mode = stat.S_IMODE((state_dir / "sandbox.token").stat().st_mode)
        assert token_mode == 0o600

        headers = auth(first.token)
        body = httpx.get(f"{first.base_url}/objectives", headers=headers, trust_env=False).json()
        company_id = body[0]["companyId"]
        httpx.post(
            f"{first.base_url}/objectives",
            json={"name": "survives restarts", "companyId": company_id},
            headers=headers,
            trust_env=False,
        )
        assert ensure_sandbox(state_dir) == first

        assert stop_sandbox(state_dir) is True
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{first.base_url}/__sandbox/health", trust_env=False, timeout=2)
        assert not Path(f"/proc/{first.pid}").exists() or _is_zombie(first.pid)
        assert stop_sandbox(state_dir) is False

        restarted = ensure_sandbox(state_dir)
        assert restarted.pid != first.pid and restarted.token == first.token
        names = [
            o["name"]
            for o in httpx.get(
                f"{restarted.base_url}/objectives", headers=headers, trust_env=False
            ).json()
        ]
        assert len(names) == 26 and names[-1] == "survives restarts"
    finally:
        stop_sandbox(state_dir)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    except OSError:
        return True


def test_ensure_sandbox_replaces_a_server_that_no_longer_answers(tmp_path: Path) -> None:
    state_dir = tmp_path / "sandbox"
    try:
        first = ensure_sandbox(state_dir, objectives=5, companies=1)
        os.kill(first.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{first.pid}").exists() and not _is_zombie(first.pid):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = ensure_sandbox(state_dir)
        assert second.pid != first.pid
        health = httpx.get(f"{second.base_url}/__sandbox/health", trust_env=False)
        assert health.json()["pid"] == second.pid
    finally:
        stop_sandbox(state_dir)


def test_a_restarted_server_keeps_its_data_and_a_busy_port_raises() -> None:
    server = SandboxServer(objectives=10, companies=2, token="t")
    with server:
        first_id = server.store.ids()[0]
        httpx.delete(f"{server.base_url}/objectives/{first_id}", headers=auth("t"), trust_env=False)
        port = int(server.base_url.rsplit(":", 1)[1])
        with pytest.raises(OSError):
            SandboxServer(objectives=1, companies=1, port=port).start()
    with server:
        assert server.store.count() == 9
        assert server.store.get(first_id) is None
