"""`--max-*` limits and `--output-schema` on agent runs, and cost in `execution get`, against the
scripted model stand-in."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stigmer.testing import ScriptedLLM, call, text


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


def _agent(cli: Callable[..., Any], tmp_path: Path, llm: ScriptedLLM, model: str = "stand-in") -> None:
    manifest = tmp_path / "agent.yaml"
    manifest.write_text(
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: bot}\n"
        "spec:\n  instructions: Be brief.\n"
        f"  model: {{provider: openai-compatible, name: {model}, baseUrl: {llm.openai_base_url!r}}}\n"
        "---\napiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: wf}\n"
        "spec:\n  document: {dsl: 1.0.0, namespace: t, name: wf, version: 1.0.0}\n"
        "  do:\n    - a: {set: {ok: true}}\n"
    )
    applied = cli("apply", "-f", str(manifest))
    assert applied.code == 0, applied.err


def test_max_requests_ends_the_run_with_the_limit_and_what_was_spent(
    cli: Callable[..., Any], tmp_path: Path, llm: ScriptedLLM
) -> None:
    _agent(cli, tmp_path, llm)
    # a tool the agent does not have: the model is told so and asks again (2 requests)
    llm.add(call("nope"), text("never"))
    result = cli("agent", "execute", "bot", "go", "--max-requests", "1", "-o", "json")
    assert result.code == 1
    out = json.loads(result.out)
    assert out["phase"] == "FAILED"
    assert "max_requests = 1 model requests" in out["error"]["detail"]
    assert len(llm.requests) == 1


def test_output_schema_file_makes_the_output_json_and_get_shows_cost_per_request(
    cli: Callable[..., Any], tmp_path: Path, llm: ScriptedLLM
) -> None:
    _agent(cli, tmp_path, llm, model="gpt-4o-mini")
    schema = tmp_path / "answer.yaml"
    schema.write_text("type: object\nproperties: {n: {type: integer}}\nrequired: [n]\n")
    llm.add(call("final_result", n=42))
    result = cli("agent", "execute", "bot", "a number?", "--output-schema", str(schema), "-o", "json")
    assert result.code == 0, result.err
    out = json.loads(result.out)
    assert out["output"] == {"n": 42}
    described = cli("execution", "get", out["id"])
    assert described.code == 0, described.err
    assert "cost=$0.00000" in described.out  # 11 in + 7 out tokens of gpt-4o-mini
    assert "REQUEST" in described.out and "gpt-4o-mini" in described.out
    as_json = json.loads(cli("execution", "get", out["id"], "-o", "json").out)
    assert as_json["usage"]["byRequest"][0]["model"] == "gpt-4o-mini"
    assert as_json["usage"]["costUsd"] > 0


def test_bad_flags_get_one_clear_line(cli: Callable[..., Any], tmp_path: Path, llm: ScriptedLLM) -> None:
    _agent(cli, tmp_path, llm)
    missing = cli("agent", "execute", "bot", "x", "--output-schema", str(tmp_path / "none.json"))
    assert missing.code == 1 and "--output-schema: no such file" in missing.err
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": 12}')
    invalid = cli("agent", "execute", "bot", "x", "--output-schema", str(bad))
    assert invalid.code == 1 and "outputSchema is not a valid JSON Schema" in invalid.err
    workflow = cli("run", "wf", "--max-tokens", "10")
    assert workflow.code == 1 and "are for agents" in workflow.err
    usage = cli("agent", "execute", "bot", "x", "--max-requests", "0")
    assert usage.code == 2
    assert not llm.requests  # nothing was sent


def test_a_workflow_gets_a_structured_agent_answer_as_data(
    cli: Callable[..., Any], tmp_path: Path, llm: ScriptedLLM
) -> None:
    manifest = tmp_path / "flow.yaml"
    manifest.write_text(
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: extractor}\n"
        "spec:\n  instructions: Extract.\n"
        f"  model: {{provider: openai-compatible, name: stand-in, baseUrl: {llm.openai_base_url!r}}}\n"
        "  outputSchema: {type: object, properties: {city: {type: string}}, required: [city]}\n"
        "---\napiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: flow}\n"
        "spec:\n  document: {dsl: 1.0.0, namespace: t, name: flow, version: 1.0.0}\n"
        "  do:\n"
        "    - ask: {call: agent, with: {agent: extractor, message: 'It rains in Oslo'}}\n"
        "    - shout: {set: {city: '${ .city | ascii_upcase }'}}\n"
    )
    assert cli("apply", "-f", str(manifest)).code == 0
    llm.add(call("final_result", city="Oslo"))
    result = cli("run", "flow", "-o", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["output"] == {"city": "OSLO"}


def test_model_names_this_runs_model(cli: Callable[..., Any], tmp_path: Path, llm: ScriptedLLM) -> None:
    _agent(cli, tmp_path, llm)
    llm.add(text("one"), text("two"))
    assert cli("agent", "execute", "bot", "hi", "--model", "gpt-4o-mini", "-o", "json").code == 0
    assert llm.requests[-1]["model"] == "gpt-4o-mini"  # the agent's provider and base URL, this name
    assert cli("run", "bot", "-m", "hi", "--model", "openai-compatible:other-model", "-o", "json").code == 0
    assert llm.requests[-1]["model"] == "other-model"
    bad = cli("agent", "execute", "bot", "hi", "--model", "openai:")
    assert bad.code == 1 and "give NAME or PROVIDER:NAME" in bad.err
