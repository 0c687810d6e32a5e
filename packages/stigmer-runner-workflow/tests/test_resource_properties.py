"""Property tests for what ``call: asyncapi`` and ``call: grpc`` read from users: any AsyncAPI
document and any task settings give a request or a configuration error; any ``arguments`` give a
request message or a validation error — never another exception."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stigmer.runner.workflow import GrpcRequest, HttpRequest, WorkflowError
from stigmer.runner.workflow._grpc import ProtoCache, call_grpc
from stigmer.runner.workflow._tasks.asyncapi import publish_request
from stigmer.testing import GREETER_PROTO

WORDS = st.sampled_from(
    [
        "asyncapi", "2.6.0", "3.0.0", "servers", "channels", "operations", "greet", "local", "http",
        "kafka", "url", "host", "protocol", "pathname", "address", "action", "send", "receive",
        "channel", "publish", "bindings", "method", "variables", "default", "$ref", "#/servers/local",
        "#/channels/greet", "{room}", "/a/{x}", "name", "message", "payload", "headers", "protocol",
    ]
)  # fmt: skip
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), WORDS, st.text(max_size=8))
TREES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(WORDS, inner, max_size=5)),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=TREES, call=st.dictionaries(WORDS, TREES, max_size=5), data=TREES)
def test_any_asyncapi_document_gives_a_request_or_a_configuration_error(
    document: Any, call: dict[str, Any], data: Any
) -> None:
    content = json.dumps(document).encode()
    try:
        request = publish_request(content, "http://docs.test/asyncapi.json", call, data)
    except WorkflowError as error:
        assert error.type.endswith(("/configuration", "/expression")), error.problem
    else:
        assert isinstance(request, HttpRequest) and request.url.startswith(("http://", "https://"))


@settings(max_examples=1, deadline=None)
@given(raw=st.binary(max_size=64))
def test_any_bytes_as_a_document_give_a_configuration_error(raw: bytes) -> None:
    try:
        publish_request(raw, "http://docs.test/x", {"message": {}}, {})
    except WorkflowError as error:
        assert error.type.endswith("/configuration")


_CACHE = ProtoCache()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arguments=TREES)
def test_any_arguments_give_a_message_or_a_validation_error(arguments: Any) -> None:
    """Port 9 (discard, closed here): arguments that fit are sent and fail to connect."""
    request = GrpcRequest(
        proto_uri=GREETER_PROTO.as_uri(),
        service="Greeter",
        method="SayHello",
        host="127.0.0.1",
        port=9,
        arguments=arguments,
    )
    try:
        asyncio.run(call_grpc(request, _CACHE))
    except WorkflowError as error:
        assert error.type.endswith(("/validation", "/communication")), error.problem
