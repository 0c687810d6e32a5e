"""Validation beyond the schema: references to ``use.*`` sections, secrets behind authentication
policies, functions, the agents and workflows a document names, warnings, and the content cache."""

from __future__ import annotations

from typing import Any

import pytest
from stigmer.runner.workflow import (
    InProcessHost,
    Reference,
    WorkflowValidationError,
    _parse,
    load_workflow,
    run_workflow,
    validate_workflow,
)

DOC = {"dsl": "1.0.0", "namespace": "test", "name": "t", "version": "1.0.0"}


def errors(definition: Any) -> list[tuple[str, str]]:
    with pytest.raises(WorkflowValidationError) as caught:
        load_workflow(definition)
    return list(caught.value.problems)


def http(authentication: Any) -> dict[str, Any]:
    return {
        "call": "http",
        "with": {
            "method": "get",
            "endpoint": {"uri": "http://127.0.0.1/x", "authentication": authentication},
        },
    }


def test_an_undefined_named_authentication_is_refused_up_front() -> None:
    found = errors({"document": DOC, "do": [{"get": http({"use": "petStoreAuth"})}]})
    assert found == [
        (
            "/do/0/get/with/endpoint/authentication/use",
            "authentication 'petStoreAuth' is not defined in use.authentications (defined: none)",
        )
    ]


def test_a_defined_named_authentication_is_accepted() -> None:
    load_workflow(
        {
            "document": DOC,
            "use": {"authentications": {"petStoreAuth": {"bearer": {"token": "${ .token }"}}}},
            "do": [{"get": http({"use": "petStoreAuth"})}],
        }
    )


def test_an_authentication_policy_stored_in_an_undeclared_secret_is_refused() -> None:
    found = errors(
        {
            "document": DOC,
            "use": {"authentications": {"a": {"oauth2": {"use": "clientJson"}}}},
            "do": [{"get": http({"basic": {"use": "creds"}})}],
        }
    )
    assert sorted(found) == [
        (
            "/do/0/get/with/endpoint/authentication/basic/use",
            "basic authentication uses secret 'creds', not declared in use.secrets",
        ),
        (
            "/use/authentications/a/oauth2/use",
            "oauth2 authentication uses secret 'clientJson', not declared in use.secrets",
        ),
    ]


def test_an_authentication_key_in_a_request_body_is_data() -> None:
    body = {"authentication": {"use": "not-a-policy"}}
    load_workflow(
        {
            "document": DOC,
            "do": [
                {"post": {"call": "http", "with": {"method": "post", "endpoint": "http://h/x", "body": body}}}
            ],
        }
    )


def test_an_undefined_function_is_refused_and_builtins_urls_and_catalogs_are_not_functions() -> None:
    found = errors(
        {
            "document": DOC,
            "use": {
                "functions": {"greet": {"set": {"hello": "${ .name }"}}},
                "catalogs": {"global": {"endpoint": "http://h/c"}},
            },
            "do": [
                {"a": {"call": "greet"}},
                {"b": {"call": "https://example.com/functions/log/1.0.0/function.yaml"}},
                {"c": {"call": "log:1.0.0@global"}},
                {"d": {"call": "grett"}},
                {"e": {"call": "log:1.0.0@nowhere"}},
            ],
        }
    )
    assert found == [
        (
            "/do/3/d/call",
            "function 'grett' is not defined in use.functions (built-in calls: a2a, agent, asyncapi, grpc, http, mcp, openapi)",
        ),
        ("/do/4/e/call", "catalog 'nowhere' is not defined in use.catalogs"),
    ]


def test_agents_and_workflows_named_are_reported_as_references() -> None:
    validation = validate_workflow(
        {
            "document": DOC,
            "do": [
                {"ask": {"call": "agent", "with": {"agent": "triager", "message": "hi"}}},
                {"dyn": {"call": "agent", "with": {"agent": "${ .who }", "message": "hi"}}},
                {"sub": {"run": {"workflow": {"namespace": "test", "name": "child", "version": "1.0.0"}}}},
            ],
        }
    )
    assert validation.ok
    assert validation.references == (
        Reference("Agent", "triager", "/do/0/ask/with/agent"),
        Reference("Workflow", "child", "/do/2/sub/run/workflow/name"),
    )


def test_call_agent_without_an_agent_or_message_is_refused() -> None:
    found = errors({"document": DOC, "do": [{"ask": {"call": "agent", "with": {"message": "hi"}}}]})
    assert found == [("/do/0/ask/with", "call: agent needs with.agent")]


def test_an_undefined_workflow_timeout_is_refused() -> None:
    assert errors({"document": DOC, "timeout": "slow", "do": [{"a": {"set": {"v": 1}}}]}) == [
        ("/timeout", "'slow' is not defined in use.timeouts")
    ]


async def test_then_naming_a_duplicated_task_goes_to_the_first() -> None:
    # first x, second x -> y; y jumps back to `x` while n < 3: the first x, not the second
    document: dict[str, Any] = {
        "document": DOC,
        "do": [
            {"x": {"set": {"n": "${ (.n // 0) + 1 }", "seen": '${ (.seen // []) + ["first"] }'}}},
            {"x": {"set": {"n": "${ .n + 1 }", "seen": '${ .seen + ["second"] }'}, "then": "y"}},
            {"y": {"if": "${ .n < 3 }", "set": {"n": "${ .n }", "seen": "${ .seen }"}, "then": "x"}},
        ],
    }
    output = await run_workflow(document, InProcessHost())
    assert output["seen"] == ["first", "second", "first", "second"]


def test_a_validated_document_is_cached_by_its_content(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (
        "document: {dsl: 1.0.0, namespace: test, name: cached, version: 1.0.0}\ndo:\n  - a: {set: {v: 1}}\n"
    )
    calls: list[Any] = []
    real = _parse.schema_problems  # type: ignore[attr-defined]

    def counting(document: Any, version: str) -> list[tuple[str, str]]:
        calls.append(document)
        return real(document, version)

    monkeypatch.setattr(_parse, "schema_problems", counting)
    first = load_workflow(text)
    assert load_workflow(text) is first
    mapping = {"document": {**DOC, "name": "cached-map"}, "do": [{"a": {"set": {"v": 1}}}]}
    assert load_workflow(mapping) is load_workflow(dict(reversed(list(mapping.items()))))
    assert len(calls) == 2  # once for the text, once for the mapping (whatever its key order)
    load_workflow(text.replace("v: 1", "v: 2"))
    assert len(calls) == 3


def test_what_the_runner_cannot_run_loads_but_is_listed_as_unsupported() -> None:
    document = {"document": DOC, "do": [{"box": {"run": {"container": {"image": "alpine"}}}}]}
    validation = validate_workflow(document)
    assert validation.ok  # valid DSL: the document loads ...
    [problem] = validation.unsupported  # ... but apply refuses it, saying why
    assert problem.path == "/do/0/box"
    assert "run: container is not supported" in problem.message
