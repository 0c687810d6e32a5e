"""``run: shell`` and ``run: script`` start processes only when the backend grants the ``run``
capability in the execution's context (a real LocalBackend with and without it)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from stigmer.backend.local import LocalBackend
from stigmer.core import Backend, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.workflow import WorkflowRunner

REFUSAL = "is not allowed on this server; an admin can enable it with `stigmer server --allow-run`"


Open = Callable[[bool], LocalBackend]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Open]:
    opened: list[LocalBackend] = []

    def open_backend(allow_run: bool) -> LocalBackend:
        backend = LocalBackend(
            f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=b"c" * 32, allow_run=allow_run
        )
        opened.append(backend)
        return backend

    yield open_backend
    for backend in opened:
        await backend.close()


async def _run(backend: Backend, name: str, task: str) -> execution_pb2.Execution:
    text = (
        f"apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {{name: {name}}}\nspec:\n"
        f"  document: {{dsl: 1.0.0, namespace: demo, name: {name}, version: 1.0.0}}\n"
        f"  do:\n    - effect:\n        run:\n{task}"
    )
    for loaded in parse_manifest(text, "test.yaml"):
        await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
    created = await backend.create_execution(
        svc.CreateExecutionRequest(
            spec=execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name=name))
        )
    )
    return await WorkflowRunner().execute(backend, created.metadata.id)


@pytest.mark.parametrize(
    ("kind", "task"),
    [
        ("shell", "          shell: {{command: 'touch {marker}'}}\n"),
        ("script", '          script: {{language: python, code: \'open(r"{marker}", "w").close()\'}}\n'),
    ],
)
async def test_a_refused_process_fails_the_run_and_nothing_runs(
    store: Open, tmp_path: Path, kind: str, task: str
) -> None:
    marker = tmp_path / f"{kind}-ran"
    refused = await _run(store(False), f"no-{kind}", task.format(marker=marker))
    assert refused.status.phase == execution_pb2.PHASE_FAILED
    assert refused.status.error.detail == f"run: {kind} {REFUSAL}"
    assert refused.status.error.status == 403
    assert refused.status.error.instance == "/do/0/effect"
    assert not marker.exists()

    allowed = await _run(store(True), f"yes-{kind}", task.format(marker=marker))
    assert allowed.status.phase == execution_pb2.PHASE_SUCCEEDED, allowed.status.error
    assert marker.exists()


async def test_lite_grants_run_by_default(tmp_path: Path) -> None:
    backend = LocalBackend(f"sqlite:///{tmp_path / 'lite.db'}", home=tmp_path, master_key=b"d" * 32)
    try:
        done = await _run(backend, "lite", "          shell: {command: 'echo lite'}\n")
        assert done.status.phase == execution_pb2.PHASE_SUCCEEDED, done.status.error
    finally:
        await backend.close()
