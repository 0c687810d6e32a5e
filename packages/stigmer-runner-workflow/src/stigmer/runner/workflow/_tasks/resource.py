"""External resources (the DSL's ``externalResource``) a task fetches over HTTP: a ``.proto`` of
``call: grpc``, the script of ``run.script.source``, an AsyncAPI document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .._errors import ErrorKind, WorkflowError
from .._grpc import MAX_RESOURCE_BYTES
from .._host import HttpRequest
from .call import authorization_headers, resolve_endpoint

if TYPE_CHECKING:
    from .._interpreter import Interpreter, Scope

__all__ = ["fetch_resource", "resource_uri"]


async def resource_uri(rt: Interpreter, resource: Any, data: Any, scope: Scope) -> tuple[str, Any]:
    """The URI of an ``externalResource`` (``{name?, endpoint}``) and its authentication policy."""
    if not isinstance(resource, Mapping) or "endpoint" not in resource:
        raise WorkflowError.of(ErrorKind.CONFIGURATION, "an external resource needs an endpoint")
    return await resolve_endpoint(rt, resource["endpoint"], data, scope)


async def fetch_resource(rt: Interpreter, uri: str, auth: Any, data: Any, scope: Scope, what: str) -> bytes:
    """GET ``uri`` through the host's HTTP effect (with ``auth``), at most
    :data:`MAX_RESOURCE_BYTES`; anything but 2xx (after redirects) is a communication error."""
    if urlsplit(uri).scheme not in ("http", "https"):
        raise WorkflowError.of(
            ErrorKind.CONFIGURATION, f"{what} {uri}: only http(s) resources can be fetched"
        )
    headers = await authorization_headers(rt, auth, data, scope)
    response = await rt.host.http_request(HttpRequest("GET", uri, headers=headers, follow_redirects=True))
    if not 200 <= response.status < 300:
        raise WorkflowError.of(
            ErrorKind.COMMUNICATION,
            f"could not load {what} {uri}: HTTP {response.status}",
            status=response.status,
        )
    if len(response.content) > MAX_RESOURCE_BYTES:
        raise WorkflowError.of(
            ErrorKind.CONFIGURATION, f"{what} {uri} is larger than {MAX_RESOURCE_BYTES} bytes"
        )
    return response.content
