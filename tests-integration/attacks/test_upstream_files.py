"""Upstream Stigmer files are read by `apply` (issue 23): a folder from elsewhere must not leak a
secret value it carries, blow up on a hostile SKILL.md, or sneak a dialect past validation."""

from __future__ import annotations

import time
from pathlib import Path

from .conftest import StigmerCli

SECRET = "upstream-secret-value-7f3a"


def test_a_secret_value_in_an_upstream_environment_is_never_stored(
    stigmer: StigmerCli, stigmer_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "env.yaml").write_text(
        "apiVersion: agentic.stigmer.ai/v1\nkind: Environment\nmetadata: {name: prod}\n"
        f"spec: {{data: {{TOKEN: {{is_secret: true, value: {SECRET}}}, REGION: {{value: eu}}}}}}\n"
    )
    applied = stigmer("apply", "-f", str(tmp_path / "env.yaml"))
    assert applied.returncode == 0, applied.stderr
    assert "stigmer secret set TOKEN" in applied.stderr  # said where the value belongs
    shown = stigmer("get", "environment", "prod", "-o", "yaml")
    assert "TOKEN" in shown.stdout
    for text in (applied.stdout, applied.stderr, shown.stdout):
        assert SECRET not in text
    for db in stigmer_home.rglob("*.db*"):
        assert SECRET.encode() not in db.read_bytes()


def test_a_hostile_skill_md_front_matter_neither_hangs_nor_fails_the_apply(
    stigmer: StigmerCli, tmp_path: Path
) -> None:
    skill = tmp_path / "skills" / "bomb"
    skill.mkdir(parents=True)
    lines = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 10):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 9) + "]")
    (skill / "SKILL.md").write_text("---\n" + "\n".join(lines) + "\ndescription: *j\n---\n# body\n")
    (tmp_path / "skill.yaml").write_text(
        "apiVersion: agentic.stigmer.ai/v1\nkind: Skill\nmetadata: {name: bomb}\nspec: {path: ./skills/bomb}\n"
    )
    started = time.monotonic()
    result = stigmer("apply", "--dry-run", "-f", str(tmp_path / "skill.yaml"), timeout=60)
    assert time.monotonic() - started < 30
    assert result.returncode == 0, result.stderr
    assert "skill/bomb would be created" in result.stdout
    assert "Traceback" not in result.stderr


def test_an_unknown_dialect_is_refused_before_anything_is_stored(stigmer: StigmerCli, tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(
        "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: w}\nspec:\n"
        "  document: {dsl: 1.0.0, namespace: a, name: w, version: 1.0.0, metadata: {stigmer.ai/dialect: eval}}\n"
        "  do: [{a: {set: {x: 1}}}]\n"
    )
    result = stigmer("apply", "-f", str(tmp_path / "wf.yaml"))
    assert result.returncode == 1
    assert "unknown dialect 'eval'" in result.stderr
    assert stigmer("get", "workflow", "w").returncode == 1
