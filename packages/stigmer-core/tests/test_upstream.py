"""Upstream Stigmer's manifests (agentic.stigmer.ai/v1) read here: each field mapping, the
notice, SKILL.md front matter, the conversion of every upstream task kind, and the reverse
mapping. The fixtures are written here from upstream's public protos and docs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stigmer.core import ManifestError, message_to_manifest, parse_manifest
from stigmer.core.upstream import TASK_KINDS, UNCONVERTIBLE, to_upstream


def read(text: str, source: str = "up.yaml") -> tuple[dict[str, Any], str]:
    [item] = parse_manifest(text, source)
    return message_to_manifest(item.resource, include_status=False), item.notice


AGENT_SNAKE = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: support, org: acme, owner_scope: organization}
spec:
  icon_url: https://example.invalid/icon.png
  description: Support bot.
  instructions: You answer questions about Acme briefly.
  config: {model: openai/gpt-4o-mini, temperature: 0.2, max_tokens: 500}
  mcp_server_usages:
    - mcp_server_ref: {kind: mcp_server, org: acme, slug: github}
      enabled_tools: [search_issues, create_issue]
      tool_approval_overrides:
        - {tool_name: create_issue, requires_approval: true, message: Create it?}
        - {tool_name: search_issues, requires_approval: false}
  skill_refs: [{kind: skill, org: acme, slug: faq, version: v2}]
  sub_agents:
    - name: researcher
      instructions: Find facts and cite them.
      mcp_servers: [github]
      mcp_tool_selections: {github: {enabled_tools: [search_issues]}}
      model_override: anthropic/claude-haiku
  env:
    GH_TOKEN: {is_secret: true, description: GitHub token}
    REGION: {optional: true, value: eu-west-1}
"""

AGENT_CAMEL = """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: support, org: acme}
spec:
  iconUrl: https://example.invalid/icon.png
  description: Support bot.
  instructions: You answer questions about Acme briefly.
  config: {model: openai/gpt-4o-mini, temperature: 0.2, maxTokens: 500}
  mcpServerUsages:
    - mcpServerRef: {kind: mcp_server, org: acme, slug: github}
      enabledTools: [search_issues, create_issue]
      toolApprovalOverrides:
        - {toolName: create_issue, requiresApproval: true, message: Create it?}
        - {toolName: search_issues, requiresApproval: false}
  skillRefs: [{kind: skill, org: acme, slug: faq, version: v2}]
  subAgents:
    - name: researcher
      instructions: Find facts and cite them.
      mcpServers: [github]
      mcpToolSelections: {github: {enabledTools: [search_issues]}}
      modelOverride: anthropic/claude-haiku
  env:
    GH_TOKEN: {isSecret: true, description: GitHub token}
    REGION: {optional: true, value: eu-west-1}
"""


@pytest.mark.parametrize("text", [AGENT_SNAKE, AGENT_CAMEL], ids=["snake_case", "camelCase"])
def test_agent_fields_map_in_both_spellings(text: str) -> None:
    data, notice = read(text)
    assert data["apiVersion"] == "stigmer.ai/v1"
    assert data["metadata"] == {"name": "support"}
    spec = data["spec"]
    assert spec["model"] == {
        "provider": "openai",
        "name": "gpt-4o-mini",
        "params": {"maxTokens": 500, "temperature": 0.2},
    }
    assert spec["mcpServers"] == [
        {"name": "github", "tools": ["search_issues", "create_issue"], "requireApproval": ["create_issue"]}
    ]
    assert spec["skills"] == [{"name": "faq"}]
    assert spec["subAgents"] == [
        {
            "name": "researcher",
            "instructions": "Find facts and cite them.",
            "model": {"provider": "anthropic", "name": "claude-haiku"},
            "mcpServers": [{"name": "github", "tools": ["search_issues"]}],
        }
    ]
    assert spec["env"] == [
        {"name": "GH_TOKEN", "description": "GitHub token", "required": True, "secret": True},
        {"name": "REGION", "default": "eu-west-1"},
    ]
    # one line saying what was mapped and what was dropped
    assert "\n" not in notice
    assert notice.startswith("Agent/support read as agentic.stigmer.ai/v1; mapped ")
    for mapped in ("config → model", "mcp_server_usages → mcpServers", "skill_refs → skills"):
        assert mapped in notice
    for dropped in ("metadata.org", "icon_url", "skill_refs.version", "tool_approval_overrides.message"):
        assert dropped in notice.split("dropped ", 1)[1]


def test_bare_string_mcp_servers_and_inline_definitions() -> None:
    data, notice = read(
        """\
apiVersion: agentic.stigmer.ai/v1
kind: Agent
metadata: {name: a}
spec:
  instructions: Answer with care, always.
  mcpServers:
    - github
    - {name: fs, stdio: {command: fs-server}, enabled_tools: [read]}
"""
    )
    assert data["spec"]["mcpServers"] == [{"name": "github"}, {"name": "fs", "tools": ["read"]}]
    assert "mcp_servers.stdio (declare the server as a McpServer named 'fs')" in notice


def test_mcp_server_stdio_http_docker() -> None:
    stdio, notice = read(
        """\
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata: {name: github}
spec:
  icon_url: x
  tags: [dev, scm]
  stdio: {command: github-mcp-server, args: [stdio], working_dir: /srv, env_placeholders: {LOG: debug}}
  env_spec: {data: {GH_TOKEN: {is_secret: true}, MODE: {value: ro}}}
  default_enabled_tools: [search]
"""
    )
    assert stdio["spec"] == {
        "stdio": {
            "command": "github-mcp-server",
            "args": ["stdio"],
            "env": {"GH_TOKEN": "${ $secrets.GH_TOKEN }", "LOG": "debug", "MODE": "ro"},
            "cwd": "/srv",
        },
        "secrets": ["GH_TOKEN"],
    }
    assert "stdio.working_dir → stdio.cwd" in notice
    assert "dropped" in notice and "tags" in notice and "icon_url" in notice

    http, notice = read(
        """\
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata: {name: remote}
spec:
  http: {url: 'https://mcp.example.invalid/mcp', queryParams: {team: a b}, headers: {X-A: '1'}, timeoutSeconds: 30}
"""
    )
    assert http["spec"]["http"] == {
        "url": "https://mcp.example.invalid/mcp?team=a+b",
        "headers": {"X-A": "1"},
        "timeoutSeconds": 30.0,
    }
    assert "http.query_params → http.url query" in notice

    docker, notice = read(
        """\
apiVersion: agentic.stigmer.ai/v1
kind: McpServer
metadata: {name: boxed}
spec:
  docker:
    image: ghcr.io/acme/mcp:1
    args: [--verbose]
    volumes: [{host_path: /data, container_path: /data, read_only: true}]
    ports: [{host_port: 8080, container_port: 80}]
"""
    )
    assert docker["spec"]["stdio"] == {
        "command": "docker",
        "args": [
            "run",
            "-i",
            "--rm",
            "-v",
            "/data:/data:ro",
            "-p",
            "8080:80",
            "ghcr.io/acme/mcp:1",
            "--verbose",
        ],
    }
    assert "docker → stdio (docker run -i)" in notice


def test_environment_data() -> None:
    data, notice = read(
        """\
apiVersion: agentic.stigmer.ai/v1
kind: Environment
metadata: {name: prod}
spec:
  description: Production.
  data:
    REGION: {value: eu-west-1}
    GH_TOKEN: {is_secret: true, value: do-not-keep}
"""
    )
    assert data["spec"] == {
        "description": "Production.",
        "variables": {"REGION": "eu-west-1"},
        "secrets": ["GH_TOKEN"],
    }
    assert "do-not-keep" not in str(data)
    assert "stigmer secret set GH_TOKEN" in notice


def test_skill_md_and_tag(tmp_path: Path) -> None:
    data, notice = read(
        """\
apiVersion: agentic.stigmer.ai/v1
kind: Skill
metadata: {name: faq}
spec:
  tag: stable
  skill_md: |
    ---
    name: faq
    version: 2.1.0
    description: Answers about Acme.
    ---
    # FAQ
"""
    )
    assert data["spec"]["description"] == "Answers about Acme."
    assert data["spec"]["content"].startswith("---\nname: faq")
    assert data["metadata"]["annotations"] == {
        "stigmer.ai/skill-tag": "stable",
        "stigmer.ai/skill-version": "2.1.0",
    }
    assert "skill_md → content" in notice


def test_a_skill_directory_front_matter_is_read(tmp_path: Path) -> None:
    (tmp_path / "faq").mkdir()
    (tmp_path / "faq" / "SKILL.md").write_text(
        "---\nname: faq\nversion: 3\ndescription: From the file.\n---\nbody\n"
    )
    manifest = tmp_path / "skill.yaml"
    manifest.write_text(
        "apiVersion: stigmer.ai/v1\nkind: Skill\nmetadata: {name: faq}\nspec: {path: ./faq}\n"
    )
    [item] = parse_manifest(manifest.read_text(), str(manifest))
    data = message_to_manifest(item.resource)
    assert data["spec"]["description"] == "From the file."
    assert data["metadata"]["annotations"] == {"stigmer.ai/skill-version": "3"}
    # a description written in the manifest wins
    manifest.write_text(
        "apiVersion: stigmer.ai/v1\nkind: Skill\nmetadata: {name: faq}\nspec: {path: ./faq, description: Mine.}\n"
    )
    [item] = parse_manifest(manifest.read_text(), str(manifest))
    assert message_to_manifest(item.resource)["spec"]["description"] == "Mine."


def test_native_manifests_are_untouched() -> None:
    data, notice = read(
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: a}\n"
        "spec: {instructions: Hello there friend., model: {provider: openai, name: m}}\n"
    )
    assert notice == ""
    assert data["spec"] == {
        "instructions": "Hello there friend.",
        "model": {"provider": "openai", "name": "m"},
    }


def test_other_api_versions_are_still_refused() -> None:
    with pytest.raises(ManifestError, match=r"up.yaml:1: apiVersion: apiVersion must be 'stigmer.ai/v1'"):
        read("apiVersion: v9\nkind: Agent\nmetadata: {name: a}\nspec: {}\n")


WORKFLOW = """\
apiVersion: agentic.stigmer.ai/v1
kind: Workflow
metadata: {name: every-kind, org: acme}
spec:
  description: One task of every kind.
  document: {dsl: 1.0.0, namespace: acme, name: every-kind, version: 1.0.0}
  env_spec: {data: {API_KEY: {is_secret: true}, MODE: {value: x}}}
  tasks:
    - {name: init, kind: set_vars, task_config: {variables: {n: 1}}, export: {as: '${ . }'}}
    - name: fetch
      kind: http_call
      task_config: {method: POST, endpoint: {uri: 'http://h/x'}, headers: {A: b}, body: {q: 1}, timeout_seconds: 9}
    - {name: ask, kind: agent_call, task_config: {agent: helper, message: '${ .q }', config: {timeout: 60, model: m}}}
    - {name: nap, kind: wait, task_config: {seconds: 2}}
    - name: route
      kind: switch_case
      task_config: {cases: [{name: big, when: '${ .n > 1 }', then: loop}, {name: small, then: loop}]}
    - name: loop
      kind: for_each
      task_config: {each: it, in: '${ [1,2] }', do: [{name: step, kind: set_vars, task_config: {variables: {v: 1}}}]}
    - name: both
      kind: fork
      task_config: {compete: false, branches: [{name: a, do: [{name: a1, kind: wait, task_config: {seconds: 1}}]}]}
    - name: guard
      kind: try_catch
      task_config:
        try: [{name: boom, kind: raise_error, task_config: {error: Boom, message: it broke}}]
        catch: {as: err, do: [{name: note, kind: set_vars, task_config: {variables: {caught: true}}}]}
    - {name: hear, kind: listen, task_config: {to: {mode: one, signals: [{id: approve, type: signal}]}}}
    - {name: hear2, kind: listen, task_config: {to: {mode: all, signals: [{id: a, type: signal}, {id: b, type: signal}]}}}
    - {name: child, kind: run_workflow, task_config: {workflow: other, input: {x: 1}}}
    - {name: tell, kind: emit_event, task_config: {type: com.acme.done, data: {ok: true}}, flow: {then: end}}
"""


def test_every_task_kind_converts() -> None:
    data, notice = read(WORKFLOW)
    spec = data["spec"]
    assert spec["document"] == {
        "dsl": "1.0.0",
        "namespace": "acme",
        "name": "every-kind",
        "version": "1.0.0",
        "summary": "One task of every kind.",
    }
    assert spec["use"] == {"secrets": ["API_KEY"]}
    tasks = {name: body for item in spec["do"] for name, body in item.items()}
    assert [next(iter(i)) for i in spec["do"]] == [
        "init",
        "fetch",
        "ask",
        "nap",
        "route",
        "loop",
        "both",
        "guard",
        "hear",
        "hear2",
        "child",
        "tell",
    ]
    assert tasks["init"] == {"set": {"n": 1}, "export": {"as": "${ . }"}}
    assert tasks["fetch"] == {
        "call": "http",
        "with": {"method": "post", "endpoint": "http://h/x", "headers": {"A": "b"}, "body": {"q": 1}},
        "timeout": {"after": {"seconds": 9}},
    }
    assert tasks["ask"] == {
        "call": "agent",
        "with": {"agent": "helper", "message": "${ .q }"},
        "timeout": {"after": {"seconds": 60}},
    }
    assert tasks["nap"] == {"wait": {"seconds": 2}}
    assert tasks["route"] == {
        "switch": [{"big": {"when": "${ .n > 1 }", "then": "loop"}}, {"small": {"then": "loop"}}]
    }
    assert tasks["loop"] == {"for": {"each": "it", "in": "${ [1,2] }"}, "do": [{"step": {"set": {"v": 1}}}]}
    assert tasks["both"] == {
        "fork": {"branches": [{"a": {"do": [{"a1": {"wait": {"seconds": 1}}}]}}], "compete": False}
    }
    assert tasks["guard"] == {
        "try": [
            {
                "boom": {
                    "raise": {
                        "error": {
                            "type": "https://stigmer.ai/errors/upstream/Boom",
                            "status": 500,
                            "title": "Boom",
                            "detail": "it broke",
                        }
                    }
                }
            }
        ],
        "catch": {"as": "err", "do": [{"note": {"set": {"caught": True}}}]},
    }
    assert tasks["hear"] == {"listen": {"to": {"one": {"with": {"type": "approve"}}}}}
    assert tasks["hear2"] == {"listen": {"to": {"all": [{"with": {"type": "a"}}, {"with": {"type": "b"}}]}}}
    assert tasks["child"] == {
        "run": {"workflow": {"namespace": "acme", "name": "other", "version": "1.0.0", "input": {"x": 1}}}
    }
    assert tasks["tell"] == {
        "emit": {
            "event": {"with": {"type": "com.acme.done", "data": {"ok": True}, "source": "stigmer://workflow"}}
        },
        "then": "end",
    }
    assert set(TASK_KINDS) == {
        "set_vars",
        "http_call",
        "agent_call",
        "wait",
        "switch_case",
        "for_each",
        "fork",
        "try_catch",
        "listen",
        "raise_error",
        "run_workflow",
        "emit_event",
    }
    assert "agent_call.config.model (set it on the Agent)" in notice
    assert "env_spec.data (plain variables: give them as input)" in notice


@pytest.mark.parametrize("spelling", ["SET", "WORKFLOW_TASK_KIND_SET", "set", "setVars"])
def test_enum_spellings_of_kinds(spelling: str) -> None:
    data, _ = read(
        "apiVersion: agentic.stigmer.ai/v1\nkind: Workflow\nmetadata: {name: w}\n"
        "spec: {document: {namespace: n, name: w, version: 1.0.0}, tasks: "
        f"[{{name: s, kind: {spelling}, task_config: {{variables: {{a: 1}}}}}}]}}\n"
    )
    assert data["spec"]["do"] == [{"s": {"set": {"a": 1}}}]


@pytest.mark.parametrize("kind", sorted(UNCONVERTIBLE))
def test_kinds_without_counterpart_are_refused_with_their_line(kind: str) -> None:
    text = (
        "apiVersion: agentic.stigmer.ai/v1\nkind: Workflow\nmetadata: {name: w}\nspec:\n"
        "  document: {namespace: n, name: w, version: 1.0.0}\n  tasks:\n"
        "    - {name: ok, kind: set_vars, task_config: {variables: {a: 1}}}\n"
        f"    - name: bad\n      kind: {kind}\n      task_config: {{}}\n"
    )
    with pytest.raises(ManifestError) as caught:
        read(text, "flows/w.yaml")
    assert str(caught.value).startswith(
        f"flows/w.yaml:9: spec.tasks[1].kind: task kind {kind} cannot be converted: "
    )


def test_dollar_data_asks_for_the_zigflow_dialect() -> None:
    data, notice = read(
        "apiVersion: agentic.stigmer.ai/v1\nkind: Workflow\nmetadata: {name: w}\n"
        "spec: {document: {namespace: n, name: w, version: 1.0.0}, tasks: "
        "[{name: s, kind: set_vars, task_config: {variables: {a: '${ $data.x }'}}}]}\n"
    )
    assert data["spec"]["document"]["metadata"] == {"stigmer.ai/dialect": "zigflow"}
    assert "zigflow" in notice


def test_a_resource_annotation_opts_a_document_into_a_dialect() -> None:
    data, _ = read(
        "apiVersion: stigmer.ai/v1\nkind: Workflow\n"
        "metadata: {name: w, annotations: {stigmer.ai/dialect: zigflow}}\n"
        "spec: {document: {dsl: 1.0.0, namespace: n, name: w, version: 1.0.0}, do: [{s: {set: {a: 1}}}]}\n"
    )
    assert data["spec"]["document"]["metadata"] == {"stigmer.ai/dialect": "zigflow"}


def test_runner_document_spellings_are_tolerated() -> None:
    data, notice = read(
        "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: w}\nspec:\n"
        "  document: {dsl: 1.0.0, namespace: n, name: w, version: 1.0.0, description: Says hi.}\n"
        "  do:\n    - get: {call: http, with: {method: get, endpoint: 'http://h', timeout_seconds: 5}}\n"
    )
    assert data["spec"]["document"]["summary"] == "Says hi."
    assert "description" not in data["spec"]["document"]
    assert data["spec"]["do"] == [
        {
            "get": {
                "call": "http",
                "with": {"method": "get", "endpoint": "http://h"},
                "timeout": {"after": {"seconds": 5}},
            }
        }
    ]
    assert notice == (
        "Workflow/w read with upstream spellings; mapped document.description → document.summary, "
        "with.timeout_seconds → timeout.after.seconds"
    )


def test_reverse_mapping_round_trips() -> None:
    import json

    first, _ = read(AGENT_SNAKE)
    upstream = to_upstream(first)
    assert upstream["apiVersion"] == "agentic.stigmer.ai/v1"
    assert upstream["spec"]["mcpServerUsages"][0]["mcpServerRef"] == {"kind": "mcp_server", "slug": "github"}
    assert upstream["spec"]["skillRefs"] == [{"kind": "skill", "slug": "faq"}]
    again, _ = read(json.dumps(upstream), "again.json")
    assert again["spec"]["mcpServers"] == first["spec"]["mcpServers"]
    assert again["spec"]["skills"] == first["spec"]["skills"]
    assert again["spec"]["env"] == first["spec"]["env"]
    assert again["spec"]["subAgents"][0]["mcpServers"] == [{"name": "github", "tools": ["search_issues"]}]


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
_FIELDS = [
    "model",
    "config",
    "mcp_server_usages",
    "mcpServerRef",
    "enabled_tools",
    "tool_approval_overrides",
    "tool_name",
    "skill_refs",
    "sub_agents",
    "mcp_servers",
    "mcp_tool_selections",
    "env",
    "env_spec",
    "data",
    "is_secret",
    "value",
    "stdio",
    "http",
    "docker",
    "volumes",
    "ports",
    "query_params",
    "args",
    "url",
    "command",
    "skill_md",
    "tag",
    "variables",
    "endpoint",
    "uri",
    "cases",
    "branches",
    "do",
    "try",
    "catch",
    "to",
    "signals",
    "error",
    "status",
    "workflow",
    "input",
    "event",
    "with",
    "type",
    "seconds",
    "each",
    "in",
]
_KEY = st.sampled_from(_FIELDS) | _TEXT
_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | _TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_KEY, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(kind=st.sampled_from(["Agent", "McpServer", "Environment", "Skill", "Workflow"]), spec=_VALUE)
def test_any_upstream_spec_gives_a_resource_or_one_clear_error(kind: str, spec: Any) -> None:
    import json

    text = json.dumps(
        {"apiVersion": "agentic.stigmer.ai/v1", "kind": kind, "metadata": {"name": "x"}, "spec": spec}
    )
    try:
        parse_manifest(text, "fuzz.json")
    except ManifestError as exc:
        assert str(exc).startswith("fuzz.json")
        assert "\n" not in str(exc)


_TASK = st.fixed_dictionaries(
    {"name": _TEXT, "kind": st.sampled_from([*TASK_KINDS, *UNCONVERTIBLE, "bogus"]) | _TEXT},
    optional={"task_config": _VALUE, "export": _VALUE, "flow": _VALUE},
)


@settings(max_examples=400, deadline=None)
@given(tasks=st.lists(_TASK, max_size=4) | _VALUE, document=_VALUE)
def test_any_upstream_tasks_list_converts_or_gives_one_located_error(tasks: Any, document: Any) -> None:
    import json

    spec = {"document": document, "tasks": tasks}
    text = json.dumps(
        {"apiVersion": "agentic.stigmer.ai/v1", "kind": "Workflow", "metadata": {"name": "x"}, "spec": spec}
    )
    try:
        [item] = parse_manifest(text, "fuzz.json")
    except ManifestError as exc:
        assert str(exc).startswith("fuzz.json")
        assert "\n" not in str(exc)
    else:
        assert "do" in message_to_manifest(item.resource)["spec"]


def test_a_workflow_goes_back_to_upstream_tasks_and_round_trips() -> None:
    import json

    first, _ = read(WORKFLOW)
    upstream = to_upstream(first)
    assert upstream["apiVersion"] == "agentic.stigmer.ai/v1"
    assert [t["kind"] for t in upstream["spec"]["tasks"]] == [
        "set_vars",
        "http_call",
        "agent_call",
        "wait",
        "switch_case",
        "for_each",
        "fork",
        "try_catch",
        "listen",
        "listen",
        "run_workflow",
        "emit_event",
    ]
    assert upstream["spec"]["document"]["description"] == "One task of every kind."
    again, _ = read(json.dumps(upstream), "again.json")
    assert again["spec"]["do"] == first["spec"]["do"]
    assert again["spec"]["use"] == first["spec"]["use"]


def test_a_workflow_without_upstream_counterparts_is_exported_as_it_is() -> None:
    native, _ = read(
        "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: w}\nspec:\n"
        "  document: {dsl: 1.0.0, namespace: n, name: w, version: 1.0.0}\n"
        "  do: [{sh: {run: {shell: {command: date}}}}]\n"
    )
    assert to_upstream(native) is native
