import pytest
from stigmer.core import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    StigmerError,
    Unauthenticated,
    Unavailable,
    error_from_grpc_code,
)

ALL = [
    NotFound,
    AlreadyExists,
    InvalidArgument,
    FailedPrecondition,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
]


@pytest.mark.parametrize("cls", ALL)
def test_round_trip_through_grpc_code(cls: type[StigmerError]) -> None:
    err = error_from_grpc_code(cls.grpc_code, "agent 'x' not found; run `stigmer get agents`")
    assert type(err) is cls
    assert str(err) == "agent 'x' not found; run `stigmer get agents`"


def test_unknown_code_is_the_root_type() -> None:
    err = error_from_grpc_code("INTERNAL", "boom")
    assert type(err) is StigmerError
    assert err.message == "boom"


def test_lowercase_and_transient_codes() -> None:
    assert isinstance(error_from_grpc_code("not_found", "m"), NotFound)
    assert isinstance(error_from_grpc_code("DEADLINE_EXCEEDED", "m"), Unavailable)


def test_invalid_argument_carries_field_paths() -> None:
    err = InvalidArgument("bad", ["spec.model.name"])
    assert err.field_paths == ("spec.model.name",)
    assert all(issubclass(c, StigmerError) for c in ALL)
