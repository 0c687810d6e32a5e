"""``call: asyncapi``: publish a message over an HTTP server binding of an AsyncAPI document.

The document (AsyncAPI 2.x or 3.x, YAML or JSON) is data: the task finds the operation (3.x:
``operations.<operation>`` with ``action: send``; 2.x: ``channels.<channel>.publish``), the
server (``server.name``, else the first server of the channel speaking ``protocol``, else the
channel's first server) and sends the message as an HTTP request: ``payload`` as the JSON body,
``headers`` as headers, the method of the operation's ``bindings.http.method`` (POST by default)
to the server URL joined with the channel address. Subscriptions and other protocols are not
supported (see :func:`unsupported`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from .._errors import ErrorKind, WorkflowError
from .._host import HttpRequest
from .call import _remember_authorization, authorization_headers, expand_uri_template, send_http
from .documents import parse_document
from .resource import fetch_resource, resource_uri

if TYPE_CHECKING:
    from .._interpreter import Interpreter, Scope

__all__ = ["HTTP_PROTOCOLS", "call_asyncapi", "publish_request", "unsupported"]

#: The protocols whose servers ``call: asyncapi`` publishes to.
HTTP_PROTOCOLS: Final = frozenset({"http", "https"})
_VARIABLE: Final = re.compile(r"\{([^{}]+)\}")
_README: Final = "see the workflow runner's README"


def unsupported(args: Mapping[str, Any]) -> str | None:
    """Why this runner cannot run the ``call: asyncapi`` with ``args`` (None: it can try)."""
    if "subscription" in args:
        return (
            "call: asyncapi subscriptions are not supported by this runner: it only publishes "
            f"messages to HTTP servers ({_README})"
        )
    protocol = args.get("protocol")
    if isinstance(protocol, str) and protocol not in HTTP_PROTOCOLS:
        return _protocol_refusal(protocol)
    return None


def _protocol_refusal(protocol: str) -> str:
    return (
        f"call: asyncapi over {protocol} is not supported by this runner: it only publishes "
        f"messages to http servers ({_README})"
    )


def _config(detail: str) -> WorkflowError:
    return WorkflowError.of(ErrorKind.CONFIGURATION, detail)


async def call_asyncapi(rt: Interpreter, path: str, args: Mapping[str, Any], data: Any, scope: Scope) -> Any:
    reason = unsupported(args)
    if reason is not None:
        raise _config(reason)
    uri, doc_auth = await resource_uri(rt, args.get("document"), data, scope)
    content = await fetch_resource(rt, uri, doc_auth, data, scope, "the AsyncAPI document")
    settings = await rt.template(
        {k: v for k, v in args.items() if k not in ("document", "authentication")}, data, scope
    )
    request = publish_request(content, uri, settings, data)
    auth_headers = await authorization_headers(rt, args.get("authentication"), data, scope)
    _remember_authorization(rt, path, auth_headers)
    request = HttpRequest(
        request.method, request.url, {**request.headers, **auth_headers}, request.query, request.body
    )
    return await send_http(rt, request, "content", hidden=set(auth_headers))


def publish_request(content: bytes, uri: str, settings: Mapping[str, Any], data: Any) -> HttpRequest:
    """The HTTP request publishing ``settings["message"]`` as the AsyncAPI document ``content``
    (fetched from ``uri``) describes; any fault in either is a configuration error."""
    document = _load(content, uri)
    message = settings.get("message")
    if not isinstance(message, Mapping):
        raise _config("call: asyncapi publishes with.message; none is set")
    if str(document.get("asyncapi", "")).startswith("2."):
        operation, channel, address = _v2_target(document, settings)
    else:
        operation, channel, address = _v3_target(document, settings)
    server_name, server = _server(document, channel, settings)
    url = _server_url(server, server_name, settings) + "/" + expand_uri_template(address, data).lstrip("/")
    given = message.get("headers")
    if given is not None and not isinstance(given, Mapping):
        raise _config("with.message.headers must be an object")
    headers = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in (given or {}).items()}
    bindings = _resolve(document, operation.get("bindings"))
    http = _resolve(document, bindings.get("http")) if isinstance(bindings, Mapping) else None
    method = http.get("method") if isinstance(http, Mapping) else None
    method = method if isinstance(method, str) and method.isalpha() else "POST"
    return HttpRequest(method=method.upper(), url=url, headers=headers, body=message.get("payload"))


def _mapping(value: Any) -> Mapping[Any, Any]:
    return value if isinstance(value, Mapping) else {}


def _load(content: bytes, uri: str) -> dict[str, Any]:
    try:
        loaded = parse_document(content)
    except ValueError as exc:
        raise _config(f"{uri} is not an AsyncAPI document: {exc}") from None
    if not isinstance(loaded, dict) or "asyncapi" not in loaded:
        raise _config(f"{uri} is not an AsyncAPI document (no asyncapi version)")
    return loaded


def _resolve(document: Mapping[str, Any], node: Any) -> Any:
    """``node``, or what its local ``$ref`` (``#/channels/x``) points at."""
    seen = 0
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
        ref = str(node["$ref"])
        if not ref.startswith("#/") or seen > 32:
            raise _config(f"the AsyncAPI reference {ref!r} is not a local one (#/...)")
        seen += 1
        target: Any = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or part not in target:
                raise _config(f"the AsyncAPI reference {ref!r} points at nothing")
            target = target[part]
        node = target
    return node


def _v3_target(
    document: Mapping[str, Any], settings: Mapping[str, Any]
) -> tuple[Mapping[str, Any], Mapping[str, Any], str]:
    name = settings.get("operation")
    operations = _mapping(document.get("operations"))
    operation = _resolve(document, operations.get(name)) if isinstance(name, str) else None
    if not isinstance(operation, Mapping):
        listed = ", ".join(map(str, operations)) or "none"
        raise _config(f"operation {name!r} is not in the AsyncAPI document (operations: {listed})")
    if operation.get("action") != "send":
        raise _config(
            f"operation {name!r} receives messages (action: {operation.get('action')}); "
            "call: asyncapi publishes to operations whose action is send"
        )
    channel = _resolve(document, operation.get("channel"))
    if not isinstance(channel, Mapping):
        raise _config(f"operation {name!r} names no channel")
    address = channel.get("address")
    if not isinstance(address, str):
        raise _config(f"the channel of operation {name!r} has no address to publish to")
    return operation, channel, address


def _v2_target(
    document: Mapping[str, Any], settings: Mapping[str, Any]
) -> tuple[Mapping[str, Any], Mapping[str, Any], str]:
    name = settings.get("channel")
    channels = _mapping(document.get("channels"))
    channel = _resolve(document, channels.get(name)) if isinstance(name, str) else None
    if not isinstance(channel, Mapping):
        listed = ", ".join(map(str, channels)) or "none"
        raise _config(f"channel {name!r} is not in the AsyncAPI document (channels: {listed})")
    operation = _resolve(document, channel.get("publish"))
    if not isinstance(operation, Mapping):
        raise _config(f"channel {name!r} has no publish operation")
    return operation, channel, str(name)


def _server(
    document: Mapping[str, Any], channel: Mapping[str, Any], settings: Mapping[str, Any]
) -> tuple[str, Mapping[str, Any]]:
    servers = document.get("servers") or {}
    if not isinstance(servers, Mapping) or not servers:
        raise _config("the AsyncAPI document declares no servers")
    chosen = settings.get("server")
    if isinstance(chosen, Mapping):
        name = chosen.get("name")
        server = _resolve(document, servers.get(name)) if isinstance(name, str) else None
        if not isinstance(server, Mapping):
            listed = ", ".join(map(str, servers))
            raise _config(f"server {name!r} is not in the AsyncAPI document (servers: {listed})")
        candidates = [(str(name), server)]
    else:
        candidates = []
        own = channel.get("servers")
        for entry in own if isinstance(own, list) and own else list(servers):
            if isinstance(entry, str):  # 2.x: server names
                candidates.append((entry, _resolve(document, servers.get(entry))))
            else:  # 3.x: references
                ref = str(entry.get("$ref", "")) if isinstance(entry, Mapping) else ""
                candidates.append((ref.rsplit("/", 1)[-1], _resolve(document, entry)))
        protocol = settings.get("protocol")
        if isinstance(protocol, str):
            candidates = [
                c for c in candidates if isinstance(c[1], Mapping) and c[1].get("protocol") == protocol
            ]
            if not candidates:
                raise _config(f"no server of the channel speaks {protocol}")
    name, server = candidates[0]
    if not isinstance(server, Mapping):
        raise _config(f"server {name!r} is not in the AsyncAPI document")
    protocol = str(server.get("protocol") or "")
    if protocol not in HTTP_PROTOCOLS:
        raise _config(_protocol_refusal(protocol or "an unnamed protocol") + f" (server {name!r})")
    return name, server


def _server_url(server: Mapping[str, Any], name: str, settings: Mapping[str, Any]) -> str:
    protocol = str(server.get("protocol"))
    if "url" in server:  # 2.x
        url = str(server["url"])
    else:  # 3.x
        url = str(server.get("host") or "") + str(server.get("pathname") or "")
    if "://" not in url:
        url = f"{protocol}://{url}"
    chosen = settings.get("server")
    given = chosen.get("variables") if isinstance(chosen, Mapping) else None
    declared = server.get("variables") or {}

    def value(match: re.Match[str]) -> str:
        variable = match.group(1)
        if isinstance(given, Mapping) and variable in given:
            return str(given[variable])
        spec = declared.get(variable) if isinstance(declared, Mapping) else None
        default = spec.get("default") if isinstance(spec, Mapping) else None
        if default is None:
            raise _config(
                f"server {name!r} needs a value for its variable {variable!r} (with.server.variables)"
            )
        return str(default)

    return _VARIABLE.sub(value, url).rstrip("/")
