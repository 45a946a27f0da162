"""Reverse ETL: push objectives from a DuckDB relation back into Planhat, auditable and idempotent.

```python
from objectives_pipeline.reverse_etl import PushOptions, push_objectives

report = push_objectives(warehouse, lambda: PlanhatClient(base_url, token),
                         PushOptions(source="objectives_to_push"), target=base_url)
print(report.summary())
```

No Dagster here: `objectives_pipeline.defs.reverse_etl` wraps it in an op.
"""

from .audit import FAILURE_OUTCOMES, SCHEMA, SUCCESS_OUTCOMES, ensure_audit_tables
from .crm import CRM_COLUMNS, DEMO_MARK, DEMO_MARK_COLUMN, generate_crm_objectives, write_crm_csv
from .errors import ReverseEtlError, SourceError
from .push import MAX_BATCH_SIZE, PushLog, PushOptions, push_objectives
from .report import ProblemRow, PushPolicy, PushReport
from .source import SourceRelation
from .validation import PushRow, validate_row

__all__ = [
    "CRM_COLUMNS",
    "DEMO_MARK",
    "DEMO_MARK_COLUMN",
    "FAILURE_OUTCOMES",
    "MAX_BATCH_SIZE",
    "SCHEMA",
    "SUCCESS_OUTCOMES",
    "ProblemRow",
    "PushLog",
    "PushOptions",
    "PushPolicy",
    "PushReport",
    "PushRow",
    "ReverseEtlError",
    "SourceError",
    "SourceRelation",
    "ensure_audit_tables",
    "generate_crm_objectives",
    "push_objectives",
    "validate_row",
    "write_crm_csv",
]
