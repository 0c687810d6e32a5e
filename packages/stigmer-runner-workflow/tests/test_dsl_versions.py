"""Per-version validation: each document is checked against the schema of the DSL version it
declares, older 1.0.x shapes run with their own meaning, unknown versions are refused.

Written from the released schemas and dsl-reference.md of each tag (v1.0.0 ... v1.0.3):
- 1.0.0-1.0.2: ``run.shell.arguments`` / ``run.script.arguments`` are maps ("A list of the
  arguments of the shell command to run", type ``map``); 1.0.3 makes both an argv ``string[]``.
- 1.0.0-1.0.3 (tags): the error filter spells the problem's ``detail`` as ``details``.
- 1.0.1 added ``set`` as an expression; 1.0.2 added durations as expressions.
- 1.0.0: http ``headers`` / ``query`` are objects of any values; 1.0.1 makes the values strings.
"""

from __future__ import annotations

import copy
import io
from importlib import resources
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ruamel.yaml import YAML
from stigmer.runner.workflow import (
    SUPPORTED_DSL_VERSIONS,
    InProcessHost,
    WorkflowError,
    WorkflowValidationError,
    load_workflow,
    run_workflow,
    validate_document,
)
from stigmer.runner.workflow._normalize import NORMALIZATIONS
from stigmer.runner.workflow._schema import _validator, dsl_schema

OLD = ("1.0.0", "1.0.1", "1.0.2")


def doc(version: Any, *tasks: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "document": {"dsl": version, "namespace": "test", "name": "t", "version": "1.0.0"},
        **top,
        "do": list(tasks),
    }


def problems(document: Any) -> list[tuple[str, str]]:
    with pytest.raises(WorkflowValidationError) as caught:
        load_workflow(document)
    return list(caught.value.problems)


def test_the_supported_versions_are_the_released_ones() -> None:
    assert SUPPORTED_DSL_VERSIONS == ("1.0.0", "1.0.1", "1.0.2", "1.0.3")
    for version in SUPPORTED_DSL_VERSIONS:
        schema = dsl_schema(version)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert "$defs" in schema


@pytest.mark.parametrize("version", SUPPORTED_DSL_VERSIONS)
def test_the_loaded_schema_is_the_upstream_yaml(version: str) -> None:
    """The runner reads ``workflow.json`` (fast to load); it must hold exactly the upstream
    ``workflow.yaml`` beside it (regenerate with ``python scripts/gen_dsl_schemas.py``)."""
    folder = resources.files("stigmer.runner.workflow").joinpath("schema", version)
    upstream = YAML(typ="safe", pure=True).load(
        io.StringIO(folder.joinpath("workflow.yaml").read_text("utf-8"))
    )
    assert dsl_schema(version) == upstream
    assert list(dsl_schema(version)) == list(upstream)  # key order too


def test_each_validator_is_built_once_and_lazily() -> None:
    assert _validator("1.0.1") is _validator("1.0.1")
    assert _validator("1.0.1") is not _validator("1.0.3")
    assert dsl_schema("1.0.0") is dsl_schema("1.0.0")


# --- unknown versions ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.1.0", "0.8", 0.8, "2.0.0", "1.0.0-alpha5", "1.0", 1, "", "1.0.4"])
def test_an_unknown_version_is_refused_naming_the_supported_ones(version: Any) -> None:
    found = problems(doc(version, {"a": {"set": {"x": 1}}}))
    assert len(found) == 1
    where, message = found[0]
    assert where == "/document/dsl"
    assert f"DSL version {version} is not supported" in message
    assert "1.0.0, 1.0.1, 1.0.2, 1.0.3" in message


def test_an_unknown_version_in_yaml_text_is_refused() -> None:
    text = "document: {dsl: 0.8, namespace: t, name: t, version: 1.0.0}\ndo:\n  - a: {set: {x: 1}}\n"
    with pytest.raises(WorkflowValidationError, match=r"/document/dsl: DSL version 0.8 is not supported"):
        load_workflow(text)


def test_a_missing_version_is_a_schema_problem() -> None:
    document = doc("1.0.3", {"a": {"set": {"x": 1}}})
    del document["document"]["dsl"]
    assert any("'dsl' is a required property" in message for _, message in problems(document))


@given(
    st.one_of(
        st.text(max_size=30), st.floats(allow_nan=False, allow_infinity=False), st.integers(), st.booleans()
    )
)
def test_any_declared_version_is_accepted_or_refused_clearly(version: Any) -> None:
    try:
        load_workflow(doc(version, {"a": {"set": {"x": 1}}}))
    except WorkflowValidationError as invalid:
        assert invalid.problems[0][0] == "/document/dsl"
        assert "supported versions: 1.0.0, 1.0.1, 1.0.2, 1.0.3" in invalid.problems[0][1]
    else:
        assert version in SUPPORTED_DSL_VERSIONS


# --- each document against its own version's schema --------------------------------------------

SHELL_LIST = {"sh": {"run": {"shell": {"command": "echo", "arguments": ["a"]}}}}
SHELL_MAP = {"sh": {"run": {"shell": {"command": "echo", "arguments": {"a": None}}}}}
SET_EXPRESSION = {"s": {"set": "${ {x: 1} }"}}
WAIT_EXPRESSION = {"w": {"wait": '${ "PT0S" }'}}


@pytest.mark.parametrize(
    ("version", "task", "where"),
    [
        ("1.0.0", SET_EXPRESSION, "/do/0/s/set"),  # set as an expression: from 1.0.1
        ("1.0.1", WAIT_EXPRESSION, "/do/0/w/wait"),  # a duration expression: from 1.0.2
        ("1.0.2", SHELL_LIST, "/do/0/sh/run/shell/arguments"),  # argv list: from 1.0.3
        ("1.0.3", SHELL_MAP, "/do/0/sh/run/shell/arguments"),  # the map: up to 1.0.2
    ],
)
def test_a_document_invalid_for_its_declared_version_is_refused(
    version: str, task: dict[str, Any], where: str
) -> None:
    found = problems(doc(version, task))
    assert any(path == where for path, _ in found), found


@pytest.mark.parametrize(
    ("version", "task"),
    [("1.0.1", SET_EXPRESSION), ("1.0.2", WAIT_EXPRESSION), ("1.0.3", SHELL_LIST), ("1.0.2", SHELL_MAP)],
)
def test_the_same_shape_passes_under_the_version_that_has_it(version: str, task: dict[str, Any]) -> None:
    load_workflow(doc(version, task))


# --- run.shell.arguments as a map (1.0.0-1.0.2) --------------------------------------------------


@pytest.mark.parametrize("version", OLD)
async def test_shell_arguments_map_runs_as_name_value_arguments(version: str) -> None:
    task = {
        "sh": {
            "run": {
                "shell": {
                    "command": "printf '%s|'",
                    "arguments": {"--name": "${ .name }", "-v": None, "count": 3, "say": "two words"},
                }
            }
        }
    }
    output = await run_workflow(doc(version, task), InProcessHost(), {"name": "Ada"})
    assert output == "--name=Ada|-v|count=3|say=two words|"


@pytest.mark.parametrize("version", OLD)
async def test_shell_arguments_map_with_an_expression_command(version: str) -> None:
    task = {"sh": {"run": {"shell": {"command": "${ .cmd }", "arguments": {"x": "1"}}}}}
    assert await run_workflow(doc(version, task), InProcessHost(), {"cmd": "printf '%s;'"}) == "x=1;"


def test_shell_arguments_map_normalised_shape() -> None:
    task = {"sh": {"run": {"shell": {"command": "ls \n", "arguments": {"-l": None, "k": True}}}}}
    normalized = validate_document(doc("1.0.0", task))
    assert normalized["do"][0]["sh"]["run"]["shell"] == {"command": 'ls "$@"', "arguments": ["-l", "k=true"]}


def test_an_empty_shell_arguments_map_leaves_the_command_alone() -> None:
    task = {"sh": {"run": {"shell": {"command": "true", "arguments": {}}}}}
    normalized = validate_document(doc("1.0.1", task))
    assert normalized["do"][0]["sh"]["run"]["shell"] == {"command": "true", "arguments": []}


argument_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=8),
    st.sampled_from(["${ . }", "${ .a }", '${ "q\\"uote" }']),
    st.lists(st.integers(), max_size=2),
)


@given(
    st.dictionaries(st.text(max_size=6), argument_values, max_size=4), st.sampled_from(["echo", "${ .c }"])
)
def test_any_shell_arguments_map_normalises_to_valid_jq_or_is_refused_clearly(
    arguments: dict[str, Any], command: str
) -> None:
    task = {"sh": {"run": {"shell": {"command": command, "arguments": arguments}}}}
    try:
        workflow = load_workflow(doc("1.0.0", task))  # semantic checks include the jq syntax
    except WorkflowValidationError as invalid:
        assert all(where.startswith("/do/0/sh/run/shell/arguments/") for where, _ in invalid.problems)
        assert any(isinstance(value, list) for value in arguments.values())
    else:
        words = workflow.definition["do"][0]["sh"]["run"]["shell"]["arguments"]
        assert len(words) == len(arguments)


def test_an_object_shell_argument_value_is_refused() -> None:
    task = {"sh": {"run": {"shell": {"command": "echo", "arguments": {"opts": {"a": 1}}}}}}
    [(where, message)] = problems(doc("1.0.0", task))
    assert where == "/do/0/sh/run/shell/arguments/opts"
    assert "name=value" in message


# --- run.script.arguments as a map (1.0.0-1.0.2) ------------------------------------------------


@pytest.mark.parametrize("version", OLD)
def test_script_arguments_map_has_no_current_meaning_and_is_refused(version: str) -> None:
    task = {"js": {"run": {"script": {"language": "js", "code": "1", "arguments": {"greetings": "hi"}}}}}
    [(where, message)] = problems(doc(version, task))
    assert where == "/do/0/js/run/script/arguments"
    assert f"DSL {version} passes script arguments as named variables" in message
    assert "dsl: '1.0.3'" in message


async def test_an_empty_script_arguments_map_runs() -> None:
    code = "import sys\nprint(len(sys.argv), end='')"
    task = {"py": {"run": {"script": {"language": "python", "code": code, "arguments": {}}}}}
    assert await run_workflow(doc("1.0.0", task), InProcessHost()) == "1"


# --- the error filter's details (1.0.0-1.0.3) ------------------------------------------------------


def _try(filter_: dict[str, Any]) -> dict[str, Any]:
    error = {"type": "https://example.com/errors/boom", "status": 400, "detail": "boom"}
    return {
        "guard": {
            "try": [{"fail": {"raise": {"error": error}}}],
            "catch": {"errors": {"with": filter_}, "do": [{"handled": {"set": {"caught": True}}}]},
        }
    }


@pytest.mark.parametrize("version", SUPPORTED_DSL_VERSIONS)
async def test_error_filter_details_filters_on_the_detail(version: str) -> None:
    assert await run_workflow(doc(version, _try({"details": "boom"})), InProcessHost()) == {"caught": True}
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(doc(version, _try({"details": "other"})), InProcessHost())
    assert caught.value.problem["detail"] == "boom"


def test_error_filter_with_details_and_detail_is_refused() -> None:
    [(where, message)] = problems(doc("1.0.3", _try({"details": "boom", "detail": "boom"})))
    assert where == "/do/0/guard/catch/errors/with/details"
    assert "not both" in message


# --- call: http headers / query values (1.0.0) -----------------------------------------------------


def test_http_header_and_query_values_become_text() -> None:
    call = {
        "call": "http",
        "with": {
            "method": "get",
            "endpoint": "https://example.com/x",
            "headers": {"X-Count": 3, "X-Flag": True, "X-Gone": None, "X-Text": "t"},
            "query": {"page": 2},
        },
    }
    normalized = validate_document(doc("1.0.0", {"get": call}))
    arguments = normalized["do"][0]["get"]["with"]
    assert arguments["headers"] == {"X-Count": "3", "X-Flag": "true", "X-Text": "t"}
    assert arguments["query"] == {"page": "2"}
    assert problems(doc("1.0.1", {"get": call}))  # from 1.0.1 the values must be strings


# --- the table ------------------------------------------------------------------------------------


def test_every_normalisation_is_tested_here() -> None:
    assert {rule.shape for rule in NORMALIZATIONS} == {
        "run.shell.arguments",
        "run.script.arguments",
        "catch.errors.with.details",
        "call: http with.headers / with.query",
    }
    for rule in NORMALIZATIONS:
        assert set(rule.versions) <= set(SUPPORTED_DSL_VERSIONS)
        assert "1.0.3" not in rule.versions or rule.shape == "catch.errors.with.details"


def test_normalising_leaves_the_input_untouched_and_keeps_the_declared_version() -> None:
    original = doc("1.0.0", SHELL_MAP, _try({"details": "boom"}))
    before = copy.deepcopy(original)
    normalized = validate_document(original)
    assert original == before
    assert normalized is not original
    assert normalized["document"]["dsl"] == "1.0.0"


def test_a_current_document_without_old_shapes_is_returned_as_is() -> None:
    original = doc("1.0.3", SHELL_LIST)
    assert validate_document(original) is original


def test_functions_and_nested_tasks_are_normalised_too() -> None:
    nested = {"outer": {"do": [SHELL_MAP]}}
    document = doc("1.0.2", nested, use={"functions": {"f": copy.deepcopy(SHELL_MAP["sh"])}})
    normalized = validate_document(document)
    assert normalized["do"][0]["outer"]["do"][0]["sh"]["run"]["shell"]["arguments"] == ["a"]
    assert normalized["use"]["functions"]["f"]["run"]["shell"]["arguments"] == ["a"]
