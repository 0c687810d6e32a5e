"""``TemporalHost``: the interpreter's host inside a Temporal workflow.

Clock, randomness and ids come from the workflow (replay-safe); ``sleep`` is a durable timer;
HTTP calls, processes and child executions are activities; ``listen`` waits for signals;
progress is buffered in the workflow and written before the run waits (a timer, an event, a
child) and with the final status, through a local activity; before an effect, through a local
activity too, or (:attr:`TemporalHost.progress_with_effects`) by the effect's activity: first,
when the progress has waited long enough to be worth showing, else only if the effect itself
takes that long — a quick effect returns it unwritten and it stays buffered. ``get_secrets`` answers references only
(:mod:`._secrets`): the values never enter the workflow.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
    is_cancelled_exception,
)
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from stigmer.core import phase_name
    from stigmer.temporal._visibility import run_memo

    from .._errors import ErrorKind, WorkflowError
    from .._host import GrpcRequest, HttpRequest, HttpResponse, ProcessResult, retry_event
    from .._limits import Limits, check_event
    from ._secrets import scrub, secret_ref, token_ref, token_refs

__all__ = ["STOPPED", "STOPPED_ERROR", "EffectOptions", "TemporalHost"]

PROBLEM_ERROR = "WorkflowProblem"
#: An effect's activity found the execution cancelled or finished elsewhere when it reported the
#: progress it carried: it did not act.
STOPPED_ERROR = "ExecutionStopped"
#: What a run's refused report (or an effect's) says.
STOPPED = "the execution was cancelled or finished elsewhere"
#: The Temporal workflow type of a Stigmer workflow execution (also of ``run: workflow`` children).
WORKFLOW_NAME = "stigmer.workflow"
#: The Temporal workflow type of an agent execution (``call: agent`` children).
AGENT_WORKFLOW = "stigmer.agent"
#: Marks histories in which children run as child workflows (earlier ones awaited server-started runs).
CHILD_WORKFLOWS_PATCH = "stigmer.workflow.child-workflows"
#: Buffered progress events written without waiting for the next effect.
FLUSH_EVENTS = 200
#: Seconds before progress is worth showing: buffered this long, an effect's activity writes it
#: before it acts; else the activity writes it once the effect has run this long.
PROGRESS_AFTER = 0.25
#: Buffered events an effect's activity writes before it acts, however young.
PROGRESS_EVENTS = 50


@dataclass(frozen=True)
class EffectOptions:
    """How effect activities run: the DSL's own ``retry``/``timeout`` decide about task failures;
    these only cover a lost worker (heartbeat) and an effect with no task timeout."""

    start_to_close: datetime.timedelta = datetime.timedelta(hours=24)
    heartbeat: datetime.timedelta = datetime.timedelta(seconds=10)
    report_timeout: datetime.timedelta = datetime.timedelta(seconds=30)
    # A worker lost mid-effect: try again (at least once semantics, like any durable runner).
    retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(
            maximum_attempts=3,
            non_retryable_error_types=[PROBLEM_ERROR, STOPPED_ERROR],
            initial_interval=datetime.timedelta(seconds=1),
        )
    )


class TemporalHost:
    """Implements :class:`stigmer.runner.workflow.Host` with Temporal workflow primitives."""

    #: Workflow code: expressions are evaluated on the workflow's own thread, never in others.
    deterministic = True

    def __init__(
        self,
        execution_id: str,
        options: EffectOptions | None = None,
        *,
        history_limit: int = 0,
        agent_queue: str = "",
        limits: Limits | None = None,
        events_recorded: int = 0,
        checkpoint: Mapping[str, Any] | None = None,
        run_limits: Mapping[str, Any] | None = None,
        progress_with_effects: bool = False,
    ) -> None:
        self.execution_id = execution_id
        self.agent_queue = agent_queue  # where `call: agent` children run (the server says)
        self.options = options or EffectOptions()
        self.history_limit = history_limit
        self.limits = limits if limits is not None else Limits()
        #: The run's limits as its start gave them (or as the worker read them): its children and
        #: a continued run get the same.
        self.run_limits = dict(run_limits) if run_limits is not None else None
        #: The progress made before an effect goes with the effect's activity, which writes it
        #: (first, or if the effect is slow) instead of a local activity of its own (runs whose
        #: start gave their limits; histories recorded before replay as they ran).
        self.progress_with_effects = progress_with_effects
        self._buffered_since: datetime.datetime | None = None  # the oldest unwritten event's time
        self.events_recorded = events_recorded  # across continue-as-new, for the event limit
        # the run's starting point, then the last completed task's (``last_checkpoint``)
        self._checkpoint: dict[str, Any] | None = dict(checkpoint) if checkpoint else None
        self.events: list[dict[str, Any]] = []  # listen: delivered by signals (and own emits)
        self._events_out: list[dict[str, Any]] = []
        self._tasks: dict[str, dict[str, Any]] = {}
        self._attempts: dict[str, int] = {}
        self.stopped = False
        self._concealed: dict[str, str] = {}
        self._token_policies: dict[str, dict[str, Any]] = {}  # OAuth2 policies by token reference

    # ----------------------------------------------------------- determinism
    def now(self) -> datetime.datetime:
        return workflow.now()

    def random(self) -> float:
        return workflow.random().random()

    def new_id(self) -> str:
        return str(workflow.uuid4())

    async def sleep(self, seconds: float) -> None:
        await self.flush()
        await workflow.sleep(max(seconds, 0.001))

    # --------------------------------------------------------------- secrets
    async def get_secrets(self, names: Sequence[str]) -> Mapping[str, str]:
        return {name: secret_ref(name) for name in names}

    async def oauth2_token(self, scheme: str, policy: Mapping[str, Any]) -> str:
        """A reference to the access token for ``policy``: the HTTP activity that sends it fetches
        the token (with the client secret resolved there) and scrubs it from what it returns."""
        digest = hashlib.sha256(json.dumps([scheme, policy], sort_keys=True, default=str).encode())
        key = digest.hexdigest()[:32]
        self._token_policies[key] = {"scheme": scheme, "policy": dict(policy)}
        return token_ref(key)

    # --------------------------------------------------------------- effects
    async def _effect(self, name: str, arg: Any, *, slow_only: bool = True) -> Any:
        """Run an effect's activity. ``slow_only``: the activity may leave the progress it
        carries unwritten when the effect is quick (its result then says ``progressSent:
        false``, and the progress goes back into the buffer); else it writes it first."""
        progress: dict[str, Any] | None = None
        since = self._buffered_since
        if self.progress_with_effects:
            progress = self._take({})
            if progress is not None:
                waited = (workflow.now() - since).total_seconds() if since is not None else 0.0
                first = (
                    not slow_only or waited >= PROGRESS_AFTER or len(progress["events"]) >= PROGRESS_EVENTS
                )
                arg = {**arg, "progress": progress, "progressFirst": first}
        else:
            await self.flush()
        try:
            result = await workflow.execute_activity(
                name,
                arg,
                start_to_close_timeout=self.options.start_to_close,
                heartbeat_timeout=self.options.heartbeat,
                retry_policy=self.options.retry,
            )
        except ActivityError as error:
            if is_cancelled_exception(error) and workflow.cancellation_reason() is not None:
                raise asyncio.CancelledError from None  # the workflow is cancelled, not the task failed
            cause = error.cause
            if isinstance(cause, ApplicationError) and cause.type == STOPPED_ERROR:
                self.stopped = True
                raise WorkflowError.of(ErrorKind.RUNTIME, STOPPED) from None
            problem = isinstance(cause, ApplicationError) and cause.type == PROBLEM_ERROR and cause.details
            if progress is not None and not arg["progressFirst"] and not (problem and _sent(cause.details)):  # type: ignore[union-attr]
                # Not written (the effect failed quickly, or how far it got is unknown): the
                # failure's report writes it. Progress sent first was written.
                self._restore(progress, since)
            if problem:
                raise WorkflowError.from_problem(dict(cause.details[0])) from None  # type: ignore[union-attr]
            detail = str(cause) if cause is not None else str(error)
            raise WorkflowError.of(ErrorKind.RUNTIME, f"{name} failed: {detail}") from None
        if progress is not None and isinstance(result, dict) and result.pop("progressSent", True) is False:
            self._restore(progress, since)
        return result

    async def http_request(self, request: HttpRequest) -> HttpResponse:
        body: Any = request.body
        wire: dict[str, Any] = {
            "method": request.method,
            "url": request.url,
            "headers": dict(request.headers),
            "query": dict(request.query),
            "followRedirects": request.follow_redirects,
        }
        if isinstance(body, bytes):
            wire["bodyBase64"] = base64.b64encode(body).decode("ascii")
        else:
            wire["body"] = body
        args: dict[str, Any] = {"executionId": self.execution_id, "request": wire}
        # The policies of the tokens the request refers to, and of those they refer to in turn
        # (a token exchange whose subject is another policy's access token).
        tokens: dict[str, dict[str, Any]] = {}
        pending = sorted(token_refs(wire))
        while pending:
            key = pending.pop(0)
            if key not in tokens and key in self._token_policies:
                tokens[key] = self._token_policies[key]
                pending.extend(sorted(token_refs(tokens[key]["policy"])))
        if tokens:
            args["tokens"] = tokens
        result = await self._effect("stigmer.workflow.http", args)
        return HttpResponse(
            status=int(result["status"]),
            headers=dict(result["headers"]),
            content=base64.b64decode(result["content"]),
            url=str(result.get("url", "")),
        )

    async def grpc_call(self, request: GrpcRequest) -> Any:
        """An activity, like HTTP: secret and token references are resolved there."""
        wire: dict[str, Any] = {
            "protoUri": request.proto_uri,
            "proto": request.proto,
            "service": request.service,
            "method": request.method,
            "host": request.host,
            "port": request.port,
            "arguments": request.arguments,
            "metadata": dict(request.metadata),
        }
        args: dict[str, Any] = {"executionId": self.execution_id, "request": wire}
        tokens = {key: self._token_policies[key] for key in token_refs(wire) if key in self._token_policies}
        if tokens:
            args["tokens"] = tokens
        return (await self._effect("stigmer.workflow.grpc", args))["response"]

    async def run_shell(
        self, command: str, arguments: Sequence[str], environment: Mapping[str, str], stdin: str | None
    ) -> ProcessResult:
        args = {
            "executionId": self.execution_id,
            "kind": "shell",
            "command": command,
            "arguments": list(arguments),
            "environment": dict(environment),
            "stdin": stdin,
        }
        return _process(await self._effect("stigmer.workflow.process", args))

    async def run_script(
        self,
        language: str,
        code: str,
        arguments: Sequence[str],
        environment: Mapping[str, str],
        stdin: str | None,
    ) -> ProcessResult:
        args = {
            "executionId": self.execution_id,
            "kind": "script",
            "language": language,
            "code": code,
            "arguments": list(arguments),
            "environment": dict(environment),
            "stdin": stdin,
        }
        return _process(await self._effect("stigmer.workflow.process", args))

    async def call_agent(
        self,
        agent: str,
        message: Any,
        session: str | None,
        *,
        attachments: Sequence[Mapping[str, Any]] = (),
    ) -> Any:
        """A child agent execution: a Temporal child workflow on the agents' queue when the server
        said which queue that is (``agentQueue``), else one the server starts, awaited."""
        text = message if isinstance(message, str) else json.dumps(message)
        args: dict[str, Any] = {
            "executionId": self.execution_id,
            "kind": "Agent",
            "name": agent,
            "message": text,
            "session": session,
        }
        if attachments:
            args["attachments"] = [dict(a) for a in attachments]
        queue = self.agent_queue if self._child_workflows() else ""
        return await self._child(args, AGENT_WORKFLOW if queue else "", queue)

    async def run_workflow(self, namespace: str, name: str, version: str, input: Any) -> Any:
        """A child execution started as a Temporal child workflow (id = its execution id) on this
        task queue: cancelling the parent cancels it, and its progress is its own execution's."""
        args = {"executionId": self.execution_id, "kind": "Workflow", "name": name, "input": input}
        # `run: workflow` has always been a child workflow (only `call: agent` changed with the
        # patch); asking keeps the patch marker where histories since the patch recorded it.
        self._child_workflows()
        return await self._child(args, WORKFLOW_NAME, workflow.info().task_queue)

    def _child_workflows(self) -> bool:
        """Whether children run as child workflows (not in histories recorded before they did)."""
        return workflow.patched(CHILD_WORKFLOWS_PATCH)

    async def _child(self, args: dict[str, Any], workflow_type: str = "", queue: str = "") -> Any:
        """Create a child execution and wait for its end: as a child workflow of ``workflow_type``
        on ``queue`` (the server then leaves starting it to this workflow), else started by the
        server. Its output or error is read from the Backend."""
        args["callId"] = self.new_id()  # replay-safe; lets a retried creation find its execution
        if workflow_type:
            args["dispatchByCaller"] = True
        child_id = await self._effect("stigmer.workflow.child", args, slow_only=False)
        if workflow_type:
            memo = run_memo(str(args.get("kind") or ""), str(args.get("name") or ""))
            await self._run_child_workflow(child_id, workflow_type, queue, memo)
        try:
            result = await workflow.execute_activity(
                "stigmer.workflow.await",
                child_id,
                start_to_close_timeout=datetime.timedelta(days=7),
                heartbeat_timeout=self.options.heartbeat,
                retry_policy=RetryPolicy(maximum_attempts=0),
            )
        except ActivityError as failed:
            if is_cancelled_exception(failed) and workflow.cancellation_reason() is not None:
                raise asyncio.CancelledError from None
            raise WorkflowError.of(
                ErrorKind.RUNTIME, f"waiting for child execution {child_id}: {failed}"
            ) from None
        if phase_name(result["phase"]) == "SUCCEEDED":
            return result.get("output")
        error = result.get("error") or {}
        raise WorkflowError(
            type=error.get("type") or WorkflowError.of(ErrorKind.RUNTIME, "").problem["type"],
            status=int(error.get("status") or 500),
            title=error.get("title") or f"{args['kind']} execution failed",
            detail=f"child execution {child_id} ended {phase_name(result['phase'])}: {error.get('detail', '')}",
        )

    async def _run_child_workflow(
        self, child_id: str, workflow_type: str, queue: str, memo: dict[str, str] | None = None
    ) -> None:
        """Start and await the child's workflow; cancelling this workflow cancels it."""
        child_args: dict[str, Any] = {"executionId": child_id}
        if workflow_type == WORKFLOW_NAME and self.agent_queue:
            child_args["agentQueue"] = self.agent_queue
        if workflow_type == WORKFLOW_NAME and self.run_limits is not None:
            child_args["limits"] = self.run_limits  # a child runs within its parent's limits
        try:
            await workflow.execute_child_workflow(
                workflow_type,
                child_args,
                id=child_id,
                task_queue=queue,
                parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                memo=memo,  # the child's target (kind, name), shown by the Temporal UI
            )
        except ChildWorkflowError:
            if workflow.cancellation_reason() is not None:
                raise asyncio.CancelledError from None  # this workflow was cancelled, and with it the child
            # Otherwise the child failed or was cancelled on its own: its execution says how.
        except WorkflowAlreadyStartedError:
            pass  # started before a crash of this worker: its execution record is awaited below

    # ---------------------------------------------------------------- events
    def deliver(self, event: Mapping[str, Any]) -> None:
        self.events.append(dict(event))

    async def listen(self, filters: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        await self.flush()
        await workflow.wait_condition(lambda: bool(self.events))
        return self.events.pop(0)

    async def emit(self, event: Mapping[str, Any]) -> None:
        self._record("event.emitted", str(event.get("type", "")), str(event.get("type", "")), dict(event))
        self.deliver(event)

    # ------------------------------------------------------------- progress
    def _record(
        self, type: str, subject: str, text: str, data: Any, task: dict[str, Any] | None = None
    ) -> None:
        if type != "task.failed":  # the failure that ends a run is always recorded
            size = len(json.dumps(data, default=str)) if data is not None else 0
            check_event(self.limits, self.events_recorded + 1, size, subject)
        self.events_recorded += 1
        if not self._events_out:
            self._buffered_since = workflow.now()
        self._events_out.append(
            {"type": type, "subject": subject, "text": text, "data": data, "time": workflow.now().isoformat()}
        )
        if task is not None:
            self._tasks[task["path"]] = task

    def _task(
        self, path: str, name: str, phase: str, *, started: bool = False, finished: bool = False
    ) -> dict[str, Any]:
        now = workflow.now().isoformat()
        task = dict(self._tasks.get(path) or {"path": path, "name": name})
        task.update(phase=phase, attempts=self._attempts.get(path, 1))
        if started:
            task["startedAt"] = now
            task.pop("finishedAt", None)
        if finished:
            task["finishedAt"] = now
        return task

    async def task_started(self, path: str, name: str, input: Any) -> None:
        self._attempts.setdefault(path, 1)
        self._record("task.started", path, name, input, self._task(path, name, "RUNNING", started=True))

    async def task_completed(self, path: str, name: str, output: Any) -> None:
        self._record("task.completed", path, name, output, self._task(path, name, "SUCCEEDED", finished=True))
        if len(self._events_out) >= FLUSH_EVENTS:  # long effect-free stretches still show progress
            await self.flush()

    async def task_failed(self, path: str, name: str, error: Mapping[str, Any]) -> None:
        detail = str(error.get("detail") or error.get("title") or "")
        self._record(
            "task.failed", path, detail, dict(error), self._task(path, name, "FAILED", finished=True)
        )

    @property
    def report_iterations(self) -> bool:
        """``for`` iterations are reported as tasks of their own; histories recorded before
        that replay without them (a patch marker)."""
        return workflow.patched("stigmer-for-iteration-tasks")

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
        self._attempts[path] = self._attempts.get(path, 1) + 1
        text, data = retry_event(attempt, max_attempts, delay, error)
        self._record("task.retried", path, text, data, self._task(path, name, "RUNNING"))

    def conceal(self, *values: str) -> None:
        """Mask ``values`` (e.g. OAuth2 access tokens) in every event, output and error it reports."""
        for value in values:
            if value:
                self._concealed[f"concealed-{len(self._concealed)}"] = value

    async def checkpoint(self, state: Mapping[str, Any]) -> None:
        """The history is the checkpoint — until it grows long: then continue as a new run that
        resumes from ``state`` (never while ``fork`` branches run: their in-flight work would be
        lost). The latest is kept for the final report of a failed run, which a retry continues."""
        self._checkpoint = json.loads(json.dumps(state))
        if not self.history_limit or any("/fork/" in key for key in state.get("frames") or {}):
            return
        info = workflow.info()
        if info.get_current_history_length() < self.history_limit and not info.is_continue_as_new_suggested():
            return
        await self.flush()
        workflow.continue_as_new(
            {
                "executionId": self.execution_id,
                "agentQueue": self.agent_queue,
                "checkpoint": dict(state),
                "events": self.events,
                "historyLimit": self.history_limit,
                "eventsRecorded": self.events_recorded,
                **({"limits": self.run_limits} if self.run_limits is not None else {}),
            }
        )

    def last_checkpoint(self) -> dict[str, Any]:
        """``{"checkpoint": state}`` of the last completed task (empty before the first), for
        the final report of a run that fails or is cancelled."""
        return {"checkpoint": self._checkpoint} if self._checkpoint else {}

    async def flush(self, **final: Any) -> bool:
        """Write buffered events and task progress (and ``final`` phase/output/error) in one local
        activity; False when the backend refused (cancelled or finished elsewhere)."""
        if self.stopped:
            return False
        batch = self._take(final)
        if batch is None:
            return True
        accepted = await workflow.execute_local_activity(
            "stigmer.workflow.report",
            batch,
            start_to_close_timeout=self.options.report_timeout,
            retry_policy=RetryPolicy(maximum_interval=datetime.timedelta(seconds=5)),
        )
        if not accepted:
            self.stopped = True
            if not final:
                raise WorkflowError.of(ErrorKind.RUNTIME, STOPPED)
        return bool(accepted)

    def _take(self, final: Mapping[str, Any]) -> dict[str, Any] | None:
        """The buffered events and task progress (and ``final``) as one report, taken out of the
        buffers (None when there is nothing to report)."""
        if not self._events_out and not self._tasks and not final:
            return None
        batch: dict[str, Any] = {
            "executionId": self.execution_id,
            "events": self._events_out,
            "tasks": list(self._tasks.values()),
            **final,
        }
        self._events_out, self._tasks = [], {}
        self._buffered_since = None
        if self._concealed:
            batch = scrub(batch, self._concealed)
        return batch

    def _restore(self, progress: Mapping[str, Any], since: datetime.datetime | None) -> None:
        """Put progress an effect's activity left unwritten back in front of the buffer (a task's
        newer entry, buffered since, wins over its older one), as old as it was."""
        self._events_out = [*progress["events"], *self._events_out]
        tasks = {task["path"]: task for task in progress["tasks"]}
        tasks.update(self._tasks)
        self._tasks = tasks
        if self._events_out:
            self._buffered_since = since or self._buffered_since or workflow.now()


def _sent(details: Sequence[Any]) -> bool:
    """Whether a failed effect's activity wrote the progress it carried (its error says)."""
    return len(details) > 1 and isinstance(details[1], dict) and bool(details[1].get("progressSent"))


def _process(result: Mapping[str, Any]) -> ProcessResult:
    return ProcessResult(code=int(result["code"]), stdout=str(result["stdout"]), stderr=str(result["stderr"]))
