"""Errors: document validation failures, and RFC 7807 faults raised while a workflow runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from stigmer.core import InvalidArgument

__all__ = [
    "ERROR_TYPE_BASE",
    "ErrorKind",
    "WorkflowError",
    "WorkflowValidationError",
    "error_type",
    "normalize_error_type",
]

#: The spec's base URI of standard error types (DSL 1.0).
ERROR_TYPE_BASE: Final = "https://serverlessworkflow.io/spec/1.0.0/errors/"

# Earlier drafts and the conformance kit spell the same standard types under other hosts/paths.
_LEGACY_PREFIXES: Final = (
    "https://serverlessworkflow.io/spec/1.0.0/errors/",
    "https://serverlessworkflow.io/errors/",
    "https://open-workflow-specification.org/spec/1.0.0/errors/",
    "https://open-workflow-specification.org/dsl/errors/types/",
    "https://open-workflow-specification.org/errors/types/",
    "https://open-workflow-specification.org/errors/",
)


class ErrorKind:
    """The standard error kinds of the DSL, with their default HTTP-like status codes."""

    CONFIGURATION: Final = "configuration"
    VALIDATION: Final = "validation"
    EXPRESSION: Final = "expression"
    AUTHENTICATION: Final = "authentication"
    AUTHORIZATION: Final = "authorization"
    TIMEOUT: Final = "timeout"
    COMMUNICATION: Final = "communication"
    RUNTIME: Final = "runtime"

    STATUS: Final[Mapping[str, int]] = {
        "configuration": 400,
        "validation": 400,
        "expression": 400,
        "authentication": 401,
        "authorization": 403,
        "timeout": 408,
        "communication": 500,
        "runtime": 500,
    }


def error_type(kind: str) -> str:
    """The standard type URI of an error kind (``error_type("timeout")``)."""
    return ERROR_TYPE_BASE + kind


def normalize_error_type(uri: str) -> str:
    """Map the standard error types spelled under older hosts to the canonical URI.

    Custom (non-standard) types are returned unchanged.
    """
    for prefix in _LEGACY_PREFIXES:
        if uri.startswith(prefix):
            kind = uri[len(prefix) :]
            if kind in ErrorKind.STATUS:
                return ERROR_TYPE_BASE + kind
    return uri


class WorkflowValidationError(InvalidArgument):
    """A workflow document is malformed; ``problems`` lists ``(path, message)`` pairs.

    ``path`` is a JSON pointer into the document (``/do/2/fetch/try/0/get``) and
    names the offending task and field.
    """

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems: tuple[tuple[str, str], ...] = tuple(problems)
        lines = [f"{path or '/'}: {message}" for path, message in self.problems]
        head = "invalid workflow document"
        if len(lines) == 1:
            message = f"{head}: {lines[0]}"
        else:
            message = head + ":\n" + "\n".join(f"  - {line}" for line in lines)
        super().__init__(message, field_paths=[path for path, _ in self.problems])


class WorkflowError(Exception):
    """A workflow fault, carrying an RFC 7807 problem object (``type``, ``status``, ...).

    Raised by tasks while a workflow runs (and caught by ``try``), and by
    :meth:`Interpreter.run` when the workflow faults.
    """

    def __init__(
        self,
        type: str,
        status: int,
        title: str | None = None,
        detail: str | None = None,
        instance: str | None = None,
        **extra: Any,
    ) -> None:
        self.problem: dict[str, Any] = {"type": type, "status": status}
        if title is not None:
            self.problem["title"] = title
        if detail is not None:
            self.problem["detail"] = detail
        if instance is not None:
            self.problem["instance"] = instance
        self.problem.update(extra)
        super().__init__(self._describe())

    @classmethod
    def of(
        cls, kind: str, detail: str, *, title: str | None = None, status: int | None = None
    ) -> WorkflowError:
        """Build a standard error of ``kind`` (see :class:`ErrorKind`)."""
        return cls(
            type=error_type(kind),
            status=status if status is not None else ErrorKind.STATUS[kind],
            title=title or f"{kind.capitalize()} Error",
            detail=detail,
        )

    @classmethod
    def from_problem(cls, problem: Mapping[str, Any]) -> WorkflowError:
        err = cls(type=str(problem.get("type", "")), status=_as_int(problem.get("status")))
        err.problem = dict(problem)
        err.args = (err._describe(),)
        return err

    @property
    def type(self) -> str:
        return str(self.problem.get("type", ""))

    @property
    def status(self) -> int:
        return _as_int(self.problem.get("status"))

    @property
    def instance(self) -> str | None:
        value = self.problem.get("instance")
        return value if isinstance(value, str) else None

    def with_instance(self, instance: str) -> WorkflowError:
        """Set ``instance`` (the task path) unless it is already set; returns self."""
        if not self.problem.get("instance"):
            self.problem["instance"] = instance
            self.args = (self._describe(),)
        return self

    def _describe(self) -> str:
        parts = [str(self.problem.get("title") or self.problem.get("type"))]
        if self.problem.get("detail"):
            parts.append(str(self.problem["detail"]))
        if self.problem.get("instance"):
            parts.append(f"(at {self.problem['instance']})")
        return (
            f"[{self.problem.get('status')}] "
            + ": ".join(parts[:2])
            + (" " + parts[2] if len(parts) > 2 else "")
        )


def _as_int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 500
