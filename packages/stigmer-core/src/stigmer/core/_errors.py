"""The one exception tree of Stigmer, and its mapping to and from gRPC status codes."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "AlreadyExists",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "StigmerError",
    "Unauthenticated",
    "Unavailable",
    "error_from_grpc_code",
]


class StigmerError(Exception):
    """Root of every error Stigmer raises on purpose.

    ``message`` says what went wrong and, where possible, what to do about it.
    ``grpc_code`` is the name of the matching ``grpc.StatusCode`` member.
    """

    grpc_code = "UNKNOWN"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(StigmerError):
    """A referenced resource, execution, secret or artifact does not exist."""

    grpc_code = "NOT_FOUND"


class AlreadyExists(StigmerError):
    """Something with the same identity exists and may not be replaced."""

    grpc_code = "ALREADY_EXISTS"


class InvalidArgument(StigmerError):
    """Input is malformed; ``field_paths`` name the offending fields (e.g. ``spec.model.name``)."""

    grpc_code = "INVALID_ARGUMENT"

    def __init__(self, message: str, field_paths: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.field_paths = tuple(field_paths)


class FailedPrecondition(StigmerError):
    """The request is well formed but the system is not in a state that allows it."""

    grpc_code = "FAILED_PRECONDITION"


class PermissionDenied(StigmerError):
    """The caller is known but not allowed to do this."""

    grpc_code = "PERMISSION_DENIED"


class Unauthenticated(StigmerError):
    """The caller presented no valid credentials."""

    grpc_code = "UNAUTHENTICATED"


class Unavailable(StigmerError):
    """A backend, server or dependency cannot be reached right now; retrying may help."""

    grpc_code = "UNAVAILABLE"


_BY_CODE: dict[str, type[StigmerError]] = {
    cls.grpc_code: cls
    for cls in (
        NotFound,
        AlreadyExists,
        InvalidArgument,
        FailedPrecondition,
        PermissionDenied,
        Unauthenticated,
        Unavailable,
    )
}
_BY_CODE["DEADLINE_EXCEEDED"] = Unavailable
_BY_CODE["RESOURCE_EXHAUSTED"] = Unavailable
_BY_CODE["OUT_OF_RANGE"] = InvalidArgument
_BY_CODE["ABORTED"] = FailedPrecondition


def error_from_grpc_code(code_name: str, message: str) -> StigmerError:
    """Build the ``StigmerError`` subtype matching a gRPC status code name (``"NOT_FOUND"``)."""
    cls = _BY_CODE.get(code_name.upper(), StigmerError)
    return cls(message)
