"""Plugin loading through real entry points (a dist-info written to a temporary sys.path entry)."""

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from stigmer.core import BACKENDS_GROUP, RUNNERS_GROUP, PluginNotFound, load_backend, load_plugin, load_runner


@pytest.fixture
def fake_plugins(tmp_path: Path) -> Iterator[Path]:
    pkg = tmp_path / "fakeplugins_mod.py"
    pkg.write_text(
        "LOADS = []\n"
        "class FakeBackend:\n"
        "    def __init__(self, **options):\n"
        "        self.options = options\n"
        "class FakeRunner:\n"
        "    async def execute(self, backend, execution_id):\n"
        "        return execution_id\n"
        "LOADS.append(1)\n"
    )
    dist = tmp_path / "fakeplugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fakeplugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{BACKENDS_GROUP}]\nfake = fakeplugins_mod:FakeBackend\n\n[{RUNNERS_GROUP}]\nfakerun = fakeplugins_mod:FakeRunner\n"
    )
    sys.path.insert(0, str(tmp_path))
    load_plugin.cache_clear()
    try:
        yield tmp_path
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("fakeplugins_mod", None)
        load_plugin.cache_clear()


def test_load_backend_passes_options(fake_plugins: Path) -> None:
    backend = load_backend("fake", database_url="sqlite:///x.db")
    assert type(backend).__name__ == "FakeBackend"
    assert backend.options == {"database_url": "sqlite:///x.db"}  # type: ignore[attr-defined]


def test_plugins_are_cached(fake_plugins: Path) -> None:
    first = load_plugin(BACKENDS_GROUP, "fake")
    second = load_plugin(BACKENDS_GROUP, "fake")
    assert first is second
    assert sys.modules["fakeplugins_mod"].LOADS == [1]


def test_load_runner(fake_plugins: Path) -> None:
    runner = load_runner("fakerun")
    assert type(runner).__name__ == "FakeRunner"


def test_missing_backend_message(fake_plugins: Path) -> None:
    with pytest.raises(PluginNotFound) as info:
        load_backend("nope")
    text = str(info.value)
    assert f"'{BACKENDS_GROUP}'" in text
    assert "fake" in text  # what is installed
    assert "pip install a package providing a 'nope' entry point" in text


def test_missing_project_plugin_names_its_distribution(
    fake_plugins: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stigmer.core import _plugins

    monkeypatch.setitem(_plugins._KNOWN, (RUNNERS_GROUP, "absent"), "stigmer-runner-absent")
    with pytest.raises(PluginNotFound) as info:
        load_runner("absent")
    text = str(info.value)
    assert "no 'absent' plugin in entry-point group 'stigmer.runners'" in text
    assert "fakerun" in text
    assert text.endswith("pip install stigmer-runner-absent")
