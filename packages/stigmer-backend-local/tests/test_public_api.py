"""The public API of stigmer.backend.local, and that importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import stigmer.backend.local as local
from stigmer.core import Backend


def test_exported_names() -> None:
    assert sorted(local.__all__) == ["LocalBackend", "SCHEMA_VERSION"]
    for name in local.__all__:
        assert getattr(local, name) is not None


def test_local_backend_implements_the_protocol(tmp_path: object) -> None:
    backend = local.LocalBackend(home=str(tmp_path), master_key=bytes(32))
    assert isinstance(backend, Backend)
    assert local.SCHEMA_VERSION == backend.schema_version == 4


def test_entry_point_loads_local_backend() -> None:
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="stigmer.backends") if e.name == "local"]
    assert ep.value == "stigmer.backend.local:LocalBackend"
    assert ep.load() is local.LocalBackend


def test_import_does_not_load_sqlalchemy_or_cryptography() -> None:
    code = (
        "import sys, stigmer.backend.local as m; from stigmer.backend.local import LocalBackend; "
        "print(sorted(x for x in ('sqlalchemy', 'sqlmodel', 'cryptography', 'grpc') if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
