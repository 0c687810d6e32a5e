"""Regenerate the checked-in Python code of the stigmer.v1 contract.

Usage: ``python scripts/gen_protos.py [--check]``. It generates into a temporary directory and
compares with the checked-in code. When they differ it exits 1, listing the stale files, and,
without ``--check``, replaces the checked-in code with the fresh generation (commit it).
"""

from __future__ import annotations

import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT_PACKAGE = ROOT / "packages" / "stigmer-proto" / "src"
GENERATED = OUT_PACKAGE / "stigmer" / "proto" / "v1"
INIT_TEXT = '"""Generated from proto/stigmer/v1 by `nox -s proto`. Do not edit."""\n'


def generate(out_root: Path) -> Path:
    """Generate code for every proto file into ``out_root/stigmer/proto/v1``."""
    staging = Path(tempfile.mkdtemp(prefix="stigmer-proto-src-"))
    try:
        # Lay the protos out as stigmer/proto/v1 so generated imports read `from stigmer.proto.v1 import x_pb2`.
        src = staging / "stigmer" / "proto" / "v1"
        src.mkdir(parents=True)
        protos = sorted((PROTO_ROOT / "stigmer" / "v1").glob("*.proto"))
        for proto in protos:
            text = proto.read_text().replace('import "stigmer/v1/', 'import "stigmer/proto/v1/')
            (src / proto.name).write_text(text)
        out = out_root / "stigmer" / "proto" / "v1"
        out.mkdir(parents=True, exist_ok=True)
        from grpc_tools import protoc  # type: ignore[import-untyped]

        include = Path(protoc.__file__).parent / "_proto"
        args = [
            "grpc_tools.protoc",
            f"-I{staging}",
            f"-I{include}",
            f"--python_out={out_root}",
            f"--mypy_out={out_root}",
            f"--grpc_python_out={out_root}",
            f"--mypy_grpc_out={out_root}",
            *[str(Path("stigmer/proto/v1") / p.name) for p in protos],
        ]
        # protoc plugins are found on PATH; make sure this interpreter's scripts are there.
        import os

        env_path = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")
        os.environ["PATH"] = env_path
        code = protoc.main(args)
        if code != 0:
            raise SystemExit(f"protoc failed with exit code {code}")
        (out / "__init__.py").write_text(INIT_TEXT)
        # Only files that declare a service need gRPC stubs; the others would be empty and import grpc.
        for stub in sorted(out.glob("*_pb2_grpc.py")):
            if "def add_" not in stub.read_text():
                stub.unlink()
                stub.with_suffix(".pyi").unlink(missing_ok=True)
        for stray in (out_root / "stigmer").rglob("__init__.py"):
            if stray.parent != out and stray.parent != out.parent:
                stray.unlink()
        return out
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _differences(a: Path, b: Path) -> list[str]:
    names = {p.name for p in a.iterdir()} | {p.name for p in b.iterdir()}
    diffs = []
    for name in sorted(names):
        if name == "__pycache__":
            continue
        pa, pb = a / name, b / name
        if not pa.exists() or not pb.exists() or not filecmp.cmp(pa, pb, shallow=False):
            diffs.append(name)
    return diffs


def main() -> int:
    check = "--check" in sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="stigmer-proto-out-") as tmp:
        fresh = generate(Path(tmp))
        GENERATED.mkdir(parents=True, exist_ok=True)
        diffs = _differences(fresh, GENERATED)
        if check:
            if diffs:
                print("generated code is stale; run `uv run nox -s proto`:", ", ".join(diffs))
                return 1
            print("generated code is up to date")
            return 0
        if not diffs:
            print("generated code is up to date")
            return 0
        for old in GENERATED.iterdir():
            if old.is_file():
                old.unlink()
        for new in fresh.iterdir():
            shutil.copy2(new, GENERATED / new.name)
        print(f"regenerated {GENERATED.relative_to(ROOT)}; these files were stale: {', '.join(diffs)}")
        print("commit the regenerated files")
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
