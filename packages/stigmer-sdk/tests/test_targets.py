"""Which of a workflow and an agent a bare name runs; both or neither is a clear error."""

from __future__ import annotations

import asyncio

import pytest
from stigmer.core import RUNNABLE_KINDS, InvalidArgument, NotFound, resource_from_message
from stigmer.proto.v1 import agent_pb2, backend_service_pb2, resource_pb2, workflow_pb2
from stigmer.sdk._targets import find_target


class _Store:
    """Just the two reads find_target makes (core's tests run without a backend package);
    lists page two resources at a time, so paging is exercised."""

    def __init__(self, workflows: list[str] = [], agents: list[str] = []) -> None:  # noqa: B006
        self.names = {"Workflow": list(workflows), "Agent": list(agents)}

    def _resource(self, kind: str, name: str) -> resource_pb2.Resource:
        msg = workflow_pb2.Workflow() if kind == "Workflow" else agent_pb2.Agent()
        msg.metadata.name = name
        resource: resource_pb2.Resource = resource_from_message(msg)
        return resource

    async def get(self, request: backend_service_pb2.GetRequest) -> resource_pb2.Resource:
        if request.ref.name not in self.names[request.ref.kind]:
            raise NotFound(f"no {request.ref.kind} {request.ref.name}")
        return self._resource(request.ref.kind, request.ref.name)

    async def list(self, request: backend_service_pb2.ListRequest) -> backend_service_pb2.ListResponse:
        start = int(request.page_token or 0)
        names = self.names[request.kind]
        page = names[start : start + 2]
        token = str(start + 2) if start + 2 < len(names) else ""
        return backend_service_pb2.ListResponse(
            resources=[self._resource(request.kind, n) for n in page], next_page_token=token
        )


def _find(store: _Store, name: str, **hints: str) -> str:
    return asyncio.run(find_target(store, name, **hints))  # type: ignore[arg-type]


def test_the_kind_that_holds_the_name() -> None:
    store = _Store(workflows=["hello"], agents=["bot"])
    assert _find(store, "hello") == "Workflow"
    assert _find(store, "bot") == "Agent"
    assert RUNNABLE_KINDS == ("Workflow", "Agent")


def test_both_is_refused_with_the_callers_hint() -> None:
    store = _Store(workflows=["triage"], agents=["triage"])
    with pytest.raises(InvalidArgument) as exc:
        _find(store, "triage", choose_hint="pass kind='workflow' or 'agent'")
    assert str(exc.value) == "'triage' names both a workflow and an agent; pass kind='workflow' or 'agent'"
    assert exc.value.field_paths == ("kind",)


def test_missing_name_suggests_the_closest_on_any_page() -> None:
    store = _Store(workflows=["a1", "b2", "c3", "hello"], agents=["bot"])
    with pytest.raises(NotFound) as exc:
        _find(store, "helo")
    assert str(exc.value) == "no workflow or agent named 'helo'; did you mean 'hello'?"
    with pytest.raises(NotFound) as far:
        _find(store, "zzzzzz")
    assert str(far.value) == "no workflow or agent named 'zzzzzz'"


def test_nothing_to_run_says_how_to_create_one() -> None:
    with pytest.raises(NotFound) as exc:
        _find(_Store(), "hello", create_hint="`stigmer apply -f FILE` creates one")
    assert str(exc.value) == (
        "no workflow or agent named 'hello'; there is no workflow or agent yet: "
        "`stigmer apply -f FILE` creates one"
    )
