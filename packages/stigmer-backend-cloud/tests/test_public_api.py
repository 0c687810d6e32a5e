import subprocess
import sys

import stigmer.backend.cloud
from stigmer.core import Backend

EXPECTED = {"CloudBackend", "Endpoint", "parse_endpoint"}


def test_exported_names_are_pinned() -> None:
    assert set(stigmer.backend.cloud.__all__) == EXPECTED
    for name in EXPECTED:
        assert getattr(stigmer.backend.cloud, name) is not None


def test_cloud_backend_satisfies_the_backend_protocol() -> None:
    backend = stigmer.backend.cloud.CloudBackend("grpc://127.0.0.1:7234", token="t")
    assert isinstance(backend, Backend)


def test_import_and_construction_do_not_import_grpc() -> None:
    code = (
        "import sys\n"
        "from stigmer.backend.cloud import CloudBackend\n"
        "CloudBackend('grpcs://example.invalid:443', token='t')\n"
        "print(sorted(m for m in sys.modules if m == 'grpc' or m.startswith('grpc.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_entry_point_loads_cloud_backend() -> None:
    from stigmer.core import load_backend

    backend = load_backend("cloud", endpoint="grpc://localhost:7234", token="t")
    assert type(backend).__name__ == "CloudBackend"
