"""The agent loop of an execution, written once for every host.

::

    begin ─► ask for each pending call without a decision ─► turn ─► an answer? ─► finish
               ▲                                                    │ tools need approval
               └──────────────── the calls that need one ◄──────────┘

A turn is one pydantic-ai ``Agent.run``: model requests and tool calls until the model answers or
a tool that needs approval is called (pydantic-ai then hands back ``DeferredToolRequests``). The
loop asks the host for a decision on each such call, one after the other, and runs the next turn
with the answers (a refused call's result tells the model why). Usage — counts, cost and each model
request (``._limits``) — is reported with the pause or the end that follows it, a failure included
(the Backend adds it up). The run's limits are enforced across its turns: each turn gets what is
left of them (``Start.limits``, ``Start.spent``). Any error ends the run with ``host.fail``; a host
raises ``Stop`` to end it where it stands and that is no failure.

The host supplies what differs (:class:`AgentHost`):

- Lite (``_inprocess.InProcessHost``): the real model and toolsets in this process; ``decide``
  writes WAITING_APPROVAL with a checkpoint and stops the run; after ``SubmitApproval`` the next
  ``execute`` begins with the checkpoint's pending calls and the decisions recorded since;
- Temporal (``temporal._host.TemporalHost``): the loop runs in the workflow, each model request and
  tool call is an activity, ``decide`` writes WAITING_APPROVAL in an activity and waits for the
  approval signal.

The loop does no I/O and reads no clock or randomness: on Temporal it is workflow code, replayed.
This module imports nothing heavy (pydantic-ai loads when a loop runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from stigmer.runner.agent._limits import CURRENT_METER, Limits, Meter, Spent, limit_reached

if TYPE_CHECKING:
    from pydantic_ai import DeferredToolResults
    from pydantic_ai.agent import AgentRunResult
    from pydantic_ai.messages import ModelMessage
    from pydantic_ai.usage import RunUsage, UsageLimits

__all__ = [
    "AgentHost",
    "Decision",
    "Pause",
    "PendingCall",
    "Start",
    "Stop",
    "Turn",
    "run_agent_loop",
    "usage_dict",
    "usage_report",
]

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


@dataclass
class PendingCall:
    """A tool call waiting for a human decision."""

    id: str
    tool: str
    args: dict[str, Any]
    server: str = ""


@dataclass
class Decision:
    """A human's answer to a pending call."""

    approved: bool
    reason: str = ""


@dataclass
class Start:
    """Where the loop begins: a new prompt (after the session's ``history``), a conversation saved
    mid-run (``prompt`` None), or calls paused for approval (``pending``, some perhaps decided)."""

    prompt: str | None
    history: list[ModelMessage] = field(default_factory=list)
    pending: list[PendingCall] = field(default_factory=list)
    decisions: dict[str, Decision] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)
    spent: Spent = field(default_factory=Spent)  # what the run reported before (a resumed run)
    price: tuple[float, float] | None = None  # the model's own price (USD per million in, out)


@dataclass
class Turn:
    """What a host passes to ``Agent.run`` for the loop: the usage to count into (pydantic-ai adds
    to it in place, so a turn that fails still tells what it spent), what is left of the run's
    limits, and the capabilities that price and record each model request."""

    usage: RunUsage
    limits: UsageLimits | None
    capabilities: list[Any]


@dataclass
class Pause:
    """A call that needs a decision, and the run as it stands."""

    call: PendingCall
    pending: list[PendingCall]  # every call of the turn that needs a decision, in order
    decisions: dict[str, Decision]  # those given so far
    messages: list[ModelMessage]  # the conversation, ending with the model's tool calls
    usage: dict[str, Any] | None  # not reported yet, as ``usage_report`` gives (None: nothing new)


class Stop(Exception):
    """Raised by a host: the run ends where it stands, and that is no failure (it waits for an
    approval, it was cancelled, it ended elsewhere). The loop returns ``result``."""

    def __init__(self, result: Any) -> None:
        super().__init__("the run stopped")
        self.result = result


class AgentHost(Protocol[R_co]):
    """What a host does for the loop; ``R_co`` is what a run returns on that host."""

    async def begin(self) -> Start:
        """Mark the execution RUNNING (unless it runs already); where the loop begins."""
        ...

    async def turn(
        self,
        prompt: str | None,
        history: list[ModelMessage],
        deferred: DeferredToolResults | None,
        control: Turn,
    ) -> AgentRunResult[Any]:
        """One ``Agent.run`` (output type ``str | DeferredToolRequests``, or the structured output),
        its progress reported, with ``control``'s usage, limits and capabilities."""
        ...

    def server_of(self, tool: str) -> str:
        """The MCP server a tool that needs approval belongs to ("" if none)."""
        ...

    async def decide(self, pause: Pause) -> Decision:
        """The decision on ``pause.call``: asked (WAITING_APPROVAL) and waited for, or ``Stop``."""
        ...

    async def finish(self, output: Any, usage: dict[str, Any], messages: list[ModelMessage]) -> R_co:
        """Write SUCCEEDED with the output (text, or a JSON value for a structured output), the
        usage not reported yet (``usage_report``) and the conversation."""
        ...

    async def fail(self, error: Exception, usage: dict[str, Any] | None = None) -> R_co:
        """Write FAILED with a description of ``error`` (and the usage not reported yet)."""
        ...


async def run_agent_loop(host: AgentHost[R]) -> R:
    """Run an agent execution on ``host`` to its end, or to where the host stops it."""
    try:
        try:
            return await _loop(host)
        except Stop:
            raise
        except _Failed as failed:
            return await host.fail(failed.error, failed.usage)
        except Exception as exc:
            return await host.fail(exc)
    except Stop as stop:
        result: R = stop.result
        return result


class _Failed(Exception):
    """A turn failed after spending: the error, with the usage to report with it."""

    def __init__(self, error: Exception, usage: dict[str, Any] | None) -> None:
        super().__init__(str(error))
        self.error, self.usage = error, usage


async def _loop(host: AgentHost[R]) -> R:
    from pydantic_ai import DeferredToolRequests
    from pydantic_ai.exceptions import UsageLimitExceeded
    from pydantic_ai.usage import RunUsage

    start = await host.begin()
    prompt, history = start.prompt, start.history
    pending, decisions = start.pending, dict(start.decisions)
    limits, spent = start.limits, start.spent
    meter = Meter(price=start.price, limits=limits, spent=spent)  # spent grows after each turn
    unreported = Spent()

    def report() -> dict[str, Any] | None:
        nonlocal unreported
        out = usage_report(unreported, meter.drain())
        unreported = Spent()
        return out

    while True:
        deferred = None
        if pending:
            for call in pending:
                if call.id not in decisions:
                    decisions[call.id] = await host.decide(
                        Pause(call, pending, dict(decisions), history, report())
                    )
            deferred = _answers(pending, decisions)
        used = RunUsage()
        meter.start_turn()
        control = Turn(usage=used, limits=limits.remaining(spent), capabilities=[meter.capability()])
        metering = CURRENT_METER.set(meter)
        try:
            result = await host.turn(prompt, history, deferred, control)
        except Stop:
            raise
        except Exception as exc:
            spent.add(used, meter)
            unreported.add(used, meter)
            reached = limit_reached(exc, limits, spent) if isinstance(exc, UsageLimitExceeded) else None
            error: Exception = reached or exc
            raise _Failed(error, report()) from exc
        finally:
            CURRENT_METER.reset(metering)
        spent.add(used, meter)
        unreported.add(used, meter)
        output = result.output
        if not isinstance(output, DeferredToolRequests):
            return await host.finish(output, report() or {}, result.all_messages())
        if output.calls:
            from stigmer.core import InvalidArgument

            names = ", ".join(c.tool_name for c in output.calls)
            raise InvalidArgument(f"tools {names} asked to be run externally, which agents cannot do")
        prompt, history = None, result.all_messages()
        pending = [
            PendingCall(
                id=part.tool_call_id,
                tool=part.tool_name,
                args=part.args_as_dict(),
                server=host.server_of(part.tool_name),
            )
            for part in output.approvals
        ]
        decisions = {}


def _answers(pending: list[PendingCall], decisions: dict[str, Decision]) -> DeferredToolResults:
    """The decisions as pydantic-ai takes them; a refused call's result tells the model why."""
    from pydantic_ai import DeferredToolResults, ToolApproved, ToolDenied

    approvals: dict[str, Any] = {}
    for call in pending:
        decision = decisions[call.id]
        if decision.approved:
            approvals[call.id] = ToolApproved()
        else:
            reason = f": {decision.reason}" if decision.reason else ""
            approvals[call.id] = ToolDenied(f"The user refused this tool call{reason}")
    return DeferredToolResults(approvals=approvals)


def usage_report(spent: Spent, requests: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Usage not reported yet as JSON (``stigmer.v1.Usage``'s field names); None for none."""
    out: dict[str, Any] = {
        "input_tokens": spent.input_tokens,
        "output_tokens": spent.output_tokens,
        "requests": spent.requests,
        "tool_calls": spent.tool_calls,
    }
    if spent.cost_usd:
        out["cost_usd"] = spent.cost_usd
    if spent.cost_unknown:
        out["cost_unknown"] = True
    if requests:
        out["by_request"] = requests
    return out if any(out.values()) else None


def usage_dict(usage: RunUsage | None) -> dict[str, int]:
    """Usage as JSON (the field names of ``stigmer.v1.Usage``)."""
    if usage is None:
        return {}
    return {
        "input_tokens": usage.input_tokens or 0,
        "output_tokens": usage.output_tokens or 0,
        "requests": usage.requests or 0,
        "tool_calls": usage.tool_calls or 0,
    }
