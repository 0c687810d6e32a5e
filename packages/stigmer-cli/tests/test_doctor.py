"""`stigmer doctor` on real stores in a temporary STIGMER_HOME: one line per check, OK/WARN/FAIL
with what to do, `-o json` a list of checks, exit code 1 on any FAIL."""

from __future__ import annotations

import base64
import json
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

MODEL_VARS = (
    "STIGMER_LLM_PROVIDER",
    "STIGMER_LLM_MODEL",
    "STIGMER_LLM_BASE_URL",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "OLLAMA_BASE_URL",
    "STIGMER_MASTER_KEY",
)


@pytest.fixture(autouse=True)
def clean_env(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in MODEL_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def listening() -> Iterator[int]:
    """A port where something accepts TCP connections (and is not the local stack)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _checks(cli: Callable[..., Any], *args: str) -> tuple[int, dict[str, dict[str, str]]]:
    result = cli("doctor", "-o", "json", *args)
    assert result.code in (0, 1), result.err
    rows = json.loads(result.out)
    assert all(set(row) == {"check", "status", "detail", "fix"} for row in rows), rows
    assert all(row["status"] in ("OK", "WARN", "FAIL") for row in rows), rows
    assert all(row["fix"] for row in rows if row["status"] != "OK"), "every WARN/FAIL says what to do"
    assert result.code == (1 if any(r["status"] == "FAIL" for r in rows) else 0)
    return result.code, {row["check"]: row for row in rows}


def _set_secret(cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(value + "\n"))
    result = cli("secret", "set", name)
    assert result.code == 0, result.err


def test_healthy_local_context_gives_ok_lines(
    cli: Callable[..., Any], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set_secret(cli, monkeypatch, "GH_TOKEN", "s3cr3t-value")
    code, checks = _checks(cli)
    assert code == 0
    for name in ("python", "packages", "extras", "temporal", "context", "master key"):
        assert checks[name]["status"] == "OK", checks[name]
    assert "the store opens" in checks["context"]["detail"]
    assert str(home / "stigmer.db") in checks["context"]["detail"]
    assert checks["master key"]["detail"] == (
        f"the key from {home / 'master.key'} opens the 1 stored secret value"
    )
    # The table: one line per check, status first, and a summary.
    table = cli("doctor")
    assert table.code == 0, table.err
    lines = table.out.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == [c["status"] for c in checks.values()]
    assert any(line.startswith("OK    master key  the key from") for line in lines)
    assert "s3cr3t-value" not in table.out


def test_fresh_home_creates_no_master_key(cli: Callable[..., Any], home: Path) -> None:
    code, checks = _checks(cli)
    assert code == 0
    assert checks["master key"] == {
        "check": "master key",
        "status": "OK",
        "detail": "no secrets stored yet",
        "fix": "",
    }
    assert not (home / "master.key").exists()


def test_wrong_master_key_fails_with_the_remedy(
    cli: Callable[..., Any], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set_secret(cli, monkeypatch, "GH_TOKEN", "s3cr3t-value")
    monkeypatch.setenv("STIGMER_MASTER_KEY", base64.b64encode(os.urandom(32)).decode())
    code, checks = _checks(cli)
    assert code == 1
    key = checks["master key"]
    assert key["status"] == "FAIL"
    assert key["detail"] == "the key from STIGMER_MASTER_KEY does not open the 1 stored secret value"
    assert "unset STIGMER_MASTER_KEY" in key["fix"] and "master.key" in key["fix"]
    # the other checks still ran and the store itself opens
    assert checks["context"]["status"] == "OK"
    table = cli("doctor")
    assert table.code == 1
    assert "FAIL  master key  the key from STIGMER_MASTER_KEY does not open" in table.out
    assert table.out.rstrip().endswith("1 failed") or "1 failed," in table.out


def test_malformed_master_key_fails_with_how_to_make_one(
    cli: Callable[..., Any], home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set_secret(cli, monkeypatch, "GH_TOKEN", "s3cr3t-value")
    monkeypatch.setenv("STIGMER_MASTER_KEY", "not-a-key")
    code, checks = _checks(cli)
    assert code == 1
    assert checks["master key"]["status"] == "FAIL"
    assert "STIGMER_MASTER_KEY must be 32 bytes" in checks["master key"]["detail"]
    assert "not-a-key" not in json.dumps(checks)


def test_unreachable_cloud_context_fails(cli: Callable[..., Any], home: Path) -> None:
    port = _free_port()
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(
        f"currentContext: far\ncontexts:\n  - name: far\n    backend: cloud\n"
        f"    endpoint: grpc://127.0.0.1:{port}\n"
    )
    code, checks = _checks(cli, "--timeout", "2")
    assert code == 1
    context = checks["context"]
    assert context["status"] == "FAIL"
    assert context["detail"].startswith(f"'far': cannot reach the Stigmer server at grpc://127.0.0.1:{port}")
    assert "stigmer context use local" in context["fix"]
    # a server's master key is its own
    assert checks["master key"]["status"] == "OK"
    assert "stigmer doctor" in checks["master key"]["detail"]


def test_unknown_current_context_fails(cli: Callable[..., Any], home: Path) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text("currentContext: gone\n")
    code, checks = _checks(cli)
    assert code == 1
    assert checks["context"]["status"] == "FAIL"
    assert "'gone' is not configured" in checks["context"]["detail"]
    assert checks["context"]["fix"] == "select a known one: stigmer context use NAME"


def test_port_held_by_another_process_warns(cli: Callable[..., Any], home: Path, listening: int) -> None:
    from stigmer.cli.local._files import LocalPaths, StackSettings

    paths = LocalPaths(home)
    paths.ensure()
    server_port = _free_port()
    paths.save_settings(StackSettings(temporal_port=listening, server_port=server_port))
    code, checks = _checks(cli)
    assert code == 0
    held = checks[f"port {listening}"]
    assert held["status"] == "WARN"
    assert held["detail"] == "Temporal: in use by another process, so `stigmer local start` would fail"
    assert "--temporal-port" in held["fix"]
    assert checks[f"port {server_port}"] == {
        "check": f"port {server_port}",
        "status": "OK",
        "detail": "stigmer server: free",
        "fix": "",
    }


def test_model_from_an_api_key_never_shows_it(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-very-secret")
    monkeypatch.setenv("OLLAMA_BASE_URL", f"http://127.0.0.1:{_free_port()}")
    result = cli("doctor")
    assert "sk-ant-very-secret" not in result.out + result.err
    _, checks = _checks(cli)
    assert checks["model"]["status"] == "OK"
    assert checks["model"]["detail"].startswith("ANTHROPIC_API_KEY set")


def test_no_model_and_ollama_not_reachable_warns(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("OLLAMA_BASE_URL", url)
    _, checks = _checks(cli)
    assert checks["model"]["status"] == "WARN"
    assert f"Ollama not reachable at {url}" in checks["model"]["detail"]
    assert "STIGMER_LLM_MODEL" in checks["model"]["fix"]


def test_ollama_answering_is_a_model(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, listening: int
) -> None:
    monkeypatch.setenv("OLLAMA_BASE_URL", f"http://127.0.0.1:{listening}")
    _, checks = _checks(cli)
    assert checks["model"] == {
        "check": "model",
        "status": "OK",
        "detail": f"Ollama answers at http://127.0.0.1:{listening} (agents with provider ollama)",
        "fix": "",
    }


def test_configured_model_server_not_reachable_warns(
    cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    monkeypatch.setenv("STIGMER_LLM_PROVIDER", "openai-compatible")
    monkeypatch.setenv("STIGMER_LLM_MODEL", "qwen")
    monkeypatch.setenv("STIGMER_LLM_BASE_URL", url)
    _, checks = _checks(cli)
    assert checks["model"]["status"] == "WARN"
    assert checks["model"]["detail"] == f"openai-compatible/qwen at {url}: not reachable"


def test_bad_timeout_is_a_usage_error(cli: Callable[..., Any]) -> None:
    result = cli("doctor", "--timeout", "0")
    assert result.code == 2
    assert "--timeout" in result.err
