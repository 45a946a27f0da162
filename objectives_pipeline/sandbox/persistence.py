"""Durable sandbox state: a JSON file written atomically after changes."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path

from objectives_pipeline.sandbox.data import Tenant
from objectives_pipeline.sandbox.store import SandboxStore, dumps

STATE_FORMAT = "objectives-sandbox-state/1"
_log = logging.getLogger(__name__)


def load_state(path: Path) -> Tenant:
    """Read a state file written by `save_state`."""
    document = json.loads(path.read_bytes())
    if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
        raise ValueError(f"{path} is not a sandbox state file")
    return Tenant(
        companies=document["companies"],
        objectives=document["objectives"],
        metrics=document.get("metrics", []),
    )


def save_state(path: Path, store: SandboxStore) -> None:
    """Write the store's content to `path` atomically (temp file, then rename)."""
    companies, objectives = store.snapshot()
    metrics = store.metric_rows()
    parts = [
        b'{"format":',
        dumps(STATE_FORMAT),
        b',"companies":',
        dumps(companies),
        b',"metrics":',
        dumps(metrics),
        b',"objectives":[',
        b",\n".join(objectives),
        b"]}\n",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.writelines(parts)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise


class StateSaver:
    """Saves the store to a file shortly after each change, on a background thread."""

    def __init__(self, store: SandboxStore, path: Path, debounce_seconds: float = 0.2) -> None:
        self._store = store
        self._path = path
        self._debounce = debounce_seconds
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._saved_version = store.version
        self._write_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sandbox-state-saver", daemon=True)
        store.add_listener(self._dirty.set)
        self._thread.start()

    def flush(self) -> None:
        """Write now if anything changed since the last write."""
        with self._write_lock:
            version = self._store.version
            if version != self._saved_version:
                save_state(self._path, self._store)
                self._saved_version = version

    def close(self) -> None:
        """Stop the thread and write any pending change."""
        self._store.remove_listener(self._dirty.set)
        self._stop.set()
        self._dirty.set()
        self._thread.join()
        self.flush()

    def _run(self) -> None:
        while True:
            self._dirty.wait()
            if self._stop.wait(self._debounce):
                return
            self._dirty.clear()
            try:
                self.flush()
            except OSError:
                _log.exception("could not save sandbox state to %s", self._path)
