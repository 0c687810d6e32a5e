"""A server's id and lease settings (issue 24: several servers on one database)."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stigmer.core import InvalidArgument
from stigmer.server._dispatch import DEFAULT_LEASE_SECONDS, LEASE_ENV, server_lease_seconds
from stigmer.server._process import server_script
from stigmer.server._server import server_identity


def test_a_server_keeps_its_id_in_its_home(tmp_path: Path) -> None:
    first = server_identity(tmp_path)
    assert first.startswith("srv_") and len(first) == 30
    assert server_identity(tmp_path) == first
    assert stat.S_IMODE((tmp_path / "server.id").stat().st_mode) == 0o600
    assert server_identity(tmp_path / "other") != first
    (tmp_path / "server.id").write_text("garbage\n")
    assert server_identity(tmp_path) not in (first, "garbage")


def test_lease_seconds_from_the_environment() -> None:
    assert server_lease_seconds({}) == DEFAULT_LEASE_SECONDS
    assert server_lease_seconds({LEASE_ENV: " 3 "}) == 3.0
    assert server_lease_seconds({LEASE_ENV: "2.5"}) == 2.5


@given(st.text(max_size=12))
def test_any_lease_value_is_a_number_or_one_clear_error(text: str) -> None:
    try:
        value = server_lease_seconds({LEASE_ENV: text})
    except InvalidArgument as err:
        assert f"{LEASE_ENV}=" in str(err) and "from 1 to 86400" in str(err)
    else:
        assert 1.0 <= value <= 86_400.0


def test_the_server_refuses_a_bad_lease_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [server_script(), "--home", str(tmp_path), "--listen", "127.0.0.1:0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", LEASE_ENV: "0"},
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {LEASE_ENV}='0' is not valid: give the lease time in seconds, from 1 to 86400 (default 30)"
    ]


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e9"])
def test_odd_numbers_are_refused(value: str) -> None:
    with pytest.raises(InvalidArgument):
        server_lease_seconds({LEASE_ENV: value})
