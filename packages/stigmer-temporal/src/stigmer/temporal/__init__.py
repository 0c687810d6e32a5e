"""Stigmer on Temporal: one home for what the runner workers and the server share to use Temporal.

- the connection options (address, namespace, TLS, mutual TLS, API key): :class:`TemporalConnection`,
  :func:`add_temporal_arguments`, ``STIGMER_TEMPORAL_*`` (:data:`TEMPORAL_ENV`);
- the runner worker process: its command line (:class:`WorkerCommand`), its loop
  (:func:`run_temporal_worker`) and heartbeating inside activities (:func:`heartbeating`);
- the server's dispatch of executions to Temporal workflows (:func:`temporal_dispatch`), and the
  names of those workflows, their task queues and signals;
- what those workflows show in the Temporal UI: the target's kind and name (memo and the search
  attributes :data:`KIND_ATTRIBUTE`, :data:`NAME_ATTRIBUTE`, registered on a dev server with
  :data:`DEV_SERVER_ARGS`), and a failed run as a failed workflow (:data:`FAILED_TYPE`);
- traces: Temporal's OpenTelemetry interceptor on every client when traces are on.

``import stigmer.temporal`` is cheap: temporalio is imported only when something connects.
"""

from stigmer.temporal._command import WorkerCommand
from stigmer.temporal._connection import (
    DEFAULT_TEMPORAL_ADDRESS,
    TEMPORAL_ENV,
    TemporalConnection,
    add_temporal_arguments,
)
from stigmer.temporal._dispatch import (
    AGENT_QUEUE,
    AGENT_WORKFLOW,
    APPROVAL_SIGNAL,
    EVENT_SIGNAL,
    WORKFLOW_QUEUE,
    WORKFLOW_WORKFLOW,
    TemporalDispatcher,
    temporal_dispatch,
)
from stigmer.temporal._failure import FAILED_TYPE
from stigmer.temporal._schedules import SCHEDULE_QUEUE, TemporalSchedules
from stigmer.temporal._visibility import DEV_SERVER_ARGS, KIND_ATTRIBUTE, NAME_ATTRIBUTE
from stigmer.temporal._worker import heartbeating, run_temporal_worker

__all__ = [
    "AGENT_QUEUE",
    "AGENT_WORKFLOW",
    "APPROVAL_SIGNAL",
    "DEFAULT_TEMPORAL_ADDRESS",
    "DEV_SERVER_ARGS",
    "EVENT_SIGNAL",
    "FAILED_TYPE",
    "KIND_ATTRIBUTE",
    "NAME_ATTRIBUTE",
    "SCHEDULE_QUEUE",
    "TEMPORAL_ENV",
    "WORKFLOW_QUEUE",
    "WORKFLOW_WORKFLOW",
    "TemporalConnection",
    "TemporalDispatcher",
    "TemporalSchedules",
    "WorkerCommand",
    "add_temporal_arguments",
    "heartbeating",
    "run_temporal_worker",
    "temporal_dispatch",
]
