"""Running the workflow worker: Temporal client, Backend client, sandbox, signals and shutdown."""

from __future__ import annotations

import datetime
from typing import Any

from stigmer.core import Limits
from stigmer.temporal import TemporalConnection, run_temporal_worker

__all__ = ["PASSTHROUGH", "run_worker", "workflow_worker"]

#: Modules the workflow sandbox shares with the worker instead of re-importing them per run.
PASSTHROUGH = (
    "stigmer",
    "jq",
    "httpx",
    "httpcore",
    "google.protobuf",
    "jsonschema",
    "jsonschema_rs",
    "ruamel",
    "grpc",
)


def workflow_worker(
    client: Any, task_queue: str, backend: Any, *, max_concurrent: int = 100, limits: Limits | None = None
) -> Any:
    """A ``temporalio.worker.Worker`` running ``stigmer.workflow`` workflows and their activities
    (each execution within ``limits``, by default this process's settings)."""
    from temporalio.worker import Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    from ._activities import WorkflowActivities
    from ._workflow import StigmerWorkflow

    activities = WorkflowActivities(backend, runner=f"temporal:{task_queue}", limits=limits)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[StigmerWorkflow],
        activities=activities.all(),
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
        ),
        max_concurrent_activities=max_concurrent,
        max_concurrent_workflow_tasks=max_concurrent,
        sticky_queue_schedule_to_start_timeout=datetime.timedelta(seconds=3),
        graceful_shutdown_timeout=datetime.timedelta(seconds=5),
    )


def run_worker(
    *,
    temporal: TemporalConnection,
    task_queue: str,
    endpoint: str,
    token: str | None,
    max_concurrent: int = 100,
    log_level: str = "INFO",
) -> int:
    """Connect, poll until SIGTERM/SIGINT, shut down gracefully; the process exit code."""
    return run_temporal_worker(
        prog="stigmer-workflow-runner",
        temporal=temporal,
        task_queue=task_queue,
        endpoint=endpoint,
        token=token,
        build_worker=lambda client, backend: workflow_worker(
            client, task_queue, backend, max_concurrent=max_concurrent
        ),
        log_level=log_level,
    )
