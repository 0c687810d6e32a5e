"""Kind names as users type them (``agent``, ``workflows``, ``wf``, ``mcp``): core's one kind table.

``stigmer`` and the SDK accept the same spellings; an unknown one suggests the closest.
"""

from __future__ import annotations

from stigmer.core import (
    APPLY_ORDER,
    EXECUTION,
    KIND_TABLE,
    InvalidArgument,
    kind_spellings,
    lookup_kind,
)
from stigmer.sdk._targets import did_you_mean

__all__ = ["UnknownKind", "resolve_kind"]


class UnknownKind(InvalidArgument):
    """``text`` names no kind (of those allowed); ``hint`` is ``; did you mean 'x'?`` or empty,
    ``kinds`` the kinds that were allowed (table order, ``Execution`` last when allowed)."""

    def __init__(self, text: str, hint: str, kinds: list[str]) -> None:
        names = ", ".join(k for k in kinds if k in APPLY_ORDER)
        super().__init__(f"unknown kind {text!r}{hint} (kinds: {names})", ["kind"])
        self.text = text
        self.hint = hint
        self.kinds = kinds


def resolve_kind(text: str, *, executions: bool = False) -> str:
    """``"agent"``, ``"Agents"``, ``"wf"``, ``"mcp_server"`` -> the kind name (``Agent``, ``McpServer``).

    With ``executions``, execution kinds are accepted too (and ``execution`` names the pseudo-kind
    ``EXECUTION``: agent and workflow executions together); otherwise only kinds that can be applied.
    Raises ``UnknownKind`` (an ``InvalidArgument``) suggesting the closest spelling.
    """
    key = text.strip().lower()
    kind = lookup_kind(key) or lookup_kind(key.replace("_", ""))
    allowed = [k.name for k in KIND_TABLE if executions or k.name in APPLY_ORDER]
    if executions:
        allowed.append(EXECUTION)
    if kind is None or kind not in allowed:
        hint = did_you_mean(key, kind_spellings(allowed))
        raise UnknownKind(text, hint, allowed)
    return kind
