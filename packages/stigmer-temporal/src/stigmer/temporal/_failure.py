"""How a Stigmer run that failed ends its Temporal workflow: Failed, not Completed.

The runners' workflows first write FAILED (with the problem) to the Backend, whose phase and error
stay authoritative; then :func:`run_failed` raises a non-retryable ``ApplicationError`` of type
:data:`FAILED_TYPE` so the Temporal UI, ``temporal workflow list`` and a parent's child-workflow
await all see a failure. Histories recorded before this behaviour completed instead: the raise sits
behind the :data:`FAILED_PATCH` marker so they replay unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

__all__ = ["FAILED_PATCH", "FAILED_TYPE", "run_failed"]

#: The ``ApplicationError`` type of a workflow whose Stigmer run failed.
FAILED_TYPE = "StigmerExecutionFailed"
#: The patch marker of workflows that end Failed when their run failed.
FAILED_PATCH = "stigmer.fail-workflow"


def run_failed(execution_id: str, problem: Mapping[str, Any] | None) -> NoReturn:
    """Raise the workflow's failure for a run the Backend already marked FAILED (``problem`` is
    its error as a dict: type, title, status, detail)."""
    from temporalio.exceptions import ApplicationError

    problem = dict(problem or {})
    title = str(problem.get("title") or "execution failed")
    detail = str(problem.get("detail") or "")
    message = f"execution {execution_id} failed: {title}" + (f": {detail}" if detail else "")
    raise ApplicationError(message, problem, type=FAILED_TYPE, non_retryable=True)
