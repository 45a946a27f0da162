"""A Planhat-compatible sandbox server with seeded data and fault knobs.

Serves the objective and company routes of the Planhat API from memory (list, get,
create, update, delete, bulk upsert) and custom metrics (``/dimensiondata``) for tests, demos and benchmarks without a Planhat
account. `SandboxServer` runs it in-process; `ensure_sandbox` keeps a durable
background process; ``python -m objectives_pipeline.sandbox`` serves from a shell.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from objectives_pipeline.sandbox.app import SANDBOX_TENANT_UUID
    from objectives_pipeline.sandbox.data import Tenant, generate_tenant
    from objectives_pipeline.sandbox.embedded import SandboxEndpoint, ensure_sandbox, stop_sandbox
    from objectives_pipeline.sandbox.faults import Faults
    from objectives_pipeline.sandbox.middleware import HEALTH_PATH, RequestRecord
    from objectives_pipeline.sandbox.server import SandboxServer
    from objectives_pipeline.sandbox.store import InvalidObjective, SandboxStore

# Imported on first use: the data generator (used by the CRM demo export) must not pull in
# the server's web stack.
_HOMES = {
    "HEALTH_PATH": "middleware",
    "SANDBOX_TENANT_UUID": "app",
    "Faults": "faults",
    "InvalidObjective": "store",
    "RequestRecord": "middleware",
    "SandboxEndpoint": "embedded",
    "SandboxServer": "server",
    "SandboxStore": "store",
    "Tenant": "data",
    "ensure_sandbox": "embedded",
    "generate_tenant": "data",
    "stop_sandbox": "embedded",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


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
