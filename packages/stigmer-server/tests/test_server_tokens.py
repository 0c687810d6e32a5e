"""TokenStore: create, list, revoke, verify; hashed at rest; the admin token file."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from stigmer.core import AlreadyExists, InvalidArgument, NotFound
from stigmer.server import TokenStore, admin_token_path, ensure_admin_token


@pytest.fixture
def store(tmp_path: Path) -> Iterator[TokenStore]:
    s = TokenStore(home=tmp_path)
    yield s
    s.close()


def test_create_verify_and_list(store: TokenStore, tmp_path: Path) -> None:
    issued = store.create("runner", "worker-1")
    assert issued.id.startswith("tok_")
    assert issued.token.startswith(issued.id + ".")
    assert len(issued.token) > len(issued.id) + 40
    assert (issued.name, issued.role) == ("worker-1", "runner")
    principal = store.verify(issued.token)
    assert principal is not None
    assert (principal.token_id, principal.name, principal.role) == (issued.id, "worker-1", "runner")
    [info] = store.list()
    assert (info.id, info.name, info.role, info.revoked) == (issued.id, "worker-1", "runner", False)
    assert info.created_at == issued.created_at
    assert store.database_url == f"sqlite:///{tmp_path / 'tokens.db'}"


def test_unnamed_token_is_named_by_its_id(store: TokenStore) -> None:
    issued = store.create("user")
    assert issued.name == issued.id


def test_secret_is_stored_hashed(store: TokenStore, tmp_path: Path) -> None:
    issued = store.create("admin", "root")
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("tokens.db*"))
    secret = issued.token.split(".", 1)[1]
    assert secret.encode() not in raw
    assert issued.token.encode() not in raw
    assert issued.id.encode() in raw


@pytest.mark.parametrize(
    "presented",
    ["", "garbage", "tok_x", "tok_x.", ".secret", "tok_01nope.secret", "Bearer tok_1.2"],
)
def test_unknown_tokens_do_not_verify(store: TokenStore, presented: str) -> None:
    store.create("admin")
    assert store.verify(presented) is None


def test_wrong_secret_for_a_known_id_does_not_verify(store: TokenStore) -> None:
    issued = store.create("admin")
    assert store.verify(issued.id + ".not-the-secret") is None
    assert store.verify(issued.token + "x") is None


def test_revoke_by_name_and_by_id(store: TokenStore) -> None:
    a = store.create("user", "alice")
    b = store.create("user", "bob")
    assert store.revoke("alice").revoked
    assert store.verify(a.token) is None
    assert store.revoke(b.id).id == b.id
    assert store.verify(b.token) is None
    assert store.revoke(b.id).revoked  # twice is harmless
    assert [i.revoked for i in store.list()] == [True, True]
    # The name is free again once its token is revoked.
    c = store.create("user", "alice")
    assert store.verify(c.token) is not None


def test_errors_are_clear(store: TokenStore) -> None:
    with pytest.raises(InvalidArgument, match="admin, user, runner"):
        store.create("root")
    with pytest.raises(InvalidArgument, match="blank"):
        store.create("user", "  ")
    store.create("user", "ci")
    with pytest.raises(AlreadyExists, match="'ci'"):
        store.create("runner", "ci")
    with pytest.raises(NotFound, match="stigmer token list"):
        store.revoke("nobody")


def test_tokens_share_the_database_when_given_a_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    one = TokenStore(database_url=url)
    issued = one.create("runner")
    other = TokenStore(database_url=url, home=tmp_path / "elsewhere")
    assert other.verify(issued.token) is not None
    assert not (tmp_path / "elsewhere").exists()
    one.close()
    other.close()


def test_admin_token_file_is_created_0600_and_kept(store: TokenStore, tmp_path: Path) -> None:
    token = ensure_admin_token(store, tmp_path)
    path = admin_token_path(tmp_path)
    assert path == tmp_path / "tokens" / "admin"
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    principal = store.verify(token)
    assert principal is not None
    assert (principal.role, principal.name) == ("admin", "admin")
    assert ensure_admin_token(store, tmp_path) == token
    assert len(store.list()) == 1


def test_admin_token_file_is_replaced_when_revoked_or_foreign(store: TokenStore, tmp_path: Path) -> None:
    first = ensure_admin_token(store, tmp_path)
    store.revoke("admin")
    second = ensure_admin_token(store, tmp_path)
    assert second != first
    assert admin_token_path(tmp_path).read_text().strip() == second
    # A file holding a non-admin token is replaced too.
    admin_token_path(tmp_path).write_text(store.create("user").token)
    third = ensure_admin_token(store, tmp_path)
    principal = store.verify(third)
    assert principal is not None and principal.role == "admin"


def test_processes_creating_tokens_at_once_on_a_fresh_home(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys, pathlib\n"
        "from stigmer.server import TokenStore\n"
        "print(TokenStore(home=pathlib.Path(sys.argv[1])).create('user').id)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], [err.decode()[-500:] for _, err in results]
    created = {out.decode().strip() for out, _ in results}
    store = TokenStore(home=tmp_path)
    assert {t.id for t in store.list()} == created
    store.close()


def test_database_urls_are_checked_and_normalized(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="sqlite:///PATH or postgresql"):
        TokenStore(database_url="mysql://u@h/db")
    assert TokenStore(database_url="postgres://u@h/db").database_url == "postgresql+psycopg://u@h/db"
    assert TokenStore(database_url="postgresql://u@h/db").database_url == "postgresql+psycopg://u@h/db"


def test_unreachable_database_is_unavailable(tmp_path: Path) -> None:
    import socket

    from stigmer.core import Unavailable

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = TokenStore(database_url=f"postgresql+psycopg://nobody@127.0.0.1:{port}/none?connect_timeout=2")
    with pytest.raises(Unavailable, match="token store cannot be used right now"):
        store.create("user")
    with pytest.raises(Unavailable):
        store.verify("tok_01abc.secret")
    store.close()


def test_the_server_records_the_address_its_admin_token_is_for(tmp_path: Path) -> None:
    import stat

    from stigmer.server import ServerProcess, admin_endpoint_path

    home = tmp_path / "home"
    process = ServerProcess(home=home, listen="127.0.0.1:0")
    address = process.start()
    try:
        recorded = admin_endpoint_path(home)
        assert recorded.read_text().strip() == address
        assert stat.S_IMODE(recorded.stat().st_mode) == 0o600
        assert admin_token_path(home).read_text().strip().startswith("tok_")
    finally:
        assert process.stop() == 0
    assert not recorded.exists(), "a stopped server's address is forgotten"
    assert admin_token_path(home).exists(), "the token itself stays for the next start"
