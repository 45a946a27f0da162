"""A Planhat-compatible sandbox server with seeded data and fault knobs.

Serves the objective and company routes of the Planhat API from memory (list, get,
create, update, delete, bulk upsert) and custom metrics (``/dimensiondata``) for tests, demos and benchmarks without a Planhat
account. `SandboxServer` runs it in-process; `ensure_sandbox` keeps a durable
background process; ``python -m objectives_pipeline.sandbox`` serves from a shell.
"""

from objectives_pipeline.sandbox.app import SANDBOX_TENANT_UUID
from objectives_pipeline.sandbox.data import Tenant, generate_tenant
from objectives_pipeline.sandbox.embedded import SandboxEndpoint, ensure_sandbox, stop_sandbox
from objectives_pipeline.sandbox.faults import Faults
from objectives_pipeline.sandbox.middleware import HEALTH_PATH, RequestRecord
from objectives_pipeline.sandbox.server import SandboxServer
from objectives_pipeline.sandbox.store import InvalidObjective, SandboxStore

__all__ = [
    "HEALTH_PATH",
    "SANDBOX_TENANT_UUID",
    "Faults",
    "InvalidObjective",
    "RequestRecord",
    "SandboxEndpoint",
    "SandboxServer",
    "SandboxStore",
    "Tenant",
    "ensure_sandbox",
    "generate_tenant",
    "stop_sandbox",
]
