"""Where a client connects: explicit arguments, else the active context (and its stored token)."""

from __future__ import annotations

from pathlib import Path

import pytest
from stigmer.core import InvalidArgument
from stigmer.sdk import AsyncStigmer, Stigmer
from stigmer.sdk._connection import resolve_target


def _config(home: Path, current: str = "local") -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(
        f"currentContext: {current}\n"
        "contexts:\n"
        "  - {name: cloud, backend: cloud, endpoint: 'grpc://127.0.0.1:7234'}\n"
        "  - {name: broken, backend: cloud}\n"
        "  - {name: team-db, backend: local, databaseUrl: 'sqlite:////tmp/team.db'}\n"
    )
    (home / "credentials.yaml").write_text("tokens: {cloud: tok-123}\n")


def test_the_active_context_decides(home: Path) -> None:
    _config(home, current="cloud")
    target = resolve_target()
    assert (target.backend, target.context, target.options["endpoint"]) == (
        "cloud",
        "cloud",
        "grpc://127.0.0.1:7234",
    )
    assert target.options["token"] == "tok-123" and not target.local
    assert resolve_target(context="team-db").options["database_url"] == "sqlite:////tmp/team.db"
    assert not Stigmer(context="cloud").local  # no connection is made to say so
    assert AsyncStigmer(context="local").local


def test_explicit_arguments_win(home: Path, tmp_path: Path) -> None:
    _config(home, current="cloud")
    local = resolve_target(home=tmp_path / "elsewhere")
    assert (
        local.local and local.options["database_url"] == f"sqlite:///{tmp_path / 'elsewhere' / 'stigmer.db'}"
    )
    server = resolve_target(endpoint="grpc://10.0.0.1:1", token="t")
    assert (server.backend, server.options["token"]) == ("cloud", "t")
    assert resolve_target(database_url="sqlite:////tmp/x.db").options["database_url"] == "sqlite:////tmp/x.db"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"context": "nowhere"}, "context 'nowhere' is not configured"),
        ({"context": "broken"}, "has no endpoint; run `stigmer login"),
        ({"endpoint": "grpc://x:1", "database_url": "sqlite://"}, "not both"),
    ],
)
def test_bad_connections_say_what_to_do(home: Path, kwargs: dict[str, str], message: str) -> None:
    _config(home)
    with pytest.raises(InvalidArgument, match=message):
        resolve_target(**kwargs)


def test_check_makes_one_call_with_a_short_deadline(home: Path, tmp_path: Path) -> None:
    import socket
    import time

    from stigmer.core import Unavailable

    with Stigmer(home=tmp_path / "store") as client:
        client.check()  # the local store answers
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with (
        Stigmer(endpoint=f"grpc://127.0.0.1:{port}", token="t") as client,
        pytest.raises(Unavailable) as info,
    ):
        client.check(timeout=2)
    assert time.monotonic() - started < 10
    assert f"127.0.0.1:{port}" in str(info.value)
    with Stigmer(endpoint="grpc://127.0.0.1:1", token="t") as client, pytest.raises(InvalidArgument):
        client.check(timeout=0)
