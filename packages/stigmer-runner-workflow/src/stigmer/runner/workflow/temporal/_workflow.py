"""``StigmerWorkflow``: one Stigmer workflow execution as a Temporal workflow (id = execution id).

The workflow gets the execution's pinned definition with its start (or loads it through an
activity), rejects expressions that would not replay (``now``, ``$ENV``, ``input`` ...), and runs
the same interpreter as Lite mode on a :class:`TemporalHost`. Events for ``listen`` arrive as
``stigmer.event`` signals. A long history continues as new from the interpreter's checkpoint.

``args``: ``executionId``; from the server ``agentQueue``, ``document``, ``input`` (a retry's
``checkpoint``) and ``limits``; after a continue-as-new ``checkpoint``, ``events``,
``historyLimit`` and ``eventsRecorded``. How a run starts depends on what its start carried, so
that runs started by earlier releases replay as they ran:

- ``document`` and ``limits`` (this release's server): no activity before the interpreter; the
  run's first report starts it (a report naming its runner starts a PENDING run), and the
  progress made before an effect goes with the effect's activity
  (:attr:`TemporalHost.progress_with_effects`);
- ``document`` only: the ``stigmer.workflow.start`` local activity marks it RUNNING and gives
  the worker's limits;
- neither (a child, a continued run, or an earlier release's start): ``stigmer.workflow.load``
  reads the definition and marks it RUNNING; ``limits`` given (a child of a run that had them, a
  continued run) are used instead of the worker's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
from typing import Any, Final

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from stigmer.temporal._failure import FAILED_PATCH, run_failed

    from .._errors import ErrorKind, WorkflowError, WorkflowValidationError
    from .._interpreter import Interpreter
    from .._limits import Limits
    from .._parse import check_deterministic, load_workflow
    from .._telemetry import task_spans
    from ._host import WORKFLOW_NAME, TemporalHost

__all__ = ["EVENT_SIGNAL", "HISTORY_LIMIT", "WORKFLOW_NAME", "StigmerWorkflow"]

EVENT_SIGNAL = "stigmer.event"
#: Events after which a run continues as new (resuming from the interpreter's checkpoint).
HISTORY_LIMIT = 10_000
#: The longest one jq evaluation may take in workflow code: Temporal fails a workflow task that
#: does not yield within 2 s (its deadlock detector), so a lower limit keeps the error clean.
TEMPORAL_JQ_SECONDS: Final = 1.5


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class StigmerWorkflow:
    def __init__(self) -> None:
        self._pending: list[dict[str, Any]] = []
        self._host: TemporalHost | None = None

    @workflow.signal(name=EVENT_SIGNAL)
    def event(self, event: dict[str, Any]) -> None:
        """An event for ``listen`` tasks (a CloudEvent as a dict)."""
        if self._host is not None:
            self._host.deliver(event)
        else:
            self._pending.append(event)

    @workflow.run
    async def run(self, args: dict[str, Any]) -> dict[str, Any]:
        execution_id = str(args["executionId"])
        given_limits = args.get("limits")
        if "document" in args and given_limits is not None:
            # The server sent what the run needs with the start (its history holds it): nothing
            # to ask before the interpreter runs; the run's first report starts it.
            loaded = {"phase": "RUNNING", "document": args["document"], "input": args.get("input")}
        elif "document" in args:
            # An earlier release's server: one call marks the run RUNNING and gives the limits.
            loaded = await workflow.execute_local_activity(
                "stigmer.workflow.start",
                execution_id,
                start_to_close_timeout=datetime.timedelta(seconds=30),
            )
            loaded.update(document=args["document"], input=args.get("input"))
        else:
            loaded = await workflow.execute_local_activity(
                "stigmer.workflow.load",
                execution_id,
                start_to_close_timeout=datetime.timedelta(seconds=30),
            )
        if loaded["phase"] != "RUNNING":
            return {"phase": loaded["phase"]}
        # The server's settings sent with the start, else the worker's; in the history either way.
        limits = Limits.from_dict(given_limits if given_limits is not None else loaded.get("limits"))
        run_limits = dataclasses.replace(limits, jq_seconds=min(limits.jq_seconds, TEMPORAL_JQ_SECONDS))
        host = TemporalHost(
            execution_id,
            history_limit=int(args.get("historyLimit", HISTORY_LIMIT)),
            agent_queue=str(args.get("agentQueue") or ""),
            limits=run_limits,
            events_recorded=int(args.get("eventsRecorded") or 0),
            checkpoint=args.get("checkpoint") or loaded.get("checkpoint"),
            run_limits=limits.to_dict(),
            progress_with_effects=given_limits is not None,
        )
        self._host = host
        for event in [*(args.get("events") or []), *self._pending]:
            host.deliver(event)
        self._pending.clear()
        try:
            document = load_workflow(loaded["document"])
            check_deterministic(document)
            spans = task_spans(temporal_now=workflow.time)  # None when traces are off
            interpreter = Interpreter(
                document, host, workflow_id=execution_id, limits=run_limits, spans=spans
            )
            output = await interpreter.run(
                loaded.get("input") or {}, checkpoint=args.get("checkpoint") or loaded.get("checkpoint")
            )
        except WorkflowValidationError as invalid:
            problem = WorkflowError.of(ErrorKind.VALIDATION, str(invalid)).with_instance("/").problem
            await host.flush(phase="FAILED", error=problem)
            return self._failed(execution_id, problem)
        except WorkflowError as error:
            if host.stopped:
                return {"phase": "STOPPED"}
            await host.flush(phase="FAILED", error=error.problem, **host.last_checkpoint())
            return self._failed(execution_id, error.problem)
        except asyncio.CancelledError:
            # Cancelled through the Backend (CancelExecution), which already recorded CANCELLED, or
            # as the child of a cancelled parent (`run: workflow`): then record it here (the
            # Backend refuses the update in the first case).
            await host.flush(phase="CANCELLED", **host.last_checkpoint())
            raise
        if not await host.flush(phase="SUCCEEDED", output=output, hasOutput=True):
            return {"phase": "STOPPED"}
        return {"phase": "SUCCEEDED"}

    @staticmethod
    def _failed(execution_id: str, problem: dict[str, Any]) -> dict[str, Any]:
        """FAILED is written to the Backend: the workflow fails too (histories recorded before
        this behaviour completed with the phase)."""
        if workflow.patched(FAILED_PATCH):
            run_failed(execution_id, problem)
        return {"phase": "FAILED", "error": problem}
