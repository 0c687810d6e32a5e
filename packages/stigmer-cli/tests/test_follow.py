"""Approval prompts: end of input is a clear error naming how to answer later; without a terminal
the hint is printed once (the SDK's ``follow`` asks once per pending approval)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from stigmer.cli._errors import CliError
from stigmer.cli.output._live import approval_hint, approval_prompt
from stigmer.proto.v1 import execution_pb2
from stigmer.sdk._execution import OnApproval


def _waiting() -> execution_pb2.Execution:
    return execution_pb2.Execution(
        status=execution_pb2.ExecutionStatus(
            phase=execution_pb2.PHASE_WAITING_APPROVAL,
            pending_approval=execution_pb2.ApprovalRequest(id="call_1", tool="delete_item"),
        )
    )


async def _answer(ask: OnApproval) -> tuple[bool, str] | None:
    return await ask(_waiting())


def test_end_of_input_at_the_prompt(capsys: pytest.CaptureFixture[str]) -> None:
    def closed(prompt: str) -> str:
        raise EOFError

    ask = approval_prompt("aex_1", interactive=True, prompt=closed)
    with pytest.raises(CliError) as info:
        asyncio.run(_answer(ask))
    assert info.value.message == "no answer (end of input); " + approval_hint("aex_1")
    assert "approval needed: delete_item" in capsys.readouterr().err


def test_an_answer_is_approved_and_a_reason(capsys: pytest.CaptureFixture[str]) -> None:
    answers = iter(["n", "too risky"])
    ask = approval_prompt("aex_1", interactive=True, prompt=lambda _: next(answers))
    assert asyncio.run(_answer(ask)) == (False, "too risky")
    ask = approval_prompt("aex_1", interactive=True, prompt=lambda _: "yes")
    assert asyncio.run(_answer(ask)) == (True, "")


def test_without_a_terminal_the_hint_is_printed_once(capsys: pytest.CaptureFixture[str]) -> None:
    """The SDK's follow asks once per pending approval: a second event for it asks nothing."""
    from stigmer.sdk import AsyncExecution

    class Store:
        def __init__(self) -> None:
            waiting = execution_pb2.PHASE_WAITING_APPROVAL
            self.events = [
                execution_pb2.ExecutionEvent(sequence=1, type="approval.requested"),
                execution_pb2.ExecutionEvent(sequence=2, type="phase", phase=waiting),
                execution_pb2.ExecutionEvent(sequence=3, type="phase", phase=waiting),
            ]

        async def watch_execution(self, request: Any) -> Any:
            for ev in self.events:
                yield ev

        async def get_execution(self, request: Any) -> execution_pb2.Execution:
            return _waiting()

    backend: Any = Store()
    handle = AsyncExecution(backend, _waiting())
    ask = approval_prompt("aex_1", interactive=False)
    ex = asyncio.run(handle.follow(None, ask, stop_on_approval=False))
    assert ex.status.pending_approval.id == "call_1"
    err = capsys.readouterr().err
    assert err.count("waits for approval") == 1
    assert "`stigmer execution approve aex_1`" in err
