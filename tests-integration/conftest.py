"""Shared fixtures of the integration tests.

``stigmer``: run the real ``stigmer`` command (``python -m stigmer.cli`` in this environment) in a
fresh ``STIGMER_HOME`` with a real SQLite store; returns the completed process.
``fullstack_world``: the URLs the full-stack tests' workflows call and their stand-in model
(``stigmer.testing.FullstackWorld``). The stand-ins themselves live in ``stigmer.testing``.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from stigmer.testing import FullstackWorld, cli_env, self_signed_cert

ROOT = Path(__file__).resolve().parent.parent

StigmerCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def stigmer_home(tmp_path: Path) -> Path:
    home = tmp_path / "stigmer-home"
    home.mkdir()
    return home


# Runs the CLI as if the named plugins were not installed (their entry points hidden).
_HIDE_PLUGINS = """
import importlib.metadata as md, sys
_all = md.entry_points
def entry_points(**kw):
    found = _all(**kw)
    if "group" in kw:
        return md.EntryPoints(ep for ep in found if ep.name not in {hidden!r})
    return found
md.entry_points = entry_points
from stigmer.cli._app import main
main(sys.argv[1:])
"""


@pytest.fixture
def stigmer(stigmer_home: Path, tmp_path: Path) -> StigmerCli:
    def run(
        *args: str,
        input: str | None = None,
        timeout: float = 90,
        env: dict[str, str] | None = None,
        hide_plugins: tuple[str, ...] = (),
    ) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "stigmer.cli"]
        if hide_plugins:
            command = [sys.executable, "-c", _HIDE_PLUGINS.format(hidden=set(hide_plugins))]
        return subprocess.run(
            [*command, *args],
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tmp_path,
            env={**cli_env(stigmer_home), **(env or {})},
        )

    return run


@pytest.fixture
def stigmer_env(stigmer_home: Path) -> dict[str, str]:
    """The environment the ``stigmer`` fixture runs the CLI with (for processes started by hand)."""
    return cli_env(stigmer_home)


@pytest.fixture
def make_cert(tmp_path: Path) -> Callable[[str], tuple[Path, Path]]:
    """``make_cert(name)``: a self-signed certificate and key named ``name`` in the test's folder
    (``tls_files``, the one named ``server`` in a folder of its own, comes with ``stigmer.testing``)."""
    return lambda name: self_signed_cert(tmp_path, name=name)


@pytest.fixture(scope="module")
def fullstack_world() -> Iterator[FullstackWorld]:
    with FullstackWorld() as world:
        yield world
