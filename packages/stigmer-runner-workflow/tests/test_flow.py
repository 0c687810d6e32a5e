"""Control flow and data flow: then-jumps, exit/end, for, fork, switch, set, input/output/export."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from stigmer.runner.workflow import ErrorKind, InProcessHost, WorkflowError, error_type, run_workflow

Doc = Callable[..., dict[str, Any]]


async def test_then_jumps_backward_to_loop(document: Doc) -> None:
    wf = document(
        [
            {"init": {"set": {"n": 0, "seen": []}}},
            {"inc": {"set": {"n": "${ .n + 1 }", "seen": "${ .seen + [.n] }"}}},
            {
                "again": {
                    "switch": [{"more": {"when": ".n < 3", "then": "inc"}}, {"done": {"then": "continue"}}]
                }
            },
            {"finish": {"set": {"total": "${ .n }", "seen": "${ .seen }"}}},
        ]
    )
    host = InProcessHost()
    assert await run_workflow(wf, host) == {"total": 3, "seen": [0, 1, 2]}
    started = [name for kind, _, name, _ in host.events if kind == "started"]
    assert started.count("inc") == 3


async def test_exit_leaves_the_nested_list_only(document: Doc) -> None:
    wf = document(
        [
            {
                "outer": {
                    "do": [
                        {"a": {"set": {"v": 1}, "then": "exit"}},
                        {"b": {"set": {"v": 2}}},
                    ]
                }
            },
            {"after": {"set": {"v": "${ .v + 10 }"}}},
        ]
    )
    assert await run_workflow(wf, InProcessHost()) == {"v": 11}


async def test_end_stops_the_whole_workflow_from_a_nested_list(document: Doc) -> None:
    wf = document(
        [
            {"outer": {"do": [{"a": {"set": {"v": 1}, "then": "end"}}, {"b": {"set": {"v": 2}}}]}},
            {"after": {"set": {"v": 99}}},
        ],
        output={"as": "${ {final: .v} }"},
    )
    assert await run_workflow(wf, InProcessHost()) == {"final": 1}


async def test_if_false_skips_the_task_and_passes_input_through(document: Doc) -> None:
    wf = document([{"maybe": {"if": ".go", "set": {"x": 1}}}, {"always": {"set": {"seen": "${ . }"}}}])
    assert await run_workflow(wf, InProcessHost(), {"go": False}) == {"seen": {"go": False}}
    assert await run_workflow(wf, InProcessHost(), {"go": True}) == {"seen": {"x": 1}}


async def test_for_with_at_while_and_inline_array(document: Doc) -> None:
    wf = document(
        [
            {
                "loop": {
                    "for": {"each": "pet", "at": "i", "in": [{"n": "a"}, {"n": "b"}, {"n": "c"}]},
                    "while": "$i < 2",
                    "do": [{"add": {"set": {"names": "${ (.names // []) + [$pet.n + ($i | tostring)] }"}}}],
                }
            }
        ]
    )
    assert await run_workflow(wf, InProcessHost()) == {"names": ["a0", "b1"]}


async def test_fork_without_compete_returns_every_branch_output(document: Doc) -> None:
    wf = document(
        [
            {
                "both": {
                    "fork": {
                        "branches": [
                            {"left": {"set": {"side": "left", "x": "${ .x }"}}},
                            {
                                "right": {
                                    "wait": {"milliseconds": 5},
                                    "output": {"as": '${ {side: "right"} }'},
                                }
                            },
                        ]
                    }
                }
            }
        ]
    )
    assert await run_workflow(wf, InProcessHost(), {"x": 1}) == [{"side": "left", "x": 1}, {"side": "right"}]


async def test_fork_compete_takes_the_first_branch_to_finish(document: Doc) -> None:
    wf = document(
        [
            {
                "race": {
                    "fork": {
                        "compete": True,
                        "branches": [
                            {"slow": {"wait": {"seconds": 5}}},
                            {"fast": {"set": {"winner": "fast"}}},
                        ],
                    }
                }
            }
        ]
    )
    assert await run_workflow(wf, InProcessHost()) == {"winner": "fast"}


async def test_set_with_a_string_expression_and_mixed_strings_stay_literal(document: Doc) -> None:
    wf = document(
        [
            {"a": {"set": "${ {sum: (.x + .y)} }"}},
            {"b": {"set": {"sum": "${ .sum }", "text": "sum is ${ .sum }", "plain": ".sum"}}},
        ]
    )
    assert await run_workflow(wf, InProcessHost(), {"x": 2, "y": 3}) == {
        "sum": 5,
        "text": "sum is ${ .sum }",
        "plain": ".sum",
    }


async def test_input_from_output_as_export_and_context(document: Doc) -> None:
    wf = document(
        [
            {
                "first": {
                    "input": {"from": "${ .user }"},
                    "set": {"name": "${ .name }", "original": "${ $input.name }"},
                    "output": {"as": "${ .name }"},
                    "export": {"as": "${ $context + {who: .} }"},
                }
            },
            {
                "second": {
                    "set": {
                        "who": "${ $context.who }",
                        "prev": "${ . }",
                        "wf": "${ $workflow.input.user.id }",
                    }
                }
            },
        ],
        input={"from": "${ {user: .user} }"},
    )
    result = await run_workflow(wf, InProcessHost(), {"user": {"name": "ada", "id": 7}, "noise": 1})
    assert result == {"who": "ada", "prev": "ada", "wf": 7}


async def test_task_and_runtime_descriptors_are_available(document: Doc) -> None:
    wf = document(
        [
            {
                "me": {
                    "set": {
                        "name": "${ $task.name }",
                        "ref": "${ $task.reference }",
                        "rt": "${ $runtime.name }",
                    }
                }
            }
        ]
    )
    assert await run_workflow(wf, InProcessHost()) == {"name": "me", "ref": "/do/0/me", "rt": "stigmer"}


async def test_input_schema_violation_is_a_validation_fault(document: Doc) -> None:
    wf = document(
        [{"a": {"set": {"ok": True}}}],
        input={"schema": {"format": "json", "document": {"type": "object", "required": ["name"]}}},
    )
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(wf, InProcessHost(), {})
    assert caught.value.type == error_type(ErrorKind.VALIDATION)
    assert caught.value.status == 400
    assert "name" in caught.value.problem["detail"]


async def test_task_output_schema_violation_names_the_task(document: Doc) -> None:
    wf = document(
        [
            {
                "a": {
                    "set": {"n": "x"},
                    "output": {"schema": {"document": {"properties": {"n": {"type": "integer"}}}}},
                }
            }
        ]
    )
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(wf, InProcessHost())
    assert caught.value.instance == "/do/0/a"
    assert caught.value.type.endswith("/validation")


async def test_jq_runtime_error_is_an_expression_fault(document: Doc) -> None:
    wf = document([{"t": {"set": {"x": '${ error("nope") }'}}}])
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(wf, InProcessHost())
    assert caught.value.type == error_type("expression")
    assert "nope" in caught.value.problem["detail"]


async def test_lifecycle_callbacks_in_order(document: Doc) -> None:
    wf = document([{"a": {"set": {"x": 1}}}, {"b": {"raise": {"error": {"type": "urn:x", "status": 418}}}}])
    host = InProcessHost()
    with pytest.raises(WorkflowError):
        await run_workflow(wf, host)
    assert [(kind, path) for kind, path, _, _ in host.events] == [
        ("started", "/do/0/a"),
        ("completed", "/do/0/a"),
        ("started", "/do/1/b"),
        ("failed", "/do/1/b"),
    ]


async def test_extension_before_with_exit_mocks_a_call(document: Doc, stub: Any) -> None:
    from pathlib import Path

    from stigmer.runner.workflow import load_workflow

    example = Path(__file__).parent / "fixtures" / "examples" / "mock-service-extension.yaml"
    definition = load_workflow(example.read_text(encoding="utf-8")).definition
    definition["use"]["extensions"][0]["mockService"]["when"] = (
        '$task.with.endpoint.uri | startswith("https://fake.com")'
    )
    out = await run_workflow(definition, stub.host())
    assert out == {
        "statusCode": 200,
        "headers": {"Content-Type": "application/json"},
        "content": {"foo": {"bar": "baz"}},
    }
    assert stub.requests == []


async def test_extensions_before_and_after_every_task_of_a_type(document: Doc) -> None:
    wf = document(
        [{"a": {"set": {"n": 1}}}, {"b": {"wait": "PT0S"}}, {"c": {"set": {"n": "${ .n + 10 }"}}}],
        use={
            "extensions": [
                {
                    "audit": {
                        "extend": "set",
                        "after": [{"count": {"set": "${ . + {audited: ((.audited // 0) + 1)} }"}}],
                    }
                }
            ]
        },
    )
    host = InProcessHost()
    assert await run_workflow(wf, host) == {"n": 11, "audited": 1}  # c's set replaced a's audit mark
    paths = [path for kind, path, _, _ in host.events if kind == "completed" and path.endswith("/count")]
    assert paths == ["/do/0/a/extensions/audit/after/0/count", "/do/2/c/extensions/audit/after/0/count"]
