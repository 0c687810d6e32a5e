"""A skill's SKILL.md front matter (``name``, ``version``, ``description``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["SKILL_VERSION_ANNOTATION", "front_matter", "read_skill_dir"]

SKILL_VERSION_ANNOTATION = "stigmer.ai/skill-version"


def front_matter(text: str) -> dict[str, Any]:
    """The YAML mapping between the leading ``---`` lines of a Markdown text, or ``{}``."""
    lines = text.lstrip("\ufeff").splitlines()
    if not lines or lines[0].strip() != "---":
        return {}
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() in ("---", "..."))
    except StopIteration:
        return {}
    from stigmer.core._yaml import ManifestError, load_yaml_text

    try:
        data = load_yaml_text("\n".join(lines[1:end]), "SKILL.md")
    except ManifestError:
        return {}
    return {str(k): v for k, v in data.items()} if isinstance(data, dict) else {}


def read_skill_dir(directory: Path) -> dict[str, Any]:
    """Front matter of ``directory/SKILL.md`` (``{}`` when there is none or it cannot be read)."""
    try:
        return front_matter((directory / "SKILL.md").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return {}
