"""`stigmer init` writes a project whose manifests load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from stigmer.core import load_manifests


def test_init_scaffolds_valid_manifests(cli: Callable[..., object], tmp_path: Path) -> None:
    target = tmp_path / "proj"
    result = cli("init", str(target))
    assert result.code == 0, result.err  # type: ignore[attr-defined]
    for rel in ["README.md", "workflows/hello.yaml", "agents/helper.yaml", "environments/dev.yaml"]:
        assert (target / rel).is_file()
    loaded = load_manifests([target])
    assert sorted((r.kind, r.name) for r in loaded) == [
        ("Agent", "helper"),
        ("Environment", "dev"),
        ("Workflow", "hello"),
    ]
    assert "stigmer apply" in result.out  # type: ignore[attr-defined]
    assert "# proj" in (target / "README.md").read_text()


def test_init_refuses_to_overwrite(cli: Callable[..., object], tmp_path: Path) -> None:
    target = tmp_path / "proj"
    assert cli("init", str(target)).code == 0  # type: ignore[attr-defined]
    (target / "workflows" / "hello.yaml").write_text("mine")
    again = cli("init", str(target))
    assert again.code == 1  # type: ignore[attr-defined]
    assert again.err.startswith("error: ") and "--force" in again.err  # type: ignore[attr-defined]
    assert (target / "workflows" / "hello.yaml").read_text() == "mine"
    assert cli("init", str(target), "--force").code == 0  # type: ignore[attr-defined]
    assert "kind: Workflow" in (target / "workflows" / "hello.yaml").read_text()


def test_init_agent_names_differ_from_the_examples(cli: Callable[..., object], tmp_path: Path) -> None:
    """docs/getting-started.md applies the scaffold and then examples/assistant.yaml: an agent of the
    same name would silently replace the other."""
    target = tmp_path / "proj"
    assert cli("init", str(target)).code == 0  # type: ignore[attr-defined]
    examples = Path(__file__).resolve().parents[3] / "examples"
    scaffolded = {r.name for r in load_manifests([target]) if r.kind == "Agent"}
    shipped = {r.name for r in load_manifests([examples]) if r.kind == "Agent"}
    assert scaffolded and shipped
    assert scaffolded.isdisjoint(shipped)
