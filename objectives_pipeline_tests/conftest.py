"""Shared fixtures: `sandbox` starts Planhat-compatible servers on 127.0.0.1."""

from __future__ import annotations

import os

# The tests label snapshots with fixed dates from 2026-01-01 on (snapshot_dates): set before
# the definitions are imported, inherited by every process the tests start.
os.environ.setdefault("OBJECTIVES_START_DATE", "2026-01-01")
os.environ.setdefault("OBJECTIVES_ALLOW_PAST_SNAPSHOTS", "true")

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from objectives_pipeline.sandbox import SandboxServer

SandboxFactory = Callable[..., SandboxServer]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxFactory]:
    """``sandbox(objectives=..., companies=..., faults=...)`` starts a server that stops
    when the test module ends (keyword arguments as for `SandboxServer`)."""
    servers: list[SandboxServer] = []

    def start(**options: Any) -> SandboxServer:
        server = SandboxServer(**options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
