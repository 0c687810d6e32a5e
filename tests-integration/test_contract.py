"""Every message, field, enum value and RPC of the stigmer.v1 contract carries a comment."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PROTO_DIR = Path(__file__).resolve().parent.parent / "proto" / "stigmer" / "v1"
PROTOS = sorted(PROTO_DIR.glob("*.proto"))
DECL = re.compile(
    r"^\s*(message \w+|enum \w+|service \w+|rpc \w+|oneof \w+|"
    r"(repeated |optional )?[\w.<>, ]+ \w+ = \d+;|[A-Z][A-Z0-9_]* = \d+;)"
)


@pytest.mark.parametrize("proto", PROTOS, ids=lambda p: p.name)
def test_every_declaration_is_commented(proto: Path) -> None:
    lines = proto.read_text().splitlines()
    missing = []
    for i, line in enumerate(lines):
        if DECL.match(line):
            previous = lines[i - 1].strip() if i else ""
            if not previous.startswith("//"):
                missing.append(f"{proto.name}:{i + 1}: {line.strip()}")
    assert not missing, "declarations without a comment:\n" + "\n".join(missing)


def test_declarations_are_found() -> None:
    text = "\n".join(p.read_text() for p in PROTOS)
    assert len(re.findall(r"^\s*message \w+", text, re.M)) >= 40
    assert "service BackendService" in text


def test_service_has_every_rpc_of_the_design() -> None:
    text = (PROTO_DIR / "backend_service.proto").read_text()
    rpcs = re.findall(r"^\s*rpc (\w+)\(", text, re.M)
    assert rpcs == [
        "Apply", "Get", "List", "Delete", "ListVersions",
        "CreateExecution", "GetExecution", "ListExecutions", "UpdateExecutionStatus", "WatchExecution",
        "CancelExecution", "SubmitApproval", "GetExecutionContext",
        "SetSecret", "DeleteSecret", "ListSecrets", "GrantSecret", "RevokeSecret",
        "PutArtifact", "GetArtifact",
        "CreateMemory", "ListMemories", "GetMemory", "DeleteMemory",
        "PublishEvent",
    ]  # fmt: skip
    assert "rpc WatchExecution(WatchExecutionRequest) returns (stream ExecutionEvent);" in text


def test_generated_code_schemas_and_reference_are_fresh() -> None:
    import subprocess
    import sys

    root = PROTO_DIR.parents[2]
    for script in ("gen_protos.py", "gen_schemas.py"):
        result = subprocess.run(
            [sys.executable, str(root / "scripts" / script), "--check"],
            capture_output=True,
            text=True,
            cwd=root,
        )
        assert result.returncode == 0, result.stdout + result.stderr
