"""Approval prompts: end of input is a clear error naming how to answer later."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from stigmer.cli._errors import CliError
from stigmer.cli._follow import Follow, approval_hint
from stigmer.proto.v1 import execution_pb2


def _waiting() -> execution_pb2.Execution:
    return execution_pb2.Execution(
        status=execution_pb2.ExecutionStatus(
            phase=execution_pb2.PHASE_WAITING_APPROVAL,
            pending_approval=execution_pb2.ApprovalRequest(id="call_1", tool="delete_item"),
        )
    )


def test_end_of_input_at_the_prompt(capsys: pytest.CaptureFixture[str]) -> None:
    def closed(prompt: str) -> str:
        raise EOFError

    backend: Any = object()  # nothing may be called on it: no answer, nothing submitted
    follow = Follow(backend=backend, execution_id="aex_1", interactive=True, prompt=closed)
    with pytest.raises(CliError) as info:
        asyncio.run(follow._on_approval(_waiting()))
    assert info.value.message == "no answer (end of input); " + approval_hint("aex_1")
    assert "approval needed: delete_item" in capsys.readouterr().err


def test_without_a_terminal_the_hint_is_printed_once(capsys: pytest.CaptureFixture[str]) -> None:
    backend: Any = object()
    follow = Follow(backend=backend, execution_id="aex_1", interactive=False)
    assert asyncio.run(follow._on_approval(_waiting())) is None
    assert asyncio.run(follow._on_approval(_waiting())) is True  # already handled: not asked again
    err = capsys.readouterr().err
    assert err.count("waits for approval") == 1
    assert "`stigmer execution approve aex_1`" in err
