"""What every upstream mapping shares: key spelling, the refusal type and the notice."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["UPSTREAM_API_VERSION", "Mapping", "UpstreamRefused", "snake", "snake_keys"]

UPSTREAM_API_VERSION = "agentic.stigmer.ai/v1"

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def snake(key: str) -> str:
    """``mcpServerUsages`` and ``mcp_server_usages`` both give ``mcp_server_usages``."""
    return _CAMEL.sub(r"_\1", key).lower()


def snake_keys(value: Any) -> dict[str, Any]:
    """A mapping's keys (one level) in snake_case; anything else gives an empty mapping."""
    if not isinstance(value, dict):
        return {}
    return {snake(str(k)): v for k, v in value.items()}


class UpstreamRefused(Exception):
    """Something in an upstream manifest has no counterpart here; ``path`` locates it."""

    def __init__(self, message: str, path: list[str | int]) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


@dataclass
class Mapping:
    """What one upstream document became: which fields were renamed and which were dropped."""

    mapped: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def rename(self, old: str, new: str) -> None:
        text = f"{old} → {new}" if old != new else old
        if text not in self.mapped:
            self.mapped.append(text)

    def drop(self, name: str) -> None:
        if name not in self.dropped:
            self.dropped.append(name)

    def notice(self, kind: str, name: str, upstream: bool = True) -> str:
        parts = [
            f"{kind}/{name} read as {UPSTREAM_API_VERSION}"
            if upstream
            else f"{kind}/{name} read with upstream spellings"
        ]
        if self.mapped:
            parts.append("mapped " + ", ".join(self.mapped))
        if self.dropped:
            parts.append("dropped " + ", ".join(self.dropped))
        return "; ".join(parts)
