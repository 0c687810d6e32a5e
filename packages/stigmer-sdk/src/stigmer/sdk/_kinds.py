"""Kind names as users type them (``agent``, ``workflows``, ``mcp``)."""

from __future__ import annotations

from stigmer.core import APPLY_ORDER, InvalidArgument

__all__ = ["resolve_kind"]

_ALIASES = {"mcp": "McpServer", "mcp-server": "McpServer", "env": "Environment"}


def resolve_kind(text: str) -> str:
    """``"agent"``, ``"Agents"``, ``"mcpserver"`` -> the kind name (``Agent``, ``McpServer``)."""
    key = text.strip().lower().replace("_", "")
    lookup = {k.lower(): k for k in APPLY_ORDER}
    kind = lookup.get(key) or lookup.get(key.removesuffix("s")) or _ALIASES.get(key)
    if kind is None:
        raise InvalidArgument(f"unknown kind {text!r} (kinds: {', '.join(APPLY_ORDER)})", ["kind"])
    return kind
