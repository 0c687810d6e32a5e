"""Skill directories pack into the same bytes and the same artifact key, wherever they are packed."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from stigmer.core import InvalidArgument
from stigmer.sdk._skillpack import SKILL_MEDIA_TYPE, artifact_key, pack_skill, unpack_skill

# The key of the skill `_skill` builds. Pinned: a change here changes every stored skill's key.
KNOWN_KEY = "sha256:07bc2510684ff3d6008a0d5d30545fd240bd295de79fb461d84cd3e926b0764d"


def _skill(root: Path) -> Path:
    (root / "refs").mkdir(parents=True)
    (root / "SKILL.md").write_text("---\nname: acme-faq\n---\n# FAQ\nAnswer briefly.\n")
    (root / "refs" / "b.txt").write_text("b\n")
    (root / "refs" / "a.txt").write_text("a\n")
    (root / "run.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "run.sh").chmod(0o755)
    (root / "SKILL.md").chmod(0o644)
    (root / ".env").write_text("SECRET=1")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "x.pyc").write_bytes(b"x")
    (root / "node_modules").mkdir()
    (root / "node_modules" / "m.js").write_text("m")
    return root


def test_known_key(tmp_path: Path) -> None:
    packed = pack_skill(_skill(tmp_path / "s"))
    assert packed.key == KNOWN_KEY
    assert packed.key == artifact_key(packed.content)
    assert packed.files == ("SKILL.md", "refs/a.txt", "refs/b.txt", "run.sh")
    assert SKILL_MEDIA_TYPE == "application/x-tar"


def test_key_ignores_mtimes_and_location(tmp_path: Path) -> None:
    first = pack_skill(_skill(tmp_path / "one"))
    second_dir = _skill(tmp_path / "two")
    os.utime(second_dir / "SKILL.md", (1, 1))
    second = pack_skill(second_dir)
    assert first.content == second.content and first.key == second.key


def test_entries_are_normalised(tmp_path: Path) -> None:
    packed = pack_skill(_skill(tmp_path / "s"))
    with tarfile.open(fileobj=io.BytesIO(packed.content)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == list(packed.files)
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" for m in members)
    assert {m.name: m.mode for m in members}["run.sh"] == 0o755
    assert {m.name: m.mode for m in members}["SKILL.md"] == 0o644


def test_content_and_executable_bit_change_the_key(tmp_path: Path) -> None:
    root = _skill(tmp_path / "s")
    (root / "refs" / "a.txt").write_text("changed")
    changed = pack_skill(root).key
    assert changed != KNOWN_KEY
    (root / "run.sh").chmod(0o644)
    assert pack_skill(root).key not in (changed, KNOWN_KEY)


def test_bad_directories_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="does not exist") as missing:
        pack_skill(tmp_path / "nope")
    assert missing.value.field_paths == ("spec.path",)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidArgument, match=r"has no SKILL\.md"):
        pack_skill(tmp_path / "empty")


@pytest.mark.parametrize(
    ("link", "target"),
    [
        ("notes.txt", "../outside/master.key"),  # relative, through ..
        ("refs/key.txt", "ABSOLUTE"),  # absolute path to a file outside
        ("refs/keys", "ABSOLUTE_DIR"),  # a folder outside
        ("gone.txt", "../outside/missing"),  # dangling, pointing outside
        ("SKILL.md", "../outside/master.key"),  # even the skill file itself
    ],
)
def test_links_leaving_the_folder_are_refused(tmp_path: Path, link: str, target: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "master.key").write_text("TOP-SECRET-KEY-0123456789")
    root = _skill(tmp_path / "s")
    path = root / link
    path.unlink(missing_ok=True)
    real = {"ABSOLUTE": str(outside / "master.key"), "ABSOLUTE_DIR": str(outside)}.get(target, target)
    path.symlink_to(real)
    with pytest.raises(InvalidArgument) as refused:
        pack_skill(root)
    message = str(refused.value)
    assert f"symbolic link '{link}'" in message and "outside" in message and "\n" not in message
    assert refused.value.field_paths == ("spec.path",)


def test_links_inside_the_folder_are_packed_as_copies(tmp_path: Path) -> None:
    root = _skill(tmp_path / "s")
    (root / "refs" / "c.txt").symlink_to("a.txt")
    (root / "alias").symlink_to("refs")  # a folder link inside: its folder is packed once
    (root / ".hidden").symlink_to("/etc/passwd")  # dotfiles are never packed, links or not
    packed = pack_skill(root)
    assert packed.files == ("SKILL.md", "refs/a.txt", "refs/b.txt", "refs/c.txt", "run.sh")
    with tarfile.open(fileobj=io.BytesIO(packed.content)) as tar:
        member = tar.getmember("refs/c.txt")
        assert member.isreg()
        extracted = tar.extractfile(member)
        assert extracted is not None and extracted.read() == b"a\n"


def test_unpacking_gives_back_the_files_and_refuses_escaping_paths(tmp_path: Path) -> None:
    packed = pack_skill(_skill(tmp_path / "s"))
    written = unpack_skill(packed.content, tmp_path / "out")
    assert tuple(written) == packed.files
    assert pack_skill(tmp_path / "out").key == packed.key  # same files, same executable bits
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(InvalidArgument, match="unsafe path"):
        unpack_skill(buf.getvalue(), tmp_path / "bad")
    assert not (tmp_path / "escape.txt").exists()
