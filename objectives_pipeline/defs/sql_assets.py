"""Every SQL file in `dbt_like_sql/` as a Dagster asset; adding a model is adding a file."""

from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from objectives_pipeline.defs.extract_assets import DUCKDB_POOL
from objectives_pipeline.defs.model_metadata import MODEL_METADATA, MetadataHook
from objectives_pipeline.defs.resources import SqlModelsResource, WarehouseResource
from objectives_pipeline.warehouse import SqlModel, build_model, discover_models

SQL_DIR = Path(__file__).resolve().parents[2] / "dbt_like_sql"

#: Tables that other assets load, by the asset that loads them.
SOURCE_ASSETS: Mapping[str, dg.AssetKey] = {
    "raw.planhat_objectives": dg.AssetKey("planhat_objectives"),
    "crm.objectives": dg.AssetKey("crm_objectives"),
}


def source_asset_key(table: str) -> dg.AssetKey:
    return SOURCE_ASSETS.get(table) or dg.AssetKey(table.split("."))


def build_sql_model_assets(
    sql_dir: Path = SQL_DIR, metadata_hooks: Mapping[str, MetadataHook] = MODEL_METADATA
) -> list[dg.AssetsDefinition]:
    """One asset per model, upstream assets taken from the tables its SELECT reads.

    A model named in `metadata_hooks` adds what its hook returns to its materialization metadata.
    """
    return [_model_asset(model, metadata_hooks.get(model.name)) for model in discover_models(sql_dir)]


def _model_asset(model: SqlModel, metadata_hook: MetadataHook | None) -> dg.AssetsDefinition:
    deps = [dg.AssetKey(name) for name in sorted(model.upstream)]
    deps += [source_asset_key(table) for table in sorted(model.sources)]

    @dg.asset(
        name=model.name,
        group_name=model.group or "models",
        deps=deps,
        pool=DUCKDB_POOL,
        kinds={"sql", "duckdb"},
        description=model.description or f"SQL model {model.path.name}",
        metadata={
            "sql_file": f"{model.group}/{model.path.name}" if model.group else model.path.name
        },
    )
    def _build(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        sql_models: SqlModelsResource,
    ) -> dg.MaterializeResult:
        target = warehouse.get_warehouse()
        variables = sql_models.variables()
        result = build_model(target, model, variables)
        context.log.info(f"{model.name}: {result.rows} rows in {result.seconds:.2f}s")
        extra = metadata_hook(target, variables) if metadata_hook else {}
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": result.rows,
                "dagster/column_schema": dg.TableSchema(
                    columns=[dg.TableColumn(name, type_) for name, type_ in result.columns]
                ),
                "seconds": round(result.seconds, 3),
                **extra,
            }
        )

    return _build
