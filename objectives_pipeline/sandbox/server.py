"""`SandboxServer`: the sandbox app served by uvicorn on a background thread."""

from __future__ import annotations

import gc
import socket
import threading
import time
from pathlib import Path
from types import TracebackType

import uvicorn

from objectives_pipeline.sandbox.app import SANDBOX_TENANT_UUID, SandboxContext, build_app
from objectives_pipeline.sandbox.data import generate_tenant
from objectives_pipeline.sandbox.faults import FaultEngine, Faults
from objectives_pipeline.sandbox.middleware import RequestRecord
from objectives_pipeline.sandbox.persistence import StateSaver, load_state, save_state
from objectives_pipeline.sandbox.store import SandboxStore

_LARGE_STORE = 100_000
TOKEN_ENV = "PLANHAT_SANDBOX_TOKEN"
"""Environment variable the sandbox command reads its token from."""
DEFAULT_TOKEN = "sandbox-token"


class SandboxServer:
    """A seeded Planhat-compatible server on 127.0.0.1; use as a context manager.

    ``port=0`` picks a free port; `base_url` tells which once started. With a
    `state_file` the store is loaded from it when it exists and saved to it
    after every change, so the data survives restarts.
    """

    def __init__(
        self,
        *,
        objectives: int = 1000,
        companies: int = 100,
        seed: int = 0,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Faults | None = None,
        state_file: Path | None = None,
        max_bulk_items: int = 5000,
        max_limit: int = 2000,
        tenant_uuid: str = SANDBOX_TENANT_UUID,
    ) -> None:
        self.token = token
        self.host = host
        self.port = port
        self.state_file = Path(state_file) if state_file is not None else None
        self._objectives = objectives
        self._companies = companies
        self._seed = seed
        self.store = SandboxStore()
        self._ctx = SandboxContext(
            store=self.store,
            engine=FaultEngine(faults if faults is not None else Faults()),
            token=token,
            max_bulk_items=max_bulk_items,
            max_limit=max_limit,
            tenant_uuid=tenant_uuid.lower(),
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._saver: StateSaver | None = None
        self._socket: socket.socket | None = None
        self._base_url: str | None = None
        self._loaded = False

    def __repr__(self) -> str:
        return f"SandboxServer(base_url={self._base_url!r}, objectives={self.store.count()})"

    @property
    def faults(self) -> Faults:
        """The live fault knobs; change fields (or assign a new `Faults`) at any time."""
        return self._ctx.engine.faults

    @faults.setter
    def faults(self, value: Faults) -> None:
        self._ctx.engine.faults = value

    @property
    def request_log(self) -> list[RequestRecord]:
        """Every request served so far, oldest first."""
        return self._ctx.request_log

    @property
    def tenant_uuid(self) -> str:
        """The tenant UUID of ``POST /dimensiondata/<tenant>`` (metrics are served on `base_url`)."""
        return self._ctx.tenant_uuid

    @property
    def base_url(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the sandbox server is not running")
        return self._base_url

    def start(self, timeout: float = 30.0) -> SandboxServer:
        """Load or generate the data and start serving; returns self."""
        if self._thread is not None:
            raise RuntimeError("the sandbox server is already running")
        sock = _bind(self.host, self.port)
        port = sock.getsockname()[1]
        if not self._loaded:
            try:
                self._load_store()
            except BaseException:
                sock.close()
                raise
            self._loaded = True
        if self.state_file is not None:
            self._saver = StateSaver(self.store, self.state_file)
        config = uvicorn.Config(
            build_app(self._ctx),
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="sandbox-server", daemon=True
        )
        self._server, self._thread, self._socket = server, thread, sock
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self._base_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        """Stop serving and write pending state; safe to call twice."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self._socket is not None:
            self._socket.close()
        if self._saver is not None:
            self._saver.close()
        self._server = self._thread = self._saver = self._socket = None
        self._base_url = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _load_store(self) -> None:
        """Load the state file if there is one, else generate (and save) the seeded tenant."""
        path = self.state_file
        if path is not None and path.exists():
            self.store.load(load_state(path))
        else:
            self.store.load(generate_tenant(self._objectives, self._companies, self._seed))
            if path is not None:
                save_state(path, self.store)
        if self.store.count() >= _LARGE_STORE:
            gc.freeze()  # keep the cyclic GC from rescanning millions of long-lived objects


def _bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on host:port; raises OSError (uvicorn would exit instead)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock
