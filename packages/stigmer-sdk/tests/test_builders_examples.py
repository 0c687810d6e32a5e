"""Builders give the very bytes a YAML manifest gives: every example, and ARCHITECTURE.md §3."""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.message import Message
from stigmer.core import load_manifests, parse_manifest, unwrap
from stigmer.sdk import (
    Agent,
    Environment,
    McpServer,
    McpUsage,
    Model,
    ResourceBuilder,
    Set,
    Skill,
    SubAgent,
    Workflow,
    secret,
    to_python,
)

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def _bytes(msg: Message) -> bytes:
    return msg.SerializeToString(deterministic=True)


def _yaml_messages(text_or_path: str | Path) -> dict[tuple[str, str], bytes]:
    loaded = (
        load_manifests([text_or_path]) if isinstance(text_or_path, Path) else parse_manifest(text_or_path)
    )
    return {(r.kind, r.name): _bytes(unwrap(r.resource)) for r in loaded}


def _builder_messages(builders: list[ResourceBuilder[Any]]) -> dict[tuple[str, str], bytes]:
    return {(b.kind, b.name): _bytes(b.to_message()) for b in builders}


# -- the examples, written with the builders ----------------------------------------------------


def hello() -> list[ResourceBuilder[Any]]:
    return [
        Workflow(
            "hello",
            namespace="demo",
            labels={"example": "hello"},
            input_schema={"type": "object", "properties": {"name": {"type": "string"}}},
            do={"greet": Set({"greeting": '${ "Hello, " + (.name // "world") + "!" }'})},
        )
    ]


def test_hello_written_by_hand_with_builders_is_byte_identical() -> None:
    expected = _yaml_messages(ROOT / "examples" / "hello.yaml")
    built = _builder_messages(hello())
    assert built == expected and len(built) == 1


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_as_builder_code_is_byte_identical(example: Path, tmp_path: Path) -> None:
    """``to_python`` writes each example with the builders; running that code gives the same bytes."""
    code = to_python(example)
    assert "from stigmer.sdk import" in code
    app = tmp_path / "app.py"
    app.write_text(code)
    namespace = runpy.run_path(str(app))
    built = {}
    for item in namespace["resources"]:
        assert isinstance(item, ResourceBuilder), f"kept as plain data: {item!r}"
        built[(item.kind, item.name)] = _bytes(item.to_message())
    expected = _yaml_messages(example)
    assert built.keys() == expected.keys()
    for key, data in expected.items():
        assert built[key] == data, (key, code)


def test_workflow_examples_are_written_with_task_builders() -> None:
    """The generated code uses the task builders, not plain dicts, for every task of the examples."""
    code = to_python(*EXAMPLES)
    assert "Set(" in code
    raw_tasks = re.findall(r"\(\s*'[^']+',\s*\{", code)  # ('name', {...}) in a task list
    assert raw_tasks == []
    assert re.findall(r"\(\s*'[^']+',\s*\{", "[('a', {'set': {}})]")  # the probe finds one


# -- ARCHITECTURE.md §3 ---------------------------------------------------------------------------

ARCHITECTURE_MANIFEST = """
apiVersion: stigmer.ai/v1
kind: Agent
metadata: {name: support-bot, labels: {team: support}}
spec:
  instructions: You answer questions about Acme's product, briefly.
  model: {provider: openai, name: gpt-4o-mini}
  skills: [{name: acme-faq}]
  mcpServers: [{name: github, tools: [search_issues, create_issue], requireApproval: [create_issue]}]
  environments: [prod]
  subAgents: [{name: researcher, instructions: Find facts and cite them.}]
---
apiVersion: stigmer.ai/v1
kind: McpServer
metadata: {name: github}
spec:
  stdio:
    command: github-mcp-server
    args: [stdio]
    env: {GITHUB_TOKEN: '${ $secrets.GH_TOKEN }'}
---
apiVersion: stigmer.ai/v1
kind: Skill
metadata: {name: acme-faq}
spec: {path: ./skills/acme-faq}
---
apiVersion: stigmer.ai/v1
kind: Environment
metadata: {name: prod}
spec:
  variables: {REGION: eu-west-1}
  secrets: [GH_TOKEN]
---
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: hello}
spec:
  document: {dsl: 1.0.3, namespace: demo, name: hello, version: 1.0.0}
  do:
    - greet:
        set: {greeting: '${ "Hello, " + .name + "!" }'}
"""


def architecture_builders() -> list[ResourceBuilder[Any]]:
    github = McpServer(
        "github", command="github-mcp-server", args=["stdio"], env={"GITHUB_TOKEN": secret("GH_TOKEN")}
    )
    faq = Skill("acme-faq", path="./skills/acme-faq")
    prod = Environment("prod", variables={"REGION": "eu-west-1"}, secrets=["GH_TOKEN"])
    bot = Agent(
        "support-bot",
        labels={"team": "support"},
        instructions="You answer questions about Acme's product, briefly.",
        model=Model("openai", "gpt-4o-mini"),
        skills=[faq],
        mcp_servers=[
            McpUsage(github, tools=["search_issues", "create_issue"], require_approval=["create_issue"])
        ],
        environments=[prod],
        sub_agents=[SubAgent("researcher", instructions="Find facts and cite them.")],
    )
    hello = Workflow(
        "hello", namespace="demo", do={"greet": Set({"greeting": '${ "Hello, " + .name + "!" }'})}
    )
    return [bot, github, faq, prod, hello]


def test_architecture_manifest_written_with_builders_is_byte_identical() -> None:
    expected = _yaml_messages(ARCHITECTURE_MANIFEST)
    built = _builder_messages(architecture_builders())
    assert built.keys() == expected.keys() and len(built) == 5
    for key, data in expected.items():
        assert built[key] == data, key


def test_a_difference_is_detected() -> None:
    """The comparison is sharp: one changed character gives other bytes."""
    [hello_builder] = hello()
    hello_builder.labels["example"] = "hellO"
    assert _builder_messages([hello_builder]) != _yaml_messages(ROOT / "examples" / "hello.yaml")
