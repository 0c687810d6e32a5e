"""The phase and kind tables agree with the contract (the generated protobuf), and answer lookups."""

from __future__ import annotations

import pytest
from stigmer.core import (
    APPLY_ORDER,
    EXECUTION,
    KIND_PREFIXES,
    KIND_TABLE,
    KINDS,
    PHASE_NAMES,
    SCHEMA_KINDS,
    STOPPED_PHASES,
    TERMINAL_PHASES,
    is_terminal,
    kind_info,
    kind_spellings,
    lookup_kind,
    phase_name,
    phase_number,
)
from stigmer.proto.v1 import execution_pb2, resource_pb2


def test_phase_table_is_the_proto_enum() -> None:
    enum = execution_pb2.Phase
    assert {number: name.removeprefix("PHASE_") for name, number in enum.items()} == PHASE_NAMES


def test_terminal_and_stopped_phases() -> None:
    P = execution_pb2
    assert {P.PHASE_SUCCEEDED, P.PHASE_FAILED, P.PHASE_CANCELLED} == TERMINAL_PHASES
    assert TERMINAL_PHASES | {P.PHASE_WAITING_APPROVAL} == STOPPED_PHASES
    assert is_terminal(P.PHASE_FAILED) and is_terminal("CANCELLED") and is_terminal("PHASE_SUCCEEDED")
    assert not is_terminal(P.PHASE_RUNNING) and not is_terminal("WAITING_APPROVAL")
    assert phase_name(P.PHASE_WAITING_APPROVAL) == "WAITING_APPROVAL"
    assert phase_name(42) == "42"
    assert phase_number("phase_running") == P.PHASE_RUNNING
    with pytest.raises(KeyError):
        phase_number("DONE")


def test_kind_table_matches_the_resource_message() -> None:
    fields = resource_pb2.Resource.DESCRIPTOR.fields_by_name
    definitions = [k for k in KIND_TABLE if not k.is_execution]
    assert definitions, "the table lists definition kinds"
    for kind in definitions:
        assert kind.field in fields, kind
        assert fields[kind.field].message_type.full_name == kind.message_class().DESCRIPTOR.full_name
    for kind in KIND_TABLE:
        assert KINDS[kind.name] == (kind.message_class(), kind.field)
        assert KIND_PREFIXES[kind.name] == kind.id_prefix
    assert len({k.id_prefix for k in KIND_TABLE}) == len(KIND_TABLE)
    assert set(SCHEMA_KINDS) == set(APPLY_ORDER) == {k.name for k in definitions}


def test_runnable_kinds_name_their_runner_and_execution_kind() -> None:
    for name in ("Agent", "Workflow"):
        kind = kind_info(name)
        execution = kind_info(kind.execution_kind)
        assert execution.is_execution and execution.runner == kind.runner != ""


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("agents", "Agent"),
        (" WF ", "Workflow"),
        ("mcp", "McpServer"),
        ("mcp_server", "McpServer"),
        ("McpServer", "McpServer"),
        ("env", "Environment"),
        ("exec", EXECUTION),
        ("wex", "WorkflowExecution"),
        ("nope", None),
    ],
)
def test_lookup_kind(text: str, kind: str | None) -> None:
    assert lookup_kind(text) == kind


def test_spellings_are_unique_and_resolve_back() -> None:
    names = [k.name for k in KIND_TABLE] + [EXECUTION]
    spellings = kind_spellings(names)
    assert len(spellings) == len(set(spellings))
    for spelling in spellings:
        assert lookup_kind(spelling) is not None
