"""docs/server.md says what the server and the cloud client really do."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from stigmer.backend.cloud._retry import IDEMPOTENT
from stigmer.server import MAX_CONCURRENT_RPCS, MAX_MESSAGE_BYTES, server_script
from stigmer.server._auth import _RUNNER, _USER_DENIED

DOC = (Path(__file__).resolve().parent.parent / "docs" / "server.md").read_text()


def _row(role: str) -> str:
    match = re.search(rf"^\| `{role}` \| (.+) \|$", DOC, re.MULTILINE)
    assert match, f"no table row for {role}"
    return match.group(1)


def test_role_table_matches_the_server() -> None:
    assert set(re.findall(r"`(\w+)`", _row("runner"))) == set(_RUNNER)
    assert set(re.findall(r"`(\w+)`", _row("user"))) == set(_USER_DENIED)


def test_retry_list_matches_the_client() -> None:
    section = DOC.split("only for calls that are safe to repeat:")[1].split("are sent once")[0]
    retried, once = section.split("`CreateExecution`", 1)
    assert set(re.findall(r"`(\w+)`", retried)) == set(IDEMPOTENT)
    assert not set(re.findall(r"`(\w+)`", once)) & IDEMPOTENT


def test_limits_match_the_server() -> None:
    assert f"{MAX_MESSAGE_BYTES // (1024 * 1024)} MiB" in DOC
    assert f"{MAX_CONCURRENT_RPCS:,} concurrent calls" in DOC


def test_refusal_message_is_quoted_verbatim(tmp_path: Path) -> None:
    quoted = DOC.split("```\nerror: refusing")[1].split("```")[0]
    expected = " ".join(("error: refusing" + quoted).split())
    result = subprocess.run(
        [
            server_script(),
            "--listen",
            "0.0.0.0:7234",
            "--home",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert " ".join(result.stderr.split()) == expected
