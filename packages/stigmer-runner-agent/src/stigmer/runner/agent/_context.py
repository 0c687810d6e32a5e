"""Long conversations: what is sent to the model is kept within bounds, the history is not.

An agent's ``context`` (``stigmer.v1.ContextPolicy``) makes a pydantic-ai capability that rewrites
the messages of each model request — and only those: the run's own messages (what the session keeps
in the Backend) stay whole. Tool results over ``max_tool_result_chars`` are cut, with a marker
saying how much was left out. Once what would be sent passes ``max_history_tokens`` (estimated at
four characters a token), the messages before the last ``keep_recent_messages`` are replaced by a
summary the model writes (one request, counted and priced like any other); the cut never separates
a tool call from its result. A summary is reused for the same earlier messages within the process.

It works alike in Lite and in Temporal workflow code (the summary request goes through the run's
model, which on Temporal is an activity).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from stigmer.runner.agent._limits import CURRENT_METER

if TYPE_CHECKING:
    from pydantic_ai import RunContext
    from pydantic_ai.messages import ModelMessage
    from pydantic_ai.models import Model

__all__ = ["ContextKeeper", "estimate_tokens"]

CHARS_PER_TOKEN = 4
DEFAULT_KEEP = 6
SUMMARY_PROMPT = (
    "Summarise the conversation below for your own later use: keep every fact, decision, "
    "name, number and open question the rest of the conversation may need; leave out pleasantries. "
    "Answer with the summary only."
)
SUMMARY_HEADER = "Summary of the earlier conversation (older messages were summarised to save space):"


def estimate_tokens(messages: list[ModelMessage]) -> int:
    """A deterministic estimate of the tokens ``messages`` take: their JSON at four characters a token."""
    from pydantic_ai.messages import ModelMessagesTypeAdapter

    return len(ModelMessagesTypeAdapter.dump_json(messages)) // CHARS_PER_TOKEN


@dataclass
class ContextKeeper:
    """The settings of an agent's ``context``, and the summaries written so far."""

    max_history_tokens: int = 0
    keep_recent_messages: int = DEFAULT_KEEP
    max_tool_result_chars: int = 0
    summary_model: Model | None = None  # None: the run's own model
    _summaries: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, policy: Any) -> ContextKeeper | None:
        """From a ``ContextPolicy`` message or its dict; None when it asks for nothing."""
        if policy is None:
            return None
        get = policy.get if isinstance(policy, dict) else lambda k, d=0: getattr(policy, k, d)
        keeper = cls(
            max_history_tokens=int(get("max_history_tokens", 0) or 0),
            keep_recent_messages=int(get("keep_recent_messages", 0) or 0) or DEFAULT_KEEP,
            max_tool_result_chars=int(get("max_tool_result_chars", 0) or 0),
        )
        return keeper if keeper.max_history_tokens or keeper.max_tool_result_chars else None

    def to_dict(self) -> dict[str, int]:
        return {
            "max_history_tokens": self.max_history_tokens,
            "keep_recent_messages": self.keep_recent_messages,
            "max_tool_result_chars": self.max_tool_result_chars,
        }

    # -- what is sent --------------------------------------------------------------------------
    async def shape(self, ctx: RunContext[Any], messages: list[ModelMessage]) -> list[ModelMessage]:
        """The messages to send for ``messages`` (which are not changed)."""
        out = self._cut_tool_results(messages) if self.max_tool_result_chars else list(messages)
        if self.max_history_tokens and estimate_tokens(out) > self.max_history_tokens:
            out = await self._summarised(ctx, out)
        return out

    def _cut_tool_results(self, messages: list[ModelMessage]) -> list[ModelMessage]:
        from pydantic_ai.messages import ModelRequest, ToolReturnPart

        limit = self.max_tool_result_chars
        out: list[ModelMessage] = []
        for message in messages:
            if isinstance(message, ModelRequest) and any(
                isinstance(p, ToolReturnPart) for p in message.parts
            ):
                parts: list[Any] = []
                for part in message.parts:
                    if type(part) is ToolReturnPart:  # not the special returns of its subclasses
                        text = part.model_response_str()
                        if len(text) > limit:
                            left = len(text) - limit
                            cut: Any = f"{text[:limit]}\n[… {left:,} more characters cut]"
                            part = replace(part, content=cut)
                    parts.append(part)
                message = replace(message, parts=parts)
            out.append(message)
        return out

    def _split(self, messages: list[ModelMessage]) -> int:
        """Where the kept part starts: about ``keep_recent_messages`` from the end, at a request
        that carries no tool results (a tool call and its result stay on one side): the first
        such request from there on, else the nearest before. 0 when there is none."""
        from pydantic_ai.messages import ModelRequest, ToolReturnPart

        def clean(i: int) -> bool:
            message = messages[i]
            return isinstance(message, ModelRequest) and not any(
                isinstance(p, ToolReturnPart) for p in message.parts
            )

        start = max(len(messages) - self.keep_recent_messages, 1)
        later = next((i for i in range(start, len(messages)) if clean(i)), 0)
        return later or next((i for i in range(start - 1, 0, -1) if clean(i)), 0)

    async def _summarised(self, ctx: RunContext[Any], messages: list[ModelMessage]) -> list[ModelMessage]:
        from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelRequest, UserPromptPart

        split = self._split(messages)
        if split < 1:
            return messages  # nothing old enough to summarise
        older, recent = messages[:split], messages[split:]
        transcript = ModelMessagesTypeAdapter.dump_json(older).decode()
        key = hashlib.sha256(transcript.encode()).hexdigest()
        summary = self._summaries.get(key)
        if summary is None:
            summary = await self._summarise(ctx, older)
            self._summaries[key] = summary
        head = ModelRequest(parts=[UserPromptPart(content=f"{SUMMARY_HEADER}\n{summary}")])
        return [head, *recent]

    async def _summarise(self, ctx: RunContext[Any], older: list[ModelMessage]) -> str:
        from pydantic_ai.messages import ModelRequest, SystemPromptPart, UserPromptPart
        from pydantic_ai.models import ModelRequestParameters

        lines = [_line(message) for message in older]
        request = ModelRequest(
            parts=[
                SystemPromptPart(content=SUMMARY_PROMPT),
                UserPromptPart(content="\n".join(line for line in lines if line)),
            ]
        )
        model: Any = self.summary_model if self.summary_model is not None else ctx.model
        response = await model.request([request], None, ModelRequestParameters())
        ctx.usage.incr(response.usage)
        ctx.usage.requests += 1
        meter = CURRENT_METER.get()  # priced, recorded and held to the cost limit like the rest
        if meter is not None:
            meter.record(response)
        return response.text or ""

    def capability(self) -> Any:
        from pydantic_ai.capabilities import AbstractCapability

        keeper = self

        class KeepContext(AbstractCapability[Any]):
            async def before_model_request(self, ctx: RunContext[Any], request_context: Any) -> Any:
                request_context.messages = await keeper.shape(ctx, list(request_context.messages))
                return request_context

        return KeepContext()


def _line(message: ModelMessage) -> str:
    """One message as a transcript line for the summary request."""
    from pydantic_ai.messages import (
        ModelRequest,
        TextPart,
        ToolCallPart,
        ToolReturnPart,
        UserPromptPart,
    )

    out: list[str] = []
    for part in message.parts:
        if isinstance(message, ModelRequest) and isinstance(part, UserPromptPart):
            out.append(
                f"user: {part.content if isinstance(part.content, str) else json.dumps(str(part.content))}"
            )
        elif isinstance(part, ToolReturnPart):
            out.append(f"tool {part.tool_name} returned: {part.model_response_str()}")
        elif isinstance(part, TextPart):
            out.append(f"assistant: {part.content}")
        elif isinstance(part, ToolCallPart):
            out.append(f"assistant called {part.tool_name}({part.args_as_json_str()})")
    return "\n".join(out)
