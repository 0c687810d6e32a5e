"""Webhooks and events on the server's HTTP listener.

``POST /hooks/{name}`` starts the target of the ``Trigger`` called ``name`` with the JSON request
body as its input (or what the trigger's ``spec.input`` jq expression makes of ``{body, headers,
query}``). The sender signs the raw body with HMAC-SHA256 under the key held in the trigger's
stored secret, GitHub's way (``X-Hub-Signature-256: sha256=<hex>``); the key is read from the
store for each request and never logged or stored in the run. Answers: 202 with the execution id;
401 (wrong or missing signature: nothing started); 404 (no such trigger, or disabled); 413 (body
over the bound); 415 (not JSON); 400 (bad JSON).

``POST /events`` takes a CloudEvent 1.0 (structured mode, ``application/cloudevents+json``, or
binary mode, ``ce-*`` headers) with a bearer token (the gRPC tokens; roles user and admin) and
publishes it (``PublishEvent``): waiting ``listen`` tasks hear it, workflows whose
``schedule.on`` matches start. Answers 202 with where it went.

Runs start as ``CreateExecution``'s do: created in the Backend, handed to the server's dispatcher.
Nothing of a request body is logged.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from stigmer.core import (
    TRIGGER_LABEL,
    Backend,
    NotFound,
    Principal,
    StigmerError,
    acting_as,
    event_to_proto,
    parse_binary_event,
    parse_structured_event,
    signature_matches,
    to_value,
)
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2

__all__ = ["DEFAULT_MAX_BODY", "Hooks", "max_body_bytes"]

logger = logging.getLogger("stigmer.server")

DEFAULT_MAX_BODY = 1 << 20  # 1 MiB; STIGMER_HTTP_MAX_BODY overrides
# Request headers a trigger's input expression never sees (credentials and the signature).
_HIDDEN_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "x-hub-signature", "x-hub-signature-256"}
)


def max_body_bytes() -> int:
    """The bound on webhook and event bodies: ``STIGMER_HTTP_MAX_BODY`` bytes, default 1 MiB."""
    text = os.environ.get("STIGMER_HTTP_MAX_BODY", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else DEFAULT_MAX_BODY


class _TooLarge(Exception):
    pass


class Hooks:
    """The ``/hooks/{name}`` and ``/events`` routes over the served backend and its dispatcher."""

    def __init__(
        self,
        backend: Backend,
        dispatcher: Any,
        *,
        verify: Callable[[str], Principal | None],
        max_body: int | None = None,
    ) -> None:
        self._backend = backend
        self._dispatcher = dispatcher
        self._verify = verify
        self.max_body = max_body if max_body is not None else max_body_bytes()

    def routes(self) -> list[Any]:
        from starlette.routing import Route

        return [
            Route("/hooks/{name}", self.hook, methods=["POST"]),
            Route("/events", self.events, methods=["POST"]),
        ]

    # -- plumbing ---------------------------------------------------------------------------------

    @staticmethod
    def _reply(status: int, text: str, **headers: str) -> Any:
        from starlette.responses import PlainTextResponse

        return PlainTextResponse(text.rstrip("\n") + "\n", status_code=status, headers=headers or None)

    async def _body(self, request: Any) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body:
            raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body:
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> Any:
        return self._reply(413, f"the body is larger than {self.max_body} bytes")

    # -- POST /hooks/{name} -----------------------------------------------------------------------

    async def hook(self, request: Any) -> Any:
        name = request.path_params["name"]
        try:
            resource = await self._backend.get(
                svc.GetRequest(ref=meta_pb2.ResourceRef(kind="Trigger", name=name))
            )
        except NotFound:
            return self._reply(404, f"no trigger named {name[:100]!r}")
        except StigmerError as err:
            return self._reply(400, f"no trigger named {name[:100]!r}: {err.message}")
        trigger = resource.trigger
        if trigger.spec.HasField("enabled") and not trigger.spec.enabled:
            return self._reply(404, f"trigger {name!r} is disabled")
        try:
            body = await self._body(request)
        except _TooLarge:
            return self._too_large()
        key_of = getattr(self._backend, "webhook_key", None)
        try:
            key = await key_of(trigger.spec.secret) if key_of is not None else None
        except StigmerError as err:  # e.g. a master key that does not open the store
            logger.warning(
                "webhook %s: cannot read its secret %r: %s", name, trigger.spec.secret, err.message
            )
            key = None
        if key is None:
            logger.warning(
                "webhook %s: its secret %r is not stored; refusing the request", name, trigger.spec.secret
            )
            return self._reply(503, f"trigger {name!r} cannot verify signatures: its secret is not stored")
        if not signature_matches(key.encode("utf-8"), body, request.headers.get("x-hub-signature-256")):
            logger.info("webhook %s: missing or wrong signature; nothing started", name)
            return self._reply(
                401, "missing or wrong signature: send X-Hub-Signature-256: sha256=<HMAC-SHA256 of the body>"
            )
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/json" and not media.endswith("+json"):
            return self._reply(415, "send the body as JSON (Content-Type: application/json)")
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            return self._reply(400, f"the body is not JSON: {exc}")
        try:
            value = await _mapped(trigger.spec.input, payload, request) if trigger.spec.input else payload
        except ValueError as exc:
            return self._reply(422, f"trigger {name!r}: spec.input failed: {exc}")
        run = execution_pb2.ExecutionSpec(
            target=meta_pb2.ResourceRef(
                kind=trigger.spec.target.kind, name=trigger.spec.target.name, id=trigger.spec.target.id
            ),
            target_version=trigger.spec.target_version,
        )
        if trigger.spec.target.kind == "Agent":
            run.message = value if isinstance(value, str) else json.dumps(value)
        else:
            run.input.CopyFrom(to_value(value))
        starter = Principal(token_id="", name=trigger.metadata.author or f"trigger/{name}", role="user")
        try:
            with acting_as(starter):
                execution = await self._backend.create_execution(
                    svc.CreateExecutionRequest(spec=run, labels={TRIGGER_LABEL: name})
                )
        except StigmerError as err:
            logger.warning("webhook %s: could not start a run: %s", name, err.message)
            return self._reply(409, f"trigger {name!r} could not start a run: {err.message}")
        self._dispatcher.start(execution)
        logger.info("webhook %s started execution %s", name, execution.metadata.id)
        return _json(202, {"id": execution.metadata.id, "trigger": name})

    # -- POST /events -----------------------------------------------------------------------------

    async def events(self, request: Any) -> Any:
        from stigmer.server._auth import permission_error

        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return self._reply(
                401,
                "missing credentials: send `Authorization: Bearer <token>` (a token from `stigmer token create`)",
                **{"WWW-Authenticate": "Bearer"},
            )
        principal = await asyncio.to_thread(self._verify, token.strip())
        if principal is None:
            return self._reply(401, "invalid or revoked token", **{"WWW-Authenticate": "Bearer"})
        denied = permission_error(principal, "PublishEvent")
        if denied is not None:
            return self._reply(403, denied)
        try:
            body = await self._body(request)
        except _TooLarge:
            return self._too_large()
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        try:
            if media == "application/cloudevents+json":
                event = parse_structured_event(body)
            elif media == "application/cloudevents-batch+json":
                return self._reply(415, "batched CloudEvents are not supported: send one event a request")
            elif any(k.lower() == "ce-specversion" for k in request.headers):
                event = parse_binary_event(dict(request.headers), body)
            else:
                return self._reply(
                    400,
                    "not a CloudEvent: send Content-Type: application/cloudevents+json (structured mode) "
                    "or the attributes as ce-specversion, ce-id, ce-source and ce-type headers (binary mode)",
                )
            message = event_to_proto(event)
        except StigmerError as err:
            return self._reply(400, err.message)
        try:
            with acting_as(principal):
                response = await self._backend.publish_event(svc.PublishEventRequest(event=message))
        except StigmerError as err:
            return self._reply(400 if err.grpc_code == "INVALID_ARGUMENT" else 409, err.message)
        for execution in response.started:
            self._dispatcher.start(execution)
        return _json(
            202,
            {
                "id": event["id"],
                "delivered": list(response.delivered),
                "started": [e.metadata.id for e in response.started],
            },
        )


def _json(status: int, content: Mapping[str, Any]) -> Any:
    from starlette.responses import JSONResponse

    return JSONResponse(dict(content), status_code=status)


#: A trigger's ``spec.input`` runs in a child process of its own, bounded in time and memory: a
#: jq expression can loop or grow without end, and the server must go on serving.
MAPPING_SECONDS = 5.0
_MAPPING_BYTES = 1 << 30
_MAPPING_SCRIPT = f"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({_MAPPING_BYTES}, {_MAPPING_BYTES}))
import jq
request = json.load(sys.stdin)
try:
    results = jq.compile(request["expression"]).input_value(request["document"]).all()
except Exception as exc:
    text = str(exc).strip().splitlines()
    json.dump({{"error": text[0] if text else type(exc).__name__}}, sys.stdout)
else:
    json.dump({{"value": results[0] if results else None}}, sys.stdout)
"""


async def _mapped(expression: str, body: Any, request: Any) -> Any:
    """The trigger's jq ``expression`` over ``{body, headers, query}`` (its first result),
    evaluated in a child process with no environment, at most ``MAPPING_SECONDS`` and 1 GiB."""
    import subprocess
    import sys

    headers = {k.lower(): v for k, v in request.headers.items() if k.lower() not in _HIDDEN_HEADERS}
    document = {"body": body, "headers": headers, "query": dict(request.query_params)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-I",
        "-c",
        _MAPPING_SCRIPT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={},
    )
    payload = json.dumps({"expression": expression, "document": document}).encode()
    try:
        out, _ = await asyncio.wait_for(proc.communicate(payload), MAPPING_SECONDS)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise ValueError(f"it did not finish within {MAPPING_SECONDS:g} s") from None
    try:
        answer = json.loads(out)
    except ValueError:
        raise ValueError("it stopped without a result (out of memory?)") from None
    if "error" in answer:
        raise ValueError(str(answer["error"]))
    return answer.get("value")
