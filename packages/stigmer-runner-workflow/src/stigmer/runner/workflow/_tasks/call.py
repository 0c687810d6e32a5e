"""``call``: http, openapi, grpc, asyncapi, Stigmer's ``agent``, and functions from ``use.functions``."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote

from stigmer.core import Redactor

from .._errors import ErrorKind, WorkflowError
from .._expr import is_expression, template_uses_secrets
from .._host import HttpRequest, HttpResponse, Masking, Redacting, TokenBroker
from .oauth import UNSUPPORTED_SCHEMES, oauth2_token, policy_credentials, stored_policy, unsupported_scheme
from .openapi import openapi_request

if TYPE_CHECKING:
    from .._interpreter import Interpreter, Scope

__all__ = ["decode_content", "run_call", "send_http"]

Result = tuple[Any, Any]
_TEMPLATE_VAR: Final = re.compile(r"\{([A-Za-z_][\w.-]*)\}")


async def run_call(rt: Interpreter, path: str, task: Mapping[str, Any], data: Any, scope: Scope) -> Result:
    target = task["call"]
    args: Mapping[str, Any] = task.get("with") or {}
    if target == "http":
        return await _call_http(rt, path, args, data, scope), None
    if target == "openapi":
        return await _call_openapi(rt, path, args, data, scope), None
    if target == "grpc":
        from .grpc import call_grpc  # they build on this module's endpoints and authentication

        return await call_grpc(rt, path, args, data, scope), None
    if target == "asyncapi":
        from .asyncapi import call_asyncapi

        return await call_asyncapi(rt, path, args, data, scope), None
    functions = rt.use.get("functions") or {}
    if target in functions:
        evaluated = await rt.template(dict(args), data, scope)
        output, _ = await rt.run_task(f"{path}/{target}", target, functions[target], evaluated, scope)
        return output, None
    if target == "agent":
        evaluated = await rt.template(dict(args), data, scope)
        if not isinstance(evaluated.get("agent"), str) or "message" not in evaluated:
            raise WorkflowError.of(
                ErrorKind.CONFIGURATION, "call: agent needs with.agent (a name) and with.message"
            )
        session = evaluated.get("session")
        from .._attachments import check_attachments

        attachments = check_attachments(evaluated.get("attachments"))
        if attachments:
            output = await rt.host.call_agent(
                evaluated["agent"], evaluated["message"], session, attachments=attachments
            )
            return output, None
        return await rt.host.call_agent(evaluated["agent"], evaluated["message"], session), None
    raise WorkflowError.of(
        ErrorKind.CONFIGURATION,
        f"call: {target} is not supported by this runner "
        "(use http, openapi, grpc, asyncapi, agent or a use.functions entry)",
    )


async def _call_http(rt: Interpreter, path: str, args: Mapping[str, Any], data: Any, scope: Scope) -> Any:
    url, auth = await resolve_endpoint(rt, args["endpoint"], data, scope)
    headers = await _string_map(rt, args.get("headers"), data, scope, "headers")
    query = await _string_map(rt, args.get("query"), data, scope, "query")
    auth_headers = await authorization_headers(rt, auth, data, scope)
    _remember_authorization(rt, path, auth_headers)
    headers.update(auth_headers)
    hidden = set(auth_headers) | _secret_headers(args.get("headers"))
    body = await rt.template(args["body"], data, scope) if "body" in args else None
    request = HttpRequest(
        method=str(args["method"]).upper(),
        url=url,
        headers=headers,
        query=query,
        body=body,
        follow_redirects=bool(args.get("redirect", False)),
    )
    return await send_http(rt, request, str(args.get("output", "content")), hidden=hidden)


def _remember_authorization(rt: Interpreter, path: str, headers: Mapping[str, str]) -> None:
    """Expose the call's ``Authorization`` as ``$authorization`` (scheme and parameter)."""
    if "Authorization" in headers:
        scheme, _, parameter = headers["Authorization"].partition(" ")
        rt.authorizations[path] = {"scheme": scheme, "parameter": parameter}


def _secret_headers(spec: Any) -> set[str]:
    """Header names whose values are computed from ``$secrets`` (never echoed into outputs)."""
    if isinstance(spec, str):
        return {"*"} if template_uses_secrets(spec) else set()
    if isinstance(spec, Mapping):
        return {str(k) for k, v in spec.items() if template_uses_secrets(v)}
    return set()


async def _call_openapi(rt: Interpreter, path: str, args: Mapping[str, Any], data: Any, scope: Scope) -> Any:
    doc_url, doc_auth = await resolve_endpoint(rt, args["document"]["endpoint"], data, scope)
    doc_headers = await authorization_headers(rt, doc_auth, data, scope)
    response = await rt.host.http_request(
        HttpRequest("GET", doc_url, headers=doc_headers, follow_redirects=True)
    )
    if not 200 <= response.status < 300:
        raise _communication(response.status, f"could not load the OpenAPI document {doc_url}")
    parameters = await rt.template(dict(args.get("parameters") or {}), data, scope)
    request = openapi_request(doc_url, response.content, str(args["operationId"]), parameters)
    auth_headers = await authorization_headers(rt, args.get("authentication"), data, scope)
    _remember_authorization(rt, path, auth_headers)
    hidden = set(auth_headers)
    if auth_headers:
        request = HttpRequest(
            request.method, request.url, {**request.headers, **auth_headers}, request.query, request.body
        )
    request = HttpRequest(
        request.method,
        request.url,
        request.headers,
        request.query,
        request.body,
        follow_redirects=bool(args.get("redirect", False)),
    )
    return await send_http(rt, request, str(args.get("output", "content")), hidden=hidden)


async def send_http(
    rt: Interpreter, request: HttpRequest, output: str, *, hidden: set[str] | None = None
) -> Any:
    """Send through the host; non-2xx (non-2xx/3xx with redirect) raises a communication error."""
    response = await rt.host.http_request(request)
    ceiling = 400 if request.follow_redirects else 300
    if not 200 <= response.status < ceiling:
        detail = f"{request.method} {request.url} answered HTTP {response.status}"
        text = response.content.decode("utf-8", "replace")
        if isinstance(rt.host, Masking):  # masked whole, then cut: no prefix of a secret stays
            text = rt.host.mask(text)
        text = text[:500].strip()
        raise _communication(response.status, detail + (f": {text}" if text else ""))
    if output == "raw":
        return base64.b64encode(response.content).decode("ascii")
    content = decode_content(response)
    if output == "response":
        return {
            "request": {
                "method": request.method,
                "uri": request.url,
                "headers": _masked(request.headers, hidden),
            },
            "statusCode": response.status,
            "headers": dict(response.headers),
            "content": content,
        }
    return content


def _masked(headers: Mapping[str, str], hidden: set[str] | None) -> dict[str, str]:
    lowered = {h.lower() for h in hidden or ()}
    return {k: "***" if "*" in lowered or k.lower() in lowered else v for k, v in headers.items()}


def decode_content(response: HttpResponse) -> Any:
    """JSON bodies become data; text stays text; anything else is base64."""
    if not response.content:
        return None
    ctype = next((v for k, v in response.headers.items() if k.lower() == "content-type"), "").lower()
    if "json" in ctype:
        try:
            return json.loads(response.content)
        except ValueError:
            pass
    try:
        return response.content.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(response.content).decode("ascii")


async def resolve_endpoint(rt: Interpreter, endpoint: Any, data: Any, scope: Scope) -> tuple[str, Any]:
    """The URL of an endpoint (expression, URI template or ``{uri, authentication}``) and its auth."""
    auth = None
    if isinstance(endpoint, Mapping):
        auth = endpoint.get("authentication")
        endpoint = endpoint["uri"]
    if is_expression(endpoint):
        url = await rt.expr(endpoint, data, scope)
        if not isinstance(url, str):
            raise WorkflowError.of(ErrorKind.EXPRESSION, f"the endpoint expression gave {type(url).__name__}")
        return url, auth
    return expand_uri_template(str(endpoint), data), auth


def expand_uri_template(template: str, data: Any) -> str:
    """Simple ``{name}`` expansion from the task input's top-level properties."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if not isinstance(data, Mapping) or name not in data or data[name] is None:
            raise WorkflowError.of(
                ErrorKind.EXPRESSION, f"the URI template {template!r} needs {name!r} in the task input"
            )
        value = data[name]
        text = json.dumps(value) if isinstance(value, bool) else str(value)
        return quote(text, safe="")

    return _TEMPLATE_VAR.sub(replace, template)


async def authorization_headers(rt: Interpreter, auth: Any, data: Any, scope: Scope) -> dict[str, str]:
    """The headers an authentication policy (inline or ``{use: name}``) adds to a request."""
    if auth is None:
        return {}
    if isinstance(auth, Mapping) and set(auth) == {"use"}:
        named = (rt.use.get("authentications") or {}).get(auth["use"])
        if named is None:
            raise WorkflowError.of(
                ErrorKind.CONFIGURATION, f"authentication {auth['use']!r} is not in use.authentications"
            )
        auth = named
    policy = await rt.template(dict(auth), data, scope)
    scheme = next(iter(policy), "?")
    settings = policy.get(scheme)
    # A durable host obtains OAuth2 tokens itself, where the secrets are (see TokenBroker).
    broker = rt.host if scheme in ("oauth2", "oidc") and isinstance(rt.host, TokenBroker) else None
    if isinstance(settings, Mapping) and set(settings) == {"use"}:
        settings = await _secret_policy(rt, scheme, str(settings["use"]), parse=broker is None)
    if scheme == "basic" and isinstance(settings, Mapping):
        pair = f"{settings.get('username', '')}:{settings.get('password', '')}"
        encoded = base64.b64encode(pair.encode()).decode("ascii")
        _conceal(rt, encoded)  # the encoded pair is the credential itself
        return {"Authorization": "Basic " + encoded}
    if scheme == "bearer" and isinstance(settings, Mapping):
        return {"Authorization": f"Bearer {settings.get('token', '')}"}
    if scheme in ("oauth2", "oidc") and isinstance(settings, Mapping):
        if broker is not None:
            token = await broker.oauth2_token(scheme, settings)
        else:
            sent: list[str] = []
            try:
                token = await oauth2_token(rt.host, rt.tokens, scheme, settings, sent)
            except WorkflowError as error:
                raise _without(error, sent) from None
        _conceal(rt, token)
        return {"Authorization": f"Bearer {token}"}
    if scheme in UNSUPPORTED_SCHEMES:
        raise WorkflowError.of(ErrorKind.CONFIGURATION, unsupported_scheme(scheme))
    raise WorkflowError.of(
        ErrorKind.CONFIGURATION,
        f"authentication scheme {scheme!r} is not supported (use basic, bearer, oauth2 or oidc)",
    )


async def _secret_policy(rt: Interpreter, scheme: str, name: str, *, parse: bool = True) -> Mapping[str, Any]:
    """A policy stored as a secret: its value is the policy's settings as a JSON object.

    With ``parse=False`` (for a :class:`TokenBroker`) it is ``{"json": value, "secret": name}``,
    the value being what the host answers for the secret (a reference on a durable host): the
    host reads it where it fetches the token."""
    if name not in rt.workflow.declared_secrets:
        raise WorkflowError.of(
            ErrorKind.CONFIGURATION, f"{scheme} authentication uses secret {name!r}, not in use.secrets"
        )
    value = (await rt.host.get_secrets([name])).get(name)
    if not parse:
        return {"json": value, "secret": name}
    settings = stored_policy(scheme, name, value)
    # The secret's value is the whole JSON text; the credentials inside it must be masked too.
    _conceal(rt, *policy_credentials(settings))
    return settings


def _conceal(rt: Interpreter, *values: str) -> None:
    """Have the host mask credential ``values`` wherever it records them (if it records anything)."""
    if values and isinstance(rt.host, Redacting):
        rt.host.conceal(*values)


def _without(error: WorkflowError, values: list[str]) -> WorkflowError:
    """``error`` with the credential ``values`` masked in its detail (servers may echo them)."""
    detail = str(Redactor(values).scrub(str(error.problem.get("detail") or "")))
    error.problem["detail"] = detail
    error.args = (detail,)
    return error


async def _string_map(rt: Interpreter, spec: Any, data: Any, scope: Scope, what: str) -> dict[str, str]:
    if spec is None:
        return {}
    value = (
        await rt.expr(spec, data, scope) if isinstance(spec, str) else await rt.template(spec, data, scope)
    )
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise WorkflowError.of(ErrorKind.EXPRESSION, f"{what} must be an object, got {type(value).__name__}")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items() if v is not None}


def _communication(status: int, detail: str) -> WorkflowError:
    return WorkflowError.of(ErrorKind.COMMUNICATION, detail, status=status)
