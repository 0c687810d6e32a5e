import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from stigmer.core import (
    SCHEMA_KINDS,
    ManifestError,
    manifest_schema,
    message_to_manifest,
    parse_manifest,
    validate_manifest,
)

AGENT = {
    "apiVersion": "stigmer.ai/v1",
    "kind": "Agent",
    "metadata": {"name": "support-bot", "labels": {"team": "support"}},
    "spec": {
        "instructions": "Answer briefly.",
        "model": {"provider": "openai", "name": "gpt-4o-mini", "params": {"temperature": 0.2}},
        "mcpServers": [{"name": "github", "tools": ["search_issues"], "requireApproval": ["create_issue"]}],
        "environments": ["prod"],
    },
}


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_schemas_are_draft_2020_12_with_descriptions(kind: str) -> None:
    schema = manifest_schema(kind)
    assert schema["$schema"].endswith("2020-12/schema")
    assert schema["properties"]["kind"]["const"] == kind
    assert schema["required"] == ["apiVersion", "kind", "metadata"]
    assert schema["$defs"]["Metadata"]["required"] == ["name"]
    assert schema["description"]


def test_a_valid_manifest_passes_and_snake_case_is_accepted() -> None:
    validate_manifest(AGENT, "a.yaml")
    snake = json.loads(
        json.dumps(AGENT).replace("mcpServers", "mcp_servers").replace("requireApproval", "require_approval")
    )
    validate_manifest(snake, "a.yaml")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d["spec"].update(instructionz="x"),
            "spec: does not match the Agent schema: Additional properties",
        ),
        (
            lambda d: d["metadata"].pop("name"),
            "metadata: does not match the Agent schema: 'name' is a required property",
        ),
        (lambda d: d["spec"]["mcpServers"][0].update(tools="x"), "spec.mcpServers[0].tools: does not match"),
        (lambda d: d.update(apiVersion="v2"), "apiVersion: does not match"),
    ],
)
def test_invalid_manifests_name_the_field(mutate: Any, message: str) -> None:
    data = json.loads(json.dumps(AGENT))
    mutate(data)
    with pytest.raises(ManifestError) as info:
        validate_manifest(data, "a.yaml", 3)
    assert str(info.value).startswith("a.yaml:3: ")
    assert message in str(info.value)


def test_oneof_is_exclusive_in_the_schema() -> None:
    data = {
        "apiVersion": "stigmer.ai/v1",
        "kind": "McpServer",
        "metadata": {"name": "m"},
        "spec": {"stdio": {"command": "x"}, "http": {"url": "y"}},
    }
    with pytest.raises(ManifestError, match="spec"):
        validate_manifest(data)


def test_unknown_kind_has_no_schema() -> None:
    with pytest.raises(ManifestError, match="no schema for kind 'Nope'"):
        validate_manifest({"kind": "Nope"})


def test_shipped_examples_validate() -> None:
    examples = Path(__file__).resolve().parents[3] / "examples"
    paths = sorted(examples.glob("*.yaml"))
    assert paths, "found no files to check"
    for path in paths:
        for loaded in parse_manifest(path.read_text(), str(path)):
            validate_manifest(message_to_manifest(loaded.resource, include_status=False), str(path))


@pytest.mark.parametrize("kind", SCHEMA_KINDS)
def test_everything_the_loader_accepts_matches_the_schema(kind: str, manifest_strategy: Any) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(manifest_strategy(kind))
    def check(data: dict[str, Any]) -> None:
        (loaded,) = parse_manifest(json.dumps(data), "gen.json")
        validate_manifest(message_to_manifest(loaded.resource, include_status=False), "gen.json")

    check()
