"""Skill archives."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stigmer.core import InvalidArgument
from stigmer.runner.agent._skills import LoadedSkill, parse_skill_archive, skill_toolset, skills_prompt


def tar(files: dict[str, bytes], mode: str = "w") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:  # type: ignore[call-overload]
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_plain_and_compressed_archives() -> None:
    files = {"SKILL.md": b"# s", "./ref/a.md": b"A", "../escape.md": b"no", "/abs.md": b"x"}
    for mode in ("w", "w:gz"):
        parsed = parse_skill_archive(tar(files, mode))
        assert parsed == {"SKILL.md": b"# s", "ref/a.md": b"A", "abs.md": b"x"}


def test_single_top_level_folder_is_stripped() -> None:
    parsed = parse_skill_archive(tar({"faq/SKILL.md": b"# s", "faq/x/y.md": b"Y"}))
    assert parsed == {"SKILL.md": b"# s", "x/y.md": b"Y"}


@given(st.binary(max_size=300))
def test_garbage_is_a_clear_error(blob: bytes) -> None:
    try:
        parse_skill_archive(blob, "skill s")
    except InvalidArgument as exc:
        assert exc.message.startswith("skill s: not a readable tar archive")


def test_prompt_and_tool() -> None:
    skills = [LoadedSkill("faq", "About Acme", "Cite the FAQ.", {"p.md": b"price: 10"})]
    prompt = skills_prompt(skills)
    assert "## Skill: faq" in prompt and "About Acme" in prompt and "p.md" in prompt
    assert skills_prompt([]) == ""
    assert skill_toolset([LoadedSkill("bare", "", "x")]) is None
    assert skill_toolset(skills) is not None


def test_read_skill_file_answers() -> None:
    skills = [LoadedSkill("faq", "", "Cite the FAQ.", {"p.md": b"price: 10"})]
    toolset = skill_toolset(skills)
    assert toolset is not None
    tool = toolset.tools["read_skill_file"]
    assert not tool.takes_ctx  # a plain function, called with the model's arguments alone
    fn = cast("Callable[..., str]", tool.function)
    assert fn(skill="faq", path="p.md") == "price: 10"
    assert fn(skill="faq", path="./p.md") == "price: 10"
    assert fn(skill="faq", path="SKILL.md") == "Cite the FAQ."
    assert "has no file" in fn(skill="faq", path="../etc/passwd")
    assert "no skill named" in fn(skill="nope", path="p.md")


@pytest.mark.parametrize("name", ["SKILL.md"])
def test_skill_file_constant(name: str) -> None:
    assert parse_skill_archive(tar({name: b"x"})) == {name: b"x"}
