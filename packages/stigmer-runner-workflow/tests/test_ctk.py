"""The Serverless Workflow conformance kit (ctk/*.feature), run offline through InProcessHost.

The feature files are upstream's, unmodified; this module is their step code. Public hosts
(petstore, httpbin) are answered by the local stub from conftest.py.
"""

from __future__ import annotations

import io
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from stigmer.runner.workflow import InProcessHost, WorkflowError, run_workflow
from stigmer.runner.workflow._errors import normalize_error_type

FEATURES = Path(__file__).parent / "ctk"

# Scenarios that cannot pass, and exactly why. Keep this short and honest.
XFAIL: dict[str, str] = {}


@dataclass
class Step:
    keyword: str
    text: str
    doc: str | None = None


@dataclass
class Scenario:
    feature: str
    name: str
    steps: list[Step] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.feature}::{self.name}"


def parse_feature(path: Path) -> list[Scenario]:
    """A small Gherkin reader: scenarios, steps and ``\"\"\"`` doc strings (enough for the kit)."""
    scenarios: list[Scenario] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        stripped = lines[index].strip()
        index += 1
        if stripped.startswith("Scenario:"):
            scenarios.append(Scenario(path.stem, stripped.split(":", 1)[1].strip()))
        elif scenarios and re.match(r"^(Given|When|Then|And|But)\b", stripped):
            keyword, _, text = stripped.partition(" ")
            scenarios[-1].steps.append(Step(keyword, text.strip()))
        elif stripped.startswith('"""') and scenarios and scenarios[-1].steps:
            body: list[str] = []
            while index < len(lines) and not lines[index].strip().startswith('"""'):
                body.append(lines[index])
                index += 1
            index += 1
            scenarios[-1].steps[-1].doc = textwrap.dedent("\n".join(body))
    return scenarios


def load_yaml(text: str | None) -> Any:
    return YAML(typ="safe", pure=True).load(io.StringIO(text or ""))


SCENARIOS = [s for path in sorted(FEATURES.glob("*.feature")) for s in parse_feature(path)]


def _params() -> list[Any]:
    params = []
    for scenario in SCENARIOS:
        marks = [pytest.mark.xfail(strict=True, reason=XFAIL[scenario.id])] if scenario.id in XFAIL else []
        params.append(pytest.param(scenario, id=scenario.id, marks=marks))
    return params


def test_the_kit_is_complete() -> None:
    assert len(SCENARIOS) == 21
    assert {s.feature for s in SCENARIOS} == {p.stem for p in FEATURES.glob("*.feature")}
    assert all(s.steps for s in SCENARIOS)


def lookup(value: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        assert isinstance(value, dict) and part in value, f"missing property {dotted!r} in {value!r}"
        value = value[part]
    return value


def names_in(text: str) -> list[str]:
    return re.findall(r"'([^']*)'", text)


@pytest.mark.parametrize("scenario", _params())
async def test_scenario(scenario: Scenario, stub: Any) -> None:
    definition: Any = None
    workflow_input: Any = {}
    host: InProcessHost = stub.host()
    output: Any = None
    fault: WorkflowError | None = None
    executed = False
    checked = 0
    for step in scenario.steps:
        text = step.text
        if text.startswith("a workflow with definition"):
            definition = step.doc
        elif "the workflow input is" in text:
            workflow_input = load_yaml(step.doc)
        elif text == "the workflow is executed":
            try:
                output = await run_workflow(definition, host, workflow_input)
            except WorkflowError as error:
                fault = error
            finally:
                await host.aclose()
            executed = True
        elif text.startswith("the workflow should complete"):
            assert fault is None, f"the workflow faulted: {fault}"
            if text.endswith("with output:"):
                assert output == load_yaml(step.doc)
            checked += 1
        elif text.startswith("the workflow should fault"):
            assert fault is not None, f"the workflow completed with {output!r}"
            if text.endswith("with error:"):
                expected = load_yaml(step.doc)
                for key, value in expected.items():
                    actual = fault.problem.get(key)
                    if key == "type":
                        assert normalize_error_type(actual) == normalize_error_type(value)
                    else:
                        assert actual == value, f"error.{key}: {actual!r} != {value!r}"
            checked += 1
        elif text.startswith("the workflow output should have properties"):
            for dotted in names_in(text):
                lookup(output, dotted)
            checked += 1
        elif text.startswith("the workflow output should have a") and "property with value" in text:
            (dotted,) = names_in(text)
            assert lookup(output, dotted) == load_yaml(step.doc)
            checked += 1
        elif text.startswith("the workflow output should have a") and "property containing" in text:
            (dotted,) = names_in(text)
            count = int(re.search(r"containing (\d+) items", text).group(1))  # type: ignore[union-attr]
            assert len(lookup(output, dotted)) == count
            checked += 1
        elif re.match(r"^\w+ should run (first|last|after|before)", text):
            order = [name for kind, _, name, _ in host.events if kind == "started"]
            finished = [name for kind, _, name, _ in host.events if kind == "completed"]
            words = text.split()
            task, relation = words[0], words[3]
            if relation == "first":
                assert order[0] == task, order
            elif relation == "last":
                assert finished[-1] == task, finished
            else:
                other = words[4]
                a, b = (task, other) if relation == "before" else (other, task)
                assert order.index(a) < order.index(b), order
            checked += 1
        else:
            raise AssertionError(f"no step code for: {step.keyword} {text}")
    assert executed and checked, "the scenario asserted nothing"
    if re.search(r"call: (http|openapi)", definition or ""):
        assert stub.requests, "an HTTP scenario must have reached the local stub"
