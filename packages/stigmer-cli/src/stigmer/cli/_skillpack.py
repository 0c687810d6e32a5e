"""Skill packing for ``stigmer apply``: stigmer.core's deterministic packer, errors as CLI errors."""

from __future__ import annotations

from pathlib import Path

from stigmer.cli._errors import CliError
from stigmer.core import SKILL_MEDIA_TYPE, InvalidArgument, PackedSkill, artifact_key
from stigmer.core import pack_skill as _core_pack_skill

__all__ = ["SKILL_MEDIA_TYPE", "PackedSkill", "artifact_key", "pack_skill"]


def pack_skill(directory: Path) -> PackedSkill:
    """``stigmer.core.pack_skill``; a bad directory is a ``CliError`` with the same message."""
    try:
        return _core_pack_skill(directory)
    except InvalidArgument as exc:
        raise CliError(exc.message) from None
