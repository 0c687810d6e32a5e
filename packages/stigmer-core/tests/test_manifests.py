import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stigmer.core import (
    KINDS,
    ManifestError,
    StigmerError,
    dump_manifests,
    kind_of,
    load_manifests,
    message_to_manifest,
    parse_manifest,
    unwrap,
)
from stigmer.proto.v1 import resource_pb2

EXAMPLE = """\
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
  document: {dsl: 1.0.0, namespace: demo, name: hello, version: 1.0.0}
  listen:
    to:
      one: {with: {type: x}}
  do:
    - greet:
        set: {greeting: '${ "Hello, " + .name + "!" }', count: 3, ratio: 0.5}
"""


def test_multi_document_yaml() -> None:
    loaded = parse_manifest(EXAMPLE, "app.yaml")
    assert [(r.kind, r.name, r.line) for r in loaded] == [
        ("Agent", "support-bot", 1),
        ("McpServer", "github", 12),
        ("Environment", "prod", 21),
        ("Workflow", "hello", 28),
    ]
    agent = unwrap(loaded[0].resource)
    assert agent.spec.mcp_servers[0].require_approval == ["create_issue"]  # type: ignore[attr-defined]
    assert agent.metadata.labels["team"] == "support"  # type: ignore[attr-defined]
    assert kind_of(loaded[2].resource) == "Environment"


def test_yaml_1_2_semantics_keep_on_as_a_string() -> None:
    wf = parse_manifest(EXAMPLE, "app.yaml")[3]
    manifest = message_to_manifest(wf.resource)
    assert "listen" in manifest["spec"]
    doc = manifest["spec"]
    assert doc["document"]["version"] == "1.0.0"
    assert doc["do"][0]["greet"]["set"] == {
        "greeting": '${ "Hello, " + .name + "!" }',
        "count": 3,
        "ratio": 0.5,
    }
    text = "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: w}\nspec: {on: yes, off: no}\n"
    spec = message_to_manifest(parse_manifest(text)[0].resource)["spec"]
    assert spec == {"on": "yes", "off": "no"}


def test_snake_case_input_camel_case_output() -> None:
    text = (
        "api_version: stigmer.ai/v1\nkind: Agent\nmetadata: {name: a}\n"
        "spec: {mcp_servers: [{name: g, require_approval: [t]}], sub_agents: [{name: s}]}\n"
    )
    out = message_to_manifest(parse_manifest(text)[0].resource)
    assert out["apiVersion"] == "stigmer.ai/v1"
    assert out["spec"] == {
        "mcpServers": [{"name": "g", "requireApproval": ["t"]}],
        "subAgents": [{"name": "s"}],
    }


def test_json_documents_and_lists(tmp_path: Path) -> None:
    doc = {
        "apiVersion": "stigmer.ai/v1",
        "kind": "Environment",
        "metadata": {"name": "e"},
        "spec": {"secrets": ["A"]},
    }
    (tmp_path / "one.json").write_text(json.dumps(doc))
    (tmp_path / "many.json").write_text(json.dumps([doc, {**doc, "metadata": {"name": "f"}}]))
    names = [r.name for r in load_manifests([tmp_path / "one.json", tmp_path / "many.json"])]
    assert names == ["e", "e", "f"]


def test_directories_recurse_and_skip_hidden(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "a.yaml").write_text(EXAMPLE.split("---")[2])
    (tmp_path / "sub" / "b.yml").write_text(EXAMPLE.split("---")[1])
    (tmp_path / ".hidden" / "c.yaml").write_text("not: [valid")
    (tmp_path / "notes.txt").write_text("ignored")
    loaded = load_manifests([tmp_path])
    assert [(r.kind, Path(r.source).name) for r in loaded] == [
        ("Environment", "a.yaml"),
        ("McpServer", "b.yml"),
    ]
    assert loaded[0].base_dir == tmp_path


def test_stdin() -> None:
    loaded = load_manifests(["-"], stdin_text=EXAMPLE)
    assert len(loaded) == 4
    assert loaded[0].source == "<stdin>"


def test_dump_round_trips_through_text() -> None:
    loaded = parse_manifest(EXAMPLE, "app.yaml")
    text = dump_manifests([r.resource for r in loaded])
    again = parse_manifest(text, "dumped.yaml")
    assert [r.resource for r in again] == [r.resource for r in loaded]
    as_json = dump_manifests([r.resource for r in loaded], fmt="json")
    assert [r.resource for r in parse_manifest(as_json, "x.json")] == [r.resource for r in loaded]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "apiVersion: stigmer.ai/v1\nkind: Agnt\nmetadata: {name: x}\n",
            "f.yaml:2: kind: unknown kind 'Agnt'; did you mean 'Agent'?",
        ),
        ("apiVersion: stigmer.ai/v1\nkind: agent\nmetadata: {name: x}\n", "did you mean 'Agent'?"),
        (
            "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: x}\nspec:\n  model:\n    provder: openai\n",
            "f.yaml:6: spec.model.provder: unknown field 'provder'; did you mean 'provider'?",
        ),
        (
            "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: x}\nspec:\n  skills: [{name: 3}]\n",
            "f.yaml:5: spec.skills[0].name: expected a string, found a number",
        ),
        (
            "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {labels: {}}\n",
            "f.yaml:3: metadata.name: metadata.name is required",
        ),
        (
            "apiVersion: v2\nkind: Agent\nmetadata: {name: x}\n",
            "f.yaml:1: apiVersion: apiVersion must be 'stigmer.ai/v1'",
        ),
        ("kind: Agent\n", "apiVersion must be"),
        ("apiVersion: stigmer.ai/v1\nmetadata: {name: x}\n", "missing 'kind'"),
        (
            "apiVersion: stigmer.ai/v1\nkind: McpServer\nmetadata: {name: m}\nspec:\n  stdio: {command: x}\n  http: {url: y}\n",
            "f.yaml:6: spec.http: give only one of stdio, http",
        ),
        (
            "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: x}\nspec: [1]\n",
            "spec: expected a mapping, found a list",
        ),
        ("a: [1\n", "f.yaml:2: invalid YAML"),
        ("a: 1\na: 2\n", "duplicate key"),
        ("- 1\n- 2\n", "expected a mapping with apiVersion"),
        ("just text", "expected a mapping with apiVersion"),
        (
            "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: x}\nspec:\n  mcpServers: [{name: g, require_approval: [a], requireApproval: [b]}]\n",
            "are the same field",
        ),
    ],
)
def test_errors_name_file_line_and_field(text: str, expected: str) -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest(text, "f.yaml")
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_json_error_has_a_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.json"
    p.write_text('{\n  "kind": "Agent",\n  oops\n}')
    with pytest.raises(ManifestError, match=r"bad.json:3: invalid JSON"):
        load_manifests([p])


def test_missing_paths_and_empty_directories(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="no such file or directory"):
        load_manifests([tmp_path / "nope.yaml"])
    with pytest.raises(ManifestError, match=r"no \.yaml, \.yml or \.json files"):
        load_manifests([tmp_path])


def test_alias_bombs_are_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    with pytest.raises(ManifestError, match="too large"):
        parse_manifest("\n".join(lines) + "\n", "bomb.yaml")


def test_empty_documents_are_ignored() -> None:
    assert parse_manifest("---\n---\n", "e.yaml") == []


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_manifest_message_manifest_is_identity(kind: str, manifest_strategy: Any) -> None:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(manifest_strategy(kind))
    def check(data: dict[str, Any]) -> None:
        (loaded,) = parse_manifest(json.dumps(data), "gen.json")
        assert message_to_manifest(loaded.resource) == data
        (again,) = parse_manifest(dump_manifests([loaded.resource]), "gen.yaml")
        assert again.resource == loaded.resource

    check()


@settings(max_examples=300, deadline=2000)
@given(st.text(max_size=400))
def test_arbitrary_text_never_escapes_as_another_exception(text: str) -> None:
    try:
        parse_manifest(text, "fuzz.yaml")
    except StigmerError as exc:
        assert str(exc).startswith("fuzz.yaml")


@settings(max_examples=300, deadline=2000)
@given(st.data())
def test_mutated_manifests_give_located_errors(data: st.DataObject) -> None:
    text = EXAMPLE
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(text)))
        op = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        chunk = data.draw(
            st.sampled_from([":", "- ", "{", "]", "\t", "  ", "\n", "'", '"', "&a", "*a", "!!x", "#", "%"])
        )
        if op == "insert":
            text = text[:pos] + chunk + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + len(chunk) :]
        else:
            text = text[:pos] + chunk + text[pos + 1 :]
    try:
        loaded = parse_manifest(text, "mut.yaml")
    except ManifestError as exc:
        assert str(exc).startswith("mut.yaml")
    else:
        assert all(
            isinstance(r.resource, (resource_pb2.Resource,)) or r.kind.endswith("Execution") for r in loaded
        )


def test_arbitrary_bytes_from_stdin_are_handled() -> None:
    raw = io.BytesIO(bytes(range(256))).read().decode("latin-1")
    with pytest.raises(ManifestError):
        parse_manifest(raw, "<stdin>")


def test_reused_anchors_load_quietly(recwarn: pytest.WarningsRecorder) -> None:
    text = "apiVersion: stigmer.ai/v1\nkind: Environment\nmetadata: {name: &a e, labels: {x: &a y, z: *a}}\n"
    (loaded,) = parse_manifest(text, "a.yaml")
    assert message_to_manifest(loaded.resource)["metadata"]["labels"] == {"x": "y", "z": "y"}
    assert not recwarn.list


# ---------------------------------------------------------------------------------------------
# canonical order (issue 16, defect 6): the same resource always renders to the same bytes

WORKFLOW = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: wf, labels: {zeta: '1', alpha: '2', mid: '3'}, annotations: {b: x, a: y}}
spec:
  output: {as: '${ . }'}
  do:
    - first: {set: {x: 1, y: 2, z: 3, alpha: 4, beta: 5, gamma: 6, delta: 7}}
    - second:
        call: http
        with: {method: get, endpoint: 'https://x', headers: {k3: c, k1: a, k2: b, k4: d}}
  timeout: {after: {minutes: 5}}
  use: {secrets: [API_KEY]}
  input: {schema: {format: json, document: {type: object}}}
  document: {version: 0.1.0, name: wf, namespace: ns, dsl: 1.0.0, title: T}
  schedule: {every: {hours: 1}}
"""


def _key_paths(value: Any, path: str = "") -> list[str]:
    """Every mapping key with its path, in output order."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in (f"{path}/{k}", *_key_paths(v, f"{path}/{k}"))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _key_paths(v, f"{path}[{i}]")]
    return []


def test_a_workflow_renders_in_the_canonical_order() -> None:
    (loaded,) = parse_manifest(WORKFLOW, "wf.yaml")
    data = message_to_manifest(loaded.resource)
    assert list(data) == ["apiVersion", "kind", "metadata", "spec"]
    assert list(data["metadata"]) == ["name", "labels", "annotations"]
    assert list(data["metadata"]["labels"]) == ["alpha", "mid", "zeta"]
    spec = data["spec"]
    assert list(spec) == ["document", "input", "use", "do", "timeout", "output", "schedule"]
    assert list(spec["document"]) == ["dsl", "namespace", "name", "version", "title"]
    assert list(spec["do"][0]["first"]["set"]) == ["alpha", "beta", "delta", "gamma", "x", "y", "z"]
    assert list(spec["do"][1]["second"]["with"]) == ["endpoint", "headers", "method"]
    assert list(spec["do"][1]["second"]["with"]["headers"]) == ["k1", "k2", "k3", "k4"]
    assert list(spec["input"]["schema"]) == ["document", "format"]
    text = dump_manifests([loaded.resource])
    assert text.index("document:") < text.index("input:") < text.index("do:") < text.index("output:")


def test_exports_are_byte_identical_across_processes() -> None:
    """Protobuf Struct maps iterate in a per-process hash order; the output must not."""
    import subprocess
    import sys

    script = (
        "import sys; from stigmer.core import parse_manifest, dump_manifests;"
        "(r,) = parse_manifest(sys.stdin.read(), 'wf.yaml');"
        "sys.stdout.write(dump_manifests([r.resource]) + dump_manifests([r.resource], 'json'))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script], input=WORKFLOW, capture_output=True, text=True, check=True
        ).stdout
        for _ in range(3)
    }
    assert len(outputs) == 1


def _shuffled(draw: Any, value: Any) -> Any:
    if isinstance(value, dict):
        keys = draw(st.permutations(list(value)))
        return {k: _shuffled(draw, value[k]) for k in keys}
    if isinstance(value, list):
        return [_shuffled(draw, v) for v in value]
    return value


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_output_order_does_not_depend_on_input_order(kind: str, manifest_strategy: Any) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(manifest_strategy(kind), st.data())
    def check(data: dict[str, Any], draw: st.DataObject) -> None:
        (one,) = parse_manifest(json.dumps(data), "gen.json")
        (two,) = parse_manifest(json.dumps(_shuffled(draw.draw, data)), "gen.json")
        for fmt in ("yaml", "json"):
            assert dump_manifests([one.resource], fmt) == dump_manifests([two.resource], fmt)
        out = message_to_manifest(one.resource)
        assert _key_paths(out) == _key_paths(message_to_manifest(two.resource))
        assert out == data  # only the order may differ from the input, never keys or values
        top = ["apiVersion", "kind", "metadata", "spec", "status"]
        assert list(out) == [k for k in top if k in out]
        assert next(iter(out["metadata"])) == "name"

    check()


def test_a_loaded_resource_knows_the_line_of_each_field() -> None:
    text = (
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: a}\nspec: {instructions: hi}\n---\n"
        "apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {name: w}\nspec:\n"
        "  document: {dsl: 1.0.0, namespace: t, name: w, version: 1.0.0}\n"
        "  do:\n    - greet:\n        set:\n          hello: world\n"
    )
    agent, workflow = parse_manifest(text, "m.yaml")
    assert agent.line_of(["spec", "instructions"]) == 4
    assert workflow.line == 6
    assert workflow.line_of(["spec", "do", 0, "greet", "set", "hello"]) == 14
    assert workflow.line_of(["spec", "do", 0, "greet", "nope"]) == 12  # the nearest field that exists
    assert workflow.line_of([]) == 6
    as_json = parse_manifest(
        '{"apiVersion": "stigmer.ai/v1", "kind": "Agent", "metadata": {"name": "j"}}', "j.json"
    )
    assert as_json[0].line_of(["spec"]) == 1  # JSON keeps no positions: the document's line
