"""The workspace layout rules: namespace levels stay empty, every leaf is typed, one subtree each."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists())
NAMESPACE_LEVELS = ["stigmer", "stigmer/backend", "stigmer/runner"]


def _module(package: Path) -> str:
    data = tomllib.loads((package / "pyproject.toml").read_text())
    module: str = data["tool"]["uv"]["build-backend"]["module-name"]
    return module


def test_all_members_are_present() -> None:
    names = {p.name for p in PACKAGES}
    assert {
        "stigmer-proto",
        "stigmer-core",
        "stigmer-backend-local",
        "stigmer-backend-cloud",
        "stigmer-runner-agent",
        "stigmer-runner-workflow",
        "stigmer-cli",
        "stigmer-conformance",
        "stigmer-sdk",
    } <= names


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_namespace_levels_have_no_init(package: Path) -> None:
    for level in NAMESPACE_LEVELS:
        assert not (package / "src" / level / "__init__.py").exists(), f"{package.name}: {level}/__init__.py"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_each_distribution_owns_exactly_its_subtree(package: Path) -> None:
    module = _module(package)
    leaf = package / "src" / Path(*module.split("."))
    assert (leaf / "__init__.py").exists()
    assert (leaf / "py.typed").exists()
    # Nothing in src/ outside the leaf except the empty namespace directories above it.
    for path in (package / "src").rglob("*"):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(package / "src")
        inside = rel.parts[: len(module.split("."))] == tuple(module.split("."))
        is_parent = tuple(module.split("."))[: len(rel.parts)] == rel.parts and path.is_dir()
        assert inside or is_parent, f"{package.name} ships {rel}, outside {module}"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_package_metadata(package: Path) -> None:
    data = tomllib.loads((package / "pyproject.toml").read_text())
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["version"] == root["project"]["version"], "all packages share one version"
    assert data["project"]["license"] == "Apache-2.0"
    assert (package / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    assert (package / "README.md").exists()
    sources = data.get("tool", {}).get("uv", {}).get("sources", {})
    for dep in data["project"]["dependencies"]:
        name = dep.split("[")[0].split(">")[0].split("=")[0].strip()
        if name.startswith("stigmer-"):
            assert sources.get(name) == {"workspace": True}, (
                f"{package.name}: {name} must be a workspace source"
            )


def test_dependencies_point_one_way() -> None:
    """proto <- core <- {backends, runners} <- cli; runners never depend on a backend."""
    allowed = {
        "stigmer-proto": set(),
        "stigmer-core": {"stigmer-proto"},
        "stigmer-backend-local": {"stigmer-core", "stigmer-proto"},
        "stigmer-backend-cloud": {"stigmer-core", "stigmer-proto"},
        "stigmer-runner-agent": {"stigmer-core", "stigmer-proto"},
        "stigmer-runner-workflow": {"stigmer-core", "stigmer-proto"},
        "stigmer-conformance": {"stigmer-core", "stigmer-proto"},
        "stigmer-cli": {"stigmer-core", "stigmer-proto"},
        "stigmer-testing": {"stigmer-core", "stigmer-proto"},  # test stand-ins, for the tests only
        # the SDK builds on every backend and runner (Lite runs in-process), never on the CLI
        "stigmer-sdk": {
            "stigmer-core",
            "stigmer-proto",
            "stigmer-backend-local",
            "stigmer-backend-cloud",
            "stigmer-runner-agent",
            "stigmer-runner-workflow",
        },
    }
    for package in PACKAGES:
        data = tomllib.loads((package / "pyproject.toml").read_text())
        deps = {
            d.split("[")[0].split(">")[0].split("=")[0].strip()
            for d in data["project"]["dependencies"]
            if d.startswith("stigmer-")
        }
        assert deps <= allowed[package.name], f"{package.name} depends on {deps - allowed[package.name]}"
