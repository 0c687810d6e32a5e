"""Effects through InProcessHost: HTTP and OpenAPI against the local stub, processes, agents,
events and sub-workflows."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from stigmer.runner.workflow import InProcessHost, WorkflowError, error_type, run_workflow

Doc = Callable[..., dict[str, Any]]


def http(**with_: Any) -> dict[str, Any]:
    return {"call": "http", "with": {"method": "get", **with_}}


async def test_http_query_headers_body_and_method(document: Doc, stub: Any) -> None:
    wf = document(
        [
            {
                "post": http(
                    method="post",
                    endpoint={"uri": "https://api.example.com/echo"},
                    headers={"X-Trace": "${ .trace }"},
                    query={"q": "${ .q }", "fixed": "yes"},
                    body={"name": "${ .name }", "literal": "keep ${ this }"},
                )
            }
        ]
    )
    out = await run_workflow(wf, stub.host(), {"trace": "t-1", "q": "cats", "name": "Milou"})
    assert out["method"] == "POST"
    assert out["headers"]["x-trace"] == "t-1"
    assert out["query"] == {"q": "cats", "fixed": "yes"}
    assert out["body"] == {"name": "Milou", "literal": "keep ${ this }"}


async def test_http_headers_and_query_from_expressions(document: Doc, stub: Any) -> None:
    wf = document(
        [{"get": http(endpoint="https://api.example.com/echo", headers="${ .h }", query="${ .q }")}]
    )
    out = await run_workflow(wf, stub.host(), {"h": {"Accept": "application/json"}, "q": {"page": 2}})
    assert out["headers"]["accept"] == "application/json"
    assert out["query"] == {"page": "2"}


async def test_http_endpoint_expression_and_uri_template(document: Doc, stub: Any) -> None:
    wf = document(
        [
            {
                "a": {
                    **http(endpoint='${ "https://petstore.swagger.io/v2/pet/\\(.id)" }'),
                    "output": {"as": "${ {first: .name, id: .id} }"},
                }
            },
            {
                "b": {
                    **http(endpoint="https://petstore.swagger.io/v2/pet/{id}"),
                    "output": {"as": "${ {second: .name} }"},
                }
            },
        ]
    )
    assert await run_workflow(wf, stub.host(), {"id": 2}) == {"second": "Rantanplan"}
    assert [r["path"] for r in stub.requests] == ["/v2/pet/2", "/v2/pet/2"]


async def test_http_response_and_raw_outputs(document: Doc, stub: Any) -> None:
    wf = document(
        [
            {
                "r": {
                    **http(endpoint="https://x.test/text", output="response"),
                    "export": {"as": "${ {resp: .} }"},
                }
            },
            {"raw": http(endpoint="https://x.test/text", output="raw")},
            {"both": {"set": {"resp": "${ $context.resp }", "raw": "${ . }"}}},
        ]
    )
    out = await run_workflow(wf, stub.host())
    assert out["resp"]["statusCode"] == 200
    assert out["resp"]["content"] == "plain words"
    assert out["resp"]["request"] == {"method": "GET", "uri": "https://x.test/text", "headers": {}}
    assert base64.b64decode(out["raw"]) == b"plain words"


async def test_a_json_response_that_is_not_json_stays_text(document: Doc, stub: Any) -> None:
    wf = document([{"get": http(endpoint="https://x.test/not-json")}])
    assert await run_workflow(wf, stub.host()) == "<html>oops</html>"


async def test_http_redirects_follow_only_when_asked(document: Doc, stub: Any) -> None:
    follow = document([{"go": http(endpoint="https://x.test/redirect", redirect=True)}])
    assert (await run_workflow(follow, stub.host()))["method"] == "GET"
    stay = document([{"go": http(endpoint="https://x.test/redirect")}])
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(stay, stub.host())
    assert caught.value.status == 302


async def test_http_error_status_is_a_communication_fault(document: Doc, stub: Any) -> None:
    wf = document([{"outer": {"do": [{"get": http(endpoint="https://x.test/status/503")}]}}])
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(wf, stub.host())
    assert caught.value.problem["type"] == error_type("communication")
    assert caught.value.problem["status"] == 503
    assert caught.value.problem["instance"] == "/do/0/outer/do/0/get"
    assert "503" in caught.value.problem["detail"]


async def test_unreachable_host_is_a_communication_fault(document: Doc) -> None:
    wf = document([{"get": http(endpoint="http://127.0.0.1:9/nothing")}])
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(wf, InProcessHost())
    assert caught.value.type == error_type("communication")


async def test_http_bearer_authentication_by_reference(document: Doc, stub: Any) -> None:
    wf = document(
        [
            {
                "get": {
                    **http(endpoint={"uri": "https://x.test/echo", "authentication": {"use": "api"}}),
                    "output": {"as": "${ {sent: .headers.authorization, scheme: $authorization.scheme} }"},
                }
            }
        ],
        use={"authentications": {"api": {"bearer": {"token": "${ .token }"}}}},
    )
    out = await run_workflow(wf, stub.host(), {"token": "abc"})
    assert out == {"sent": "Bearer abc", "scheme": "Bearer"}


async def test_openapi_operation_with_body(document: Doc, stub: Any) -> None:
    wf = document(
        [
            {
                "add": {
                    "call": "openapi",
                    "with": {
                        "document": {"endpoint": "https://petstore.swagger.io/v2/swagger.json"},
                        "operationId": "addPet",
                        "parameters": {"body": {"name": "${ .name }"}},
                    },
                }
            }
        ]
    )
    assert await run_workflow(wf, stub.host(), {"name": "Idefix"}) == {"name": "Idefix"}
    assert [(r["method"], r["path"]) for r in stub.requests] == [
        ("GET", "/v2/swagger.json"),
        ("POST", "/v2/pet"),
    ]


async def test_openapi3_servers_path_query_header_and_request_body(document: Doc, stub: Any) -> None:
    wf = document(
        [
            {
                "put": {
                    "call": "openapi",
                    "with": {
                        "document": {"endpoint": {"uri": "https://api.example.com/openapi.json"}},
                        "operationId": "putItem",
                        "parameters": {
                            "itemId": "${ .id }",
                            "dryRun": True,
                            "X-Trace": "t9",
                            "body": {"v": 1},
                        },
                        "output": "response",
                    },
                }
            }
        ]
    )
    out = await run_workflow(wf, stub.host(), {"id": "a/b"})
    assert out["request"]["uri"] == "https://api.example.com/api/items/a%2Fb"
    assert out["content"] == {
        "method": "PUT",
        "item": "a%2Fb",
        "query": {"dryRun": "true"},
        "trace": "t9",
        "body": {"v": 1},
    }


async def test_openapi_unknown_operation_is_a_configuration_fault(document: Doc, stub: Any) -> None:
    wf = document(
        [
            {
                "x": {
                    "call": "openapi",
                    "with": {
                        "document": {"endpoint": "https://petstore.swagger.io/v2/swagger.json"},
                        "operationId": "nope",
                    },
                }
            }
        ]
    )
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(wf, stub.host())
    assert caught.value.type == error_type("configuration")


async def test_run_shell_with_stdin_arguments_and_environment(document: Doc) -> None:
    wf = document(
        [
            {
                "sh": {
                    "run": {
                        "shell": {
                            "command": 'read line; echo "$line|$1|$2|$GREETING"',
                            "stdin": "${ .msg }",
                            "arguments": ["a", "${ .arg }"],
                            "environment": {"GREETING": "hi"},
                        }
                    }
                }
            }
        ]
    )
    assert await run_workflow(wf, InProcessHost(), {"msg": "hello", "arg": "b"}) == "hello|a|b|hi\n"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("code", 3), ("all", {"code": 3, "stdout": "out\n", "stderr": "err\n"})],
)
async def test_run_return_modes(document: Doc, mode: str, expected: Any) -> None:
    wf = document([{"sh": {"run": {"shell": {"command": "echo out; echo err >&2; exit 3"}, "return": mode}}}])
    assert await run_workflow(wf, InProcessHost()) == expected


async def test_failing_process_is_a_runtime_fault(document: Doc) -> None:
    wf = document([{"sh": {"run": {"shell": {"command": "echo broken >&2; exit 2"}}}}])
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(wf, InProcessHost())
    assert caught.value.type == error_type("runtime")
    assert "broken" in caught.value.problem["detail"]


@pytest.mark.parametrize(
    ("language", "code"),
    [
        ("python", "import os, sys\nprint(sys.stdin.read(), sys.argv[1], os.environ['foo'])"),
        (
            "js",
            "import { readFileSync } from 'node:fs';\nconsole.log(readFileSync(0, 'utf8'), process.argv[2], process.env.foo)",
        ),
    ],
)
async def test_run_script(document: Doc, language: str, code: str) -> None:
    wf = document(
        [
            {
                "s": {
                    "run": {
                        "script": {
                            "language": language,
                            "code": code,
                            "stdin": "Hello",
                            "arguments": ["arg"],
                            "environment": {"foo": "bar"},
                        }
                    }
                }
            }
        ]
    )
    assert (await run_workflow(wf, InProcessHost())).strip() == "Hello arg bar"


async def test_run_without_await_continues_at_once(document: Doc, tmp_path: Any) -> None:
    marker = tmp_path / "done"
    wf = document(
        [
            {"bg": {"run": {"await": False, "shell": {"command": f"sleep 0.3; touch {marker}"}}}},
            {"next": {"run": {"shell": {"command": f"test -e {marker} && echo waited || echo went-on"}}}},
        ]
    )
    assert await run_workflow(wf, InProcessHost(), {"x": 1}) == "went-on\n"
    assert marker.exists()  # collected before the run returned


async def test_run_container_is_refused_clearly(document: Doc) -> None:
    wf = document([{"c": {"run": {"container": {"image": "hello-world"}}}}])
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(wf, InProcessHost())
    assert caught.value.type == error_type("configuration")
    assert "container" in caught.value.problem["detail"]


async def test_call_agent_goes_to_the_host(document: Doc) -> None:
    calls: list[tuple[str, Any, str | None]] = []

    async def agent(name: str, message: Any, session: str | None) -> Any:
        calls.append((name, message, session))
        return {"reply": f"{name} read {message}"}

    wf = document(
        [{"ask": {"call": "agent", "with": {"agent": "support-bot", "message": "${ .q }", "session": "s1"}}}]
    )
    out = await run_workflow(wf, InProcessHost(agent_handler=agent), {"q": "hi"})
    assert out == {"reply": "support-bot read hi"}
    assert calls == [("support-bot", "hi", "s1")]


async def test_call_agent_without_an_agent_runner_is_a_configuration_fault(document: Doc) -> None:
    wf = document([{"ask": {"call": "agent", "with": {"agent": "a", "message": "m"}}}])
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(wf, InProcessHost())
    assert caught.value.type == error_type("configuration")


async def test_call_function_from_use_functions(document: Doc) -> None:
    wf = document(
        [{"greet": {"call": "hello", "with": {"who": "${ .name }"}}}],
        use={"functions": {"hello": {"set": {"greeting": '${ "hello " + .who }'}}}},
    )
    assert await run_workflow(wf, InProcessHost(), {"name": "ada"}) == {"greeting": "hello ada"}


async def test_run_workflow_goes_to_the_host(document: Doc) -> None:
    async def subflow(namespace: str, name: str, version: str, input: Any) -> Any:
        return {"ran": f"{namespace}/{name}:{version}", "input": input}

    wf = document(
        [
            {
                "sub": {
                    "run": {
                        "workflow": {
                            "namespace": "ns",
                            "name": "child",
                            "version": "1.0.0",
                            "input": {"x": "${ .x }"},
                        }
                    }
                }
            }
        ]
    )
    out = await run_workflow(wf, InProcessHost(run_workflow_handler=subflow), {"x": 5})
    assert out == {"ran": "ns/child:1.0.0", "input": {"x": 5}}


async def test_emit_then_listen_in_parallel_branches(document: Doc) -> None:
    wf = document(
        [
            {
                "both": {
                    "fork": {
                        "branches": [
                            {"wait": {"listen": {"to": {"one": {"with": {"type": "com.example.ping"}}}}}},
                            {
                                "send": {
                                    "emit": {
                                        "event": {
                                            "with": {"type": "com.example.ping", "data": {"n": "${ .n }"}}
                                        }
                                    }
                                }
                            },
                        ]
                    }
                }
            }
        ]
    )
    host = InProcessHost()
    heard, sent = await run_workflow(wf, host, {"n": 4})
    assert heard == [{"n": 4}]
    assert sent["type"] == "com.example.ping" and sent["specversion"] == "1.0" and sent["id"]
    assert host.emitted == [sent]


async def test_listen_all_and_any_until(document: Doc) -> None:
    host = InProcessHost()
    for event in [
        {"type": "noise", "data": 0},
        {"type": "b", "data": 2},
        {"type": "a", "data": 1},
        {"type": "t", "data": {"temp": 36}},
        {"type": "t", "data": {"temp": 39}},
        {"type": "t", "data": {"temp": 40}},
        {"type": "stop", "data": None},
    ]:
        host.publish(event)  # type: ignore[arg-type]
    wf = document(
        [
            {
                "both": {
                    "listen": {
                        "to": {"all": [{"with": {"type": "a"}}, {"with": {"type": "b"}}]},
                        "read": "envelope",
                    },
                    "export": {"as": "${ {all: [.[].type]} }"},
                }
            },
            {
                "fever": {
                    "listen": {
                        "to": {
                            "any": [{"with": {"type": "t", "data": "${ .temp > 38 }"}}],
                            "until": {"one": {"with": {"type": "stop"}}},
                        }
                    }
                }
            },
            {"report": {"set": {"all": "${ $context.all }", "fever": "${ [.[].temp] }"}}},
        ]
    )
    assert await run_workflow(wf, host) == {"all": ["b", "a"], "fever": [39, 40]}


async def test_listen_any_until_condition_with_foreach(document: Doc) -> None:
    host = InProcessHost()
    for n in range(5):
        host.publish({"type": "tick", "data": n})
    wf = document(
        [
            {
                "ticks": {
                    "listen": {"to": {"any": [], "until": "( . | length ) >= 3"}},
                    "foreach": {
                        "item": "tick",
                        "at": "i",
                        "do": [{"add": {"set": {"value": "${ $tick * 10 + $i }", "input": "${ . }"}}}],
                    },
                }
            }
        ]
    )
    # One output per consumed event, in order; each iteration's input is its event (DSL 1.0.3).
    assert await run_workflow(wf, host) == [{"value": n * 10 + n, "input": n} for n in range(3)]
