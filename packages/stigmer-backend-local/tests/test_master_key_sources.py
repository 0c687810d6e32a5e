"""Where the master key comes from when an OS keyring is present.

`keyring` is not installed here (and must not become a dependency), so these tests put a small
in-memory stand-in module named `keyring` on the import path: the one thing that cannot run here.
"""

from __future__ import annotations

import base64
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from stigmer.backend.local import LocalBackend
from stigmer.backend.local._keys import resolve_master_key
from stigmer.proto.v1 import backend_service_pb2 as svc


class _Store:
    def __init__(self, fail: bool = False) -> None:
        self.values: dict[tuple[str, str], str] = {}
        self.fail = fail

    def get_password(self, service: str, user: str) -> str | None:
        if self.fail:
            raise RuntimeError("the keyring daemon is not running")
        return self.values.get((service, user))

    def set_password(self, service: str, user: str, value: str) -> None:
        if self.fail:
            raise RuntimeError("the keyring daemon is not running")
        self.values[(service, user)] = value

    def delete_password(self, service: str, user: str) -> None:
        del self.values[(service, user)]


def _install(monkeypatch: pytest.MonkeyPatch, backend_module: str, store: _Store) -> None:
    module = types.ModuleType("keyring")
    backend_cls = type("Keyring", (), {"__module__": backend_module})
    module.get_keyring = lambda: backend_cls()  # type: ignore[attr-defined]
    module.get_password = store.get_password  # type: ignore[attr-defined]
    module.set_password = store.set_password  # type: ignore[attr-defined]
    module.delete_password = store.delete_password  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keyring", module)


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Store]:
    s = _Store()
    _install(monkeypatch, "keyring.backends.SecretService", s)
    yield s


def test_new_key_goes_to_a_working_keyring(tmp_path: Path, store: _Store) -> None:
    key, source = resolve_master_key(tmp_path, {})
    assert source == "the OS keyring"
    assert base64.b64decode(store.values[("stigmer", "master-key")]) == key
    assert not (tmp_path / "master.key").exists()
    again, _ = resolve_master_key(tmp_path, {})
    assert again == key


def test_existing_key_file_wins_over_a_new_keyring_key(tmp_path: Path, store: _Store) -> None:
    (tmp_path / "master.key").write_text(base64.b64encode(b"k" * 32).decode())
    key, source = resolve_master_key(tmp_path, {})
    assert key == b"k" * 32 and source == str(tmp_path / "master.key")
    assert store.values == {}


def test_environment_variable_wins_over_the_keyring(tmp_path: Path, store: _Store) -> None:
    store.values[("stigmer", "master-key")] = base64.b64encode(b"r" * 32).decode()
    key, source = resolve_master_key(tmp_path, {"STIGMER_MASTER_KEY": (b"e" * 32).hex()})
    assert key == b"e" * 32 and source == "STIGMER_MASTER_KEY"


@pytest.mark.parametrize("module", ["keyring.backends.fail", "keyrings.alt.file", "keyring.backends.null"])
def test_fail_null_and_plaintext_keyrings_are_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    s = _Store()
    _install(monkeypatch, module, s)
    _key, source = resolve_master_key(tmp_path, {})
    assert source == str(tmp_path / "master.key") and s.values == {}


def test_a_keyring_failing_at_use_time_falls_back_to_the_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _install(monkeypatch, "keyring.backends.SecretService", _Store(fail=True))
    _key, source = resolve_master_key(tmp_path, {})
    assert source == str(tmp_path / "master.key")


async def test_rotation_updates_the_keyring_entry(
    tmp_path: Path, store: _Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STIGMER_MASTER_KEY", raising=False)
    backend = LocalBackend(home=tmp_path)
    await backend.set_secret(svc.SetSecretRequest(name="TOKEN", value="v"))
    old = store.values[("stigmer", "master-key")]
    new_key = await backend.rotate_master_key(os.urandom(32))
    assert store.values[("stigmer", "master-key")] == base64.b64encode(new_key).decode() != old
    assert ("stigmer", "master-key-next") not in store.values
    await backend.close()


async def test_interrupted_keyring_rotation_is_finished_on_open(
    tmp_path: Path, store: _Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stigmer.backend.local._crypto import SecretBox
    from stigmer.backend.local.tables import _secrets

    monkeypatch.delenv("STIGMER_MASTER_KEY", raising=False)
    backend = LocalBackend(home=tmp_path)
    await backend.set_secret(svc.SetSecretRequest(name="TOKEN", value="v"))
    new_key = os.urandom(32)
    store.values[("stigmer", "master-key-next")] = base64.b64encode(new_key).decode()
    old_box = backend._box()
    backend._transaction(lambda c: _secrets.reencrypt_all(c, old_box, SecretBox(new_key)), True)  # crash here
    await backend.close()
    reopened = LocalBackend(home=tmp_path)
    assert reopened._box().open  # opening the box finishes the rotation
    assert store.values[("stigmer", "master-key")] == base64.b64encode(new_key).decode()
    assert ("stigmer", "master-key-next") not in store.values
    await reopened.close()
