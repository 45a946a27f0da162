"""dlt's ``rest_api`` source with an offset paginator into DuckDB, configured as its docs show.

One resource, ``GET /objectives?sort=_id``, Bearer auth, ``limit=2000`` and
``offset`` advanced by the paginator until an empty page (Planhat returns a bare
array and no total). dlt then normalizes the records (nested ``custom`` lists
become child tables) and loads them with its default DuckDB loader format
(``insert_values``), or `spec.loader_file_format` when set.

dlt keeps its state under ``DLT_DATA_DIR`` and the pipelines folder; both are
pointed into the run's temporary folder, and telemetry is off.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .common import count_rows
from .worker import Outcome, RunSpec, Stopwatch

os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
os.environ["RUNTIME__LOG_LEVEL"] = "ERROR"

import dlt
from dlt.sources.rest_api import rest_api_source


def extract(spec: RunSpec) -> Outcome:
    workdir = Path(spec.workdir)
    os.environ["DLT_DATA_DIR"] = str(workdir / "dlt-data")
    database = workdir / "dlt.duckdb"
    with Stopwatch() as watch:
        source = rest_api_source(
            {
                "client": {
                    "base_url": spec.base_url,
                    "auth": {"type": "bearer", "token": spec.token},
                    "paginator": {
                        "type": "offset",
                        "limit": spec.page_size,
                        "offset_param": "offset",
                        "limit_param": "limit",
                        "total_path": None,
                        "stop_after_empty_page": True,
                    },
                },
                "resources": [
                    {
                        "name": "objectives",
                        "endpoint": {
                            "path": "objectives",
                            "params": {"sort": "_id"},
                            "data_selector": "$",
                        },
                    }
                ],
            }
        )
        pipeline = dlt.pipeline(
            pipeline_name="bench_objectives",
            destination=dlt.destinations.duckdb(str(database)),
            dataset_name="planhat",
            pipelines_dir=str(workdir / "dlt-pipelines"),
        )
        file_format: Any = spec.loader_file_format or None
        info = pipeline.run(source, loader_file_format=file_format)
        info.raise_on_failed_jobs()
    return Outcome(
        seconds=watch.seconds,
        records=count_rows(database, "planhat.objectives"),
        details={"loader_file_format": spec.loader_file_format or "default (insert_values)"},
    )
