"""Stigmer's Serverless Workflow 1.0 interpreter (jq expressions, pluggable effect hosts)."""

from ._errors import ERROR_TYPE_BASE, ErrorKind, WorkflowError, WorkflowValidationError, error_type
from ._parse import Workflow, check_deterministic, load_workflow

__all__ = [
    "ERROR_TYPE_BASE",
    "ErrorKind",
    "Workflow",
    "WorkflowError",
    "WorkflowValidationError",
    "check_deterministic",
    "error_type",
    "load_workflow",
]
