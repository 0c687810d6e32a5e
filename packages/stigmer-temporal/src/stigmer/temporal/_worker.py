"""Running a runner's Temporal worker process: connect, poll until SIGTERM/SIGINT, shut down;
and heartbeating inside the runners' activities.

Shared by ``stigmer-workflow-runner`` and ``stigmer-agent-runner``; each supplies only the function
that builds its ``temporalio.worker.Worker``. temporalio is imported when the worker runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from stigmer.core import StigmerError, configure_logging
from stigmer.temporal._connection import TemporalConnection

__all__ = ["heartbeating", "run_temporal_worker"]

#: ``(client, backend) -> temporalio.worker.Worker``
WorkerFactory = Callable[[Any, Any], Any]


def run_temporal_worker(
    *,
    prog: str,
    temporal: TemporalConnection,
    task_queue: str,
    endpoint: str,
    token: str | None,
    build_worker: WorkerFactory,
    log_level: str = "INFO",
) -> int:
    """Connect to Temporal and to the Stigmer server, run the worker until a signal; the exit code."""
    configure_logging(log_level)  # secrets the activities resolved never reach the log
    from stigmer.core import setup_telemetry

    setup_telemetry(prog)  # traces when OTEL_EXPORTER_OTLP_ENDPOINT is set
    return asyncio.run(_serve(prog, temporal, task_queue, endpoint, token, build_worker))


async def _serve(
    prog: str,
    temporal: TemporalConnection,
    task_queue: str,
    endpoint: str,
    token: str | None,
    build_worker: WorkerFactory,
) -> int:
    from stigmer.core import load_backend

    logger = logging.getLogger(f"stigmer.worker.{prog}")
    try:
        client = await temporal.connect()
    except StigmerError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        return 1
    backend = load_backend("cloud", endpoint=endpoint, token=token)
    worker = build_worker(client, backend)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    running = asyncio.create_task(worker.run())
    print(f"{prog} polling {task_queue} on {temporal.describe()}, reporting to {endpoint}", flush=True)
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    code = 0
    if running.done():
        error = running.exception()
        if error is not None:
            print(f"{prog}: worker stopped: {error}", file=sys.stderr)
            code = 1
    else:
        await worker.shutdown()
        with contextlib.suppress(Exception):
            await running
    stopping.cancel()
    await backend.close()
    from stigmer.core import flush_telemetry

    flush_telemetry()
    logger.info("%s stopped", prog)
    return code


@contextlib.asynccontextmanager
async def heartbeating(every: float = 2.0) -> AsyncIterator[None]:
    """Heartbeat (in a Temporal activity) every ``every`` seconds while the body runs, so a lost
    worker is noticed soon and a cancellation reaches the activity. The first beat comes after
    ``every`` seconds: a body that ends sooner costs Temporal no heartbeat call (the heartbeat
    timeout counts from the activity's start either way)."""
    from temporalio import activity

    async def beat() -> None:
        while True:
            await asyncio.sleep(every)
            activity.heartbeat()

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
