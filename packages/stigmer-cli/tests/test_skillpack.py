"""Skill directories pack deterministically."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest
from stigmer.cli._errors import CliError
from stigmer.cli._skillpack import artifact_key, pack_skill


def _skill(root: Path) -> Path:
    (root / "refs").mkdir(parents=True)
    (root / "SKILL.md").write_text("# FAQ\n")
    (root / "refs" / "b.txt").write_text("b")
    (root / "refs" / "a.txt").write_text("a")
    (root / "run.sh").write_text("#!/bin/sh\n")
    (root / "run.sh").chmod(0o755)
    (root / ".env").write_text("SECRET=1")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "x.pyc").write_bytes(b"x")
    return root


def test_same_content_same_key(tmp_path: Path) -> None:
    first = pack_skill(_skill(tmp_path / "one"))
    time.sleep(0.01)
    second_dir = _skill(tmp_path / "two")
    os.utime(second_dir / "SKILL.md", (1, 1))
    second = pack_skill(second_dir)
    assert first.content == second.content
    assert first.key == second.key == artifact_key(first.content)
    assert first.key.startswith("sha256:") and len(first.key) == 71
    assert first.files == ("SKILL.md", "refs/a.txt", "refs/b.txt", "run.sh")


def test_tar_entries_are_normalised(tmp_path: Path) -> None:
    packed = pack_skill(_skill(tmp_path / "s"))
    with tarfile.open(fileobj=io.BytesIO(packed.content)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == list(packed.files)
    assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in members)
    modes = {m.name: m.mode for m in members}
    assert modes["run.sh"] == 0o755 and modes["SKILL.md"] == 0o644


def test_content_change_changes_key(tmp_path: Path) -> None:
    root = _skill(tmp_path / "s")
    before = pack_skill(root).key
    (root / "refs" / "a.txt").write_text("changed")
    assert pack_skill(root).key != before


def test_missing_directory_or_skill_file(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="does not exist"):
        pack_skill(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CliError, match=r"no SKILL\.md"):
        pack_skill(tmp_path / "empty")
