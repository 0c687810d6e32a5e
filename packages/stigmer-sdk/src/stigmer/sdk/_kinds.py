"""Kind names as users type them (``agent``, ``workflows``, ``mcp``), and the apply order."""

from __future__ import annotations

from stigmer.core import InvalidArgument

__all__ = ["APPLY_ORDER", "resolve_kind"]

# What others refer to comes first (same order as `stigmer apply`).
APPLY_ORDER: dict[str, int] = {
    "Skill": 0,
    "McpServer": 0,
    "Environment": 0,
    "Agent": 1,
    "Workflow": 2,
    "Session": 3,
}
_ALIASES = {"mcp": "McpServer", "mcp-server": "McpServer", "env": "Environment"}


def resolve_kind(text: str) -> str:
    """``"agent"``, ``"Agents"``, ``"mcpserver"`` -> the kind name (``Agent``, ``McpServer``)."""
    key = text.strip().lower().replace("_", "")
    lookup = {k.lower(): k for k in APPLY_ORDER}
    kind = lookup.get(key) or lookup.get(key.removesuffix("s")) or _ALIASES.get(key)
    if kind is None:
        raise InvalidArgument(f"unknown kind {text!r} (kinds: {', '.join(APPLY_ORDER)})", ["kind"])
    return kind
