"""``call: grpc`` against a real grpcio server on 127.0.0.1, from the DSL reference's text: the
``.proto`` resource (``file://`` or ``http(s)``) describes ``service.name``; ``method`` is called
on ``service.host:port`` with ``arguments`` as the request message; the answer is the response
message as JSON (the proto3 JSON mapping, as sdk-java's ``JsonFormat`` answers)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from stigmer.backend.local import LocalBackend
from stigmer.core import parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.workflow import InProcessHost, WorkflowError, WorkflowRunner, load_workflow, run_workflow
from stigmer.runner.workflow._task_kinds import unsupported_problems
from stigmer.testing import GREETER_PROTO, GrpcGreeter, HttpWorld, Request, Response

PROTO = GREETER_PROTO
COMMUNICATION = "https://serverlessworkflow.io/spec/1.0.0/errors/communication"
CONFIGURATION = "https://serverlessworkflow.io/spec/1.0.0/errors/configuration"
VALIDATION = "https://serverlessworkflow.io/spec/1.0.0/errors/validation"


@pytest.fixture
async def server() -> AsyncIterator[int]:
    async with GrpcGreeter() as greeter:
        yield greeter.port


def _document(port: int, proto: str, method: str = "SayHello", **extra: Any) -> dict[str, Any]:
    service: dict[str, Any] = {"name": extra.pop("service", "Greeter"), "host": "127.0.0.1", "port": port}
    if "authentication" in extra:
        service["authentication"] = extra.pop("authentication")
    call: dict[str, Any] = {"proto": {"endpoint": proto}, "service": service, "method": method, **extra}
    return {
        "document": {"dsl": "1.0.3", "namespace": "test", "name": "grpc", "version": "0.1.0"},
        "do": [{"greet": {"call": "grpc", "with": call}}],
    }


async def _run(document: dict[str, Any], data: Any = None, **host: Any) -> Any:
    async with InProcessHost(**host) as inprocess:
        return await run_workflow(load_workflow(document), inprocess, data if data is not None else {})


async def test_a_unary_call_answers_the_response_message_as_json(server: int) -> None:
    document = _document(
        server,
        PROTO.as_uri(),
        arguments={"name": "${ .user.name }", "times": 3, "display_name": "ada"},
    )
    output = await _run(document, {"user": {"name": "Ada"}})
    # The proto3 JSON mapping: lowerCamelCase names, int64 as a string, well-known types as JSON.
    assert output == {"message": "Hello, Ada!", "count": "3", "userName": "ada", "at": "1970-01-01T00:00:00Z"}


async def test_a_relative_file_uri_is_read_from_the_current_folder(
    server: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(PROTO.parent.parent)
    output = await _run(
        _document(server, f"file://{PROTO.parent.name}/{PROTO.name}", arguments={"name": "Bo"})
    )
    assert output["message"] == "Hello, Bo!"


async def test_a_server_streaming_call_answers_every_message_in_order(server: int) -> None:
    output = await _run(_document(server, PROTO.as_uri(), "SayHellos", arguments={"name": "Cy", "times": 3}))
    assert output == [
        {"message": "Hello #1, Cy!", "count": "1"},
        {"message": "Hello #2, Cy!", "count": "2"},
        {"message": "Hello #3, Cy!", "count": "3"},
    ]


@pytest.fixture
def proto_site() -> Iterator[HttpWorld]:
    def handle(request: Request) -> Response:
        if (
            request.path == "/protos/greeter.proto"
            and request.headers.get("authorization") == "Bearer proto-key"
        ):
            return Response(body=PROTO.read_bytes(), content_type="text/plain")
        return Response(status=404 if request.headers.get("authorization") else 401)

    with HttpWorld(handle) as world:
        yield world


async def test_an_http_proto_is_fetched_with_its_authentication_and_the_call_sends_the_service_one(
    server: int, proto_site: HttpWorld
) -> None:
    document = _document(
        server,
        "",
        arguments={"name": "Di"},
        authentication={"bearer": {"token": "${ $secrets.KEY }"}},
    )
    document["use"] = {"secrets": ["KEY"]}
    document["do"][0]["greet"]["with"]["proto"] = {
        "endpoint": {
            "uri": f"{proto_site.url}/protos/greeter.proto",
            "authentication": {"bearer": {"token": "proto-key"}},
        }
    }
    output = await _run(document, secrets={"KEY": "call-key"})
    assert output["message"] == "Hello, Di!"
    assert output["authorization"] == "Bearer call-key"
    assert proto_site.count("/protos/greeter.proto") == 1


async def test_a_proto_that_cannot_be_fetched_is_a_communication_error(
    server: int, proto_site: HttpWorld
) -> None:
    with pytest.raises(WorkflowError) as caught:
        await _run(_document(server, f"{proto_site.url}/protos/greeter.proto", arguments={"name": "x"}))
    assert caught.value.type == COMMUNICATION
    assert caught.value.status == 401


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_unreachable_service_is_a_communication_error() -> None:
    with pytest.raises(WorkflowError) as caught:
        await _run(_document(_closed_port(), PROTO.as_uri(), arguments={"name": "x"}))
    assert caught.value.type == COMMUNICATION
    assert caught.value.status == 503
    assert "UNAVAILABLE" in str(caught.value.problem["detail"])
    assert caught.value.instance == "/do/0/greet"


@pytest.mark.parametrize(
    ("change", "kind", "words"),
    [
        (
            {"method": "SayGoodbye"},
            CONFIGURATION,
            "method 'SayGoodbye' is not in service stigmer.test.greeter.Greeter",
        ),
        ({"service": "Farewell"}, CONFIGURATION, "service 'Farewell' is not in the proto resource"),
        ({"method": "Collect"}, CONFIGURATION, "supports unary and server streaming methods"),
        (
            {"arguments": {"nickname": "x"}},
            VALIDATION,
            "the arguments are not a stigmer.test.greeter.HelloRequest",
        ),
        (
            {"arguments": {"times": "many"}},
            VALIDATION,
            "the arguments are not a stigmer.test.greeter.HelloRequest",
        ),
    ],
)
async def test_a_call_the_proto_does_not_describe_is_refused(
    server: int, change: dict[str, Any], kind: str, words: str
) -> None:
    with pytest.raises(WorkflowError) as caught:
        await _run(_document(server, PROTO.as_uri(), **change))
    assert caught.value.type == kind
    assert words in str(caught.value.problem["detail"])


async def test_the_full_service_name_is_accepted_too(server: int) -> None:
    output = await _run(_document(server, PROTO.as_uri(), service="stigmer.test.greeter.Greeter"))
    assert output["message"] == "Hello, !"


async def test_a_proto_that_does_not_compile_is_a_configuration_error(server: int, tmp_path: Path) -> None:
    broken = tmp_path / "broken.proto"
    broken.write_text('syntax = "proto3";\nmessage Oops {\n', encoding="utf-8")
    with pytest.raises(WorkflowError) as caught:
        await _run(_document(server, broken.as_uri()))
    assert caught.value.type == CONFIGURATION
    assert "does not compile: broken.proto:" in str(caught.value.problem["detail"])
    assert "stigmer-proto-" not in str(caught.value.problem["detail"])  # no compile folder


async def test_the_spec_example_is_supported_by_the_runner() -> None:
    example = Path(__file__).parent / "fixtures" / "examples" / "call-grpc.yaml"
    assert unsupported_problems(load_workflow(example.read_text(encoding="utf-8")).definition) == []


async def test_a_file_proto_needs_the_run_capability_on_a_server(server: int, tmp_path: Path) -> None:
    """A ``file://`` proto is a file of the machine running the workflow: like ``run: script``,
    a server without ``--allow-run`` refuses it (an ``http(s)`` proto needs nothing)."""
    results = {}
    for allow in (False, True):
        backend = LocalBackend(
            f"sqlite:///{tmp_path / f'{allow}.db'}",
            home=tmp_path / str(allow),
            master_key=b"c" * 32,
            allow_run=allow,
        )
        try:
            name = f"grpc-{str(allow).lower()}"
            text = (
                f"apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {{name: {name}}}\nspec:\n"
                f"  document: {{dsl: 1.0.3, namespace: demo, name: {name}, version: 1.0.0}}\n"
                f"  do:\n    - greet:\n        call: grpc\n        with:\n"
                f"          proto: {{endpoint: '{PROTO.as_uri()}'}}\n"
                f"          service: {{name: Greeter, host: 127.0.0.1, port: {server}}}\n"
                f"          method: SayHello\n          arguments: {{name: Ed}}\n"
            )
            for loaded in parse_manifest(text, "test.yaml"):
                await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
            created = await backend.create_execution(
                svc.CreateExecutionRequest(
                    spec=execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name=name))
                )
            )
            results[allow] = await WorkflowRunner().execute(backend, created.metadata.id)
        finally:
            await backend.close()
    refused, allowed = results[False], results[True]
    assert refused.status.phase == execution_pb2.PHASE_FAILED
    assert refused.status.error.status == 403
    assert refused.status.error.detail.startswith("call: grpc with a file:// proto")
    assert "stigmer server --allow-run" in refused.status.error.detail
    assert allowed.status.phase == execution_pb2.PHASE_SUCCEEDED, allowed.status.error


async def test_a_credential_metadata_cannot_carry_is_refused_without_leaking_it() -> None:
    async with GrpcGreeter() as greeter:
        document = _document(
            greeter.port, PROTO.as_uri(), authentication={"bearer": {"token": "line\nbreak-s3cret"}}
        )
        with pytest.raises(WorkflowError) as caught:
            await _run(document)
        assert greeter.metadata == []  # nothing was sent
    assert caught.value.type == CONFIGURATION
    assert "header authorization has a line break" in str(caught.value.problem["detail"])
    assert "s3cret" not in str(caught.value.problem)
