"""Contexts, login and logout: config.yaml in the shape Settings reads, credentials 0600."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stigmer.core import Settings, load_yaml_text


def test_default_context_is_local(cli: Callable[..., Any], home: Path) -> None:
    result = cli("context", "list", "-o", "json")
    assert result.code == 0, result.err
    items = json.loads(result.out)
    assert items == [
        {"name": "local", "backend": "local", "current": True, "database": f"sqlite:///{home / 'stigmer.db'}"}
    ]


def test_login_use_logout(cli: Callable[..., Any], home: Path) -> None:
    result = cli("login", "--endpoint", "grpc://example.test:7234", "--token", "tok-123", "--name", "team")
    assert result.code == 0, result.err
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


def test_login_default_name_and_unknown_context(cli: Callable[..., Any], home: Path) -> None:
    assert cli("login", "--endpoint", "grpcs://api.stigmer.example:443", "--token", "t").code == 0
    assert Settings.load({"STIGMER_HOME": str(home)}).current_context == "api-stigmer-example"
    result = cli("context", "use", "api-stigmer-exampel")
    assert result.code == 1
    assert "did you mean 'api-stigmer-example'" in result.err
    assert cli("logout", "local").code == 1


def test_unknown_context_flag_is_one_line_error(cli: Callable[..., Any]) -> None:
    result = cli("--context", "nope", "get", "agents")
    assert result.code == 1
    assert result.err.count("\n") == 1
    assert result.err.startswith("error: context 'nope' is not configured")
