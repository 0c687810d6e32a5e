"""A pydantic-ai model and toolset whose requests and calls are Temporal activities.

The agent loop of an execution runs in the workflow; these stand in for the real model and
toolsets there. ``ActivityModel.request`` sends the conversation to the ``stigmer.agent.model``
activity and returns the response it recorded; ``ActivityToolset`` offers the tool definitions
the ``stigmer.agent.start`` activity listed and runs each call as a ``stigmer.agent.tool``
activity. Everything crosses the boundary as plain JSON (pydantic-ai's own adapters), so the
default Temporal data converter carries it and no secret ever does (the activities scrub).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import TypeAdapter
from pydantic_ai import ModelRetry, RunContext
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.settings import ModelSettings
from pydantic_ai.tools import ToolDefinition
from pydantic_ai.toolsets import AbstractToolset, ToolsetTool
from pydantic_ai.toolsets.external import TOOL_SCHEMA_VALIDATOR
from pydantic_ai.usage import RunUsage

from .._checkpoint import dump_messages, load_messages

__all__ = ["ActivityModel", "ActivityToolset", "dump_messages", "load_messages"]

ModelCall = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
ToolCall = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]

_PARAMETERS: TypeAdapter[ModelRequestParameters] = TypeAdapter(ModelRequestParameters)
_DEFINITION: TypeAdapter[ToolDefinition] = TypeAdapter(ToolDefinition)


class ActivityModel(Model):
    """The execution's model, reached through an activity (which knows the endpoint and key)."""

    def __init__(self, name: str, system: str, request: ModelCall) -> None:
        super().__init__()
        self._name = name
        self._system = system
        self._request = request

    @property
    def model_name(self) -> str:
        return self._name

    @property
    def system(self) -> str:
        return self._system

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        data = {
            "messages": dump_messages(messages),
            "settings": dict(model_settings or {}),
            "parameters": _PARAMETERS.dump_python(model_request_parameters, mode="json"),
        }
        answer = await self._request(data)
        response = load_messages([answer])[0]
        assert isinstance(response, ModelResponse), "the model activity returned a request"
        return response


class ActivityToolset(AbstractToolset[Any]):
    """The tools an agent's toolsets offer (as listed once), each call an activity.

    ``tools`` are ``{"toolset", "definition", "maxRetries"}`` rows; a call returns
    ``{"return": value, "usage": ...}`` (a sub-agent's usage is added to the run's) or
    ``{"retry": message}`` (the tool asked the model to try again).
    """

    def __init__(self, tools: list[Mapping[str, Any]], call: ToolCall) -> None:
        self._call = call
        self._tools: dict[str, tuple[str, ToolDefinition, int]] = {}
        for row in tools:
            definition = _DEFINITION.validate_python(row["definition"])
            self._tools[definition.name] = (str(row["toolset"]), definition, int(row.get("maxRetries", 1)))

    @property
    def id(self) -> str:
        return "stigmer-activities"

    async def get_tools(self, ctx: RunContext[Any]) -> dict[str, ToolsetTool[Any]]:
        return {
            name: ToolsetTool(
                toolset=self, tool_def=definition, max_retries=retries, args_validator=TOOL_SCHEMA_VALIDATOR
            )
            for name, (_key, definition, retries) in self._tools.items()
        }

    async def call_tool(
        self, name: str, tool_args: dict[str, Any], ctx: RunContext[Any], tool: ToolsetTool[Any]
    ) -> Any:
        key = self._tools[name][0]
        result = await self._call(
            {"toolset": key, "name": name, "args": tool_args, "callId": ctx.tool_call_id or ""}
        )
        if "retry" in result:
            raise ModelRetry(str(result["retry"]))
        usage = result.get("usage") or {}
        if usage.get("requests"):
            ctx.usage.incr(
                RunUsage(
                    input_tokens=int(usage.get("input_tokens") or 0),
                    output_tokens=int(usage.get("output_tokens") or 0),
                    requests=int(usage.get("requests") or 0),
                    tool_calls=int(usage.get("tool_calls") or 0),
                )
            )
        return result.get("return")
