"""`objectives_pipeline.definitions:defs`, as `dagster dev` and the CLI load it."""

from __future__ import annotations

import dagster as dg

from objectives_pipeline.definitions import defs

#: Contract names (design.md): other tools and people rely on them.
ASSETS = {
    "planhat_objectives",
    "crm_objectives",
    "stg_objectives",
    "company_objective_health",
    "company_objective_health_daily",
    "objectives_to_push",
}
JOBS = {"objectives_elt", "push_objectives_to_planhat"}
SCHEDULES = {"objectives_elt_daily"}
SENSORS = {"push_after_objectives_to_push"}


def test_definitions_load_and_every_job_and_asset_resolves() -> None:
    repo = defs.get_repository_def()

    assets = {key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()}
    assert assets >= ASSETS
    jobs = {job.name for job in repo.get_all_jobs() if not job.name.startswith("__")}
    assert jobs >= JOBS
    for name in jobs:
        assert repo.get_job(name).name == name
    assert {s.name for s in repo.schedule_defs} >= SCHEDULES
    assert {s.name for s in repo.sensor_defs} >= SENSORS
    assert defs.resolve_job_def("objectives_elt").partitions_def is not None


def test_every_dependency_is_a_defined_asset_and_every_table_has_a_producer() -> None:
    graph = defs.resolve_asset_graph()
    defined = set(graph.get_all_asset_keys())
    materializable = {key for key in defined if graph.get(key).is_materializable}

    for key in defined:
        parents = graph.get(key).parent_keys
        assert parents <= materializable, f"{key} depends on assets nothing defines: {parents}"
    tables: dict[str, dg.AssetKey] = {}
    for spec in defs.resolve_all_asset_specs():
        table = spec.metadata.get("dagster/table_name")
        if table is not None:
            name = str(getattr(table, "value", table))
            assert name not in tables, f"{name} produced by {tables[name]} and {spec.key}"
            tables[name] = spec.key
    assert tables["raw.planhat_objectives"] == dg.AssetKey("planhat_objectives")
    assert tables["crm.objectives"] == dg.AssetKey("crm_objectives")
    assert tables["main.company_objective_health"] == dg.AssetKey("company_objective_health")
