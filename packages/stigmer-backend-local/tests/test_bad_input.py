"""Bad input to LocalBackend gives a clear one-line StigmerError, never a traceback (hypothesis)."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stigmer.backend.local import LocalBackend
from stigmer.core import StigmerError
from stigmer.proto.v1 import (
    agent_pb2,
    meta_pb2,
    resource_pb2,
)
from stigmer.proto.v1 import (
    backend_service_pb2 as svc,
)
from stigmer.proto.v1 import (
    execution_pb2 as ex,
)

text = st.text(max_size=300)
labels = st.dictionaries(st.text(max_size=20), st.text(max_size=300), max_size=3)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def loop_and_backend(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[asyncio.AbstractEventLoop, LocalBackend]]:
    loop = asyncio.new_event_loop()
    with tempfile.TemporaryDirectory() as tmp:
        if request.param == "sqlite":
            backend = LocalBackend(home=Path(tmp), master_key=os.urandom(32))
            yield loop, backend
            loop.run_until_complete(backend.close())
        else:
            url = request.getfixturevalue("postgres_url")
            backend = LocalBackend(url, home=tmp, master_key=os.urandom(32))
            yield loop, backend
            loop.run_until_complete(backend.close())
    loop.close()


def _run(pair: tuple[asyncio.AbstractEventLoop, LocalBackend], coro: object) -> None:
    loop, _ = pair
    try:
        loop.run_until_complete(coro)  # type: ignore[arg-type]
    except StigmerError as exc:
        message = str(exc)
        assert message and "\n" not in message and "Traceback" not in message


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=text, labels=labels, secrets=st.lists(text, max_size=3), envs=st.lists(text, max_size=2))
def test_apply_with_arbitrary_agents(
    loop_and_backend: tuple[asyncio.AbstractEventLoop, LocalBackend],
    name: str,
    labels: dict[str, str],
    secrets: list[str],
    envs: list[str],
) -> None:
    _, backend = loop_and_backend
    agent = agent_pb2.Agent(
        metadata=meta_pb2.Metadata(name=name, labels=labels),
        spec=agent_pb2.AgentSpec(instructions=name, secrets=secrets, environments=envs),
    )
    _run(loop_and_backend, backend.apply(svc.ApplyRequest(resource=resource_pb2.Resource(agent=agent))))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["", "Agent", "Workflow", "Skill", "Nope"]),
    name=text,
    target_id=text,
    selector=text,
    token=text,
    size=st.integers(-5, 5000),
)
def test_reads_with_arbitrary_arguments(
    loop_and_backend: tuple[asyncio.AbstractEventLoop, LocalBackend],
    kind: str,
    name: str,
    target_id: str,
    selector: str,
    token: str,
    size: int,
) -> None:
    _, backend = loop_and_backend
    ref = meta_pb2.ResourceRef(kind=kind, name=name, id=target_id)
    _run(loop_and_backend, backend.get(svc.GetRequest(ref=ref)))
    _run(
        loop_and_backend,
        backend.list(svc.ListRequest(kind=kind, label_selector=selector, page_size=size, page_token=token)),
    )
    _run(
        loop_and_backend,
        backend.create_execution(svc.CreateExecutionRequest(spec=ex.ExecutionSpec(target=ref))),
    )
    _run(loop_and_backend, backend.list_executions(svc.ListExecutionsRequest(target=ref, page_token=token)))
    _run(loop_and_backend, backend.get_artifact(svc.GetArtifactRequest(key=name)))
    _run(loop_and_backend, backend.set_secret(svc.SetSecretRequest(name=name, value=target_id)))
    _run(
        loop_and_backend,
        backend.update_execution_status(
            svc.UpdateExecutionStatusRequest(execution_id=target_id, events=[ex.ExecutionEvent(type=name)])
        ),
    )
