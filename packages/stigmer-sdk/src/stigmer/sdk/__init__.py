"""Stigmer Python SDK: define agents and workflows in code, apply them, run them.

Clients: :class:`Stigmer` (sync) and :class:`AsyncStigmer`. Builders: :class:`Agent`,
:class:`Skill`, :class:`McpServer`, :class:`Environment`, :class:`Workflow` and one class per
workflow task. Results are the ``stigmer.v1`` messages (``Execution``, ``ExecutionEvent``, the
kind messages), with thin helpers on the execution handles. Importing this package opens
nothing: grpc and SQLAlchemy load on the first call that connects.
"""

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
