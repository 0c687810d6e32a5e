"""Property: whatever path a model gives, the workspace answers with a path inside it or refuses
it with an error (never a path outside, never another exception), links out and loops included."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stigmer.core import InvalidArgument
from stigmer.runner.agent.workspace import Workspace

PARTS = st.sampled_from(["..", ".", "a", "b", "link", "loop", "/", "/etc", "~", "", "x/../..", "\\..", "..."])


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    base = tmp_path_factory.mktemp("prop")
    workspace = Workspace(base / "ws")
    (workspace.root / "a").mkdir()
    (base / "outside").mkdir()
    os.symlink(base / "outside", workspace.root / "link")
    os.symlink("loop", workspace.root / "loop")
    yield workspace


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(st.one_of(PARTS, st.text(max_size=8)), max_size=6))
def test_paths_stay_inside_or_are_refused(ws: Workspace, parts: list[str]) -> None:
    given_path = "/".join(parts)
    try:
        resolved = ws.path(given_path)
    except InvalidArgument as refused:  # OutsideWorkspace among them
        assert "\n" not in refused.message
        return
    assert isinstance(resolved, Path) and resolved.is_relative_to(ws.root), (given_path, resolved)
