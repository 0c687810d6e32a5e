"""``WorkflowRunner``: the ``workflow`` plugin of ``stigmer.runners`` (Lite, in-process mode)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stigmer.core import (
    Backend,
    InvalidArgument,
    Limits,
    Redactor,
    default_redactor,
    handover_requested,
    is_terminal,
    load_runner,
    no_handover,
    phase_name,
    pinned_target,
    traced_execution,
    until_handover,
)
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2

from ._capability import LOCAL_PROTO, may_run, refused
from ._errors import ErrorKind, WorkflowError, WorkflowValidationError
from ._grpc import proto_file
from ._host import GrpcRequest, HttpRequest, HttpResponse, ProcessResult, retry_event
from ._inprocess import InProcessHost
from ._interpreter import Interpreter
from ._parse import Workflow, load_workflow
from ._reporting import Reporter, RunStopped, from_value, to_value
from ._telemetry import task_spans
from ._validated import ValidatedForms, spec_key

if TYPE_CHECKING:
    import httpx

__all__ = ["WorkflowRunner"]

logger = logging.getLogger(__name__)
P = execution_pb2
_DOCUMENT_CACHE = 64


class WorkflowRunner:
    """Runs ``WorkflowExecution``s in this process through any ``Backend``.

    ``execute`` loads the execution and its pinned Workflow version, marks it RUNNING, runs the
    interpreter on an :class:`InProcessHost` whose secrets come from
    ``Backend.get_execution_context`` right before an expression reads them (and are registered
    with the redactor), records one event per task transition plus a checkpoint after every
    completed task — group-committed, and always written before the next effect starts — and
    finishes SUCCEEDED with the output or FAILED with an RFC 7807 error.
    Calling it again on a RUNNING execution (after a crash) resumes from its checkpoint.
    ``call: agent`` and ``run: workflow`` start child executions run by the ``agent`` and
    ``workflow`` runners.
    """

    def __init__(
        self,
        *,
        client: httpx.AsyncClient | None = None,
        rewrite_url: Callable[[str], str] | None = None,
        redactor: Redactor | None = None,
        limits: Limits | None = None,
    ) -> None:
        self._client = client
        # The limits of every execution it runs: this process's settings unless given.
        self.limits = limits if limits is not None else Limits.load()
        self._rewrite_url = rewrite_url
        self._redactor = redactor if redactor is not None else default_redactor()
        # Validated documents by digest of the stored spec: validating a large document against
        # the DSL schema costs far more than running it, and workers run the same ones again.
        self._documents: OrderedDict[str, Workflow] = OrderedDict()
        # ... and on disk, where `apply` keeps them, for the next process of this host.
        self._validated = ValidatedForms()

    async def prepare(self) -> None:
        """Load and compile the DSL schema (the bulk of a first run's start) ahead of any run."""
        load_workflow(
            {
                "document": {"dsl": "1.0.0", "namespace": "stigmer", "name": "warm-up", "version": "1.0.0"},
                "do": [{"noop": {"set": {"warm": True}}}],
            }
        )

    async def execute(self, backend: Backend, execution_id: str) -> execution_pb2.Execution:
        """Run (or resume) the workflow execution with this id; returns it as it stands at the end."""
        execution = await backend.get_execution(svc.GetExecutionRequest(id=execution_id))
        if execution.kind and execution.kind != "WorkflowExecution":
            raise InvalidArgument(
                f"execution {execution_id} is a {execution.kind}; the workflow runner runs WorkflowExecutions"
            )
        if is_terminal(execution.status.phase):
            return execution
        reporter = Reporter(
            backend,
            execution_id,
            last_sequence=execution.status.last_sequence,
            redactor=self._redactor,
            runner=f"{socket.gethostname()}:{os.getpid()}:workflow",
            buffered=True,
            limits=self.limits,
        )
        try:
            ended: execution_pb2.Execution = await traced_execution(
                execution, lambda: self._run(backend, execution, reporter)
            )
            return ended
        except RunStopped as stopped:
            return stopped.execution
        except Exception:
            with contextlib.suppress(Exception, RunStopped):
                await reporter.flush()  # keep the progress made before an unexpected failure
            raise

    async def _run(
        self, backend: Backend, execution: execution_pb2.Execution, reporter: Reporter
    ) -> execution_pb2.Execution:
        execution_id = execution.metadata.id
        # A killed run resumes from its checkpoint; so does a retry (``stigmer execution retry``),
        # which starts PENDING with the checkpoint of the failed run it continues.
        retrying = execution.status.phase == P.PHASE_PENDING and bool(execution.spec.resumed_from)
        resuming = (execution.status.phase == P.PHASE_RUNNING or retrying) and bool(
            execution.status.checkpoint
        )
        await reporter.status(P.PHASE_RUNNING)
        try:
            document = await self._load_document(backend, execution)
        except WorkflowValidationError as invalid:
            problem = WorkflowError.of(ErrorKind.VALIDATION, str(invalid)).with_instance("/").problem
            return await reporter.status(P.PHASE_FAILED, error=problem)
        host = _BackendHost(self, backend, execution, reporter)
        checkpoint = json.loads(execution.status.checkpoint) if resuming else None
        if checkpoint is not None and not retrying:  # a retry is a new execution with a log of its own
            host._outside_after = int(checkpoint.get("outsideAfter") or 0)
        workflow_input = from_value(execution.spec.input) if execution.spec.HasField("input") else {}
        try:
            async with host:
                interpreter = Interpreter(
                    document, host, workflow_id=execution_id, limits=self.limits, spans=task_spans()
                )
                output = await interpreter.run(workflow_input, checkpoint=checkpoint)
        except WorkflowValidationError as invalid:
            problem = WorkflowError.of(ErrorKind.VALIDATION, str(invalid)).with_instance("/").problem
            return await reporter.status(P.PHASE_FAILED, error=problem)
        except WorkflowError as error:
            return await reporter.status(P.PHASE_FAILED, error=error.problem)
        return await reporter.status(P.PHASE_SUCCEEDED, output=output, has_output=True)

    async def _load_document(self, backend: Backend, execution: execution_pb2.Execution) -> Workflow:
        workflow = (await pinned_target(backend, execution)).workflow
        digest = spec_key(workflow.spec.SerializeToString(deterministic=True))
        cached = self._documents.get(digest)
        if cached is not None:
            self._documents.move_to_end(digest)
            return cached
        # The form `apply` (or an earlier run on this host) validated and kept, else validate now.
        kept = self._validated.get(digest)
        if kept is not None:
            loaded = Workflow(definition=kept)
        else:
            loaded = load_workflow(from_value(workflow.spec))
            self._validated.put(digest, loaded.definition)
        self._documents[digest] = loaded
        if len(self._documents) > _DOCUMENT_CACHE:
            self._documents.popitem(last=False)
        return loaded


def outside_event(event: execution_pb2.ExecutionEvent) -> dict[str, Any]:
    """The CloudEvent of an event delivered into a run's log from outside."""
    cloud: dict[str, Any] = {
        "specversion": "1.0",
        "id": event.event_id or f"{event.execution_id}-{event.sequence}",
        "source": event.source,
        "type": event.type,
    }
    if event.subject:
        cloud["subject"] = event.subject
    if event.HasField("time"):
        cloud["time"] = event.time.ToJsonString()
    if event.HasField("data"):
        cloud["data"] = from_value(event.data)
    elif event.text:
        cloud["data"] = event.text
    return cloud


class _BackendHost(InProcessHost):
    """InProcessHost whose secrets, progress and child runs go through the Backend."""

    def __init__(
        self, runner: WorkflowRunner, backend: Backend, execution: execution_pb2.Execution, reporter: Reporter
    ) -> None:
        super().__init__(client=runner._client, rewrite_url=runner._rewrite_url)
        self._runner = runner
        self._backend = backend
        self._execution = execution
        self._reporter = reporter
        self._may_run: bool | None = None
        # Events from outside are read from the run's log after this sequence (from its start:
        # an event sent before its listen began is not lost).
        self._outside_after = 0

    async def _require_run(self, kind: str, what: str | None = None) -> None:
        """Refuse a local process (or file) unless the backend grants the ``run`` capability
        (asked once a run)."""
        if self._may_run is None:
            self._may_run = await may_run(self._backend, self._execution.metadata.id)
        if not self._may_run:
            raise refused(kind, what)

    async def get_secrets(self, names: Sequence[str]) -> Mapping[str, str]:
        context = await self._backend.get_execution_context(
            svc.GetExecutionContextRequest(execution_id=self._execution.metadata.id)
        )
        values = {name: context.secrets[name] for name in names if name in context.secrets}
        self._reporter.redactor.register(*values.values())
        default_redactor().register(*values.values())  # so logs and CLI output mask them too
        return values

    # A ``wait`` keeps its deadline in the checkpoint (see ``run_wait``): resumed elsewhere, it
    # waits only the rest, so a handover (Lite's Ctrl-C detach) need not let it finish.
    keeps_wait_deadlines = True

    # Effects: everything buffered so far (completed tasks, the checkpoint) is written first, so a
    # crash during an effect never repeats an effect that had completed.
    async def sleep(self, seconds: float) -> None:
        await self._reporter.flush()
        await self._reporter.hand_over_if_requested()
        sleeping = asyncio.ensure_future(super().sleep(seconds))
        handover = asyncio.ensure_future(until_handover())
        try:
            await asyncio.wait({sleeping, handover}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in (sleeping, handover):
                waiting.cancel()
            await asyncio.gather(sleeping, handover, return_exceptions=True)
        if not sleeping.cancelled():
            sleeping.result()
            return
        await self._reporter.hand_over_if_requested()

    async def http_request(self, request: HttpRequest) -> HttpResponse:
        await self._reporter.flush()
        return await super().http_request(request)

    async def grpc_call(self, request: GrpcRequest) -> Any:
        await self._reporter.flush()
        if request.proto is None and proto_file(request.proto_uri) is not None:
            await self._require_run("grpc", LOCAL_PROTO)
        return await super().grpc_call(request)

    async def listen(self, filters: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The run's own emitted events, or an event delivered from outside (``stigmer event
        send``, ``POST /events``, ``stigmer execution send-event``): read from the run's log,
        where it was appended with its ``source``."""
        await self._reporter.flush()
        if not self._queue.empty():
            return self._queue.get_nowait()
        own = asyncio.ensure_future(super().listen(filters))
        outside = asyncio.ensure_future(self._next_outside_event())
        try:
            await asyncio.wait({own, outside}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in (own, outside):
                waiting.cancel()
            await asyncio.gather(own, outside, return_exceptions=True)
        if outside.done() and not outside.cancelled() and outside.exception() is None:
            if own.done() and not own.cancelled() and own.exception() is None:
                self._queue.put_nowait(own.result())  # keep it for the next listen
            return outside.result()
        return own.result()

    async def _next_outside_event(self) -> dict[str, Any]:
        stream = self._backend.watch_execution(
            svc.WatchExecutionRequest(
                execution_id=self._execution.metadata.id, after_sequence=self._outside_after
            )
        )
        try:
            async for event in stream:
                self._outside_after = max(self._outside_after, event.sequence)
                if event.source:
                    return outside_event(event)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        await asyncio.Event().wait()  # the run's log ended: nothing more comes from outside
        raise AssertionError("unreachable")

    async def emit(self, event: Mapping[str, Any]) -> None:
        await self._reporter.flush()
        await super().emit(event)

    async def run_shell(
        self, command: str, arguments: Sequence[str], environment: Mapping[str, str], stdin: str | None
    ) -> ProcessResult:
        await self._reporter.flush()
        await self._require_run("shell")
        return await super().run_shell(command, arguments, environment, stdin)

    async def run_script(
        self,
        language: str,
        code: str,
        arguments: Sequence[str],
        environment: Mapping[str, str],
        stdin: str | None,
    ) -> ProcessResult:
        await self._reporter.flush()
        await self._require_run("script")
        return await super().run_script(language, code, arguments, environment, stdin)

    def conceal(self, *values: str) -> None:
        self._reporter.redactor.register(*values)
        default_redactor().register(*values)

    def mask(self, text: str) -> str:
        return str(self._reporter.redactor.scrub(text))

    async def task_started(self, path: str, name: str, input: Any) -> None:
        if handover_requested():
            await self._reporter.hand_over_if_requested()  # a step boundary: nothing of it has run
        task = self._reporter.progress(path, name, P.PHASE_RUNNING, started=True)
        await self._reporter.event("task.started", subject=path, text=name, data=input, task=task)

    async def task_completed(self, path: str, name: str, output: Any) -> None:
        task = self._reporter.progress(path, name, P.PHASE_SUCCEEDED, finished=True)
        await self._reporter.event("task.completed", subject=path, text=name, data=output, task=task)

    async def task_failed(self, path: str, name: str, error: Mapping[str, Any]) -> None:
        task = self._reporter.progress(path, name, P.PHASE_FAILED, finished=True)
        detail = str(error.get("detail") or error.get("title") or "")
        await self._reporter.event("task.failed", subject=path, text=detail, data=dict(error), task=task)

    async def task_retried(
        self,
        path: str,
        name: str,
        attempt: int,
        delay: float,
        error: Mapping[str, Any],
        *,
        max_attempts: int | None = None,
    ) -> None:
        task = self._reporter.progress(path, name, P.PHASE_RUNNING, retried=True)
        text, data = retry_event(attempt, max_attempts, delay, error)
        await self._reporter.event("task.retried", subject=path, text=text, data=data, task=task)

    async def checkpoint(self, state: Mapping[str, Any]) -> None:
        # with how far `listen` read the log: resumed, a run does not hear an event twice
        await self._reporter.save_checkpoint({**state, "outsideAfter": self._outside_after})

    async def call_agent(
        self,
        agent: str,
        message: Any,
        session: str | None,
        *,
        attachments: Sequence[Mapping[str, Any]] = (),
    ) -> Any:
        # A child's spec is an execution record too: it holds masked values, never resolved secrets.
        message = self._reporter.redactor.scrub(message)
        spec = P.ExecutionSpec(
            target=meta_pb2.ResourceRef(kind="Agent", name=agent),
            message=message if isinstance(message, str) else json.dumps(message),
            session_id=session or "",
            parent_execution_id=self._execution.metadata.id,
        )
        if attachments:
            from ._attachments import store_attachments

            spec.attachments.extend(await store_attachments(self._backend, attachments))
        return await self._child(spec, "agent")

    async def run_workflow(self, namespace: str, name: str, version: str, input: Any) -> Any:
        spec = P.ExecutionSpec(
            target=meta_pb2.ResourceRef(kind="Workflow", name=name),
            parent_execution_id=self._execution.metadata.id,
        )
        spec.input.CopyFrom(to_value(self._reporter.redactor.scrub(input)))
        return await self._child(spec, "workflow")

    async def _child(self, spec: execution_pb2.ExecutionSpec, runner_name: str) -> Any:
        await self._reporter.flush()
        # This host runs the child itself: a server must not dispatch it a second time.
        created = await self._backend.create_execution(
            svc.CreateExecutionRequest(spec=spec, dispatch_by_caller=True)
        )
        runner = self._runner if runner_name == "workflow" else load_runner(runner_name)
        with no_handover():  # the child is this task's step: it ends here, the parent hands over after
            finished = await runner.execute(self._backend, created.metadata.id)
        if finished.status.phase == P.PHASE_SUCCEEDED:
            return from_value(finished.status.output) if finished.status.HasField("output") else None
        error = finished.status.error
        raise WorkflowError(
            type=error.type or WorkflowError.of(ErrorKind.RUNTIME, "").type,
            status=error.status or 500,
            title=error.title or f"{spec.target.kind} execution failed",
            detail=f"child execution {created.metadata.id} ended {phase_name(finished.status.phase)}: {error.detail}",
        )
