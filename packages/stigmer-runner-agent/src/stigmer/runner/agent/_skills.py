"""Skills: SKILL.md injected into the system prompt, other files readable through a tool.

A Skill's files come from its artifact (a tar archive packed by ``stigmer apply``) or, for a
single-document skill, from ``spec.content``.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stigmer.core import Backend, InvalidArgument
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import meta_pb2

if TYPE_CHECKING:
    from pydantic_ai.toolsets import FunctionToolset

__all__ = ["LoadedSkill", "load_skills", "parse_skill_archive", "skill_toolset", "skills_prompt"]

SKILL_FILE = "SKILL.md"
READ_TOOL = "read_skill_file"
_MAX_READ = 100_000


@dataclass
class LoadedSkill:
    """One skill's name, description, SKILL.md text and other files."""

    name: str
    description: str
    instructions: str
    files: dict[str, bytes] = field(default_factory=dict)


def _clean(name: str) -> str | None:
    path = posixpath.normpath(name.replace("\\", "/")).lstrip("/")
    if path in ("", ".") or path.startswith("..") or "/../" in f"/{path}/":
        return None
    return path


def parse_skill_archive(content: bytes, where: str = "artifact") -> dict[str, bytes]:
    """The regular files of a (possibly compressed) tar archive, by normalized relative path."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(content), mode="r:*") as archive:
            for member in archive.getmembers():
                if not member.isfile():
                    continue
                path = _clean(member.name)
                extracted = archive.extractfile(member)
                if path is None or extracted is None:
                    continue
                files[path] = extracted.read()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidArgument(f"{where}: not a readable tar archive ({exc})") from None
    if SKILL_FILE not in files:
        # An archive of the directory itself: strip the single top-level folder.
        tops = {p.split("/", 1)[0] for p in files}
        if len(tops) == 1 and all("/" in p for p in files):
            top = tops.pop() + "/"
            files = {p[len(top) :]: data for p, data in files.items()}
    return files


def _frontmatter_description(text: str) -> str:
    if not text.startswith("---"):
        return ""
    end = text.find("\n---", 3)
    for line in text[3 : end if end > 0 else 0].splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "description":
            return value.strip().strip("'\"")
    return ""


async def load_skills(backend: Backend, refs: Sequence[meta_pb2.ResourceRef]) -> list[LoadedSkill]:
    """Fetch the referenced Skill resources and their files."""
    skills: list[LoadedSkill] = []
    for ref in refs:
        lookup = meta_pb2.ResourceRef(kind="Skill", name=ref.name, id=ref.id)
        skill = (await backend.get(svc.GetRequest(ref=lookup))).skill
        name = skill.metadata.name or ref.name
        files: dict[str, bytes] = {}
        if skill.spec.artifact:
            blob = await backend.get_artifact(svc.GetArtifactRequest(key=skill.spec.artifact))
            files = parse_skill_archive(blob.content, f"skill {name} artifact {skill.spec.artifact}")
        if skill.spec.content and SKILL_FILE not in files:
            files[SKILL_FILE] = skill.spec.content.encode()
        if SKILL_FILE not in files:
            raise InvalidArgument(
                f"skill {name} has no {SKILL_FILE}: give it `content:` or a `path:` to a directory "
                f"holding {SKILL_FILE}, and apply it again",
                ["spec.skills"],
            )
        text = files.pop(SKILL_FILE).decode("utf-8", errors="replace")
        description = skill.spec.description or _frontmatter_description(text)
        skills.append(LoadedSkill(name=name, description=description, instructions=text, files=files))
    return skills


def skills_prompt(skills: Sequence[LoadedSkill]) -> str:
    """The system-prompt section describing the skills."""
    if not skills:
        return ""
    parts = ["# Skills", "You have the following skills. Follow their instructions when they apply."]
    for skill in skills:
        parts.append(f"\n## Skill: {skill.name}")
        if skill.description:
            parts.append(f"Description: {skill.description}")
        parts.append(skill.instructions.strip())
        if skill.files:
            listing = ", ".join(sorted(skill.files))
            parts.append(f"Files of this skill (read them with `{READ_TOOL}`): {listing}")
    return "\n".join(parts)


def skill_toolset(skills: Sequence[LoadedSkill]) -> FunctionToolset[Any] | None:
    """A toolset with ``read_skill_file`` when any skill has files beyond SKILL.md."""
    if not any(skill.files for skill in skills):
        return None
    from pydantic_ai.toolsets import FunctionToolset

    by_name = {skill.name: skill for skill in skills}

    def read_skill_file(skill: str, path: str) -> str:
        """Read a file of one of your skills.

        Args:
            skill: The skill's name.
            path: The file's path inside the skill, as listed in the system prompt.
        """
        found = by_name.get(skill)
        if found is None:
            return f"no skill named {skill!r}; skills: {', '.join(sorted(by_name))}"
        key = _clean(path) or ""
        if key == SKILL_FILE:
            return found.instructions
        if key not in found.files:
            return f"skill {skill!r} has no file {path!r}; files: {', '.join(sorted(found.files))}"
        text = found.files[key].decode("utf-8", errors="replace")
        return text if len(text) <= _MAX_READ else text[:_MAX_READ] + "\n[truncated]"

    toolset: FunctionToolset[Any] = FunctionToolset()
    toolset.add_function(read_skill_file, name=READ_TOOL)
    return toolset
