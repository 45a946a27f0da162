"""Shared fixtures: `sandbox` starts Planhat-compatible servers on 127.0.0.1."""

from __future__ import annotations

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
