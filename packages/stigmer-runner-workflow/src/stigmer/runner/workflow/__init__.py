"""Stigmer's Serverless Workflow 1.0 interpreter: jq expressions, effects through a pluggable host.

Parse with :func:`load_workflow` (or check a document with :func:`validate_workflow`), run with :class:`Interpreter` (or :func:`run_workflow`) on a
:class:`Host` — :class:`InProcessHost` here, a Temporal host elsewhere.
"""

from ._errors import ERROR_TYPE_BASE, ErrorKind, WorkflowError, WorkflowValidationError, error_type
from ._host import GrpcRequest, Host, HttpRequest, HttpResponse, ProcessResult
from ._inprocess import InProcessHost
from ._interpreter import CHECKPOINT_VERSION, Interpreter, run_workflow
from ._parse import Workflow, check_deterministic, load_workflow, validate_document, validate_workflow
from ._runner import WorkflowRunner
from ._schema import SUPPORTED_DSL_VERSIONS
from ._task_kinds import TASK_KINDS, TaskKind
from ._validate import Problem, Reference, Validation
from ._validated import keep_validated

__all__ = [
    "CHECKPOINT_VERSION",
    "ERROR_TYPE_BASE",
    "SUPPORTED_DSL_VERSIONS",
    "TASK_KINDS",
    "ErrorKind",
    "GrpcRequest",
    "Host",
    "HttpRequest",
    "HttpResponse",
    "InProcessHost",
    "Interpreter",
    "Problem",
    "ProcessResult",
    "Reference",
    "TaskKind",
    "Validation",
    "Workflow",
    "WorkflowError",
    "WorkflowRunner",
    "WorkflowValidationError",
    "check_deterministic",
    "error_type",
    "keep_validated",
    "load_workflow",
    "run_workflow",
    "validate_document",
    "validate_workflow",
]
