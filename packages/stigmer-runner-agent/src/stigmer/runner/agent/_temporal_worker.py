"""Running the agent worker: Temporal client, Backend client, signals and shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import signal
import sys
from typing import Any

__all__ = ["agent_worker", "run_worker"]

logger = logging.getLogger("stigmer.runner.agent.worker")


def agent_worker(client: Any, task_queue: str, backend: Any, *, max_concurrent: int = 50) -> Any:
    """A ``temporalio.worker.Worker`` running ``stigmer.agent`` workflows and their activity."""
    from temporalio.worker import Worker

    from ._temporal_activities import AgentActivities
    from ._temporal_workflow import StigmerAgent

    return Worker(
        client,
        task_queue=task_queue,
        workflows=[StigmerAgent],
        activities=AgentActivities(backend).all(),
        max_concurrent_activities=max_concurrent,
        max_concurrent_workflow_tasks=max_concurrent,
        sticky_queue_schedule_to_start_timeout=datetime.timedelta(seconds=3),
        graceful_shutdown_timeout=datetime.timedelta(seconds=5),
    )


def run_worker(
    *,
    temporal: str,
    namespace: str,
    task_queue: str,
    endpoint: str,
    token: str | None,
    max_concurrent: int = 50,
    log_level: str = "INFO",
) -> int:
    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return asyncio.run(_serve(temporal, namespace, task_queue, endpoint, token, max_concurrent))


async def _serve(
    temporal: str, namespace: str, task_queue: str, endpoint: str, token: str | None, max_concurrent: int
) -> int:
    from stigmer.core import load_backend
    from temporalio.client import Client

    try:
        client = await Client.connect(temporal, namespace=namespace)
    except Exception as exc:
        print(f"stigmer-agent-runner: cannot reach Temporal at {temporal}: {exc}", file=sys.stderr)
        return 1
    backend = load_backend("cloud", endpoint=endpoint, token=token)
    worker = agent_worker(client, task_queue, backend, max_concurrent=max_concurrent)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    running = asyncio.create_task(worker.run())
    print(
        f"stigmer-agent-runner polling {task_queue} on {temporal} (namespace {namespace}), reporting to {endpoint}",
        flush=True,
    )
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if running.done():
        error = running.exception()
        if error is not None:
            print(f"stigmer-agent-runner: worker stopped: {error}", file=sys.stderr)
            code = 1
    else:
        await worker.shutdown()
        with contextlib.suppress(Exception):
            await running
    stopping.cancel()
    await backend.close()
    logger.info("stigmer-agent-runner stopped")
    return code
