"""Finding what a bare name runs: the workflow or the agent of that name.

``stigmer run NAME`` and the SDK's ``run(name)`` both ask ``find_target``; a name held by both a
workflow and an agent is refused (the caller says how to choose), and a missing name suggests
the closest existing one.
"""

from __future__ import annotations

import asyncio
import difflib
from collections.abc import Iterable

from stigmer.core import RUNNABLE_KINDS, Backend, InvalidArgument, NotFound, unwrap
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import meta_pb2

__all__ = [
    "did_you_mean",
    "find_target",
    "not_found",
    "resource_exists",
    "resource_names",
    "session_for",
]


async def find_target(
    backend: Backend,
    name: str,
    *,
    choose_hint: str = "say which kind to run",
    create_hint: str = "apply one first",
) -> str:
    """``"Workflow"`` or ``"Agent"``: whichever of them is called ``name``.

    Raises ``InvalidArgument`` when both are (the message ends with ``choose_hint``), and
    ``NotFound`` when neither is: the message suggests the closest existing workflow or agent
    name, or, when there is none at all, ends with ``create_hint``.
    """
    # Both asked at once: against a server that is one round trip, not one per kind.
    exists = await asyncio.gather(*(resource_exists(backend, kind, name) for kind in RUNNABLE_KINDS))
    found = [kind for kind, there in zip(RUNNABLE_KINDS, exists, strict=True) if there]
    if len(found) > 1:
        raise InvalidArgument(f"'{name}' names both a workflow and an agent; {choose_hint}", ["kind"])
    if found:
        return found[0]
    raise await not_found(backend, list(RUNNABLE_KINDS), name, create_hint=create_hint)


async def not_found(
    backend: Backend, kinds: list[str], name: str, *, create_hint: str = "apply one first"
) -> NotFound:
    """The error for a missing ``name`` of ``kinds``: it suggests the closest existing name of
    those kinds, or, when there is none at all, ends with ``create_hint``."""
    candidates = [n for kind in kinds for n in await resource_names(backend, kind)]
    what = " or ".join(kind.lower() for kind in kinds)
    hint = did_you_mean(name, candidates)
    if not hint and not candidates:
        hint = f"; there is no {what} yet: {create_hint}"
    return NotFound(f"no {what} named '{name}'{hint}")


async def session_for(backend: Backend, agent: str, name_or_id: str) -> str:
    """The id of a Session of ``agent``: given as an id (``ses_...``), or by name (created on first
    use). Raises ``InvalidArgument`` when the named session belongs to another agent."""
    from stigmer.proto.v1 import resource_pb2, session_pb2

    if name_or_id.startswith("ses_"):
        return name_or_id
    try:
        found = await backend.get(svc.GetRequest(ref=meta_pb2.ResourceRef(kind="Session", name=name_or_id)))
    except NotFound:
        created = session_pb2.Session(
            api_version="stigmer.ai/v1",
            kind="Session",
            metadata=meta_pb2.Metadata(name=name_or_id),
            spec=session_pb2.SessionSpec(agent=meta_pb2.ResourceRef(kind="Agent", name=agent)),
        )
        response = await backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(session=created)))
        found = response.resource
    existing: session_pb2.Session = unwrap(found)  # type: ignore[assignment]
    if existing.spec.agent.name and existing.spec.agent.name != agent:
        raise InvalidArgument(
            f"session '{name_or_id}' belongs to agent '{existing.spec.agent.name}', not '{agent}'; "
            "pick another session name",
            ["session"],
        )
    return existing.metadata.id


async def resource_exists(backend: Backend, kind: str, name: str) -> bool:
    """Whether a resource of ``kind`` is called ``name``."""
    try:
        await backend.get(svc.GetRequest(ref=meta_pb2.ResourceRef(kind=kind, name=name)))
    except NotFound:
        return False
    return True


async def resource_names(backend: Backend, kind: str) -> list[str]:
    """Every resource name of ``kind`` (all pages)."""
    names: list[str] = []
    token = ""
    while True:
        page = await backend.list(svc.ListRequest(kind=kind, page_size=500, page_token=token))
        names.extend(unwrap(r).metadata.name for r in page.resources)  # type: ignore[attr-defined]
        token = page.next_page_token
        if not token:
            return names


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """``; did you mean 'x'?`` for the option closest to ``word`` (case-insensitive fallback), or ``""``."""
    choices = sorted(set(options))
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    if not match:
        match = difflib.get_close_matches(word.lower(), [c.lower() for c in choices], n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else ""
