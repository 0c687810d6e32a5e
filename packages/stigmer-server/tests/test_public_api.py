"""The public API of stigmer.server, its console script, and that importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import stigmer.backend.local
import stigmer.server

EXPECTED = {
    "DEFAULT_LISTEN",
    "GRACE_SECONDS",
    "MAX_CONCURRENT_RPCS",
    "MAX_MESSAGE_BYTES",
    "ROLES",
    "ChildDispatcher",
    "ExecutionDispatcher",
    "IssuedToken",
    "NoDispatcher",
    "ServerProcess",
    "TemporalConnection",
    "TEMPORAL_DEV_SERVER_ARGS",
    "TokenInfo",
    "TokenStore",
    "admin_endpoint_path",
    "admin_token_path",
    "ensure_admin_token",
    "run_server",
    "serve",
    "find_script",
    "server_script",
}


def test_all_is_pinned() -> None:
    assert set(stigmer.server.__all__) == EXPECTED
    assert len(stigmer.server.__all__) == len(EXPECTED)


def test_every_exported_name_exists() -> None:
    for name in stigmer.server.__all__:
        assert getattr(stigmer.server, name) is not None, name


def test_the_store_no_longer_exports_the_server() -> None:
    assert not {"serve", "run_server", "TokenStore"} & set(stigmer.backend.local.__all__)


def test_console_script_is_installed_next_to_the_interpreter() -> None:
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "stigmer-server"]
    assert ep.value == "stigmer.server._main:main"
    script = Path(sys.executable).parent / "stigmer-server"
    assert script.is_file()
    assert stigmer.server.server_script() == str(script)
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=True, timeout=60)
    assert "--listen" in done.stdout


def test_server_process_runs_the_console_script(tmp_path: Path) -> None:
    command = stigmer.server.ServerProcess(home=tmp_path).command()
    assert Path(command[0]).name == "stigmer-server"
    assert "-m" not in command


def test_import_does_not_load_grpc_sqlalchemy_or_temporalio() -> None:
    code = (
        "import sys, stigmer.server; "
        "print(sorted(m for m in ('grpc', 'sqlalchemy', 'temporalio') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
