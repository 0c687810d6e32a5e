"""The CLI talks to a backend only through the SDK client's methods: no module reaches for the
client's raw ``backend`` (requests built by hand); ``ctx.backend`` (a context's setting) is no client."""

from __future__ import annotations

import ast
from pathlib import Path

import stigmer.cli

SRC = Path(stigmer.cli.__file__).resolve().parent
NOT_A_CLIENT = {"ctx"}  # a context's settings: its ``backend`` is "local" or "cloud"


def _backend_accesses(path: Path, root: Path = SRC) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr == "backend":
            owner = node.value.id if isinstance(node.value, ast.Name) else ast.unparse(node.value)
            if owner not in NOT_A_CLIENT:
                found.append(f"{path.relative_to(root)}:{node.lineno}: {owner}.backend")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value == "backend"
        ):
            found.append(f"{path.relative_to(root)}:{node.lineno}: getattr(..., 'backend')")
    return found


def test_no_cli_module_touches_the_clients_backend() -> None:
    modules = sorted(SRC.rglob("*.py"))
    commands = {p.stem for p in modules if p.parent.name == "commands"}
    # the scan really reads the command modules that used to send raw requests
    assert {"_get", "_executions", "_run", "_apply", "_contexts"} <= commands
    offenders = [hit for path in modules for hit in _backend_accesses(path)]
    assert offenders == []


def test_the_scan_sees_a_backend_access(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("async def f(client):\n    await client.backend.get(1)\n    ctx.backend\n")
    assert _backend_accesses(probe, tmp_path) == ["probe.py:2: client.backend"]
