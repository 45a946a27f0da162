"""Where the pipeline sends requests: the embedded sandbox without a token, else the configured URL."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from objectives_pipeline.defs.extract_assets import planhat_objectives
from objectives_pipeline.planhat import ConfigError
from objectives_pipeline.resources import PlanhatResource, WarehouseResource
from objectives_pipeline.sandbox.embedded import stop_sandbox

from .dagster_helpers import query


def test_without_a_token_the_run_uses_the_embedded_sandbox_and_says_so(tmp_path: Path) -> None:
    sandbox_dir = tmp_path / "sandbox"
    db = tmp_path / "objectives.duckdb"
    resources = {
        "planhat": PlanhatResource(
            sandbox_dir=str(sandbox_dir), sandbox_objectives=300, sandbox_companies=20
        ),
        "warehouse": WarehouseResource(path=str(db)),
    }
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            result = dg.materialize(
                [planhat_objectives],
                resources=resources,
                partition_key="2026-11-20",
                instance=instance,
            )
            assert result.success
            messages = [e.message for e in instance.all_logs(result.run_id) if e.message]
        assert any("using the embedded Planhat sandbox" in m for m in messages)
        assert query(db, "SELECT count(*) FROM raw.planhat_objectives") == [(300,)]
        assert (sandbox_dir / "sandbox.json").exists()
    finally:
        stop_sandbox(sandbox_dir)


def test_a_base_url_without_a_token_is_refused_not_swapped_for_the_sandbox(tmp_path: Path) -> None:
    resource = PlanhatResource(base_url="https://api-eu.planhat.com", sandbox_dir=str(tmp_path))
    with pytest.raises(ConfigError, match="PLANHAT_API_TOKEN is not set"):
        resource.get_client()
    assert not (tmp_path / "sandbox.json").exists()


def test_the_token_stays_out_of_the_resource_repr() -> None:
    resource = PlanhatResource(api_token="tok-SECRET-123", base_url="https://api.planhat.com")
    assert "tok-SECRET-123" not in repr(resource.get_client())
    assert "tok-SECRET-123" not in resource.describe_target()
