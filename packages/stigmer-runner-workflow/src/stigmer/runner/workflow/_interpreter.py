"""The interpreter core: task lists and ``then``, the task lifecycle (input → if → run → output →
export), timeouts and schemas. Expressions live in ``_evaluation``, checkpoints in ``_checkpoint``,
and each task kind in ``_task_kinds`` (the registry) and ``_tasks`` (the handlers)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from stigmer.core import StigmerError, new_id

from ._checkpoint import CHECKPOINT_VERSION, Checkpointing
from ._dialect import dialect_of
from ._errors import ErrorKind, WorkflowError
from ._evaluation import Evaluating, timestamp
from ._expr import truthy
from ._host import Host
from ._limits import Limits, limit_exceeded
from ._parse import Workflow, load_workflow
from ._schema import validate_against
from ._task_kinds import TaskKind, kind_of
from ._tasks.extensions import run_with_extensions
from ._tasks.oauth import TokenCache
from ._telemetry import TaskSpans

__all__ = ["CHECKPOINT_VERSION", "Interpreter", "Scope", "run_workflow"]

#: Tasks after which an in-process run yields to the event loop (a server's other calls).
_YIELD_EVERY: Final = 32


class EndWorkflow(Exception):
    """``then: end`` — stop the whole workflow with ``output``."""

    def __init__(self, output: Any) -> None:
        super().__init__("end")
        self.output = output


@dataclass(frozen=True)
class Scope:
    """Variables visible to expressions at one point: ``$input``, ``$task``, loop and catch names."""

    variables: Mapping[str, Any] = field(default_factory=dict)

    def with_vars(self, **values: Any) -> Scope:
        scope = object.__new__(Scope)  # as Scope(...) makes it, without the frozen __init__'s cost
        object.__setattr__(scope, "variables", {**self.variables, **values})
        return scope


class Interpreter(Checkpointing, Evaluating):
    """Runs one workflow document on a :class:`Host`.

    ``run`` returns the workflow output or raises :class:`WorkflowError` (an RFC 7807 problem
    whose ``instance`` is the failing task's path). Pass ``checkpoint`` (a state the host
    received through ``Host.checkpoint``) to resume after the last completed task.
    """

    def __init__(
        self,
        workflow: Workflow | Mapping[str, Any] | str,
        host: Host,
        *,
        workflow_id: str = "",
        limits: Limits | None = None,
        spans: TaskSpans | None = None,
    ) -> None:
        self.workflow = load_workflow(workflow)
        self.spans = spans  # a span per task when traces are on (``._telemetry``)
        self.host = host
        self.workflow_id = workflow_id
        self.limits = limits if limits is not None else Limits()
        self.tasks_run = 0  # tasks started by this execution (kept in checkpoints)
        self.definition = self.workflow.definition
        self.use: Mapping[str, Any] = self.definition.get("use") or {}
        self.context: Any = {}
        self.dialect = dialect_of(self.definition)  # None: the spec's own semantics (the default)
        if self.dialect is not None:
            self.definition = self.dialect.prepare(self.definition)
        # `$task` is only read by expressions that name it: a document that never does (most)
        # need not have each task described (a dialect's document is described, whatever it says).
        self._describe_tasks = self.dialect is not None or self.workflow.mentions_task
        self.detached: set[asyncio.Future[Any]] = set()  # `await: false` work, collected at the end
        self.authorizations: dict[str, Any] = {}  # task path -> $authorization of its call
        self.tokens = TokenCache()  # OAuth2 access tokens of this run
        self._frames: dict[str, Any] = {}
        self._resume: dict[str, Any] = {}
        self._snapshots: dict[str, tuple[Any, Any]] = {}  # checkpoint copies of the input and context
        self._raw_input: Any = None
        self._input: Any = None
        self._started: datetime.datetime | None = None

    # ----------------------------------------------------------------- running
    async def run(self, input: Any = None, *, checkpoint: Mapping[str, Any] | None = None) -> Any:
        definition = self.definition
        if checkpoint is not None:
            self._restore(checkpoint)
        else:
            self._started = self.host.now()
            self._raw_input = {} if input is None else copy.deepcopy(input)
            self._input = self._raw_input
        if not self.workflow_id:  # `$workflow.id` is never empty: a run without one gets a fresh id
            self.workflow_id = new_id("WorkflowExecution")
        scope = Scope({"input": self._input})
        try:
            if checkpoint is None:
                workflow_input = definition.get("input") or {}
                self._check_schema(workflow_input.get("schema"), self._raw_input, "/input", "workflow input")
                if "from" in workflow_input:
                    self._input = await self.transform(workflow_input["from"], self._raw_input, scope)
                    scope = Scope({"input": self._input})
                if self.dialect is not None:
                    self.dialect.start(self._input)
            timeout = await self.timeout_seconds(definition.get("timeout"), self._input, scope)
            try:
                output = await self.with_timeout(
                    timeout, self.run_list("/do", definition["do"], self._input, scope), "/"
                )
            except EndWorkflow as end:
                output = end.output
            workflow_output = definition.get("output") or {}
            if "as" in workflow_output:
                output = await self.transform(workflow_output["as"], output, scope.with_vars(output=output))
            self._check_schema(workflow_output.get("schema"), output, "/output", "workflow output")
            size = len(json.dumps(output, default=str))
            if size > self.limits.output_bytes:
                raise limit_exceeded(
                    "output_bytes",
                    f"the workflow's output is {size} bytes, over the limit of {self.limits.output_bytes} bytes",
                )
        except WorkflowError as error:
            error.with_instance("/")
            raise
        finally:
            if self.detached:
                await asyncio.gather(*self.detached, return_exceptions=True)
        return output

    async def run_list(self, path: str, tasks: list[Any], data: Any, scope: Scope) -> Any:
        """Run a task list from its first task (or its checkpointed position), following ``then``."""
        return (await self.run_list_with_exit(path, tasks, data, scope))[0]

    async def run_list_with_exit(
        self, path: str, tasks: list[Any], data: Any, scope: Scope
    ) -> tuple[Any, bool]:
        """Like :meth:`run_list`; also tells whether a ``then: exit`` ended the list."""
        exited = False
        index = 0
        resumed = self._resume.pop(path, None)
        if resumed is not None:
            index, data = resumed["next"], resumed["data"]
        names: dict[str, int] | None = None  # the index of each task name, made when `then` names one
        while 0 <= index < len(tasks):
            name, task = next(iter(tasks[index].items()))
            data, directive = await self.run_task(f"{path}/{index}/{name}", name, task, data, scope)
            if directive == "end":
                raise EndWorkflow(data)
            if directive == "exit":
                index, exited = len(tasks), True
            elif directive in (None, "continue"):
                index += 1
            else:
                if names is None:
                    names = {}
                    for i, item in enumerate(tasks):
                        for task_name in item:
                            names.setdefault(task_name, i)  # two tasks of one name: `then` goes to the first
                index = names[directive]
            await self.save_position(path, {"next": index, "data": data})
        return data, exited

    async def run_task(
        self, path: str, name: str, task: Mapping[str, Any], data: Any, scope: Scope
    ) -> tuple[Any, Any]:
        """One task's lifecycle; returns its output and the flow directive to follow."""
        self.tasks_run += 1
        if self.tasks_run > self.limits.tasks:
            error = limit_exceeded("tasks", f"this execution started more than {self.limits.tasks} tasks")
            raise error.with_instance(path)
        if self.tasks_run % _YIELD_EVERY == 0 and self.host_may_wait_in_threads():
            await asyncio.sleep(0)  # a long run of pure tasks lets the host's other work proceed
        try:
            task_input = task.get("input") or {}
            if task_input:
                self._check_schema(task_input.get("schema"), data, f"{path}/input", "task input")
            if self._describe_tasks:
                descriptor = {
                    "name": name,
                    "reference": path,
                    "definition": task,
                    "input": data,
                    "startedAt": timestamp(self.host.now()),
                }
                inner = scope.with_vars(task=descriptor, input=data)
            else:
                inner = scope.with_vars(input=data)
            value = data
            if "from" in task_input:
                value = await self.transform(task_input["from"], data, inner)
                inner = inner.with_vars(input=value)
            if "if" in task and not truthy(await self.expr(task["if"], value, inner)):
                return data, None
        except WorkflowError as error:
            error.with_instance(path)
            await self.host.task_failed(path, name, error.problem)
            raise
        if not (self._resume and f"{path}/wait" in self._resume):
            await self.host.task_started(path, name, value)  # (a resumed wait goes on: started before)
        if self.spans is not None:
            started_kind = kind_of(task)
            self.spans.started(path, name, started_kind.name if started_kind is not None else "")
        try:
            timeout_spec = task.get("timeout")
            if timeout_spec is None:
                raw, directive = await self._execute(path, name, task, value, inner)
            else:
                timeout = await self.timeout_seconds(timeout_spec, value, inner)
                raw, directive = await self.with_timeout(
                    timeout, self._execute(path, name, task, value, inner), path
                )
            authorization = self.authorizations.pop(path, None)
            if authorization is not None:
                inner = inner.with_vars(authorization=authorization)
            output = raw
            task_output = task.get("output")
            if task_output:
                if "as" in task_output:
                    output = await self.transform(task_output["as"], raw, inner.with_vars(output=raw))
                self._check_schema(task_output.get("schema"), output, f"{path}/output", "task output")
            export = task.get("export")
            if export and "as" in export:
                self.context = await self.transform(export["as"], output, inner.with_vars(output=output))
                self._check_schema(export.get("schema"), self.context, f"{path}/export", "exported context")
            if self.dialect is not None:
                kind = kind_of(task)
                self.context = self.dialect.after_task(name, kind.name if kind else "", output, self.context)
        except WorkflowError as error:
            error.with_instance(path)
            self._span_ended(path, error.problem)
            await self.host.task_failed(path, name, error.problem)
            raise
        except (EndWorkflow, asyncio.CancelledError):
            self._span_ended(path)
            raise
        except Exception as exc:  # a host or library failure becomes a runtime fault of this task
            fault = WorkflowError.of(ErrorKind.RUNTIME, _said(exc)).with_instance(path)
            self._span_ended(path, fault.problem)
            await self.host.task_failed(path, name, fault.problem)
            raise fault from exc
        if self.spans is not None:
            self._span_ended(path)
        await self.host.task_completed(path, name, output)
        return output, directive if directive is not None else task.get("then")

    def _span_ended(self, path: str, problem: Mapping[str, Any] | None = None) -> None:
        if self.spans is not None:
            error = None if problem is None else str(problem.get("title") or problem.get("type") or "failed")
            self.spans.ended(path, error)

    async def _execute(
        self, path: str, name: str, task: Mapping[str, Any], data: Any, scope: Scope
    ) -> tuple[Any, Any]:
        kind = kind_of(task)
        if kind is None:
            raise WorkflowError.of(ErrorKind.CONFIGURATION, f"task {name!r} has no type")
        if self.use.get("extensions"):
            return await run_with_extensions(self, path, name, kind, task, data, scope)
        return await self.execute_kind(path, name, kind, task, data, scope)

    async def execute_kind(
        self, path: str, name: str, kind: TaskKind, task: Mapping[str, Any], data: Any, scope: Scope
    ) -> tuple[Any, Any]:
        """Run the body of a task of type ``kind`` (no extensions)."""
        reason = kind.refusal(task) if kind.refusal is not None else None
        if reason is not None:  # what the DSL allows and this runner does not support
            raise WorkflowError.of(ErrorKind.CONFIGURATION, reason)
        return await kind.handler(self, path, task, data, scope)

    # ---------------------------------------------------------------- helpers
    async def timeout_seconds(self, spec: Any, data: Any, scope: Scope) -> float | None:
        """Seconds of a ``timeout`` (inline or a ``use.timeouts`` name); an ``after`` written as an
        expression is evaluated over ``data`` (the task's input after ``input.from``; for the
        workflow, its input after ``input.from``) with the variables of ``scope``."""
        if spec is None:
            return None
        if isinstance(spec, str):
            name = spec
            spec = (self.use.get("timeouts") or {}).get(name)
            if spec is None:
                raise WorkflowError.of(
                    ErrorKind.CONFIGURATION, f"timeout {name!r} is not defined in use.timeouts"
                )
        return await self.duration(spec["after"], data, scope)

    async def with_timeout(self, seconds: float | None, work: Awaitable[Any], where: str) -> Any:
        """Await ``work``, failing with a timeout error after ``seconds`` (measured by ``host.sleep``)."""
        if seconds is None:
            return await work
        body = asyncio.ensure_future(work)
        timer = asyncio.ensure_future(self.host.sleep(seconds))
        try:
            await asyncio.wait({body, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (body, timer):
                if not pending.done():
                    pending.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await pending
        if body.cancelled() or not body.done():
            raise WorkflowError.of(
                ErrorKind.TIMEOUT, f"did not finish within {seconds:g} seconds", title="Timeout"
            ).with_instance(where)
        return body.result()

    def _check_schema(self, schema: Any, value: Any, where: str, what: str) -> None:
        if not isinstance(schema, Mapping):
            return
        if "document" not in schema:
            raise WorkflowError.of(
                ErrorKind.CONFIGURATION, f"{what}: only inline schemas (schema.document) are supported"
            )
        problem = validate_against(schema["document"], value)
        if problem is not None:
            raise WorkflowError.of(ErrorKind.VALIDATION, f"{what} does not match its schema: {problem}")


async def run_workflow(
    workflow: Workflow | Mapping[str, Any] | str,
    host: Host,
    input: Any = None,
    *,
    checkpoint: Mapping[str, Any] | None = None,
    workflow_id: str = "",
    limits: Limits | None = None,
) -> Any:
    """Run a workflow document to completion on ``host``; returns its output.

    ``workflow_id`` is ``$workflow.id``; without one (and no checkpoint holding one) the run gets a
    fresh execution id (``wex_<ulid>``, as the backends make).
    """
    interpreter = Interpreter(workflow, host, workflow_id=workflow_id, limits=limits)
    return await interpreter.run(input, checkpoint=checkpoint)


TaskRunner = Callable[[Interpreter, str, Mapping[str, Any], Any, Scope], Awaitable[tuple[Any, Any]]]


def _said(exc: Exception) -> str:
    """A failure's text: a Stigmer error's own message (its class is a status, not news to the
    reader: no ``NotFound:`` prefix); other exceptions with their type (``ConnectError: ...``)."""
    if isinstance(exc, StigmerError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
