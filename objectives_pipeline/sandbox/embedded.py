"""A durable sandbox process the pipeline starts once and reuses.

Everything lives in one state directory: ``sandbox.json`` (base_url and pid of
the running server), ``sandbox.token`` (mode 0600, generated once),
``objectives.json`` (the data), ``sandbox.log`` and ``sandbox.lock``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

import objectives_pipeline
from objectives_pipeline.sandbox.middleware import HEALTH_PATH
from objectives_pipeline.sandbox.server import TOKEN_ENV

INFO_FILE = "sandbox.json"
TOKEN_FILE = "sandbox.token"
STATE_FILE = "objectives.json"
LOG_FILE = "sandbox.log"
LOCK_FILE = "sandbox.lock"


class SandboxStartError(RuntimeError):
    """The sandbox process did not come up."""


@dataclass(frozen=True)
class SandboxEndpoint:
    """Where a running sandbox listens and the token it accepts."""

    base_url: str
    token: str = field(repr=False)
    pid: int


def ensure_sandbox(
    state_dir: Path,
    *,
    objectives: int = 2000,
    companies: int = 200,
    seed: int = 42,
    startup_timeout: float = 30,
) -> SandboxEndpoint:
    """Return the sandbox running for `state_dir`, starting it if none answers.

    The data is seeded on first start only; later starts load ``objectives.json``.
    Safe to call from several processes at once: only one server is started.
    """
    state_dir = Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    with _locked(state_dir):
        token = _token(state_dir)
        running = _answering(state_dir, token)
        if running is not None:
            return running
        _stop_recorded(state_dir)
        return _start(state_dir, token, objectives, companies, seed, startup_timeout)


def stop_sandbox(state_dir: Path, timeout: float = 15) -> bool:
    """Stop the sandbox recorded in `state_dir`; False if none was running."""
    state_dir = Path(state_dir).resolve()
    if not state_dir.is_dir():
        return False
    with _locked(state_dir):
        return _stop_recorded(state_dir, timeout)


@contextlib.contextmanager
def _locked(state_dir: Path) -> Iterator[None]:
    with open(state_dir / LOCK_FILE, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _token(state_dir: Path) -> str:
    """The token kept in `state_dir` (mode 0600), generated on first use; call under the lock."""
    path = state_dir / TOKEN_FILE
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if not token:
        token = secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token)
    os.chmod(path, 0o600)
    return token


def _read_info(state_dir: Path) -> tuple[str, int] | None:
    try:
        info = json.loads((state_dir / INFO_FILE).read_text())
        return str(info["base_url"]), int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _health_pid(base_url: str) -> int | None:
    """The pid the sandbox at `base_url` reports, or None if nothing answers."""
    try:
        response = httpx.get(base_url + HEALTH_PATH, timeout=2, trust_env=False)
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    if response.status_code != 200 or not isinstance(body, dict) or body.get("sandbox") is not True:
        return None
    pid = body.get("pid")
    return pid if isinstance(pid, int) else None


def _answering(state_dir: Path, token: str) -> SandboxEndpoint | None:
    info = _read_info(state_dir)
    if info is None:
        return None
    base_url, pid = info
    if _health_pid(base_url) != pid:
        return None
    try:
        response = httpx.get(
            base_url + "/objectives",
            params={"limit": 1},
            headers={"Authorization": f"Bearer {token}"},
            timeout=5,
            trust_env=False,
        )
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    return SandboxEndpoint(base_url=base_url, token=token, pid=pid)


def _is_sandbox_process(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state != "Z" and b"objectives_pipeline.sandbox" in cmdline


def _gone(pid: int) -> bool:
    with contextlib.suppress(ChildProcessError):
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return True
    return not _is_sandbox_process(pid)


def _stop_recorded(state_dir: Path, timeout: float = 15) -> bool:
    info = _read_info(state_dir)
    if info is None:
        return False
    base_url, pid = info
    stopped = False
    if _health_pid(base_url) == pid or _is_sandbox_process(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while not _gone(pid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        stopped = True
    (state_dir / INFO_FILE).unlink(missing_ok=True)
    return stopped


def _start(
    state_dir: Path, token: str, objectives: int, companies: int, seed: int, timeout: float
) -> SandboxEndpoint:
    package_root = str(Path(objectives_pipeline.__file__).resolve().parent.parent)
    python_path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, TOKEN_ENV: token, "PYTHONPATH": python_path}
    command = [
        sys.executable, "-m", "objectives_pipeline.sandbox",
        "--host", "127.0.0.1", "--port", "0",
        "--objectives", str(objectives), "--companies", str(companies), "--seed", str(seed),
        "--state-file", str(state_dir / STATE_FILE), "--info-file", str(state_dir / INFO_FILE),
    ]  # fmt: skip
    with open(state_dir / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=state_dir,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SandboxStartError(
                f"the sandbox exited with code {process.returncode}; see {state_dir / LOG_FILE}"
            )
        info = _read_info(state_dir)
        if info is not None and info[1] == process.pid:
            endpoint = _answering(state_dir, token)
            if endpoint is not None:
                return endpoint
        time.sleep(0.05)
    process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)
    raise SandboxStartError(f"the sandbox did not answer within {timeout}s; see {LOG_FILE}")
