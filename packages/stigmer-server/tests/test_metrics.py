"""The server's execution metrics follow what the runs report, including a run that starts and
ends in one report (a quick run on a Temporal worker: its first report names the runner)."""

from __future__ import annotations

from pathlib import Path

from stigmer.backend.local import LocalBackend
from stigmer.core import parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.server._metrics import MeteredBackend, ServerMetrics

WORKFLOW = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: quick}
spec:
  document: {dsl: 1.0.0, namespace: t, name: quick, version: 1.0.0}
  do:
    - greet: {set: {hi: yes}}
"""


def _sample(metrics: ServerMetrics, name: str, labels: dict[str, str]) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_a_run_that_starts_and_ends_in_one_report_counts_its_queue_time(tmp_path: Path) -> None:
    inner = LocalBackend(f"sqlite:///{tmp_path / 'stigmer.db'}", home=tmp_path, master_key=b"m" * 32)
    metrics = ServerMetrics()
    backend = MeteredBackend(inner, metrics)
    try:
        for loaded in parse_manifest(WORKFLOW, "quick.yaml"):
            await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
        spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="quick"))
        labels = {"kind": "WorkflowExecution", "target_kind": "Workflow", "target": "quick"}
        created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
        assert _sample(metrics, "stigmer_executions_in_progress", {**labels, "phase": "PENDING"}) == 1.0
        done = await backend.update_execution_status(
            svc.UpdateExecutionStatusRequest(
                execution_id=created.metadata.id,
                runner="temporal:test",
                phase=execution_pb2.PHASE_SUCCEEDED,
                events=[execution_pb2.ExecutionEvent(type="task.completed", subject="/do/0/greet")],
            )
        )
        assert done.status.phase == execution_pb2.PHASE_SUCCEEDED and done.status.HasField("started_at")
        assert _sample(metrics, "stigmer_execution_queue_seconds_count", labels) == 1.0
        assert _sample(metrics, "stigmer_executions_finished_total", {**labels, "phase": "SUCCEEDED"}) == 1.0
        assert (
            _sample(metrics, "stigmer_execution_duration_seconds_count", {**labels, "phase": "SUCCEEDED"})
            == 1.0
        )
        assert _sample(metrics, "stigmer_executions_in_progress", {**labels, "phase": "PENDING"}) == 0.0
    finally:
        await inner.close()
