"""Identifiers and slugs."""

from __future__ import annotations

import re
import unicodedata

from stigmer.core._errors import InvalidArgument
from stigmer.core._kinds import KIND_TABLE

__all__ = ["KIND_PREFIXES", "new_id", "slugify"]

KIND_PREFIXES: dict[str, str] = {kind.name: kind.id_prefix for kind in KIND_TABLE}

_NON_SLUG = re.compile(r"[^a-z0-9]+")


def new_id(kind: str) -> str:
    """A new identifier ``<prefix>_<ulid>`` for a resource of ``kind``; sortable by creation time."""
    from ulid import ULID

    try:
        prefix = KIND_PREFIXES[kind]
    except KeyError:
        raise InvalidArgument(f"unknown kind '{kind}'", ["kind"]) from None
    return f"{prefix}_{str(ULID()).lower()}"


def slugify(name: str) -> str:
    """Derive the URL-safe slug of a name: lower-case ASCII letters, digits and single dashes."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    slug = _NON_SLUG.sub("-", text).strip("-")[:63].strip("-")
    if not slug:
        raise InvalidArgument(
            f"name {name!r} has no letters or digits to derive a slug from; use a name like 'my-agent'",
            ["metadata.name"],
        )
    return slug
