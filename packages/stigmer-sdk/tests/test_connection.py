"""Credentials (0600, tokens by context) and the connection of the active context."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from stigmer.core import InvalidArgument, PluginNotFound, Settings
from stigmer.sdk._connection import Connection, connection_for
from stigmer.sdk._credentials import credentials_path, read_credentials, write_credentials

CONFIG = (
    "currentContext: team\n"
    "contexts:\n"
    "  - {name: team, backend: cloud, endpoint: 'grpc://127.0.0.1:7234'}\n"
    "  - {name: broken, backend: cloud}\n"
    "  - {name: odd, backend: carrier-pigeon}\n"
    "  - {name: shared, backend: local, databaseUrl: 'sqlite:////tmp/shared.db'}\n"
)


def _settings(home: Path, context: str = "", **env: str) -> Settings:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(CONFIG)
    environ = {"STIGMER_HOME": str(home), **env}
    if context:
        environ["STIGMER_CONTEXT"] = context
    return Settings.load(environ)


def test_credentials_round_trip_private(tmp_path: Path) -> None:
    home = tmp_path / "h"
    assert read_credentials(home) == {}
    write_credentials(home, {"team": "tok-1", "a": "tok-2"})
    path = credentials_path(home)
    assert path == home / "credentials.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().startswith("tokens:")
    assert read_credentials(home) == {"a": "tok-2", "team": "tok-1"}
    path.chmod(0o644)
    write_credentials(home, {})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and read_credentials(home) == {}
    assert not (home / "credentials.yaml.tmp").exists()


def test_credentials_bare_mapping_and_empty_values(tmp_path: Path) -> None:
    credentials_path(tmp_path).write_text("team: tok\nother: null\n")
    assert read_credentials(tmp_path) == {"team": "tok"}


@pytest.mark.parametrize(
    ("text", "message"),
    [("- a\n- b\n", "expected a mapping of context name to token"), ("tokens: [x]\n", "'tokens' must be")],
)
def test_bad_credentials_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    credentials_path(tmp_path).write_text(text)
    with pytest.raises(InvalidArgument, match=message) as exc:
        read_credentials(tmp_path)
    assert str(credentials_path(tmp_path)) in str(exc.value)


def test_local_context(tmp_path: Path) -> None:
    home = tmp_path / "h"
    conn = connection_for(_settings(home, "local"))
    assert conn == Connection(
        "local", {"database_url": f"sqlite:///{home / 'stigmer.db'}", "home": home}, "local"
    )
    assert conn.local and conn.describe() == f"local store sqlite:///{home / 'stigmer.db'}"
    shared = connection_for(_settings(home, "shared"))
    assert shared.options["database_url"] == "sqlite:////tmp/shared.db"
    overridden = connection_for(_settings(home, "shared", STIGMER_DATABASE_URL="sqlite:////tmp/env.db"))
    assert overridden.options["database_url"] == "sqlite:////tmp/env.db"


def test_cloud_context_uses_the_stored_token_unless_one_is_given(tmp_path: Path) -> None:
    home = tmp_path / "h"
    settings = _settings(home)
    assert connection_for(settings).options["token"] is None
    write_credentials(home, {"team": "tok-123"})
    conn = connection_for(settings)
    assert conn == Connection(
        "cloud", {"endpoint": "grpc://127.0.0.1:7234", "token": "tok-123", "home": home}, "team"
    )
    assert not conn.local and conn.describe() == "server grpc://127.0.0.1:7234"
    assert connection_for(settings, token="explicit").options["token"] == "explicit"


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ("nowhere", "context 'nowhere' is not configured"),
        ("broken", r"context 'broken' has no endpoint; run `stigmer login"),
        ("odd", "unknown backend 'carrier-pigeon'"),
    ],
)
def test_bad_contexts_say_what_to_do(tmp_path: Path, context: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        connection_for(_settings(tmp_path / "h", context))


def test_open_loads_the_plugin_by_name() -> None:
    with pytest.raises(
        PluginNotFound, match=r"no 'no-such-backend' plugin in entry-point group 'stigmer\.backends'"
    ):
        Connection("no-such-backend").open()


def test_write_config_selects_a_context_and_keeps_other_keys(tmp_path: Path) -> None:
    from stigmer.sdk._contexts import config_contexts, write_config

    home = tmp_path / "h"
    settings = _settings(home, "team")
    write_config(
        settings, current="local", contexts=[*config_contexts(settings), {"name": "new", "backend": "local"}]
    )
    assert stat.S_IMODE(settings.config_path.stat().st_mode) == 0o600
    again = Settings.load({"STIGMER_HOME": str(home)})
    assert again.current_context == "local"
    assert [c["name"] for c in config_contexts(again)] == [
        *(c["name"] for c in config_contexts(settings)),
        "new",
    ]


def test_timeout_and_retries_reach_a_server_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stigmer.sdk import AsyncStigmer, Stigmer

    _settings(tmp_path / "h")
    monkeypatch.setenv("STIGMER_HOME", str(tmp_path / "h"))
    monkeypatch.delenv("STIGMER_CONTEXT", raising=False)
    quick = AsyncStigmer(timeout=0.5, retries=0)
    backend: object = quick.backend
    assert (getattr(backend, "timeout", None), getattr(backend, "retries", None)) == (0.5, 0)
    assert getattr(AsyncStigmer().backend, "timeout", None) == 30.0  # the default
    with Stigmer(context="team", timeout=2, retries=1) as sync:
        assert (
            getattr(sync._async.backend, "timeout", None),
            getattr(sync._async.backend, "retries", None),
        ) == (
            2.0,
            1,
        )
    # a local store has no deadline to set: the arguments are ignored
    assert AsyncStigmer(context="shared", timeout=0.5).local
