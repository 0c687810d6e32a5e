"""The activities of a workflow execution on Temporal: every effect, and every Backend call.

Activities are the only place secrets exist: each effect fetches the execution's secrets with
``GetExecutionContext``, substitutes the references the workflow passed, acts, and scrubs the
values from its result before Temporal records it. Progress goes to the Backend with
``UpdateExecutionStatus`` (every report names this worker as the runner, so the first starts a
PENDING run): through the ``report`` local activity, or, when an effect's arguments carry it
(``progress``), from the effect's activity — before it acts (``progressFirst``), else only once
the effect has run :data:`PROGRESS_AFTER` seconds; a quick effect returns it unwritten
(``progressSent: false``). On every attempt, as the effect itself is (a retry after a lost
worker starts the task again, and says so).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from google.protobuf import timestamp_pb2
from stigmer.core import (
    Backend,
    FailedPrecondition,
    Limits,
    default_redactor,
    from_value,
    is_terminal,
    phase_number,
    pinned_target,
    to_value,
)
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.temporal import heartbeating
from temporalio import activity
from temporalio.exceptions import ApplicationError

from .._capability import LOCAL_PROTO, may_run, refused
from .._errors import WorkflowError
from .._grpc import proto_file
from .._host import GrpcRequest, HttpRequest
from .._inprocess import InProcessHost
from .._tasks.oauth import TokenCache, oauth2_token, stored_policy
from ._host import PROGRESS_AFTER, STOPPED, STOPPED_ERROR
from ._secrets import ref_names, scrub, scrub_bytes, substitute, substitute_tokens, token_refs

__all__ = ["PROBLEM_ERROR", "WorkflowActivities"]

logger = logging.getLogger(__name__)
P = execution_pb2
PROBLEM_ERROR = "WorkflowProblem"
#: Label of a child execution: the id of the workflow's call that created it (retries reuse it).
CALL_LABEL = "stigmer.ai/call-id"
#: Executions whose OAuth2 access tokens a worker keeps (least recently used ones are dropped).
TOKEN_CACHES = 256


def _stamp(iso: str) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(datetime.datetime.fromisoformat(iso))
    return stamp


def _problem_error(error: WorkflowError) -> ApplicationError:
    """A task failure crosses into the workflow as a non-retryable error carrying the problem."""
    return ApplicationError(str(error), dict(error.problem), type=PROBLEM_ERROR, non_retryable=True)


class WorkflowActivities:
    """Activities bound to one Backend (a CloudBackend in a worker process)."""

    def __init__(
        self,
        backend: Backend,
        *,
        runner: str = "workflow",
        host: InProcessHost | None = None,
        limits: Limits | None = None,
    ):
        self.backend = backend
        self.limits = limits if limits is not None else Limits.load()  # this worker's settings
        self.runner = runner
        self.host = host if host is not None else InProcessHost()
        self._tokens: OrderedDict[str, TokenCache] = OrderedDict()

    # ------------------------------------------------------------------ backend
    @activity.defn(name="stigmer.workflow.load")
    async def load(self, execution_id: str) -> dict[str, Any]:
        """The execution's pinned definition and input; marks it RUNNING (unless it is finished)."""
        execution = await self.backend.get_execution(svc.GetExecutionRequest(id=execution_id))
        # Activity results live in histories: phases keep the proto spelling they always had here.
        result: dict[str, Any] = {"phase": P.Phase.Name(execution.status.phase), "kind": execution.kind}
        if is_terminal(execution.status.phase):
            return result
        definition = (await pinned_target(self.backend, execution)).workflow
        result["document"] = from_value(definition.spec)
        result["version"] = definition.metadata.version
        result["input"] = from_value(execution.spec.input) if execution.spec.HasField("input") else {}
        result["limits"] = self.limits.to_dict()
        if execution.status.phase == P.PHASE_RUNNING:
            result["phase"] = "RUNNING"  # a continued (or re-started) run
        else:
            if execution.spec.resumed_from and execution.status.checkpoint:
                # a retry: it continues from the checkpoint of the failed run
                result["checkpoint"] = json.loads(execution.status.checkpoint)
            result["phase"] = "RUNNING" if await self._mark_running(execution_id) else "CANCELLED"
        return result

    async def _mark_running(self, execution_id: str) -> bool:
        """Record that this worker runs the execution; False when the Backend refuses (it was
        cancelled or finished meanwhile)."""
        try:
            await self.backend.update_execution_status(
                svc.UpdateExecutionStatusRequest(
                    execution_id=execution_id, phase=P.PHASE_RUNNING, runner=self.runner
                )
            )
        except FailedPrecondition:
            return False
        return True

    @activity.defn(name="stigmer.workflow.start")
    async def start(self, execution_id: str) -> dict[str, Any]:
        """Marks a run whose definition came in the workflow's arguments RUNNING (one Backend call
        instead of :meth:`load`'s reads); this worker's limits. A finished run answers its phase."""
        if await self._mark_running(execution_id):
            return {"phase": "RUNNING", "limits": self.limits.to_dict()}
        execution = await self.backend.get_execution(svc.GetExecutionRequest(id=execution_id))
        phase = execution.status.phase
        return {"phase": "CANCELLED" if not is_terminal(phase) else P.Phase.Name(phase)}

    @activity.defn(name="stigmer.workflow.report")
    async def report(self, batch: dict[str, Any]) -> bool:
        """Append events and task progress, and optionally change the phase; False when refused
        (the execution was cancelled or finished elsewhere). It names this worker as the runner:
        the first report of a run still PENDING starts it."""
        request = svc.UpdateExecutionStatusRequest(execution_id=batch["executionId"], runner=self.runner)
        redactor = default_redactor()
        for item in batch.get("events") or []:
            event = P.ExecutionEvent(
                execution_id=batch["executionId"],
                type=item["type"],
                subject=redactor.scrub(item.get("subject", "")),
                text=redactor.scrub(item.get("text", "")),
            )
            event.time.CopyFrom(_stamp(item["time"]))
            if item.get("data") is not None:
                event.data.CopyFrom(to_value(redactor.scrub(item["data"])))
            request.events.append(event)
        for item in batch.get("tasks") or []:
            task = P.TaskProgress(path=item["path"], name=item["name"], attempts=int(item.get("attempts", 1)))
            task.phase = phase_number(item["phase"])  # type: ignore[assignment]
            if item.get("startedAt"):
                task.started_at.CopyFrom(_stamp(item["startedAt"]))
            if item.get("finishedAt"):
                task.finished_at.CopyFrom(_stamp(item["finishedAt"]))
            request.tasks.append(task)
        if batch.get("checkpoint"):  # the last one of a run that ends FAILED or CANCELLED
            request.checkpoint = json.dumps(redactor.scrub(batch["checkpoint"]), separators=(",", ":"))
        phase = batch.get("phase")
        if phase:
            request.phase = phase_number(phase)  # type: ignore[assignment]
        if batch.get("hasOutput"):
            request.output.CopyFrom(to_value(redactor.scrub(batch.get("output"))))
        error = batch.get("error")
        if error is not None:
            status = error.get("status")
            request.error.CopyFrom(
                P.ExecutionError(
                    type=str(error.get("type") or ""),
                    title=str(error.get("title") or ""),
                    status=int(status) if isinstance(status, int | float) else 500,
                    detail=redactor.scrub(str(error.get("detail") or "")),
                    instance=str(error.get("instance") or ""),
                )
            )
        try:
            await self.backend.update_execution_status(request)
        except FailedPrecondition:
            return False
        return True

    async def _with_progress(
        self,
        args: dict[str, Any],
        act: Callable[[dict[str, Any]], Awaitable[Any]],
        needs_context: Callable[[dict[str, Any]], bool] | None = None,
    ) -> Any:
        """Run an effect (``act``), writing the progress its arguments carry (the workflow's events
        and task progress since its last report): before it acts when ``progressFirst``, else
        once it has run :data:`PROGRESS_AFTER` seconds — a quicker effect's result says
        ``progressSent: false`` and the workflow keeps the progress for its next report (its
        error, ``details[1]``, says whether it was written). An execution cancelled or finished
        elsewhere, found so when writing, stops the effect (or keeps it from starting). An effect
        that ``needs_context`` (its secrets or capabilities, which a run has only once it runs)
        writes it first: the first report starts a run still PENDING."""
        if "progress" not in args:
            return await act(args)
        args = dict(args)
        report = {**args.pop("progress"), "executionId": args["executionId"]}
        first = bool(args.pop("progressFirst", True)) or (needs_context is not None and needs_context(args))
        effect: asyncio.Future[Any] | None = None
        sent = False
        try:
            if first:
                if not await self.report(report):
                    raise _stopped()
                sent = True
                result = await act(args)
            else:
                effect = asyncio.ensure_future(act(args))
                done, _ = await asyncio.wait({effect}, timeout=PROGRESS_AFTER)
                if not done:
                    if not await self.report(report):
                        raise _stopped()
                    sent = True
                result = await effect
        except ApplicationError as error:
            if error.type != PROBLEM_ERROR:
                raise
            raise ApplicationError(
                error.message,
                *error.details[:1],
                {"progressSent": sent},
                type=PROBLEM_ERROR,
                non_retryable=True,
            ) from None
        finally:
            if effect is not None and not effect.done():
                effect.cancel()
                await asyncio.gather(effect, return_exceptions=True)
        return {**result, "progressSent": sent} if isinstance(result, dict) else result

    async def _secrets(self, execution_id: str, value: Any) -> dict[str, str]:
        names = ref_names(value)
        if not names:
            return {}
        context = await self.backend.get_execution_context(
            svc.GetExecutionContextRequest(execution_id=execution_id)
        )
        values = {name: context.secrets[name] for name in names if name in context.secrets}
        default_redactor().register(*values.values())
        return values

    # ------------------------------------------------------------------ effects
    def _token_cache(self, execution_id: str) -> TokenCache:
        cache = self._tokens.pop(execution_id, None) or TokenCache()
        self._tokens[execution_id] = cache
        while len(self._tokens) > TOKEN_CACHES:
            self._tokens.popitem(last=False)
        return cache

    async def _access_tokens(
        self, execution_id: str, policies: Mapping[str, Any], secrets: dict[str, str]
    ) -> dict[str, str]:
        """The OAuth2 access tokens the request refers to (cached per execution on this worker).

        The tokens and the credentials sent for them join ``secrets``, so they are scrubbed from
        whatever the activity returns."""
        tokens: dict[str, str] = {}
        if not policies:
            return tokens
        cache = self._token_cache(execution_id)

        async def obtain(key: str, within: frozenset[str]) -> None:
            if key in tokens or key in within or key not in policies:
                return
            item = policies[key]
            # A policy may use another one's access token (token exchange): that one first.
            for needed in sorted(token_refs(item["policy"])):
                await obtain(needed, within | {key})
            scheme = str(item["scheme"])
            policy = substitute_tokens(substitute(item["policy"], secrets), tokens)
            if set(policy) == {"json", "secret"}:  # a policy stored as a secret
                policy = stored_policy(scheme, str(policy["secret"]), policy["json"])
            sent: list[str] = []
            try:
                token = await oauth2_token(self.host, cache, scheme, policy, sent)
            finally:
                for index, value in enumerate(sent):
                    secrets[f"sent-{key}-{index}"] = value
            tokens[key] = token
            secrets[f"token-{key}"] = token

        for key in policies:
            await obtain(key, frozenset())
        return tokens

    @activity.defn(name="stigmer.workflow.http")
    async def http(self, args: dict[str, Any]) -> dict[str, Any]:
        return await self._with_progress(args, self._http, _uses_secrets)  # type: ignore[no-any-return]

    async def _http(self, args: dict[str, Any]) -> dict[str, Any]:
        request = args["request"]
        policies = args.get("tokens") or {}
        secrets = await self._secrets(args["executionId"], [request, policies])
        try:
            tokens = await self._access_tokens(args["executionId"], policies, secrets)
        except WorkflowError as error:
            raise _problem_error(_scrubbed_error(error, secrets)) from None
        real = substitute_tokens(substitute(request, secrets), tokens)
        body = real.get("body")
        if real.get("bodyBase64") is not None:
            body = base64.b64decode(real["bodyBase64"])
        try:
            async with heartbeating():
                response = await self.host.http_request(
                    HttpRequest(
                        method=real["method"],
                        url=real["url"],
                        headers=real.get("headers") or {},
                        query=real.get("query") or {},
                        body=body,
                        follow_redirects=bool(real.get("followRedirects")),
                    )
                )
        except WorkflowError as error:
            raise _problem_error(_scrubbed_error(error, secrets)) from None
        content = scrub_bytes(response.content, secrets)
        return {
            "status": response.status,
            "headers": scrub(dict(response.headers), secrets),
            "content": base64.b64encode(content).decode("ascii"),
            "url": scrub(response.url, secrets),
        }

    @activity.defn(name="stigmer.workflow.grpc")
    async def grpc(self, args: dict[str, Any]) -> dict[str, Any]:
        """``call: grpc``; a ``file://`` proto (a file of this worker's machine) only with the
        ``run`` capability."""
        return await self._with_progress(args, self._grpc, _grpc_needs_context)  # type: ignore[no-any-return]

    async def _grpc(self, args: dict[str, Any]) -> dict[str, Any]:
        request = args["request"]
        local = _local_proto(request)
        if local and not await may_run(self.backend, args["executionId"]):
            raise _problem_error(refused("grpc", LOCAL_PROTO))
        policies = args.get("tokens") or {}
        secrets = await self._secrets(args["executionId"], [request, policies])
        try:
            tokens = await self._access_tokens(args["executionId"], policies, secrets)
            real = substitute_tokens(substitute(request, secrets), tokens)
            async with heartbeating():
                response = await self.host.grpc_call(
                    GrpcRequest(
                        proto_uri=str(real["protoUri"]),
                        proto=real.get("proto"),
                        service=str(real["service"]),
                        method=str(real["method"]),
                        host=str(real["host"]),
                        port=int(real["port"]),
                        arguments=real.get("arguments"),
                        metadata=real.get("metadata") or {},
                    )
                )
        except WorkflowError as error:
            raise _problem_error(_scrubbed_error(error, secrets)) from None
        return {"response": scrub(response, secrets)}

    @activity.defn(name="stigmer.workflow.process")
    async def process(self, args: dict[str, Any]) -> dict[str, Any]:
        """A shell command (``kind: shell``) or an inline script (``kind: script``), when the
        execution's backend grants the ``run`` capability."""
        return await self._with_progress(args, self._process, lambda _: True)  # type: ignore[no-any-return]

    async def _process(self, args: dict[str, Any]) -> dict[str, Any]:
        if not await may_run(self.backend, args["executionId"]):
            raise _problem_error(refused(str(args["kind"])))
        secrets = await self._secrets(args["executionId"], args)
        real = substitute(args, secrets)
        try:
            async with heartbeating():
                if real["kind"] == "shell":
                    result = await self.host.run_shell(
                        real["command"], real["arguments"], real["environment"], real.get("stdin")
                    )
                else:
                    result = await self.host.run_script(
                        real["language"],
                        real["code"],
                        real["arguments"],
                        real["environment"],
                        real.get("stdin"),
                    )
        except WorkflowError as error:
            raise _problem_error(_scrubbed_error(error, secrets)) from None
        scrubbed: dict[str, Any] = scrub(
            {"code": result.code, "stdout": result.stdout, "stderr": result.stderr}, secrets
        )
        return scrubbed

    @activity.defn(name="stigmer.workflow.child")
    async def child(self, args: dict[str, Any]) -> str:
        """Create a child execution (``call: agent`` or ``run: workflow``); returns its id. With
        ``dispatchByCaller`` the server leaves starting it to the calling workflow (a child workflow)."""
        return await self._with_progress(args, self._child)  # type: ignore[no-any-return]

    async def _child(self, args: dict[str, Any]) -> str:
        spec = P.ExecutionSpec(
            target=meta_pb2.ResourceRef(kind=args["kind"], name=args["name"]),
            parent_execution_id=args["executionId"],
        )
        if args["kind"] == "Agent":
            spec.message = args.get("message") or ""
            spec.session_id = args.get("session") or ""
            if args.get("attachments"):
                from .._attachments import store_attachments

                spec.attachments.extend(await store_attachments(self.backend, args["attachments"]))
        else:
            spec.input.CopyFrom(to_value(args.get("input")))
        key = str(args.get("callId") or "")
        if key and activity.info().attempt > 1:
            # A retry: the attempt before may have created it and died before returning its id.
            earlier = await self._created_by(spec, key)
            if earlier:
                return earlier
        created = await self.backend.create_execution(
            svc.CreateExecutionRequest(
                spec=spec,
                dispatch_by_caller=bool(args.get("dispatchByCaller")),
                labels={CALL_LABEL: key} if key else {},
            )
        )
        return created.metadata.id

    async def _created_by(self, spec: P.ExecutionSpec, key: str) -> str:
        """The id of the child execution ``spec`` created under call id ``key`` (or '')."""
        page = await self.backend.list_executions(
            svc.ListExecutionsRequest(target=spec.target, page_size=100)
        )
        for execution in page.executions:
            if (
                execution.spec.parent_execution_id == spec.parent_execution_id
                and execution.metadata.labels.get(CALL_LABEL) == key
            ):
                return str(execution.metadata.id)
        return ""

    @activity.defn(name="stigmer.workflow.await")
    async def await_execution(self, execution_id: str) -> dict[str, Any]:
        """Wait (heartbeating) until an execution finishes; its phase, output and error."""
        while True:
            activity.heartbeat()
            current = await self.backend.get_execution(svc.GetExecutionRequest(id=execution_id))
            if is_terminal(current.status.phase):
                error = current.status.error
                return {
                    "phase": P.Phase.Name(current.status.phase),
                    "output": from_value(current.status.output)
                    if current.status.HasField("output")
                    else None,
                    "error": {
                        "type": error.type,
                        "title": error.title,
                        "status": error.status,
                        "detail": error.detail,
                    },
                }
            await asyncio.sleep(0.25)

    def all(self) -> list[Any]:
        """Every activity, for ``Worker(activities=...)``."""
        return [
            self.load,
            self.start,
            self.report,
            self.http,
            self.grpc,
            self.process,
            self.child,
            self.await_execution,
        ]


def _uses_secrets(args: Mapping[str, Any]) -> bool:
    """Whether an effect's request refers to secrets or to OAuth2 tokens (read from the run's
    context, which only a running run has)."""
    return bool(args.get("tokens")) or bool(ref_names(args.get("request")))


def _grpc_needs_context(args: Mapping[str, Any]) -> bool:
    """A gRPC call with secrets or tokens, or with a proto file of this machine (whose use the
    run's capabilities decide)."""
    return _local_proto(args.get("request") or {}) or _uses_secrets(args)


def _local_proto(request: Mapping[str, Any]) -> bool:
    """Whether a ``call: grpc`` request uses a proto file of this worker's machine."""
    return request.get("proto") is None and proto_file(str(request.get("protoUri") or "")) is not None


def _stopped() -> ApplicationError:
    return ApplicationError(STOPPED, type=STOPPED_ERROR, non_retryable=True)


def _scrubbed_error(error: WorkflowError, secrets: Mapping[str, str]) -> WorkflowError:
    problem = scrub(dict(error.problem), secrets)
    error.problem.clear()
    error.problem.update(problem)
    error.args = (str(problem.get("detail", "")),)
    return error
