"""Stigmer Python SDK: define agents and workflows in code, apply them, run them.

Clients: :class:`Stigmer` (sync) and :class:`AsyncStigmer`. Builders: :class:`Agent`,
:class:`Skill`, :class:`McpServer`, :class:`Environment`, :class:`Workflow` and one class per
workflow task. Results are the ``stigmer.v1`` messages (``Execution``, ``ExecutionEvent``, the
kind messages), with thin helpers on the execution handles. Importing this package opens
nothing: grpc or the database driver loads on the first call that connects.
"""

from typing import TYPE_CHECKING

from stigmer.core._lazy import lazy_attributes

if TYPE_CHECKING:
    from stigmer.core import StigmerError
    from stigmer.sdk._client import Applied, AsyncStigmer, ExecutionPage, ResourcePage
    from stigmer.sdk._errors import ApprovalRequired, ExecutionCancelled, ExecutionFailed, ExecutionTimeout
    from stigmer.sdk._events import Published
    from stigmer.sdk._execution import AsyncExecution
    from stigmer.sdk._export import Export
    from stigmer.sdk._schedules import Fired, ScheduleInfo
    from stigmer.sdk._sync import Execution, Stigmer
    from stigmer.sdk._validate import ValidationFailed, ValidationProblem, validate
    from stigmer.sdk.authoring._builder import ResourceBuilder
    from stigmer.sdk.authoring._calls import (
        Call,
        CallAgent,
        CallGrpc,
        CallHttp,
        CallOpenApi,
        RunScript,
        RunShell,
        RunWorkflow,
    )
    from stigmer.sdk.authoring._codegen import to_python
    from stigmer.sdk.authoring._expressions import expr, secret
    from stigmer.sdk.authoring._resources import (
        Agent,
        Environment,
        EnvVar,
        McpServer,
        McpUsage,
        Model,
        Session,
        Skill,
        SubAgent,
    )
    from stigmer.sdk.authoring._tasks import (
        Case,
        Catch,
        Do,
        Emit,
        For,
        Fork,
        Listen,
        Raise,
        Retry,
        Set,
        Switch,
        Task,
        Try,
        Wait,
    )
    from stigmer.sdk.authoring._workflow import Workflow

#: public name -> the module that defines it, imported on first use (`import stigmer.sdk` loads only what a caller touches)
_LAZY: dict[str, str] = {
    "Agent": "stigmer.sdk.authoring._resources",
    "Applied": "stigmer.sdk._client",
    "ApprovalRequired": "stigmer.sdk._errors",
    "AsyncExecution": "stigmer.sdk._execution",
    "AsyncStigmer": "stigmer.sdk._client",
    "Call": "stigmer.sdk.authoring._calls",
    "CallAgent": "stigmer.sdk.authoring._calls",
    "CallGrpc": "stigmer.sdk.authoring._calls",
    "CallHttp": "stigmer.sdk.authoring._calls",
    "CallOpenApi": "stigmer.sdk.authoring._calls",
    "Case": "stigmer.sdk.authoring._tasks",
    "Catch": "stigmer.sdk.authoring._tasks",
    "Do": "stigmer.sdk.authoring._tasks",
    "Emit": "stigmer.sdk.authoring._tasks",
    "EnvVar": "stigmer.sdk.authoring._resources",
    "Environment": "stigmer.sdk.authoring._resources",
    "Execution": "stigmer.sdk._sync",
    "ExecutionCancelled": "stigmer.sdk._errors",
    "ExecutionFailed": "stigmer.sdk._errors",
    "ExecutionPage": "stigmer.sdk._client",
    "ExecutionTimeout": "stigmer.sdk._errors",
    "Export": "stigmer.sdk._export",
    "Fired": "stigmer.sdk._schedules",
    "For": "stigmer.sdk.authoring._tasks",
    "Fork": "stigmer.sdk.authoring._tasks",
    "Listen": "stigmer.sdk.authoring._tasks",
    "McpServer": "stigmer.sdk.authoring._resources",
    "McpUsage": "stigmer.sdk.authoring._resources",
    "Model": "stigmer.sdk.authoring._resources",
    "Published": "stigmer.sdk._events",
    "Raise": "stigmer.sdk.authoring._tasks",
    "ResourceBuilder": "stigmer.sdk.authoring._builder",
    "ResourcePage": "stigmer.sdk._client",
    "Retry": "stigmer.sdk.authoring._tasks",
    "RunScript": "stigmer.sdk.authoring._calls",
    "RunShell": "stigmer.sdk.authoring._calls",
    "RunWorkflow": "stigmer.sdk.authoring._calls",
    "ScheduleInfo": "stigmer.sdk._schedules",
    "Session": "stigmer.sdk.authoring._resources",
    "Set": "stigmer.sdk.authoring._tasks",
    "Skill": "stigmer.sdk.authoring._resources",
    "Stigmer": "stigmer.sdk._sync",
    "StigmerError": "stigmer.core",
    "SubAgent": "stigmer.sdk.authoring._resources",
    "Switch": "stigmer.sdk.authoring._tasks",
    "Task": "stigmer.sdk.authoring._tasks",
    "Try": "stigmer.sdk.authoring._tasks",
    "ValidationFailed": "stigmer.sdk._validate",
    "ValidationProblem": "stigmer.sdk._validate",
    "Wait": "stigmer.sdk.authoring._tasks",
    "Workflow": "stigmer.sdk.authoring._workflow",
    "expr": "stigmer.sdk.authoring._expressions",
    "secret": "stigmer.sdk.authoring._expressions",
    "to_python": "stigmer.sdk.authoring._codegen",
    "validate": "stigmer.sdk._validate",
}

__all__ = [
    "Agent",
    "Applied",
    "ApprovalRequired",
    "AsyncExecution",
    "AsyncStigmer",
    "Call",
    "CallAgent",
    "CallGrpc",
    "CallHttp",
    "CallOpenApi",
    "Case",
    "Catch",
    "Do",
    "Emit",
    "EnvVar",
    "Environment",
    "Execution",
    "ExecutionCancelled",
    "ExecutionFailed",
    "ExecutionPage",
    "ExecutionTimeout",
    "Export",
    "Fired",
    "For",
    "Fork",
    "Listen",
    "McpServer",
    "McpUsage",
    "Model",
    "Published",
    "Raise",
    "ResourceBuilder",
    "ResourcePage",
    "Retry",
    "RunScript",
    "RunShell",
    "RunWorkflow",
    "ScheduleInfo",
    "Session",
    "Set",
    "Skill",
    "Stigmer",
    "StigmerError",
    "SubAgent",
    "Switch",
    "Task",
    "Try",
    "ValidationFailed",
    "ValidationProblem",
    "Wait",
    "Workflow",
    "expr",
    "secret",
    "to_python",
    "validate",
]


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY, __all__)
