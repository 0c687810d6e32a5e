"""Stigmer agent runner: LLM agents with MCP tools, skills, sub-agents, sessions and approvals.

``AgentRunner`` is the ``agent`` plugin of the ``stigmer.runners`` entry-point group. Importing
this package is cheap: pydantic-ai, the provider SDKs and MCP load only when a run starts.
"""

from stigmer.runner.agent._runner import AgentRunner

__all__ = ["AgentRunner"]
