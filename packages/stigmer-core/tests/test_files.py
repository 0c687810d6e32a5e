"""Private folders and files are created private and tightened when found wider."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from stigmer.core import open_private, private_dir, private_file, tighten_home


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask() -> Iterator[None]:
    """A umask that would leave everything world-writable: the modes must not depend on it."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_folders_are_created_and_tightened_to_0700(tmp_path: Path, open_umask: None) -> None:
    home = private_dir(tmp_path / "a" / "home")
    assert _mode(home) == 0o700
    home.chmod(0o755)
    private_dir(home)
    assert _mode(home) == 0o700


def test_files_are_created_and_tightened_to_0600(tmp_path: Path, open_umask: None) -> None:
    path = private_file(tmp_path / "new" / "stigmer.db")
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700 and path.read_bytes() == b""
    path.write_bytes(b"kept")
    path.chmod(0o644)
    private_file(path)
    assert _mode(path) == 0o600 and path.read_bytes() == b"kept"


def test_a_sqlite_database_created_private_has_private_wal_and_shm(tmp_path: Path, open_umask: None) -> None:
    db = private_file(tmp_path / "stigmer.db")
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        conn.commit()
        wal, shm = db.with_name("stigmer.db-wal"), db.with_name("stigmer.db-shm")
        assert wal.exists() and shm.exists()
        assert (_mode(db), _mode(wal), _mode(shm)) == (0o600, 0o600, 0o600)
    finally:
        conn.close()


def test_logs_are_opened_private_and_appended(tmp_path: Path, open_umask: None) -> None:
    log = tmp_path / "logs" / "server.log"
    with open_private(log) as fh:
        fh.write(b"one\n")
    log.chmod(0o666)
    with open_private(log) as fh:
        fh.write(b"two\n")
    assert log.read_bytes() == b"one\ntwo\n" and _mode(log) == 0o600
    with open_private(log, "wb") as fh:
        fh.write(b"three\n")
    assert log.read_bytes() == b"three\n"
    with pytest.raises(ValueError, match="'r'"):
        open_private(log, "r")


def test_an_existing_home_is_tightened(tmp_path: Path, open_umask: None) -> None:
    home = tmp_path / "home"
    (home / "local").mkdir(parents=True)
    (home / "tokens").mkdir()
    loose = [
        home / "config.yaml",
        home / "stigmer.db",
        home / "local" / "server.log",
        home / "tokens" / "admin",
    ]
    for path in loose:
        path.write_text("x")
        path.chmod(0o644)
    for folder in (home, home / "local", home / "tokens"):
        folder.chmod(0o755)
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("not ours")
    outside.chmod(0o644)
    (home / "link").symlink_to(outside)
    tighten_home(home)
    assert [_mode(p) for p in loose] == [0o600] * len(loose)
    assert [_mode(f) for f in (home, home / "local", home / "tokens")] == [0o700] * 3
    assert _mode(outside) == 0o644, "a link's target outside the home is left alone"
    tighten_home(tmp_path / "missing")  # nothing to do, no error
    assert not (tmp_path / "missing").exists()
