"""Turning an OpenAPI (2 or 3) operation plus parameters into an HTTP request."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

from .._errors import ErrorKind, WorkflowError
from .._host import HttpRequest
from .documents import parse_document

__all__ = ["openapi_request"]

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def openapi_request(
    doc_url: str, content: bytes, operation_id: str, parameters: Mapping[str, Any]
) -> HttpRequest:
    document = _load(content, doc_url)
    for route, item in (document.get("paths") or {}).items():
        if not isinstance(item, Mapping):
            continue
        for method in _METHODS:
            operation = item.get(method)
            if isinstance(operation, Mapping) and operation.get("operationId") == operation_id:
                declared = [*(item.get("parameters") or []), *(operation.get("parameters") or [])]
                return _build(document, doc_url, method, str(route), operation, declared, parameters)
    raise WorkflowError.of(
        ErrorKind.CONFIGURATION, f"operation {operation_id!r} is not in the OpenAPI document {doc_url}"
    )


def _load(content: bytes, doc_url: str) -> dict[str, Any]:
    try:
        loaded = parse_document(content)
    except ValueError as exc:
        raise WorkflowError.of(
            ErrorKind.CONFIGURATION, f"{doc_url} is not an OpenAPI document: {exc}"
        ) from None
    if not isinstance(loaded, dict):
        raise WorkflowError.of(ErrorKind.CONFIGURATION, f"{doc_url} is not an OpenAPI document")
    return loaded


def _base_url(document: Mapping[str, Any], doc_url: str) -> str:
    servers = document.get("servers")
    if isinstance(servers, list) and servers and isinstance(servers[0], Mapping) and "url" in servers[0]:
        return urljoin(doc_url, str(servers[0]["url"]))
    if "swagger" in document:
        parts = urlsplit(doc_url)
        schemes = document.get("schemes") or [parts.scheme or "https"]
        scheme = parts.scheme if parts.scheme in schemes else schemes[0]
        host = document.get("host") or parts.netloc
        return f"{scheme}://{host}{document.get('basePath') or ''}"
    return urljoin(doc_url, "/")


def _build(
    document: Mapping[str, Any],
    doc_url: str,
    method: str,
    route: str,
    operation: Mapping[str, Any],
    declared: list[Any],
    values: Mapping[str, Any],
) -> HttpRequest:
    query: dict[str, str] = {}
    headers: dict[str, str] = {}
    body: Any = None
    for parameter in declared:
        if not isinstance(parameter, Mapping) or "name" not in parameter:
            continue
        name, where = str(parameter["name"]), parameter.get("in")
        if name not in values:
            if parameter.get("required") and where != "body":
                raise WorkflowError.of(
                    ErrorKind.VALIDATION, f"OpenAPI parameter {name!r} ({where}) is required"
                )
            continue
        value = values[name]
        text = ",".join(map(_text, value)) if isinstance(value, list) else _text(value)
        if where == "path":
            route = route.replace("{" + name + "}", quote(text, safe=""))
        elif where == "query":
            query[name] = text
        elif where == "header":
            headers[name] = text
        elif where == "body":
            body = value
    if "requestBody" in operation and body is None:
        body = values.get("body")
    base = _base_url(document, doc_url).rstrip("/")
    return HttpRequest(method=method.upper(), url=base + route, headers=headers, query=query, body=body)


def _text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return str(value)
