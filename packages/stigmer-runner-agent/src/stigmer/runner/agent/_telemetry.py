"""The agent runner's OpenTelemetry: pydantic-ai's own instrumentation, content excluded.

When traces are on (:func:`stigmer.core.setup_telemetry`), each agent run, model request (model,
tokens, cost when known: the GenAI semantic conventions) and tool call is a span made by
pydantic-ai's built-in instrumentation, with ``include_content=False``: no prompt, completion, tool
argument or tool result is put in a span (secrets pass through them). Off, nothing is imported.
"""

from __future__ import annotations

from typing import Any

__all__ = ["instrumentation", "instrumented", "tool_span"]


def instrumentation() -> Any:
    """``InstrumentationSettings`` for ``Agent(instrument=...)``, or None when traces are off."""
    from stigmer.core import setup_telemetry

    if not setup_telemetry():
        return None
    from pydantic_ai.models.instrumented import InstrumentationSettings

    return InstrumentationSettings(include_content=False, include_binary_content=False)


def instrumented(model: Any) -> Any:
    """``model`` wrapped so that each request is a span (the Temporal model activity's)."""
    settings = instrumentation()
    if settings is None:
        return model
    from pydantic_ai.models.instrumented import InstrumentedModel

    return InstrumentedModel(model, settings)


def tool_span(name: str, call_id: str) -> Any:
    """The span of one tool call made by the Temporal tool activity (names only, no arguments)."""
    from stigmer.core import start_span

    return start_span(
        f"execute_tool {name}",
        {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.call.id": call_id},
    )
