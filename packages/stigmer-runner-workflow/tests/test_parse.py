"""Parsing and validation: the spec's examples, its invalid fixtures, and semantic checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from stigmer.core import InvalidArgument
from stigmer.runner.workflow import (
    WorkflowValidationError,
    check_deterministic,
    load_workflow,
    validate_workflow,
)

FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLES = sorted((FIXTURES / "examples").glob("*.yaml"))
INVALID = sorted((FIXTURES / "invalid-fixtures").glob("*.yaml"))
DOC = {"dsl": "1.0.0", "namespace": "test", "name": "t", "version": "1.0.0"}


def problems(definition: Any) -> list[tuple[str, str]]:
    with pytest.raises(WorkflowValidationError) as caught:
        load_workflow(definition)
    return list(caught.value.problems)


def test_fixture_sets_are_present() -> None:
    assert len(EXAMPLES) >= 60
    assert len(INVALID) == 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_spec_example_validates(path: Path) -> None:
    workflow = load_workflow(path.read_text(encoding="utf-8"))
    assert workflow.name == workflow.definition["document"]["name"]


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_every_invalid_fixture_is_rejected(path: Path) -> None:
    found = problems(path.read_text(encoding="utf-8"))
    assert found and all(message for _, message in found)


def test_validation_error_is_an_invalid_argument_with_field_paths() -> None:
    with pytest.raises(InvalidArgument) as caught:
        load_workflow({"document": DOC, "do": [{"a": {"call": "http", "with": {"method": "get"}, "foo": 1}}]})
    assert caught.value.field_paths == ("/do/0/a",)
    assert "'foo'" in str(caught.value)


def test_yaml_12_keeps_on_as_a_string() -> None:
    text = """
document: {dsl: 1.0.0, namespace: test, name: t, version: 1.0.0}
schedule:
  on:
    one:
      with: {type: com.example.start}
do:
  - a: {set: {x: 1}}
"""
    workflow = load_workflow(text)
    assert "on" in workflow.definition["schedule"]
    assert workflow.version == "1.0.0"


def test_nested_error_names_the_task_path_and_field() -> None:
    found = problems(
        {
            "document": DOC,
            "do": [
                {"x": {"set": {"a": 1}}},
                {"y": {"set": {"a": 1}}},
                {
                    "fetch": {
                        "try": [{"get": {"call": "http", "with": {"method": "get"}}}],
                        "catch": {},
                    }
                },
            ],
        }
    )
    assert ("/do/2/fetch/try/0/get/with", "'endpoint' is a required property") in found


def test_unknown_then_target_is_rejected() -> None:
    found = problems({"document": DOC, "do": [{"a": {"set": {"x": 1}, "then": "nowhere"}}]})
    assert found[0][0] == "/do/0/a/then"
    assert "nowhere" in found[0][1]


def test_unknown_switch_target_is_rejected() -> None:
    found = problems({"document": DOC, "do": [{"s": {"switch": [{"c": {"when": ".x", "then": "ghost"}}]}}]})
    assert found == [("/do/0/s/switch/0/c/then", found[0][1])]
    assert "ghost" in found[0][1]


def test_then_may_target_any_sibling_but_not_a_nested_task() -> None:
    load_workflow({"document": DOC, "do": [{"a": {"set": {"x": 1}, "then": "b"}}, {"b": {"set": {"x": 2}}}]})
    found = problems(
        {
            "document": DOC,
            "do": [{"a": {"do": [{"inner": {"set": {"x": 1}}}]}}, {"b": {"set": {"x": 1}, "then": "inner"}}],
        }
    )
    assert found[0][0] == "/do/1/b/then"


def test_duplicate_task_names_in_one_list_are_accepted_with_a_warning() -> None:
    # Neither the DSL reference nor its schema requires unique names in a task list.
    document = {"document": DOC, "do": [{"a": {"do": [{"x": {"set": {"v": 1}}}, {"x": {"set": {"v": 2}}}]}}]}
    load_workflow(document)
    validation = validate_workflow(document)
    assert validation.ok and validation.workflow is not None
    assert [(w.path, w.warning) for w in validation.warnings] == [("/do/0/a/do/1/x", True)]
    assert "used twice" in validation.warnings[0].message


def test_same_name_in_different_lists_is_fine() -> None:
    load_workflow({"document": DOC, "do": [{"a": {"do": [{"a": {"set": {"v": 1}}}]}}]})


@pytest.mark.parametrize(
    "expression", ["${ $secrets.TOKEN }", '${ "Bearer " + $secrets["TOKEN"] }', "${.secrets.TOKEN}"]
)
def test_undeclared_secret_is_rejected(expression: str) -> None:
    found = problems({"document": DOC, "do": [{"a": {"set": {"h": expression}}}]})
    assert found == [("/do/0/a/set/h", "secret(s) TOKEN used but not declared in use.secrets")]


def test_declared_secret_is_accepted() -> None:
    workflow = load_workflow(
        {"document": DOC, "use": {"secrets": ["TOKEN"]}, "do": [{"a": {"set": {"h": "${ $secrets.TOKEN }"}}}]}
    )
    assert workflow.declared_secrets == ("TOKEN",)


def test_literal_text_mentioning_secrets_is_not_an_expression() -> None:
    load_workflow({"document": DOC, "do": [{"a": {"set": {"h": "see $secrets.TOKEN in the docs"}}}]})


def test_unknown_references_are_rejected() -> None:
    found = problems(
        {
            "document": DOC,
            "do": [
                {"r": {"raise": {"error": "missing"}}},
                {"t": {"try": [{"x": {"set": {"a": 1}}}], "catch": {"retry": "nope"}}},
            ],
        }
    )
    assert {path for path, _ in found} == {"/do/0/r/raise/error", "/do/1/t/catch/retry"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "- a\n- b",
        "document: [",
        "a: !!python/object:os.system {}",
        "x: .nan",
        "{a: 1, a: 2}",
        b"\xff\xfe",
    ],
)
def test_bad_text_gives_a_validation_error(text: str | bytes) -> None:
    assert problems(text)


def test_check_deterministic_rejects_clock_and_environment() -> None:
    workflow = load_workflow(
        {
            "document": DOC,
            "do": [
                {"a": {"set": {"t": "${ now }", "ok": "${ .now + .input }", "literal": "now"}}},
                {"b": {"if": "$ENV.HOME != null", "set": {"x": 1}}},
            ],
        }
    )
    with pytest.raises(WorkflowValidationError) as caught:
        check_deterministic(workflow)
    assert [path for path, _ in caught.value.problems] == ["/do/0/a/set/t", "/do/1/b/if"]


def test_check_deterministic_accepts_pure_documents() -> None:
    for path in EXAMPLES:
        check_deterministic(load_workflow(path.read_text(encoding="utf-8")))


def test_jq_syntax_errors_are_found_before_running() -> None:
    found = problems(
        {
            "document": DOC,
            "do": [
                {
                    "a": {
                        "set": {"ok": "${ $color + .x }", "bad": "${ .a + }"},
                        "if": ".x ==",
                        "output": {"as": "nope(1)"},
                    }
                },
                {"b": {"for": {"in": ".items[", "each": "c"}, "do": [{"c": {"set": {"from": "London"}}}]}},
                {"c": {"switch": [{"s": {"when": ".a and", "then": "continue"}}]}},
            ],
        }
    )
    assert found == [
        ("/do/0/a/set/bad", "invalid jq expression: syntax error, unexpected end of file (line 1, column 6)"),
        ("/do/0/a/output/as", "invalid jq expression: nope/1 is not defined (line 1, column 1)"),
        ("/do/0/a/if", "invalid jq expression: syntax error, unexpected end of file (line 1, column 4)"),
        ("/do/1/b/for/in", "invalid jq expression: syntax error, unexpected end of file (line 1, column 7)"),
        (
            "/do/2/c/switch/0/s/when",
            "invalid jq expression: syntax error, unexpected end of file (line 1, column 4)",
        ),
    ]


def test_tasks_in_functions_and_extensions_are_checked_too() -> None:
    found = problems(
        {
            "document": DOC,
            "use": {
                "functions": {"f": {"set": {"x": "${ .x | }"}}},
                "extensions": [
                    {"e": {"extend": "all", "before": [{"d": {"set": {"a": 1}}}, {"d": {"set": {"a": 2}}}]}}
                ],
            },
            "do": [{"a": {"call": "f"}}],
        }
    )
    assert [path for path, _ in found] == ["/use/functions/f/set/x"]
    warnings = validate_workflow(
        {
            "document": DOC,
            "use": {
                "extensions": [
                    {"e": {"extend": "all", "before": [{"d": {"set": {"a": 1}}}, {"d": {"set": {"a": 2}}}]}}
                ]
            },
            "do": [{"a": {"set": {"v": 1}}}],
        }
    ).warnings
    assert [w.path for w in warnings] == ["/use/extensions/0/e/before/1/d"]
