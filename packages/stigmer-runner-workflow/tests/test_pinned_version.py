"""A run executes the version of its workflow that it pinned when it was created, even after the
workflow changed (``stigmer.core.pinned_target``, shared by the Lite runner, the Temporal load
activity and the server's Temporal start)."""

from __future__ import annotations

from stigmer.core import Backend, Redactor, from_value, parse_manifest, pinned_target
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.workflow import WorkflowRunner


async def apply(backend: Backend, value: int) -> None:
    text = (
        "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: wf}\nspec:\n"
        "  document: {dsl: 1.0.0, namespace: t, name: wf, version: 1.0.0}\n"
        f"  do:\n    - pick: {{set: {{value: {value}}}}}\n"
    )
    for loaded in parse_manifest(text, "wf.yaml"):
        await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]


async def create(backend: Backend) -> execution_pb2.Execution:
    spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="wf"))
    return await backend.create_execution(svc.CreateExecutionRequest(spec=spec))


async def test_a_run_created_before_a_change_runs_the_version_it_pinned(backend: Backend) -> None:
    await apply(backend, 1)
    old = await create(backend)
    await apply(backend, 2)
    new = await create(backend)
    assert (old.spec.target_version, new.spec.target_version) == (1, 2)

    pinned = await pinned_target(backend, old)
    assert pinned.workflow.metadata.version == 1
    assert from_value(pinned.workflow.spec)["do"] == [{"pick": {"set": {"value": 1}}}]
    assert (await pinned_target(backend, new)).workflow.metadata.version == 2

    runner = WorkflowRunner(redactor=Redactor())
    done_old = await runner.execute(backend, old.metadata.id)
    done_new = await runner.execute(backend, new.metadata.id)
    assert from_value(done_old.status.output) == {"value": 1}
    assert from_value(done_new.status.output) == {"value": 2}
