"""Warehouse paths and connections: env defaults, bad folders, and waiting on another process's lock."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from objectives_pipeline.warehouse import (
    Warehouse,
    WarehouseError,
    WarehouseLockedError,
    WarehouseNotFoundError,
)

REPO_ROOT = Path(__file__).resolve().parents[1]

# A second process that opens the database read-write, writes a marker row,
# says "locked", and keeps the connection until it reads a line on stdin.
HOLDER = """
import sys
from objectives_pipeline.warehouse import Warehouse
with Warehouse(sys.argv[1]).connect() as con:
    con.execute("CREATE OR REPLACE TABLE marker AS SELECT 'written by the holder' AS note")
    print("locked", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    db = tmp_path / "locked.duckdb"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    try:
        yield db, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


def release(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline().strip() == "released"
    proc.wait(timeout=30)


class _WaitingSeen(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.event = threading.Event()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        self.event.set()


def test_path_comes_from_the_environment_or_the_documented_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Warehouse.from_env({}).path == tmp_path / "data" / "objectives.duckdb"
    chosen = tmp_path / "elsewhere.duckdb"
    assert Warehouse.from_env({"OBJECTIVES_DUCKDB_PATH": str(chosen)}).path == chosen
    monkeypatch.setenv("OBJECTIVES_DUCKDB_PATH", "md:objectives")
    assert Warehouse.from_env().database == "md:objectives"


def test_motherduck_paths_pass_through_unchanged(tmp_path: Path) -> None:
    warehouse = Warehouse("md:my_db?saas_mode=true")
    assert warehouse.database == "md:my_db?saas_mode=true"
    assert warehouse.is_remote
    assert warehouse.path is None
    assert not (Path.cwd() / "md:my_db?saas_mode=true").exists()


def test_a_missing_folder_is_refused_naming_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "no" / "such" / "folder"
    with pytest.raises(WarehouseError) as caught, Warehouse(folder / "x.duckdb").connect():
        pass
    message = str(caught.value)
    assert str(folder) in message
    assert "does not exist" in message
    assert not folder.exists(), "the folder must not be created behind the user's back"


def test_a_file_where_the_folder_should_be_is_refused(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "plain-file"
    not_a_folder.write_text("hello")
    with (
        pytest.raises(WarehouseError, match="is not a folder"),
        Warehouse(not_a_folder / "x.duckdb").connect(),
    ):
        pass


def test_an_unwritable_folder_is_refused_naming_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests may run as root, for whom chmod does not deny writes: ask the OS question
    # the code asks, answered "no" for this one folder.
    folder = tmp_path / "read-only"
    folder.mkdir()
    real_access = os.access

    def access(path: object, mode: int, **kwargs: object) -> bool:
        if Path(str(path)) == folder and mode & os.W_OK:
            return False
        return real_access(path, mode)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)
    with pytest.raises(WarehouseError) as caught, Warehouse(folder / "x.duckdb").connect():
        pass
    assert f"its folder {folder} is not writable" in str(caught.value)


def test_readers_of_a_database_that_does_not_exist_yet_get_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "never-created.duckdb"
    with pytest.raises(WarehouseNotFoundError) as caught, Warehouse(path).connect(read_only=True):
        pass
    assert str(path) in str(caught.value)
    assert "Run the pipeline" in str(caught.value)
    assert not path.exists()


def test_connections_apply_the_configured_limits_and_close(tmp_path: Path) -> None:
    warehouse = Warehouse(tmp_path / "w.duckdb", memory_limit="200MB", threads=1)
    with warehouse.connect() as con:
        limit, threads = con.execute(
            "SELECT current_setting('memory_limit'), current_setting('threads')"
        ).fetchone() or (None, None)
        con.execute("CREATE TABLE t AS SELECT 1 AS x")
    assert threads == 1
    assert str(limit).startswith("190") or str(limit).startswith("200")
    with pytest.raises(duckdb.ConnectionException):
        con.execute("SELECT 1")
    # Closed means released: another process can now take the write lock.
    probe = subprocess.run(
        [sys.executable, "-c", f"import duckdb; duckdb.connect({str(warehouse.path)!r}).close()"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert probe.returncode == 0, probe.stderr


def test_a_reader_waits_for_the_writer_and_then_reads(
    holder: tuple[Path, subprocess.Popen[str]],
) -> None:
    db, proc = holder
    seen = _WaitingSeen()
    logger = logging.getLogger("objectives_pipeline.warehouse.connection")
    logger.addHandler(seen)
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    result: dict[str, object] = {}

    def read() -> None:
        try:
            with Warehouse(db, lock_timeout=120).connect(read_only=True) as con:
                result["note"] = (con.execute("SELECT note FROM marker").fetchone() or [None])[0]
        except Exception as error:  # reported below
            result["error"] = error

    reader = threading.Thread(target=read)
    try:
        reader.start()
        assert seen.event.wait(timeout=60), "the reader never reported that it was waiting"
        assert "note" not in result and "error" not in result
        release(proc)
        reader.join(timeout=120)
    finally:
        logger.removeHandler(seen)
        logger.setLevel(previous_level)
    assert result == {"note": "written by the holder"}
    assert f"another process (PID {proc.pid})" in seen.messages[0]


def test_a_reader_gives_up_with_a_clear_message(
    holder: tuple[Path, subprocess.Popen[str]],
) -> None:
    db, proc = holder
    locked = Warehouse(db, lock_timeout=0.5)
    with pytest.raises(WarehouseLockedError) as caught, locked.connect(read_only=True):
        pass
    error = caught.value
    message = str(error)
    assert str(db) in message
    assert f"another process (PID {proc.pid}) holds it" in message
    assert "a running pipeline" in message
    assert "Waited" in message and "lock_timeout" in message
    assert "Traceback" not in message and "IO Error" not in message
    assert error.__cause__ is None and error.__suppress_context__
    assert error.waited_seconds >= 0.5
    release(proc)
    with Warehouse(db, lock_timeout=0).connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM marker").fetchone() == (1,)
