"""Running the agent worker: Temporal client, Backend client, signals and shutdown."""

from __future__ import annotations

import datetime
from typing import Any

from stigmer.temporal import TemporalConnection, run_temporal_worker

__all__ = ["agent_worker", "run_worker"]


def agent_worker(
    client: Any, task_queue: str, backend: Any, *, max_concurrent: int = 50, activities: Any = None
) -> Any:
    """A ``temporalio.worker.Worker`` running ``stigmer.agent`` workflows and their activities
    (``activities``: an ``AgentActivities`` bound to ``backend``, made here if not given)."""
    from temporalio.worker import Worker

    from ._temporal_activities import AgentActivities
    from ._temporal_workflow import StigmerAgent

    return Worker(
        client,
        task_queue=task_queue,
        workflows=[StigmerAgent],
        activities=(activities or AgentActivities(backend)).all(),
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
    max_concurrent: int = 50,
    log_level: str = "INFO",
) -> int:
    """Connect, poll until SIGTERM/SIGINT, shut down gracefully; the process exit code."""
    return run_temporal_worker(
        prog="stigmer-agent-runner",
        temporal=temporal,
        task_queue=task_queue,
        endpoint=endpoint,
        token=token,
        build_worker=lambda client, backend: agent_worker(
            client, task_queue, backend, max_concurrent=max_concurrent
        ),
        log_level=log_level,
    )
