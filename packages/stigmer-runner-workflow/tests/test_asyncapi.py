"""``call: asyncapi`` publishing over HTTP server bindings, from the DSL reference's text: with
``message`` the operation (3.x) or the channel's ``publish`` operation (2.x) is performed on the
named server, or the first of the channel's servers speaking ``protocol``; subscriptions and
other protocols are refused, at validation where the document says so (a local HTTP stand-in
serves the AsyncAPI document and receives the messages)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stigmer.runner.workflow import InProcessHost, WorkflowError, load_workflow, run_workflow
from stigmer.runner.workflow._task_kinds import unsupported_problems
from stigmer.testing import HttpWorld, Request, Response, json_response

EXAMPLES = Path(__file__).parent / "fixtures" / "examples"

V3 = """\
asyncapi: 3.0.0
info: {title: Greetings, version: 1.0.0}
servers:
  local:
    host: 127.0.0.1:PORT
    protocol: http
    pathname: /{environment}
    variables:
      environment: {default: prod}
  broker:
    host: kafka.example.com:9092
    protocol: kafka
channels:
  greetings:
    address: /greetings/{room}
    servers: [{$ref: '#/servers/local'}]
  inbox:
    address: /inbox
operations:
  greet:
    action: send
    channel: {$ref: '#/channels/greetings'}
    bindings:
      http: {method: PUT}
  readInbox:
    action: receive
    channel: {$ref: '#/channels/inbox'}
"""


def _v2(port: int) -> dict[str, Any]:
    return {
        "asyncapi": "2.6.0",
        "info": {"title": "Pets", "version": "1.0.0"},
        "servers": {
            "broker": {"url": "kafka.example.com:9092", "protocol": "kafka"},
            "web": {"url": f"http://127.0.0.1:{port}/v2", "protocol": "http"},
        },
        "channels": {"pets/created": {"publish": {"message": {"payload": {"type": "object"}}}}},
    }


@pytest.fixture
def world() -> Iterator[HttpWorld]:
    holder: list[HttpWorld] = []

    def handle(request: Request) -> Response:
        port = holder[0].port
        if request.path == "/docs/asyncapi.yaml":
            return Response(body=V3.replace("PORT", str(port)).encode(), content_type="application/yaml")
        if request.path == "/docs/asyncapi.json":
            return json_response(_v2(port))
        if request.path.startswith("/dev/greetings/") or request.path == "/v2/pets/created":
            return json_response({"accepted": True, "path": request.path}, 202)
        return json_response({"message": "no route"}, 404)

    with HttpWorld(handle) as started:
        holder.append(started)
        yield started


def _document(**call: Any) -> dict[str, Any]:
    return {
        "document": {"dsl": "1.0.3", "namespace": "test", "name": "asyncapi", "version": "0.1.0"},
        "do": [{"publish": {"call": "asyncapi", "with": call}}],
    }


async def _run(document: dict[str, Any], data: Any = None) -> Any:
    async with InProcessHost() as host:
        return await run_workflow(load_workflow(document), host, data or {})


async def test_a_v3_send_operation_is_published_to_the_named_http_server(world: HttpWorld) -> None:
    document = _document(
        document={"endpoint": f"{world.url}/docs/asyncapi.yaml"},
        operation="greet",
        server={"name": "local", "variables": {"environment": "dev"}},
        message={"payload": {"greetings": "${ .text }"}, "headers": {"foo": "bar", "n": 2}},
        authentication={"bearer": {"token": "pub-token"}},
    )
    output = await _run(document, {"room": "lobby", "text": "Hello, World!"})
    assert output == {"accepted": True, "path": "/dev/greetings/lobby"}
    sent = world.received[-1]
    assert (sent.method, sent.path) == ("PUT", "/dev/greetings/lobby")
    assert sent.json() == {"greetings": "Hello, World!"}
    assert sent.headers["foo"] == "bar" and sent.headers["n"] == "2"
    assert sent.headers["authorization"] == "Bearer pub-token"


async def test_a_v2_channel_publish_goes_to_the_first_server_speaking_the_protocol(world: HttpWorld) -> None:
    document = _document(
        document={"endpoint": f"{world.url}/docs/asyncapi.json"},
        channel="pets/created",
        protocol="http",
        message={"payload": {"id": 7}},
    )
    assert (await _run(document))["path"] == "/v2/pets/created"
    sent = world.received[-1]
    assert (sent.method, sent.path, sent.json()) == ("POST", "/v2/pets/created", {"id": 7})


async def test_a_non_2xx_answer_is_a_communication_error(world: HttpWorld) -> None:
    document = _document(
        document={"endpoint": f"{world.url}/docs/asyncapi.yaml"},
        operation="greet",
        server={"name": "local"},  # environment defaults to prod: no route there
        message={"payload": {}},
    )
    with pytest.raises(WorkflowError) as caught:
        await _run(document, {"room": "x"})
    assert caught.value.type.endswith("/errors/communication")
    assert caught.value.status == 404
    assert world.received[-1].path == "/prod/greetings/x"


@pytest.mark.parametrize(
    ("call", "words"),
    [
        ({"operation": "readInbox"}, "operation 'readInbox' receives messages"),
        ({"operation": "greet", "server": {"name": "broker"}}, "call: asyncapi over kafka is not supported"),
        (
            {"operation": "nope"},
            "operation 'nope' is not in the AsyncAPI document (operations: greet, readInbox)",
        ),
    ],
)
async def test_what_cannot_be_published_over_http_is_a_configuration_error(
    world: HttpWorld, call: dict[str, Any], words: str
) -> None:
    document = _document(
        document={"endpoint": f"{world.url}/docs/asyncapi.yaml"}, message={"payload": {}}, **call
    )
    with pytest.raises(WorkflowError) as caught:
        await _run(document, {"room": "x"})
    assert caught.value.type.endswith("/errors/configuration")
    assert words in str(caught.value.problem["detail"])


@pytest.mark.parametrize("protocol", ["kafka", "amqp", "mqtt", "ws"])
async def test_other_protocols_are_refused_before_running(protocol: str) -> None:
    document = _document(
        document={"endpoint": "https://example.com/asyncapi.json"},
        operation="greet",
        protocol=protocol,
        message={"payload": {}},
    )
    workflow = load_workflow(document)  # valid for the DSL ...
    [(path, message)] = unsupported_problems(workflow.definition)  # ... not runnable here
    assert path == "/do/0/publish"
    assert message.startswith(f"call: asyncapi over {protocol} is not supported by this runner")
    assert "README" in message
    with pytest.raises(WorkflowError) as caught:
        await _run(document)
    assert str(caught.value.problem["detail"]) == message


def test_the_spec_examples_stay_valid_and_only_subscriptions_are_refused() -> None:
    examples = sorted(EXAMPLES.glob("call-asyncapi-*.yaml"))
    assert len(examples) == 5
    for path in examples:
        workflow = load_workflow(path.read_text(encoding="utf-8"))
        problems = unsupported_problems(workflow.definition)
        if "subscribe" in path.stem:
            assert problems and all("subscriptions are not supported" in message for _, message in problems)
        else:
            assert problems == []


async def test_a_subscription_is_refused_when_run(world: HttpWorld) -> None:
    document = _document(
        document={"endpoint": f"{world.url}/docs/asyncapi.yaml"},
        operation="readInbox",
        subscription={"consume": {"amount": 1}},
    )
    with pytest.raises(WorkflowError) as caught:
        await _run(document)
    assert "subscriptions are not supported by this runner" in str(caught.value.problem["detail"])
    assert world.received == []  # refused before fetching anything
    assert json.dumps(caught.value.problem)  # an RFC 7807 problem
