"""Against the real providers, only when a key is in the environment (never in CI without one)."""

from __future__ import annotations

import os

import pytest
from stigmer.core import Backend, from_value
from stigmer.proto.v1 import execution_pb2
from stigmer.runner.agent import AgentRunner
from stigmer.testing.agents import apply, start


@pytest.mark.skipif(not os.environ.get("OPENAI_API_KEY"), reason="needs OPENAI_API_KEY")
async def test_openai(backend: Backend) -> None:
    await apply(
        backend,
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: real}\n"
        "spec: {instructions: Answer with one word., model: {provider: openai, name: gpt-4o-mini}}\n",
    )
    eid = await start(backend, "real", "What is the capital of France?")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == execution_pb2.PHASE_SUCCEEDED, done.status.error
    assert "paris" in from_value(done.status.output).lower()


@pytest.mark.skipif(not os.environ.get("ANTHROPIC_API_KEY"), reason="needs ANTHROPIC_API_KEY")
async def test_anthropic(backend: Backend) -> None:
    await apply(
        backend,
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: real}\n"
        "spec: {instructions: Answer with one word., model: {provider: anthropic, name: claude-3-5-haiku-latest}}\n",
    )
    eid = await start(backend, "real", "What is the capital of France?")
    done = await AgentRunner().execute(backend, eid)
    assert done.status.phase == execution_pb2.PHASE_SUCCEEDED, done.status.error
    assert "paris" in from_value(done.status.output).lower()
