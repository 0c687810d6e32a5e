"""The agent loop on its own, with a host that answers from a script (no Backend, no Temporal)."""

from __future__ import annotations

from typing import Any

from pydantic_ai import Agent, DeferredToolRequests, DeferredToolResults
from pydantic_ai.agent import AgentRunResult
from pydantic_ai.messages import (
    ModelMessage,
    ModelRequest,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel
from stigmer.runner.agent._loop import Decision, Pause, Start, Stop, Turn, run_agent_loop


def _model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    last = messages[-1]
    returns = (
        [p for p in last.parts if isinstance(p, ToolReturnPart)] if isinstance(last, ModelRequest) else []
    )
    if returns:
        return ModelResponse(parts=[TextPart(" | ".join(str(p.content) for p in returns))])
    return ModelResponse(
        parts=[
            ToolCallPart("delete", {"item": "1"}, tool_call_id="c1"),
            ToolCallPart("delete", {"item": "2"}, tool_call_id="c2"),
        ]
    )


def _agent() -> Agent[None, Any]:
    agent: Agent[None, Any] = Agent(FunctionModel(_model), output_type=[str, DeferredToolRequests])

    @agent.tool_plain(requires_approval=True)
    def delete(item: str) -> str:
        return f"deleted {item}"

    return agent


class ScriptedHost:
    """Decisions come from ``answers`` (None: stop there, as Lite does)."""

    def __init__(
        self, answers: list[Decision | None], start: Start | None = None, broken: bool = False
    ) -> None:
        self.agent = _agent()
        self.answers = answers
        self.start = start or Start(prompt="delete items 1 and 2")
        self.broken = broken
        self.pauses: list[Pause] = []
        self.turns = 0

    async def begin(self) -> Start:
        return self.start

    async def turn(
        self,
        prompt: str | None,
        history: list[ModelMessage],
        deferred: DeferredToolResults | None,
        control: Turn,
    ) -> AgentRunResult[Any]:
        self.turns += 1
        if self.broken:
            raise RuntimeError("the model is down")
        return await self.agent.run(
            prompt,
            message_history=history or None,
            deferred_tool_results=deferred,
            usage=control.usage,
            usage_limits=control.limits,
            capabilities=control.capabilities,
        )

    def server_of(self, tool: str) -> str:
        return "items"

    async def decide(self, pause: Pause) -> Decision:
        self.pauses.append(pause)
        answer = self.answers.pop(0)
        if answer is None:
            raise Stop(("paused", pause))
        return answer

    async def finish(self, output: Any, usage: dict[str, Any], messages: list[ModelMessage]) -> Any:
        return ("finished", output, usage.get("requests"))

    async def fail(self, error: Exception, usage: dict[str, Any] | None = None) -> Any:
        self.failed_usage = usage
        return ("failed", str(error))


async def test_each_call_is_decided_in_turn_and_the_next_turn_gets_the_answers() -> None:
    host = ScriptedHost([Decision(approved=True), Decision(approved=False, reason="keep it")])
    result = await run_agent_loop(host)
    # finish gets the usage since the pause (the first request was reported with it)
    assert result == ("finished", "deleted 1 | The user refused this tool call: keep it", 1)
    assert [p.call.args for p in host.pauses] == [{"item": "1"}, {"item": "2"}]
    assert all(p.call.server == "items" and len(p.pending) == 2 for p in host.pauses)
    assert host.pauses[1].decisions == {"c1": Decision(approved=True)}
    # usage is handed over once: with the first pause (the second has nothing new) and the end
    first, second = host.pauses
    assert first.usage is not None and first.usage["requests"] == 1
    assert second.usage is None
    assert host.turns == 2


async def test_a_host_that_stops_at_a_pause_resumes_from_its_pending_calls() -> None:
    host = ScriptedHost([Decision(approved=True), None])
    paused, pause = await run_agent_loop(host)
    assert paused == "paused" and pause.call.id == "c2"
    # A later run (Lite: the next execute) begins with the calls and the decisions given so far.
    start = Start(
        prompt=None,
        history=pause.messages,
        pending=pause.pending,
        decisions={**pause.decisions, "c2": Decision(approved=True)},
    )
    again = ScriptedHost([], start=start)
    assert await run_agent_loop(again) == ("finished", "deleted 1 | deleted 2", 1)
    assert again.pauses == []  # every call was decided: no question asked


async def test_an_error_fails_the_run() -> None:
    assert await run_agent_loop(ScriptedHost([], broken=True)) == ("failed", "the model is down")
