"""``call: grpc``: a unary (or server streaming) call described by a ``.proto`` resource."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from .._errors import ErrorKind, WorkflowError
from .._grpc import proto_file
from .._host import GrpcRequest
from .call import _remember_authorization, authorization_headers
from .resource import fetch_resource, resource_uri

if TYPE_CHECKING:
    from .._interpreter import Interpreter, Scope

__all__ = ["DEFAULT_PORT", "call_grpc"]

#: The port when ``service.port`` is not set (the DSL gives no default): TLS, like ``https``.
DEFAULT_PORT: Final = 443


async def call_grpc(rt: Interpreter, path: str, args: Mapping[str, Any], data: Any, scope: Scope) -> Any:
    uri, proto_auth = await resource_uri(rt, args.get("proto"), data, scope)
    text: str | None = None
    if urlsplit(uri).scheme in ("http", "https"):
        content = await fetch_resource(rt, uri, proto_auth, data, scope, "the proto resource")
        text = content.decode("utf-8", "replace")
    elif proto_file(uri) is None:
        raise WorkflowError.of(
            ErrorKind.CONFIGURATION, f"the proto resource {uri} must be a file:// or http(s) URI"
        )
    raw_service = args.get("service")
    if not isinstance(raw_service, Mapping):
        raise WorkflowError.of(ErrorKind.CONFIGURATION, "call: grpc needs with.service (name, host)")
    service = await rt.template({k: v for k, v in raw_service.items() if k != "authentication"}, data, scope)
    method = await rt.template(args.get("method"), data, scope)
    name, host, port = service.get("name"), service.get("host"), service.get("port", DEFAULT_PORT)
    if not isinstance(name, str) or not isinstance(host, str) or not isinstance(method, str):
        raise WorkflowError.of(
            ErrorKind.CONFIGURATION, "call: grpc needs with.service.name, with.service.host and with.method"
        )
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise WorkflowError.of(ErrorKind.CONFIGURATION, f"with.service.port {port!r} is not a port number")
    arguments = await rt.template(args["arguments"], data, scope) if "arguments" in args else {}
    headers = await authorization_headers(rt, raw_service.get("authentication"), data, scope)
    _remember_authorization(rt, path, headers)
    request = GrpcRequest(
        proto_uri=uri,
        proto=text,
        service=name,
        method=method,
        host=host,
        port=port,
        arguments=arguments,
        metadata={k.lower(): v for k, v in headers.items()},
    )
    return await rt.host.grpc_call(request)
