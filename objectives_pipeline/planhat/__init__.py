"""A typed client for Planhat's Objectives API.

```python
from objectives_pipeline.planhat import PlanhatClient

with PlanhatClient.from_env() as client:          # PLANHAT_API_TOKEN, PLANHAT_BASE_URL
    for page in client.iter_pages(limit=2000):    # raw bytes + parsed records
        ...
    client.bulk_upsert(rows, batch_size=5000)     # merged BulkUpsertResult
```
"""

from objectives_pipeline.settings import DEFAULT_ANALYTICS_URL, DEFAULT_BASE_URL

from .bulk import BatchOutcome, BulkItemError, BulkUpsertResult
from .client import PlanhatClient
from .config import (
    MAX_BULK_BATCH,
    MAX_COMPANY_PAGE_SIZE,
    MAX_PAGE_SIZE,
    RetryPolicy,
)
from .errors import (
    APIError,
    AuthError,
    BadRequestError,
    BadResponseError,
    ConfigError,
    InvalidItemError,
    InvalidObjectiveError,
    NotFoundError,
    PlanhatConnectionError,
    PlanhatError,
    PlanhatTimeoutError,
    PlanhatTransportError,
    RateLimitedError,
    ServerError,
)
from .metrics import MetricError, MetricItem, MetricsResult
from .models import Company, DeleteResult, Objective, ObjectiveIn, ObjectivePage
from .ratelimit import RateLimiter
from .refs import CompanyRef, ObjectiveRef
from .stats import ClientStats

__all__ = [
    "DEFAULT_ANALYTICS_URL",
    "DEFAULT_BASE_URL",
    "MAX_BULK_BATCH",
    "MAX_COMPANY_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "APIError",
    "AuthError",
    "BadRequestError",
    "BadResponseError",
    "BatchOutcome",
    "BulkItemError",
    "BulkUpsertResult",
    "ClientStats",
    "Company",
    "CompanyRef",
    "ConfigError",
    "DeleteResult",
    "InvalidItemError",
    "InvalidObjectiveError",
    "MetricError",
    "MetricItem",
    "MetricsResult",
    "NotFoundError",
    "Objective",
    "ObjectiveIn",
    "ObjectivePage",
    "ObjectiveRef",
    "PlanhatClient",
    "PlanhatConnectionError",
    "PlanhatError",
    "PlanhatTimeoutError",
    "PlanhatTransportError",
    "RateLimitedError",
    "RateLimiter",
    "RetryPolicy",
    "ServerError",
]
