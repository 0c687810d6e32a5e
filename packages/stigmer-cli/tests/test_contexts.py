"""Contexts, login and logout: config.yaml in the shape Settings reads, credentials 0600."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from stigmer.core import Settings, load_yaml_text


def test_default_context_is_local(cli: Callable[..., Any], home: Path) -> None:
    result = cli("context", "list", "-o", "json")
    assert result.code == 0, result.err
    items = json.loads(result.out)
    assert items == [
        {"name": "local", "backend": "local", "current": True, "database": f"sqlite:///{home / 'stigmer.db'}"}
    ]


@pytest.fixture
def server_accepts(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Stand in for the server `stigmer login` checks: record (endpoint, token) and accept."""
    from stigmer.sdk import AsyncStigmer

    calls: list[tuple[str, str]] = []

    async def check(self: AsyncStigmer, *, timeout: float = 5.0) -> None:
        assert self._target is not None
        calls.append((self._target.options["endpoint"], self._target.options["token"]))

    monkeypatch.setattr(AsyncStigmer, "check", check)
    return calls


def test_login_use_logout(cli: Callable[..., Any], home: Path, server_accepts: list[tuple[str, str]]) -> None:
    result = cli("login", "--endpoint", "grpc://example.test:7234", "--token", "tok-123", "--name", "team")
    assert result.code == 0, result.err
    assert server_accepts == [("grpc://example.test:7234", "tok-123")]
    settings = Settings.load({"STIGMER_HOME": str(home)})
    assert settings.current_context == "team"
    assert settings.context.backend == "cloud"
    assert settings.context.endpoint == "grpc://example.test:7234"
    credentials = home / "credentials.yaml"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
    assert load_yaml_text(credentials.read_text())["tokens"] == {"team": "tok-123"}
    assert "tok-123" not in (home / "config.yaml").read_text()

    listed = json.loads(cli("context", "list", "-o", "json").out)
    assert {i["name"]: i["current"] for i in listed} == {"local": False, "team": True}
    assert next(i for i in listed if i["name"] == "team")["loggedIn"] is True
    assert "tok-123" not in cli("context", "show").out

    assert cli("context", "use", "local").code == 0
    assert Settings.load({"STIGMER_HOME": str(home)}).current_context == "local"
    assert cli("context", "use", "team").code == 0

    out = cli("logout")
    assert out.code == 0, out.err
    settings = Settings.load({"STIGMER_HOME": str(home)})
    assert settings.current_context == "local"
    assert "team" not in settings.contexts
    assert load_yaml_text(credentials.read_text())["tokens"] == {}


def test_login_default_name_and_unknown_context(
    cli: Callable[..., Any], home: Path, server_accepts: list[tuple[str, str]]
) -> None:
    assert cli("login", "--endpoint", "grpcs://api.stigmer.example:443", "--token", "t").code == 0
    assert Settings.load({"STIGMER_HOME": str(home)}).current_context == "api-stigmer-example"
    result = cli("context", "use", "api-stigmer-exampel")
    assert result.code == 1
    assert "did you mean 'api-stigmer-example'" in result.err
    assert cli("logout", "local").code == 1


@pytest.mark.parametrize(
    ("error", "says"),
    [
        ("Unauthenticated", "refused the token"),
        ("Unavailable", "cannot reach"),
        ("StigmerError", "did not answer within 5 s"),
    ],
)
def test_login_failed_check_changes_nothing(
    cli: Callable[..., Any],
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    server_accepts: list[tuple[str, str]],
    error: str,
    says: str,
) -> None:
    import stigmer.core
    from stigmer.sdk import AsyncStigmer

    assert cli("login", "--endpoint", "grpc://first.test:7234", "--token", "t1", "--name", "first").code == 0

    async def check(self: AsyncStigmer, *, timeout: float = 5.0) -> None:
        raise getattr(stigmer.core, error)(f"{says} (from the server)")

    monkeypatch.setattr(AsyncStigmer, "check", check)
    config, credentials = home / "config.yaml", home / "credentials.yaml"
    before = [p.read_text() if p.exists() else None for p in (config, credentials)]
    result = cli("login", "--endpoint", "grpc://example.test:7234", "--token", "tok-9", "--name", "team")
    assert result.code == 1
    assert result.out == ""
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: not logged in") and says in lines[0]
    assert "nothing was changed" in lines[0] and "tok-9" not in lines[0]
    assert [p.read_text() if p.exists() else None for p in (config, credentials)] == before
    assert Settings.load({"STIGMER_HOME": str(home)}).current_context == "first"


def test_unknown_context_flag_is_one_line_error(cli: Callable[..., Any]) -> None:
    result = cli("--context", "nope", "get", "agents")
    assert result.code == 1
    assert result.err.count("\n") == 1
    assert result.err.startswith("error: context 'nope' is not configured")
