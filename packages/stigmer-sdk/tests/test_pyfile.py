"""Python files as manifests: what ``stigmer apply -f app.py`` and ``apply("app.py")`` read."""

from __future__ import annotations

from pathlib import Path

import pytest
from stigmer.core import InvalidArgument
from stigmer.sdk import Stigmer
from stigmer.sdk._pyfile import load_python_manifests

APP = """
from stigmer.sdk import Agent, Environment, Set, Skill, Workflow

faq = Skill("faq", path="skills/faq")
prod = Environment("prod", variables={"REGION": "eu"})
bot = Agent("bot", instructions="be brief", model="ollama:llama3.2", skills=[faq], environments=[prod])
alias = bot  # the same object twice is one resource
hello = Workflow("hello", do={"greet": Set({"greeting": "hi"})})
_private = Environment("hidden")

if __name__ == "__main__":
    raise SystemExit("the main block must not run on apply")
"""


def _project(tmp_path: Path, code: str) -> Path:
    (tmp_path / "skills" / "faq").mkdir(parents=True)
    (tmp_path / "skills" / "faq" / "SKILL.md").write_text("# FAQ\n")
    app = tmp_path / "app.py"
    app.write_text(code)
    return app


def test_module_level_builders_are_the_resources(tmp_path: Path) -> None:
    app = _project(tmp_path, APP)
    loaded = load_python_manifests(app)
    assert [(r.kind, r.name) for r in loaded] == [
        ("Skill", "faq"),
        ("Environment", "prod"),
        ("Agent", "bot"),
        ("Workflow", "hello"),
    ]
    assert all(r.source == str(app) for r in loaded)
    assert loaded[0].base_dir == tmp_path.resolve()  # skill paths are relative to the file


def test_a_resources_list_selects_what_is_applied(tmp_path: Path) -> None:
    app = _project(tmp_path, APP + "\nresources = [hello, prod]\n")
    assert [r.name for r in load_python_manifests(app)] == ["hello", "prod"]


def test_applying_a_python_file_packs_skills_relative_to_it(tmp_path: Path, client: Stigmer) -> None:
    app = _project(tmp_path, APP)
    applied = client.apply(app)
    assert [a.action for a in applied] == ["created"] * 4
    assert client.get("skill", "faq").spec.artifact.startswith("sha256:")  # type: ignore[attr-defined]
    assert [a.action for a in client.apply(str(app))] == ["unchanged"] * 4


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("x = 1\n", "defines no resources"),
        ("raise RuntimeError('broken')\n", "running it failed: RuntimeError: broken"),
        ("resources = 'nope'\n", "'resources' must be a list"),
    ],
)
def test_bad_files_say_what_is_wrong(tmp_path: Path, code: str, message: str) -> None:
    app = tmp_path / "app.py"
    app.write_text(code)
    with pytest.raises(InvalidArgument, match=message):
        load_python_manifests(app)


def test_a_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="no such file"):
        load_python_manifests(tmp_path / "missing.py")
