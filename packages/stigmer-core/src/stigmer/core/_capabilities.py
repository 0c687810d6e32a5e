"""Capabilities: effects of a run that reach the host, granted per execution by its backend.

``run: shell``, ``run: script``, an agent's stdio MCP servers and its ``shell`` tool start local
processes; an agent's ``fetch`` tool may reach loopback and private addresses. In Lite
(one person on their own machine) that is the point; on a shared server it would let any user run
commands as the server's OS user, so a server grants them only when its admin enables them
(``stigmer server --allow-run``).

A runner learns what an execution may do from the contract: ``ExecutionContext.config`` (returned
by ``GetExecutionContext``) holds ``{"capabilities": {"run": true}}``. A capability that is absent
is not granted: an older server that sends no config gets none (the safe default), while the
local backend of Lite always sends its grants.
"""

from __future__ import annotations

from typing import Any

from stigmer.core._errors import PermissionDenied

__all__ = [
    "CAPABILITY_PRIVATE_NETWORK",
    "CAPABILITY_RUN",
    "CapabilityDenied",
    "capabilities_config",
    "has_capability",
]

#: Starting local processes: ``run: shell``, ``run: script``, stdio MCP servers, an agent's
#: ``shell`` tool.
CAPABILITY_RUN = "run"
#: Reaching loopback and private addresses from an agent's ``fetch`` tool.
CAPABILITY_PRIVATE_NETWORK = "private_network"
_KEY = "capabilities"
_HINT = {
    CAPABILITY_RUN: "an admin can enable it with `stigmer server --allow-run`",
    CAPABILITY_PRIVATE_NETWORK: "an admin can enable it with `stigmer server --allow-private-network`",
}


class CapabilityDenied(PermissionDenied):
    """An execution tried an effect its backend did not grant; the message says who can grant it."""

    def __init__(self, what: str, capability: str = CAPABILITY_RUN) -> None:
        hint = _HINT.get(capability, f"the server does not grant the {capability!r} capability")
        super().__init__(f"{what} is not allowed on this server; {hint}")
        self.capability = capability


def capabilities_config(**grants: bool) -> dict[str, Any]:
    """The ``ExecutionContext.config`` content granting ``grants`` (e.g. ``run=True``)."""
    return {_KEY: {name: bool(value) for name, value in sorted(grants.items())}}


def has_capability(config: Any, capability: str) -> bool:
    """Whether an ``ExecutionContext.config`` (a ``Struct`` or a mapping) grants ``capability``.

    Anything but an explicit ``true`` (no config, no ``capabilities``, a wrong type) is a refusal.
    """
    if config is None:
        return False
    fields = getattr(config, "fields", None)
    if fields is not None:  # google.protobuf.Struct
        section = fields.get(_KEY)
        if section is None or section.WhichOneof("kind") != "struct_value":
            return False
        value = section.struct_value.fields.get(capability)
        return value is not None and value.WhichOneof("kind") == "bool_value" and value.bool_value
    if isinstance(config, dict):
        section = config.get(_KEY)
        return isinstance(section, dict) and section.get(capability) is True
    return False
