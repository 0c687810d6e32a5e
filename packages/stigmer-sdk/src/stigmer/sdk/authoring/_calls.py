"""Tasks with effects: ``call`` (http, openapi, grpc, agent, a function) and ``run`` (shell,
script, workflow)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Unpack

from stigmer.sdk.authoring._builder import compact
from stigmer.sdk.authoring._tasks import Task, TaskOptions

if TYPE_CHECKING:
    from stigmer.sdk.authoring._resources import Agent
    from stigmer.sdk.authoring._workflow import Workflow

__all__ = [
    "Call",
    "CallAgent",
    "CallGrpc",
    "CallHttp",
    "CallOpenApi",
    "RunScript",
    "RunShell",
    "RunWorkflow",
]


def _endpoint(uri: str | Mapping[str, Any], authentication: Mapping[str, Any] | str | None) -> Any:
    if authentication is None:
        return uri if isinstance(uri, str) else dict(uri)
    return {"uri": uri, "authentication": authentication}


class CallHttp(Task):
    """``call: http``. ``output`` is ``content`` (default), ``response`` or ``raw``;
    ``authentication`` is e.g. ``{"bearer": {"token": secret("API_TOKEN")}}``."""

    def __init__(
        self,
        method: str,
        endpoint: str | Mapping[str, Any],
        *,
        headers: Mapping[str, str] | str | None = None,
        body: Any = None,
        query: Mapping[str, str] | str | None = None,
        output: str | None = None,
        redirect: bool | None = None,
        authentication: Mapping[str, Any] | str | None = None,
        **options: Unpack[TaskOptions],
    ) -> None:
        args = compact(
            {
                "method": method,
                "endpoint": _endpoint(endpoint, authentication),
                "headers": headers,
                "body": body,
                "query": query,
                "output": output,
                "redirect": redirect,
            }
        )
        super().__init__({"call": "http", "with": args}, **options)


class CallOpenApi(Task):
    """``call: openapi``: ``operation_id`` of the OpenAPI ``document`` (a URL or an endpoint mapping)."""

    def __init__(
        self,
        document: str | Mapping[str, Any],
        operation_id: str,
        *,
        parameters: Mapping[str, Any] | None = None,
        authentication: Mapping[str, Any] | str | None = None,
        output: str | None = None,
        redirect: bool | None = None,
        **options: Unpack[TaskOptions],
    ) -> None:
        args = compact(
            {
                "document": {"endpoint": document} if isinstance(document, str) else dict(document),
                "operationId": operation_id,
                "parameters": dict(parameters) if parameters is not None else None,
                "authentication": authentication,
                "output": output,
                "redirect": redirect,
            }
        )
        super().__init__({"call": "openapi", "with": args}, **options)


class CallGrpc(Task):
    """``call: grpc``: ``method`` of ``service`` (at ``host``:``port``) described by the ``proto`` file."""

    def __init__(
        self,
        proto: str,
        service: str,
        method: str,
        *,
        host: str,
        port: int | None = None,
        arguments: Mapping[str, Any] | None = None,
        authentication: Mapping[str, Any] | str | None = None,
        **options: Unpack[TaskOptions],
    ) -> None:
        args = compact(
            {
                "proto": {"endpoint": proto},
                "service": compact({"name": service, "host": host, "port": port}),
                "method": method,
                "arguments": dict(arguments) if arguments is not None else None,
                "authentication": authentication,
            }
        )
        super().__init__({"call": "grpc", "with": args}, **options)


class CallAgent(Task):
    """Stigmer's ``call: agent``: send ``message`` to an Agent (builder or name); output = its answer."""

    def __init__(
        self,
        agent: Agent | str,
        message: str,
        *,
        session: str | None = None,
        **options: Unpack[TaskOptions],
    ) -> None:
        name = agent if isinstance(agent, str) else agent.name
        args = compact({"agent": name, "message": message, "session": session})
        super().__init__({"call": "agent", "with": args}, **options)


class Call(Task):
    """``call: NAME`` of a function declared in ``use.functions`` (or a catalog)."""

    def __init__(
        self, function: str, with_: Mapping[str, Any] | None = None, **options: Unpack[TaskOptions]
    ) -> None:
        body: dict[str, Any] = {"call": function}
        if with_ is not None:
            body["with"] = dict(with_)
        super().__init__(body, **options)


def _run(
    process: str,
    spec: dict[str, Any],
    await_: bool | None,
    return_: str | None,
) -> dict[str, Any]:
    return {"run": compact({process: spec, "await": await_, "return": return_})}


def _arguments(value: Mapping[str, Any] | Sequence[Any] | None) -> Any:
    if value is None:
        return None
    return dict(value) if isinstance(value, Mapping) else list(value)


class RunShell(Task):
    """``run: shell``: a command; ``return_`` is ``stdout`` (default), ``stderr``, ``code``, ``all``
    or ``none``; ``await_=False`` does not wait for it."""

    def __init__(
        self,
        command: str,
        *,
        arguments: Mapping[str, Any] | Sequence[str] | None = None,
        environment: Mapping[str, str] | None = None,
        await_: bool | None = None,
        return_: str | None = None,
        **options: Unpack[TaskOptions],
    ) -> None:
        spec = compact(
            {
                "command": command,
                "arguments": _arguments(arguments),
                "environment": dict(environment) if environment is not None else None,
            }
        )
        super().__init__(_run("shell", spec, await_, return_), **options)


class RunScript(Task):
    """``run: script``: inline ``code`` (or a ``source`` URL) in ``language`` (``python``, ``js``)."""

    def __init__(
        self,
        code: str | None = None,
        *,
        language: str = "python",
        source: str | None = None,
        arguments: Mapping[str, Any] | Sequence[Any] | None = None,
        environment: Mapping[str, str] | None = None,
        await_: bool | None = None,
        return_: str | None = None,
        **options: Unpack[TaskOptions],
    ) -> None:
        if (code is None) == (source is None):
            raise ValueError("RunScript: give either code or source=")
        spec = compact(
            {
                "language": language,
                "code": code,
                "source": {"endpoint": source} if source is not None else None,
                "arguments": _arguments(arguments),
                "environment": dict(environment) if environment is not None else None,
            }
        )
        super().__init__(_run("script", spec, await_, return_), **options)


class RunWorkflow(Task):
    """``run: workflow``: another workflow (a ``Workflow`` builder, or ``name`` + ``namespace`` +
    ``version`` of its document)."""

    def __init__(
        self,
        workflow: Workflow | str,
        *,
        namespace: str | None = None,
        version: str | None = None,
        input: Any = None,
        await_: bool | None = None,
        **options: Unpack[TaskOptions],
    ) -> None:
        if isinstance(workflow, str):
            if namespace is None or version is None:
                raise ValueError("RunWorkflow by name needs namespace= and version=")
            name = workflow
        else:
            name = workflow.document_name
            namespace = namespace or workflow.namespace
            version = version or workflow.version
        spec = compact({"namespace": namespace, "name": name, "version": version, "input": input})
        super().__init__(_run("workflow", spec, await_, None), **options)
