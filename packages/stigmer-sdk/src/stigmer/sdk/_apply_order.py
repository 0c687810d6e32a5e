"""The order resources are applied in, and the check that each kind+name is declared once.

``stigmer apply`` and the SDK's ``apply`` both go through ``order_resources``; the ranks are the
apply ranks of core's kind table (``APPLY_ORDER``): what others refer
to (skills, MCP servers, environments) first, then agents, then workflows, sessions last.
"""

from __future__ import annotations

from collections.abc import Iterable

from stigmer.core import APPLY_ORDER, InvalidArgument, LoadedResource, slugify

__all__ = ["order_resources"]


def order_resources(loaded: Iterable[LoadedResource]) -> list[LoadedResource]:
    """The resources in apply order (stable within a rank).

    Raises ``InvalidArgument`` for a kind that cannot be applied, and for two resources of the
    same kind whose names have the same slug, naming where both were declared.
    """
    items = list(loaded)
    seen: dict[tuple[str, str], LoadedResource] = {}
    for item in items:
        if item.kind not in APPLY_ORDER:
            raise InvalidArgument(
                f"{item.source}:{item.line}: kind {item.kind} cannot be applied; "
                "executions are started by running a workflow or an agent"
            )
        key = (item.kind, slugify(item.name))
        if key in seen:
            first = seen[key]
            raise InvalidArgument(
                f"{item.kind.lower()}/{item.name} is declared twice "
                f"({first.source}:{first.line} and {item.source}:{item.line}); keep one"
            )
        seen[key] = item
    return sorted(items, key=lambda r: APPLY_ORDER[r.kind])
