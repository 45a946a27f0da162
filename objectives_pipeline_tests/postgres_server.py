"""A throwaway PostgreSQL server for tests: Debian's binaries, a temp data folder, 127.0.0.1 only.

PostgreSQL refuses to run as root; under root (CI) the server runs as the `postgres` user that
Debian's package creates. `.ci/run` installs the package; developers run
`apt-get install -y postgresql` once (README, Tests).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from .dagster_helpers import free_port, process_group

USER = "dagster"
DATABASE = "dagster"


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    password: str
    db_name: str

    def env(self) -> dict[str, str]:
        """The connection settings as deploy/dagster.yaml reads them."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USER": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.db_name,
        }

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with (
            psycopg2.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                dbname=self.db_name,
                connect_timeout=5,
            ) as con,
            con.cursor() as cur,
        ):
            cur.execute(sql, params)
            return list(cur.fetchall())


def postgres_bin() -> Path:
    """The folder of Debian's newest installed PostgreSQL server binaries."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if found:
        return found[-1].parent
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise AssertionError(
        "PostgreSQL's server binaries (initdb, postgres) were not found: install Debian's "
        "package with `apt-get install -y postgresql` (.ci/run does) and run the test again."
    )


@contextmanager
def postgres_server(log: Path, timeout: float = 60) -> Iterator[PostgresServer]:
    """Start a new PostgreSQL cluster on a free 127.0.0.1 port; stop it and delete its files."""
    bindir = postgres_bin()
    root = Path(tempfile.mkdtemp(prefix="objectives-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres", "postgres")
    try:
        password = secrets.token_hex(12)
        password_file = root / "password"
        password_file.write_text(password)
        if as_user:
            shutil.chown(password_file, "postgres", "postgres")
        data = root / "data"
        subprocess.run(
            [
                *as_user,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                USER,
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            cwd=root,
            check=True,
            capture_output=True,
            timeout=timeout,
        )
        port = free_port()
        server = [
            *as_user,
            str(bindir / "postgres"),
            "-D",
            str(data),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-k",
            str(root),
            "-c",
            "fsync=off",
            "-c",
            "max_connections=200",
        ]
        # SIGINT is PostgreSQL's fast shutdown: it does not wait for clients to disconnect.
        with process_group(server, dict(os.environ), log, cwd=root, stop_signal=signal.SIGINT):
            admin = PostgresServer("127.0.0.1", port, USER, password, "postgres")
            deadline = time.monotonic() + timeout
            while True:
                try:
                    admin.query("SELECT 1")
                    break
                except psycopg2.OperationalError:
                    if time.monotonic() > deadline:
                        raise AssertionError(
                            f"PostgreSQL did not accept connections within {timeout} s; "
                            f"log:\n{log.read_text()[-3000:]}"
                        ) from None
                    time.sleep(0.3)
            con = psycopg2.connect(
                host="127.0.0.1", port=port, user=USER, password=password, dbname="postgres"
            )
            try:
                con.autocommit = True  # CREATE DATABASE cannot run in a transaction
                con.cursor().execute(f"CREATE DATABASE {DATABASE}")
            finally:
                con.close()
            yield PostgresServer("127.0.0.1", port, USER, password, DATABASE)
    finally:
        shutil.rmtree(root, ignore_errors=True)
