"""The SDK's validation: ``validate()`` without a backend, ``Stigmer.validate`` and ``apply``
against a real local store (apply refuses a broken workflow and stores nothing)."""

from __future__ import annotations

from pathlib import Path

import pytest
from stigmer.sdk import (
    Agent,
    CallAgent,
    RunWorkflow,
    Set,
    Stigmer,
    ValidationFailed,
    ValidationProblem,
    Workflow,
    validate,
)

BROKEN_JQ = """\
apiVersion: stigmer.ai/v1
kind: Workflow
metadata: {name: broken}
spec:
  document: {dsl: 1.0.0, namespace: t, name: broken, version: 1.0.0}
  do:
    - greet:
        set:
          hello: '${ .name + }'
"""


def test_validate_locates_problems_in_the_manifest(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN_JQ)
    [problem] = validate(path)
    assert isinstance(problem, ValidationProblem)
    assert (problem.source, problem.line, problem.path) == (str(path), 9, "spec.do[0].greet.set.hello")
    assert str(problem).startswith(f"{path}:9: spec.do[0].greet.set.hello: invalid jq expression: ")
    assert problem.to_dict()["severity"] == "error"


def test_validate_without_a_backend_looks_up_agents_and_workflows_among_the_given_resources() -> None:
    flow = Workflow(
        "flow",
        namespace="t",
        do={"ask": CallAgent("helper", "hi"), "sub": RunWorkflow("child", namespace="t", version="1.0.0")},
    )
    problems = validate(flow)
    assert [p.message.split(" (")[0] for p in problems] == [
        "agent 'helper' is not among the given manifests",
        "workflow 'child' is not among the given manifests",
    ]
    child = Workflow("child", namespace="t", do={"x": Set({"a": 1})})
    assert validate(flow, child, Agent("helper", instructions="help")) == []


def test_apply_refuses_an_invalid_workflow_and_stores_nothing(client: Stigmer, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN_JQ)
    good = Workflow("good", namespace="t", do={"x": Set({"a": 1})})
    with pytest.raises(ValidationFailed) as caught:
        client.apply(good, path)
    assert [p.path for p in caught.value.problems] == ["spec.do[0].greet.set.hello"]
    assert str(caught.value).startswith(f"{path}:9: ")
    assert client.list("workflows") == []
    with pytest.raises(ValidationFailed):
        client.apply(path, dry_run=True)


def test_client_validate_finds_agents_stored_in_the_backend(client: Stigmer) -> None:
    flow = Workflow("flow", namespace="t", do={"ask": CallAgent("helper", "hi")})
    [missing] = client.validate(flow)
    assert "agent 'helper' does not exist" in missing.message
    assert missing.path == "spec.do[0].ask.with.agent"
    client.apply(Agent("helper", instructions="help"))
    assert client.validate(flow) == []
    assert [a.action for a in client.apply(flow)] == ["created"]
