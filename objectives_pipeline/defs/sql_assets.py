"""Every SQL file in `dbt_like_sql/` as a Dagster asset; adding a model is adding a file."""

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import dagster as dg

from objectives_pipeline.defs.extract_assets import TABLE_NAME, planhat_objectives
from objectives_pipeline.defs.model_metadata import MODEL_METADATA, MetadataHook
from objectives_pipeline.defs.reverse_etl import crm_objectives
from objectives_pipeline.resources import SqlModelsResource, WarehouseResource
from objectives_pipeline.settings import DUCKDB_POOL
from objectives_pipeline.warehouse import ModelError, SqlModel, build_model, discover_models

MODEL_SCHEMA = "main"


@dg.definitions
def sql_models() -> dg.Definitions:
    """The assets of the shipped SQL models, fed by the extract and the CRM export."""
    return dg.Definitions(assets=build_sql_model_assets([planhat_objectives, crm_objectives]))


def build_sql_model_assets(
    sources: Sequence[dg.AssetsDefinition],
    sql_dir: Path | None = None,
    metadata_hooks: Mapping[str, MetadataHook] = MODEL_METADATA,
) -> list[dg.AssetsDefinition]:
    """One asset per model of `sql_dir` (default: the shipped `dbt_like_sql`).

    A model's upstream assets are the producers of the tables its SELECT reads: other models,
    or one of `sources`, which declare their table in `dagster/table_name` metadata. A table
    nothing produces raises :class:`ModelError` naming the file and the table. A model named in
    `metadata_hooks` adds what its hook returns to its materialization metadata.
    """
    producers = declared_tables(sources)
    return [
        _model_asset(model, producers, metadata_hooks.get(model.name))
        for model in discover_models(sql_dir)
    ]


def declared_tables(assets: Sequence[dg.AssetsDefinition]) -> dict[str, dg.AssetKey]:
    """The asset key producing each table declared in `dagster/table_name` (lower case)."""
    tables: dict[str, dg.AssetKey] = {}
    for asset in assets:
        for key, metadata in asset.metadata_by_key.items():
            table = metadata.get(TABLE_NAME)
            if table is not None:
                tables[str(getattr(table, "value", table)).lower()] = key
    return tables


def sql_code_version(model: SqlModel) -> str:
    """A hash of the model's SQL text: Dagster marks the table stale when the SQL changes."""
    return hashlib.sha256(model.sql.encode()).hexdigest()[:16]


def _source_deps(model: SqlModel, producers: Mapping[str, dg.AssetKey]) -> list[dg.AssetKey]:
    deps = []
    for table in sorted(model.sources):
        key = producers.get(table.lower())
        if key is None:
            name = table.rsplit(".", 1)[-1]
            raise ModelError(
                f"{model.path} reads table {table}, which no asset produces. Add a model file "
                f"{name}.sql to build it, fix the table name in the SQL, or load the table with "
                f"an asset whose definition metadata declares {TABLE_NAME}={table!r} and pass "
                f"that asset to build_sql_model_assets (objectives_pipeline/defs/sql_assets.py).",
                path=model.path,
            )
        deps.append(key)
    return deps


def _model_asset(
    model: SqlModel,
    producers: Mapping[str, dg.AssetKey],
    metadata_hook: MetadataHook | None,
) -> dg.AssetsDefinition:
    deps = [dg.AssetKey(name) for name in sorted(model.upstream)]
    deps += _source_deps(model, producers)

    @dg.asset(
        name=model.name,
        group_name=model.group or "models",
        deps=deps,
        pool=DUCKDB_POOL,
        kinds={"sql", "duckdb"},
        code_version=sql_code_version(model),
        description=model.description or f"SQL model {model.path.name}",
        metadata={
            "sql_file": f"{model.group}/{model.path.name}" if model.group else model.path.name,
            TABLE_NAME: f"{MODEL_SCHEMA}.{model.name}",
        },
    )
    def _build(
        context: dg.AssetExecutionContext,
        warehouse: WarehouseResource,
        sql_models: SqlModelsResource,
    ) -> dg.MaterializeResult[None]:
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
