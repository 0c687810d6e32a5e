"""``AsyncStigmer``: apply, read, delete and run resources through the Backend of a context."""

from __future__ import annotations

import asyncio
import builtins
import logging
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

from stigmer.core import RUNNABLE_KINDS, InvalidArgument, NotFound, kind_info
from stigmer.sdk._connection import Connection, load_runner_plugin, resolve_target
from stigmer.sdk._execution import AsyncExecution, _aclose
from stigmer.sdk._kinds import resolve_kind
from stigmer.sdk._targets import find_target, not_found, resource_exists, session_for
from stigmer.sdk.authoring._builder import M, ResourceBuilder

if TYPE_CHECKING:
    from google.protobuf.message import Message
    from stigmer.core import Backend, LoadedResource
    from stigmer.proto.v1 import backend_service_pb2 as svc
    from stigmer.proto.v1 import execution_pb2
    from stigmer.proto.v1.memory_pb2 import Memory
    from stigmer.proto.v1.secret_pb2 import SecretMetadata
    from stigmer.sdk._events import Published
    from stigmer.sdk._export import Export
    from stigmer.sdk._schedules import Fired, ScheduleInfo
    from stigmer.sdk._validate import ValidationProblem
    from stigmer.sdk._workspace import Attachable

__all__ = [
    "Applied",
    "AsyncStigmer",
    "ExecutionPage",
    "Kind",
    "ResourcePage",
    "kind_name",
    "label_selector",
]

Kind = str | type[ResourceBuilder[Any]]
logger = logging.getLogger(__name__)


def kind_name(kind: Kind) -> str:
    """``"agents"`` or the ``Agent`` builder class -> ``"Agent"``."""
    if isinstance(kind, type) and issubclass(kind, ResourceBuilder):
        return kind.kind
    return resolve_kind(kind)


_ACTIONS = {0: "unspecified", 1: "created", 2: "updated", 3: "unchanged"}


@dataclass(frozen=True)
class Applied:
    """What ``apply`` did to one resource; ``resource`` is the stored kind message."""

    kind: str
    name: str
    action: str  # created, updated, unchanged
    resource: Message = field(repr=False)

    @property
    def id(self) -> str:
        return str(self.resource.metadata.id)  # type: ignore[attr-defined]

    @property
    def version(self) -> int:
        return int(self.resource.metadata.version)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ResourcePage:
    """One page of ``list_page``: kind messages in creation order, and the token of the next
    page (empty on the last one)."""

    resources: tuple[Any, ...]
    next_page_token: str = ""


@dataclass(frozen=True)
class ExecutionPage:
    """One page of ``list_executions``: ``stigmer.v1.Execution`` snapshots, newest first, and
    the token of the next page (empty on the last one)."""

    executions: tuple[execution_pb2.Execution, ...]
    next_page_token: str = ""


def label_selector(labels: Mapping[str, str] | str | None) -> str:
    """``{"team": "support"}`` -> ``"team=support"``; a string is passed through."""
    if labels is None:
        return ""
    if isinstance(labels, str):
        return labels
    return ",".join(f"{k}={v}" for k, v in labels.items())


class AsyncStigmer:
    """Async client of a Stigmer backend.

    With no arguments it uses the active context (``stigmer context use``); ``home=`` or
    ``database_url=`` select a local store, ``endpoint=`` (+ ``token=``) a server, ``context=``
    a named context. In a local context, ``run`` executes the runner in this process (Lite),
    exactly like ``stigmer run``; against a server, the server runs it. ``timeout`` and
    ``retries`` set a server's per-call deadline in seconds (default 30) and how often a call
    refused as unavailable is retried (default 5); a local store ignores them.
    Nothing connects (or imports grpc / a database driver) until the first call.
    """

    def __init__(
        self,
        *,
        home: str | Path | None = None,
        database_url: str | None = None,
        endpoint: str | None = None,
        token: str | None = None,
        context: str | None = None,
        backend: Backend | None = None,
        local: bool | None = None,
        timeout: float | None = None,
        retries: int | None = None,
    ) -> None:
        self._given = backend
        self._local_override = local
        self._target: Connection | None = None
        if backend is None:
            self._target = resolve_target(
                home=home, database_url=database_url, endpoint=endpoint, token=token, context=context
            )
            if not self._target.local and (timeout is not None or retries is not None):
                options = dict(self._target.options)
                if timeout is not None:
                    options["timeout"] = timeout
                if retries is not None:
                    options["retries"] = retries
                self._target = Connection(self._target.backend, options, self._target.context)
        self._backend: Backend | None = backend
        self._executions: list[AsyncExecution] = []

    def __repr__(self) -> str:
        where = self._target.describe() if self._target is not None else repr(self._given)
        return f"AsyncStigmer({where})"

    @property
    def local(self) -> bool:
        """True when runs execute in this process (the embedded local store)."""
        if self._local_override is not None:
            return self._local_override
        return self._target.local if self._target is not None else False

    @property
    def context(self) -> str:
        """The name of the context this client uses (empty when given explicitly)."""
        return self._target.context if self._target is not None else ""

    @property
    def backend(self) -> Backend:
        """The connected ``stigmer.core.Backend`` (connects on first use)."""
        if self._backend is None:
            assert self._target is not None
            self._backend = self._target.open()
        return self._backend

    async def __aenter__(self) -> AsyncStigmer:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose(wait_for_runs=exc_type is None)

    async def aclose(self, wait_for_runs: bool = True) -> None:
        """Wait for the runs this client executes in-process (local context), then close the
        connection. ``wait_for_runs=False`` (the default when a ``with`` block raised) stops
        them where they are; they stay resumable with ``stigmer execution resume ID``."""
        await asyncio.gather(*(e.close(wait_for_runs) for e in self._executions), return_exceptions=True)
        self._executions.clear()
        if self._backend is not None and self._given is None:
            await self._backend.close()
            self._backend = None

    async def check(self, *, timeout: float = 5.0) -> None:
        """Make one cheap authenticated call (list one Workflow, which a token of every role may
        do) with a deadline of ``timeout`` seconds and at most one retry: returns when the backend
        answers and accepts the credentials. Raises ``stigmer.core.Unavailable`` when nothing
        answers at the endpoint, ``Unauthenticated`` when the token is refused, ``InvalidArgument``
        for a malformed endpoint. ``stigmer login`` calls it before switching the context."""
        from stigmer.proto.v1 import backend_service_pb2 as svc

        if timeout <= 0:
            raise InvalidArgument(f"timeout must be positive, got {timeout}", ["timeout"])
        request = svc.ListRequest(kind="Workflow", page_size=1)
        target = self._target
        if self._backend is None and target is not None and not target.local:
            # A throwaway connection with a short deadline, not the client's (30 s, 5 retries).
            options = {**target.options, "timeout": timeout, "retries": 1}
            probe = Connection(target.backend, options, target.context).open()
            try:
                await probe.list(request)
            finally:
                await probe.close()
            return
        await asyncio.wait_for(self.backend.list(request), timeout)

    async def check_servers(self, *, timeout: float = 5.0) -> list[tuple[str, Exception | None]]:
        """Each server of a server context whose endpoint lists several, checked on its own (the
        call of :meth:`check`): ``(endpoint, None)`` for one that answers and accepts the token,
        ``(endpoint, error)`` otherwise. Empty for a local store, one server or a DNS endpoint
        (``stigmer doctor`` reports a server of the list that is down, which balanced calls hide)."""
        from stigmer.core import StigmerError
        from stigmer.proto.v1 import backend_service_pb2 as svc

        target = self._target
        if target is None or target.local:
            return []
        from stigmer.backend.cloud import parse_endpoint

        servers = parse_endpoint(str(target.options.get("endpoint", ""))).servers()
        if len(servers) < 2:
            return []
        found: list[tuple[str, Exception | None]] = []
        for server in servers:
            options = {**target.options, "endpoint": str(server), "timeout": timeout, "retries": 1}
            probe = Connection(target.backend, options, target.context).open()
            try:
                await probe.list(svc.ListRequest(kind="Workflow", page_size=1))
                found.append((str(server), None))
            except StigmerError as exc:
                found.append((str(server), exc))
            finally:
                await probe.close()
        return found

    # -- resources -----------------------------------------------------------------------------

    async def apply(self, *resources: Any, dry_run: bool = False) -> list[Applied]:
        """Create or update resources, skills first and workflows last (like ``stigmer apply``).

        Each argument is a builder (``Agent``, ``Workflow`` ...), a resource message, a manifest
        dict, a path to a manifest file / directory / Python file, or a list of those. Skills
        with a ``path`` are packed and stored as artifacts first. Everything is validated first
        (see :meth:`validate`): any error raises ``ValidationFailed`` and nothing is stored;
        warnings are logged.
        """
        from stigmer.core import unwrap
        from stigmer.sdk._apply_order import order_resources
        from stigmer.sdk._collect import collect
        from stigmer.sdk._validate import ValidationFailed

        given = collect(resources)
        loaded = order_resources(given)
        if not loaded:
            raise InvalidArgument("nothing to apply")
        problems = await self.validate(*given)
        for problem in problems:
            if problem.warning:
                logger.warning("%s", problem)
        errors = [p for p in problems if not p.warning]
        if errors:
            raise ValidationFailed(errors)
        results: list[Applied] = []
        for item in loaded:
            response = await self.apply_loaded(item, dry_run=dry_run)
            action = _ACTIONS.get(response.action, "unspecified")
            results.append(Applied(item.kind, item.name, action, unwrap(response.resource)))
        return results

    async def validate(self, *resources: Any) -> list[ValidationProblem]:
        """The problems of resources (what ``apply`` takes, or loaded manifests) as ``apply`` and
        ``stigmer run`` see them: each Workflow's document (schema, semantic checks, jq syntax,
        secrets, functions, authentications), and the agents and workflows it names, which must
        be among the resources given or stored in this client's backend. Errors and warnings
        (``warning=True``), located in the manifests; an empty list means valid. Stores nothing."""
        from stigmer.sdk._collect import collect
        from stigmer.sdk._validate import check_resources

        async def exists(kind: str, name: str) -> bool:
            return await resource_exists(self.backend, kind, name)

        return await check_resources(collect(resources), exists)

    async def apply_loaded(self, item: LoadedResource, *, dry_run: bool = False) -> svc.ApplyResponse:
        """Apply one loaded resource (a Skill's ``spec.path`` packed and stored first, a stdio
        McpServer's relative paths resolved against its manifest's folder); the backend's
        ``ApplyResponse`` (``action``, ``resource``, and ``previous`` in a dry run).
        ``apply`` orders its resources and calls this for each; ``stigmer apply`` does the same."""
        from stigmer.proto.v1 import backend_service_pb2 as svc

        if item.kind == "Skill":
            await self._push_skill(item)
        elif item.kind == "Agent":
            await self._push_workspace(item)
        elif item.kind == "McpServer":
            from stigmer.sdk._mcppaths import resolve_stdio_paths

            resolve_stdio_paths(item)
        response = await self.backend.apply(
            svc.ApplyRequest(resource=item.resource, dry_run=dry_run)  # type: ignore[arg-type]
        )
        if item.kind == "Workflow" and self.local and not dry_run and self._target is not None:
            # Runs in this process validate the stored document no more: its validated form is kept.
            from stigmer.runner.workflow import keep_validated

            keep_validated(response.resource.workflow.spec, self._target.options.get("home"))
        return response

    async def _push_skill(self, item: LoadedResource) -> None:
        """Pack a Skill's ``spec.path`` directory, store it as an artifact, set ``spec.artifact``.

        Also in a dry run: the backend checks that the artifact exists. The blob is
        content-addressed, so storing it changes no resource and is harmless to repeat.
        """
        from stigmer.proto.v1 import backend_service_pb2 as svc
        from stigmer.sdk._skillpack import SKILL_MEDIA_TYPE, pack_skill

        skill = item.resource.skill  # type: ignore[union-attr]
        if not skill.spec.path:
            return
        try:
            packed = pack_skill((item.base_dir / skill.spec.path).resolve())
        except InvalidArgument as exc:
            raise InvalidArgument(
                f"{item.source}:{item.line}: spec.path: {exc.message}", exc.field_paths
            ) from None
        meta = await self.backend.put_artifact(
            svc.PutArtifactRequest(content=packed.content, media_type=SKILL_MEDIA_TYPE)
        )
        skill.spec.artifact = meta.key or packed.key

    async def _push_workspace(self, item: LoadedResource) -> None:
        """Pack an Agent's ``workspace.path`` folder, store it as an artifact, set ``workspace.artifact``
        (content-addressed, as skills are): every session of the agent starts with these files."""
        from stigmer.core import TAR_MEDIA_TYPE, pack_tree
        from stigmer.proto.v1 import backend_service_pb2 as svc

        workspace = item.resource.agent.spec.workspace  # type: ignore[union-attr]
        if not workspace.path:
            return
        folder = (item.base_dir / workspace.path).resolve()
        where = f"{item.source}:{item.line}: spec.workspace.path"
        if not folder.is_dir():
            raise InvalidArgument(
                f"{where}: folder '{folder}' does not exist (the path is relative to the manifest)",
                ["spec.workspace.path"],
            )
        try:
            packed = pack_tree(
                folder,
                what="workspace folder",
                links="refuse",
                max_files=workspace.max_files or 5_000,
                max_bytes=workspace.max_bytes or 10 * 2**20,
            )
        except InvalidArgument as exc:
            raise InvalidArgument(f"{where}: {exc.message}", ["spec.workspace.path"]) from None
        meta = await self.backend.put_artifact(
            svc.PutArtifactRequest(content=packed.content, media_type=TAR_MEDIA_TYPE)
        )
        workspace.artifact = meta.key or packed.key

    @overload
    async def get(self, kind: type[ResourceBuilder[M]], name: str) -> M: ...
    @overload
    async def get(self, kind: str, name: str) -> Message: ...
    async def get(self, kind: Kind, name: str) -> Message:
        """One resource as its kind message (``stigmer.v1.Agent`` ...); ``NotFound`` if missing.

        ``kind`` is a name (``"agent"``, ``"workflows"``) or a builder class (``Agent``: typed result).
        ``name`` may also be the resource's id (``agt_...``, the id prefix of an applicable kind).
        """
        from stigmer.core import KIND_TABLE, unwrap
        from stigmer.proto.v1 import backend_service_pb2 as svc
        from stigmer.proto.v1 import meta_pb2

        ref = meta_pb2.ResourceRef(kind=kind_name(kind), name=name)
        prefix, sep, _ = name.partition("_")
        if sep and prefix in {k.id_prefix for k in KIND_TABLE if k.applicable}:
            ref = meta_pb2.ResourceRef(kind=ref.kind, id=name)
        return unwrap(await self.backend.get(svc.GetRequest(ref=ref)))

    async def exists(self, kind: Kind, name: str) -> bool:
        """Whether a resource of ``kind`` is called ``name``."""
        from stigmer.sdk._targets import resource_exists

        return await resource_exists(self.backend, kind_name(kind), name)

    async def not_found(
        self, kinds: Kind | Sequence[Kind], name: str, *, create_hint: str = "apply one first"
    ) -> NotFound:
        """The ``NotFound`` error (returned, not raised) for a missing ``name`` of ``kinds``: it
        suggests the closest existing name of those kinds, or, when there is none at all, ends
        with ``create_hint``."""
        from stigmer.sdk._targets import not_found

        names = [kind_name(k) for k in ([kinds] if isinstance(kinds, str | type) else kinds)]
        return await not_found(self.backend, names, name, create_hint=create_hint)

    async def find_target(
        self,
        name: str,
        *,
        choose_hint: str = "pass kind='workflow' or 'agent'",
        create_hint: str = "apply one first",
    ) -> str:
        """``"Workflow"`` or ``"Agent"``: whichever of them is called ``name`` (what ``run(name)``
        runs). ``InvalidArgument`` when both are (ending with ``choose_hint``), ``NotFound`` when
        neither is (suggesting the closest name, or ending with ``create_hint``)."""
        from stigmer.sdk._targets import find_target

        return await find_target(self.backend, name, choose_hint=choose_hint, create_hint=create_hint)

    @overload
    async def list(
        self, kind: type[ResourceBuilder[M]], labels: Mapping[str, str] | str | None = None
    ) -> list[M]: ...
    @overload
    async def list(self, kind: str, labels: Mapping[str, str] | str | None = None) -> list[Message]: ...
    async def list(self, kind: Kind, labels: Mapping[str, str] | str | None = None) -> list[Any]:
        """Every resource of a kind (all pages), optionally filtered by labels (a mapping, or a
        selector string: ``"team=support,!beta"``); ``list_page`` reads one page."""

        out: list[Any] = []
        token = ""
        while True:
            page = await self.list_page(kind, labels, page_size=500, page_token=token)
            out.extend(page.resources)
            token = page.next_page_token
            if not token:
                return out

    async def list_page(
        self,
        kind: Kind,
        labels: Mapping[str, str] | str | None = None,
        *,
        page_size: int = 100,
        page_token: str = "",
    ) -> ResourcePage:
        """One page of the resources of a kind (creation order), optionally filtered by labels
        (a mapping, or a selector string: ``"team=support,!beta"``). Pass the page's
        ``next_page_token`` as ``page_token`` for the next one; ``list`` reads them all."""
        from stigmer.core import unwrap
        from stigmer.proto.v1 import backend_service_pb2 as svc

        page = await self.backend.list(
            svc.ListRequest(
                kind=kind_name(kind),
                label_selector=label_selector(labels),
                page_size=page_size,
                page_token=page_token,
            )
        )
        return ResourcePage(tuple(unwrap(r) for r in page.resources), page.next_page_token)

    @overload
    async def delete(self, kind: type[ResourceBuilder[M]], name: str) -> M: ...
    @overload
    async def delete(self, kind: str, name: str) -> Message: ...
    async def delete(self, kind: Kind, name: str) -> Message:
        """Delete one resource; returns it as it was."""
        from stigmer.core import unwrap
        from stigmer.proto.v1 import backend_service_pb2 as svc
        from stigmer.proto.v1 import meta_pb2

        ref = meta_pb2.ResourceRef(kind=kind_name(kind), name=name)
        return unwrap(await self.backend.delete(svc.DeleteRequest(ref=ref)))

    async def set_secret(self, name: str, value: str, description: str = "") -> SecretMetadata:
        """Store a secret value (encrypted; write-only); returns its metadata (never the value)."""
        from stigmer.proto.v1 import backend_service_pb2 as svc

        request = svc.SetSecretRequest(name=name, value=value, description=description)
        return await self.backend.set_secret(request)

    async def list_secrets(self, prefix: str = "") -> tuple[SecretMetadata, ...]:
        """Secret names with their metadata (owner, grants, versions), never values."""
        from stigmer.proto.v1 import backend_service_pb2 as svc

        return tuple((await self.backend.list_secrets(svc.ListSecretsRequest(prefix=prefix))).secrets)

    async def memories(
        self, agent: str = "", *, subject: str = "", query: str = "", limit: int = 0
    ) -> tuple[Memory, ...]:
        """Agents' memories: of ``agent`` (all agents: ""), about ``subject`` (any: ""), newest
        first — or, with ``query``, the most relevant to it first. ``limit`` 0: every one (a
        search: up to 100)."""
        from stigmer.proto.v1 import backend_service_pb2 as svc

        request = svc.ListMemoriesRequest(
            agent=agent, subject=subject, query=query, page_size=min(limit, 1000)
        )
        found: list[Memory] = []
        while True:
            page = await self.backend.list_memories(request)
            found.extend(page.memories)
            if not page.next_page_token or (limit and len(found) >= limit):
                return tuple(found[:limit] if limit else found)
            request.page_token = page.next_page_token

    async def memory(self, memory_id: str) -> Memory:
        """One memory by id (``mem_...``)."""
        from stigmer.proto.v1 import backend_service_pb2 as svc

        return await self.backend.get_memory(svc.GetMemoryRequest(id=memory_id))

    async def forget(self, memory_id: str) -> Memory:
        """Delete a memory; returns it as it was."""
        from stigmer.proto.v1 import backend_service_pb2 as svc

        return await self.backend.delete_memory(svc.DeleteMemoryRequest(id=memory_id))

    async def delete_secret(self, name: str) -> SecretMetadata:
        """Delete a secret; returns its metadata as it was."""
        from stigmer.proto.v1 import backend_service_pb2 as svc

        return await self.backend.delete_secret(svc.DeleteSecretRequest(name=name))

    async def check_master_key(self) -> tuple[bool | None, str, int]:
        """Whether the embedded store's master key opens its stored secrets: ``(opens, source,
        count)`` — ``opens`` is None when no secret is stored, ``source`` says where the key came
        from (``STIGMER_MASTER_KEY``, the OS keyring or the key file). Only the local store: a
        server checks its own key on its own machine (``stigmer doctor`` there)."""
        from stigmer.backend.local import LocalBackend
        from stigmer.core import FailedPrecondition

        if not isinstance(self.backend, LocalBackend):
            raise FailedPrecondition(
                "the master key can be checked on the local store only; a server checks its own "
                "(run `stigmer doctor` on the server machine)"
            )
        return await self.backend.check_master_key()

    async def rotate_master_key(self, new_key: bytes | None = None) -> bytes:
        """Re-encrypt every secret of the embedded store with ``new_key`` (default: a new random
        key) in one transaction; returns the new key. Only the local store: a server rotates its
        own key on its own machine."""
        from stigmer.backend.local import LocalBackend
        from stigmer.core import FailedPrecondition

        if not isinstance(self.backend, LocalBackend):
            raise FailedPrecondition(
                "rotate-key works on the local store only; a server rotates its own key "
                "(run `stigmer secret rotate-key` on the server machine)"
            )
        return await self.backend.rotate_master_key(new_key)

    async def grant_secret(self, name: str, *, to: str = "", role: str = "") -> SecretMetadata:
        """Let a token (``to``: its name) or every token of a ``role`` author definitions using a
        secret; only its owner or an admin may (see docs/security.md)."""
        from stigmer.proto.v1 import backend_service_pb2 as svc

        return await self.backend.grant_secret(svc.GrantSecretRequest(name=name, grant=_grantee(to, role)))

    async def revoke_secret(self, name: str, *, to: str = "", role: str = "") -> SecretMetadata:
        """Take back a grant made with :meth:`grant_secret`."""
        from stigmer.proto.v1 import backend_service_pb2 as svc

        return await self.backend.revoke_secret(svc.RevokeSecretRequest(name=name, grant=_grantee(to, role)))

    async def export(
        self,
        directory: str | Path | None = None,
        *,
        kind: str | None = None,
        name: str | None = None,
        format: str = "stigmer",
    ) -> Export:
        """Resources as manifests (status and ids stripped); with ``directory``, written there
        with the skills' files and a SECRETS.md listing the secrets to set elsewhere.
        ``format="upstream"`` writes upstream Stigmer's ``agentic.stigmer.ai/v1`` manifests
        where a mapping exists (docs/migrating-from-upstream.md)."""
        from stigmer.sdk._export import export_resources

        return await export_resources(
            self.backend,
            kind=resolve_kind(kind) if kind else None,
            name=name,
            directory=Path(directory) if directory is not None else None,
            format=format,
        )

    # -- executions ----------------------------------------------------------------------------

    async def run(
        self,
        name: str,
        *,
        input: Any = None,
        message: str | None = None,
        env: Mapping[str, str] | None = None,
        secrets: Mapping[str, str] | None = None,
        session: str | None = None,
        kind: str | None = None,
        start: bool = True,
        limits: Mapping[str, float] | None = None,
        output_schema: Mapping[str, Any] | None = None,
        model: str | None = None,
        attachments: Sequence[Attachable] = (),
    ) -> AsyncExecution:
        """Start the workflow or agent called ``name``; returns at once with a handle.

        ``input`` is a workflow's input document (plain data, or a ``google.protobuf.Value``),
        ``message`` an agent's user message; ``env``
        run-time variables; ``secrets`` values given to this run only; ``session`` continues an
        agent session (its id ``ses_...``, or a name: created on first use). ``kind``
        (``"workflow"`` / ``"agent"``) is needed only when both exist. ``start=False`` (a local
        context) creates the execution without running it here: ``follow(start=True)`` on its
        handle, or ``stigmer execution resume ID``, runs it later. ``attachments`` (agents: file
        paths, or ``(name, bytes)``) are put into the agent's workspace under ``attachments/``.

        Agents only: ``limits`` bounds the run (``max_requests``, ``max_tool_calls``,
        ``max_input_tokens``, ``max_output_tokens``, ``max_tokens``, ``max_cost_usd``; they can only
        lower the agent's own), ``output_schema`` (a JSON Schema) makes the run's output a JSON
        value valid against it, and ``model`` (``NAME`` or ``PROVIDER:NAME``) is the run's model
        (what it leaves out comes from the agent's).
        """
        from google.protobuf import json_format, struct_pb2
        from stigmer.proto.v1 import agent_pb2, execution_pb2, meta_pb2
        from stigmer.proto.v1 import backend_service_pb2 as svc

        choose = "pass kind='workflow' or 'agent'"
        agent_only = bool(message or session or limits or output_schema is not None or model or attachments)
        if kind:
            target = resolve_kind(kind)
            # A session or attachments are stored before the run is created: not for nothing.
            stored_first = bool(session or attachments) and target in RUNNABLE_KINDS
            if stored_first and not await resource_exists(self.backend, target, name):
                raise await not_found(self.backend, [target], name)
        elif self.local or agent_only or input is None:
            # What runs here, or what the arguments must suit, is known before the run is created.
            target = await find_target(self.backend, name, choose_hint=choose)
        else:
            # Arguments either kind takes: the Backend finds the workflow or agent of that name
            # as it creates the run (one call to a server instead of three).
            target = ""
        runs = kind_info(target).runner if target else ""
        if target and (not runs or kind_info(target).is_execution):
            raise InvalidArgument(f"only workflows and agents run, not a {target}", ["kind"])
        if target == "Workflow" and (message or session):
            raise InvalidArgument("message= and session= are for agents; give a workflow input=")
        if target == "Agent" and not message and input is None:
            raise InvalidArgument(f"an agent run needs a message: run({name!r}, message=...)")
        if target == "Workflow" and (limits or output_schema is not None or model):
            raise InvalidArgument("limits=, output_schema= and model= are for agents")
        if target == "Workflow" and attachments:
            raise InvalidArgument("attachments= are for agents", ["attachments"])
        runner = load_runner_plugin(runs) if self.local and runs else None  # fail before creating
        spec = execution_pb2.ExecutionSpec(
            target=meta_pb2.ResourceRef(kind=target, name=name),
            message=message or "",
            session_id=await session_for(self.backend, name, session) if session else "",
            env=dict(env or {}),
        )
        if limits:
            try:
                json_format.ParseDict(dict(limits), spec.limits)
            except json_format.ParseError as exc:
                known = ", ".join(f.name for f in agent_pb2.AgentLimits.DESCRIPTOR.fields)
                raise InvalidArgument(f"limits: {exc} (known limits: {known})", ["limits"]) from None
            if any(v < 0 for _f, v in spec.limits.ListFields()):
                raise InvalidArgument("limits must not be negative", ["limits"])
        if model:
            provider, _, model_name = model.rpartition(":")
            if not model_name.strip():
                raise InvalidArgument(f"model {model!r}: give NAME or PROVIDER:NAME", ["model"])
            spec.model.CopyFrom(agent_pb2.ModelConfig(provider=provider.strip(), name=model_name.strip()))
        if output_schema is not None:
            from stigmer.core import output_schema_problem

            problem = output_schema_problem(output_schema)
            if problem:
                raise InvalidArgument(problem, ["output_schema"])
            spec.output_schema.update(dict(output_schema))
        if isinstance(input, struct_pb2.Value):  # given as a Value already (JSON null included)
            spec.input.CopyFrom(input)
        elif input is not None:
            value = struct_pb2.Value()
            try:
                json_format.ParseDict(input, value)
            except (json_format.ParseError, TypeError, ValueError) as exc:
                raise InvalidArgument(f"input is not JSON-compatible data: {exc}", ["input"]) from None
            spec.input.CopyFrom(value)
        if attachments:
            from stigmer.sdk._workspace import store_attachments

            spec.attachments.extend(await store_attachments(self.backend, attachments))
        try:
            created = await self.backend.create_execution(
                svc.CreateExecutionRequest(spec=spec, runtime_secrets=dict(secrets or {}))
            )
        except NotFound:
            # Said as `find_target` says it, with the closest existing name — when the target is
            # what is missing (a session given by id may be, too).
            kinds = [target] if target else list(RUNNABLE_KINDS)
            if not any([await resource_exists(self.backend, k, name) for k in kinds]):
                raise await not_found(self.backend, kinds, name) from None
            raise
        except InvalidArgument as exc:
            if not target and "spec.target.kind" in exc.field_paths:
                raise InvalidArgument(
                    f"'{name}' names both a workflow and an agent; {choose}", ["kind"]
                ) from None
            raise
        handle = AsyncExecution(self.backend, created, runner, start=start)
        self._executions.append(handle)
        return handle

    async def rerun(
        self, execution_id: str, *, secrets: Mapping[str, str] | None = None, start: bool = True
    ) -> AsyncExecution:
        """Run an execution's target again from the start: a new execution of the same target
        version with the same input, message and environment, linked to the old one by
        ``spec.rerun_of``; returns at once with a handle (like :meth:`run`). Any execution may be
        re-run, finished or not. Run-time secrets are deleted when a run ends: give them again in
        ``secrets`` (``FailedPrecondition`` names them otherwise)."""
        return await self._again(execution_id, "rerun_of", secrets, start)

    async def retry(
        self, execution_id: str, *, secrets: Mapping[str, str] | None = None, start: bool = True
    ) -> AsyncExecution:
        """Continue a FAILED or CANCELLED run from where it stopped: a new execution (linked by
        ``spec.resumed_from``) that starts from the old one's checkpoint, so the tasks it
        completed are not run again (a workflow continues at its failed task, an agent after its
        last completed turn); the old execution stays as it ended. ``FailedPrecondition`` for a
        run that did not fail or was not cancelled (:meth:`rerun` starts any run over)."""
        return await self._again(execution_id, "resumed_from", secrets, start)

    # -- schedules -----------------------------------------------------------------------------

    async def pause_schedule(self, name: str) -> Any:
        """Stop a Schedule from firing (``spec.enabled: false``, a new version); returns it."""
        from stigmer.sdk._schedules import set_enabled

        return await set_enabled(self, name, False)

    async def resume_schedule(self, name: str) -> Any:
        """Let a paused Schedule fire again (``spec.enabled: true``); returns it. Slots missed
        while paused do not fire (backfill them)."""
        from stigmer.sdk._schedules import set_enabled

        return await set_enabled(self, name, True)

    async def schedule_info(self, name: str, *, count: int = 3, now: datetime | None = None) -> ScheduleInfo:
        """A Schedule with its next ``count`` fire times (none while paused) and its last runs."""
        from stigmer.sdk._schedules import info

        return await info(self, name, count=count, now=now)

    async def trigger_schedule(self, name: str, *, now: datetime | None = None) -> AsyncExecution:
        """Start one run of a Schedule's target now (paused or not), labelled like its fires."""
        from stigmer.sdk._schedules import fire, utcnow

        [(_fired, handle)] = await fire(self, name, [now or utcnow()], overlap=False, start=True)
        if handle is None:  # pragma: no cover - the slot of this moment was fired already
            raise InvalidArgument(f"schedule {name!r} fired this very moment already; try again")
        return handle

    async def backfill_schedule(
        self, name: str, start: datetime, end: datetime, *, run: bool = True
    ) -> builtins.list[Fired]:
        """Fire every slot of a Schedule in ``[start, end)`` that did not fire yet, regardless of
        its overlap policy (each slot once: a slot backfilled twice starts nothing the second
        time). In a local context the runs run here (``run``: one after another, to the end)."""
        from stigmer.sdk._schedules import backfill_slots, fire, get_schedule

        slots = backfill_slots(await get_schedule(self, name), _aware(start), _aware(end))
        fired = await fire(self, name, slots, overlap=False, start=False)
        if run and self.local:
            for _f, handle in fired:
                if handle is not None:
                    await handle.follow(start=True)
        return [f for f, _h in fired]

    async def run_due(
        self, *, now: datetime | None = None, name: str = "", wait: bool = True
    ) -> builtins.list[Fired]:
        """Local context: fire every Schedule slot due at ``now`` (default: the clock) that did
        not fire yet, and run the executions here (``wait``: until they end). For the system's
        cron: ``* * * * * stigmer schedule run-due``."""
        from stigmer.sdk._schedules import run_due

        return [f for f, _h in await run_due(self, now=now, name=name, wait=wait)]

    async def run_scheduler(
        self,
        stop: asyncio.Event,
        *,
        tick: float = 1.0,
        clock: Callable[[], datetime] | None = None,
        on_fire: Callable[[Fired], None] | None = None,
    ) -> None:
        """Local context: fire due schedules every ``tick`` seconds until ``stop`` is set, each
        run in this process (``stigmer scheduler``)."""
        from stigmer.sdk._schedules import scheduler, utcnow

        await scheduler(self, stop, tick=tick, clock=clock or utcnow, on_fire=on_fire)

    async def _again(
        self,
        execution_id: str,
        link: Literal["rerun_of", "resumed_from"],
        secrets: Mapping[str, str] | None,
        start: bool,
    ) -> AsyncExecution:
        from stigmer.core import again_request

        old = await self.get_execution(execution_id)
        runs = kind_info(old.spec.target.kind).runner if old.spec.target.kind else ""
        runner = load_runner_plugin(runs) if self.local and runs else None  # fail before creating
        created = await self.backend.create_execution(again_request(old, link, secrets))
        handle = AsyncExecution(self.backend, created, runner, start=start)
        self._executions.append(handle)
        return handle

    async def execution(self, execution_id: str, *, in_process: bool = True) -> AsyncExecution:
        """A handle on an existing execution (watch, wait, cancel, approve).

        In a local context an approval given through it continues the run in this process;
        ``in_process=False`` makes a watch-only handle (the run goes on wherever it runs)."""
        ex = await self.get_execution(execution_id)
        runs = kind_info(ex.kind).runner if ex.kind and in_process else ""
        runner = load_runner_plugin(runs) if self.local and runs else None
        handle = AsyncExecution(self.backend, ex, runner, start=False)
        self._executions.append(handle)  # a run it continues here is waited for (or stopped) on close
        return handle

    async def execution_files(self, execution_id: str) -> dict[str, bytes]:
        """The files of the agent's workspace as the execution saved them (at the end of its turn,
        or at a pause), by path. ``FailedPrecondition`` if it saved none."""
        from stigmer.sdk._workspace import execution_files

        return await execution_files(self.backend, await self.get_execution(execution_id))

    async def export_session(self, session: str, directory: str | Path) -> tuple[str, ...]:
        """Write the latest workspace of ``session`` (its id ``ses_...`` or name) into ``directory``;
        the paths written."""
        from stigmer.proto.v1 import backend_service_pb2 as svc
        from stigmer.proto.v1 import meta_pb2
        from stigmer.sdk._workspace import export_session

        session_id = session
        if not session.startswith("ses_"):
            ref = meta_pb2.ResourceRef(kind="Session", name=session)
            session_id = (await self.backend.get(svc.GetRequest(ref=ref))).session.metadata.id
        return tuple(await export_session(self.backend, session_id, Path(directory)))

    async def get_execution(self, execution_id: str) -> execution_pb2.Execution:
        """The current ``stigmer.v1.Execution`` snapshot of an execution; ``NotFound`` if there
        is none with that id (``execution`` gives a handle instead)."""
        from stigmer.proto.v1 import backend_service_pb2 as svc

        return await self.backend.get_execution(svc.GetExecutionRequest(id=execution_id))

    async def list_executions(
        self,
        *,
        kind: str = "",
        target: str = "",
        phase: str | int | Sequence[str | int] = "",
        session: str = "",
        limit: int = 50,
        page_token: str = "",
        labels: Mapping[str, str] | str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> ExecutionPage:
        """One page of executions, newest first, at most ``limit`` of them.

        ``kind`` is ``"agent"`` / ``"workflow"`` (or ``"AgentExecution"`` ...; empty: both),
        ``target`` a name or ``kind/name`` (``"workflow/greet"``), ``phase`` a phase name
        (``"running"``, ``"WAITING_APPROVAL"``) or number, or several (any of them),
        ``session`` a session id, ``labels`` a mapping or selector (``"team=support,!beta"``),
        ``since`` / ``until`` the creation window (``since`` inclusive, ``until`` exclusive;
        aware datetimes, naive ones are UTC). Pass the page's ``next_page_token`` as
        ``page_token`` for the next one.
        """
        from stigmer.core import EXECUTION
        from stigmer.proto.v1 import backend_service_pb2 as svc
        from stigmer.proto.v1 import meta_pb2

        request = svc.ListExecutionsRequest(
            page_size=limit, page_token=page_token, session_id=session, label_selector=label_selector(labels)
        )
        if isinstance(phase, str | int):
            request.phase = _phase_number(phase)  # type: ignore[assignment]
        else:
            request.phases.extend(_phase_number(p) for p in phase if p != "")  # type: ignore[misc]
        for field_, when in (("created_after", since), ("created_before", until)):
            if when is not None:
                stamp = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
                getattr(request, field_).FromDatetime(stamp)
        if kind:
            resolved = resolve_kind(kind, executions=True)
            if resolved in RUNNABLE_KINDS:
                resolved += "Execution"
            elif resolved != EXECUTION and not kind_info(resolved).is_execution:
                raise InvalidArgument(f"kind takes agent or workflow, not {kind!r}", ["kind"])
            request.kind = "" if resolved == EXECUTION else resolved
        if target:
            target_kind, _, target_name = target.rpartition("/")
            if target_kind:
                target_kind = resolve_kind(target_kind)
                if target_kind not in RUNNABLE_KINDS:
                    raise InvalidArgument("target takes NAME, agent/NAME or workflow/NAME", ["target"])
            request.target.CopyFrom(meta_pb2.ResourceRef(kind=target_kind, name=target_name))
        response = await self.backend.list_executions(request)
        return ExecutionPage(tuple(response.executions)[:limit], response.next_page_token)

    async def watch(
        self, execution_id: str, after_sequence: int = 0
    ) -> AsyncGenerator[execution_pb2.ExecutionEvent, None]:
        """The events of an execution after ``after_sequence``: those stored, then live ones
        until the backend ends the stream (the execution ended). Only watches: nothing runs here
        (``execution(id)`` gives a handle that can)."""
        from stigmer.proto.v1 import backend_service_pb2 as svc

        stream = self.backend.watch_execution(
            svc.WatchExecutionRequest(execution_id=execution_id, after_sequence=after_sequence)
        )
        try:
            async for event in stream:
                yield event
        finally:
            await _aclose(stream)

    async def cancel(self, execution_id: str, reason: str = "") -> execution_pb2.Execution:
        """Ask an execution to stop (it stops at the next task boundary); returns the snapshot.
        A handle's ``cancel`` also stops a run this process executes."""
        from stigmer.proto.v1 import backend_service_pb2 as svc

        return await self.backend.cancel_execution(svc.CancelExecutionRequest(id=execution_id, reason=reason))

    async def publish_event(
        self,
        type: str,
        source: str,
        data: Any = None,
        *,
        subject: str = "",
        id: str = "",
        time: datetime | None = None,
    ) -> Published:
        """Publish a CloudEvent (``type`` such as ``com.acme.order.paid``, ``source`` such as
        ``https://shop.example``, ``data`` JSON-compatible): every waiting run whose workflow
        ``listen``s for it hears it, and every workflow whose ``schedule.on`` matches it starts a
        run (in a local context, executed here: ``await handle.wait()``). ``id`` defaults to a
        new UUID."""
        from stigmer.sdk._events import publish

        return await publish(self, type, source, data, subject=subject, id=id, time=time)

    async def send_event(
        self, execution_id: str, type: str, data: Any = None, *, text: str = "", subject: str = ""
    ) -> execution_pb2.Execution:
        """Send an event (``type`` such as ``com.acme.order.paid``, ``data`` plain JSON-compatible
        data or a ``google.protobuf.Value``) to an execution, for a workflow that ``listen``s for
        it; returns the snapshot (``status.last_sequence`` is the event's sequence)."""
        import uuid

        from google.protobuf import json_format, struct_pb2
        from stigmer.proto.v1 import backend_service_pb2 as svc
        from stigmer.proto.v1 import execution_pb2

        event = execution_pb2.ExecutionEvent(
            execution_id=execution_id,
            type=type,
            text=text,
            subject=subject,
            source="stigmer",  # from outside the run: its `listen` hears it
            event_id=str(uuid.uuid4()),
        )
        if isinstance(data, struct_pb2.Value):
            event.data.CopyFrom(data)
        elif data is not None:
            value = struct_pb2.Value()
            try:
                json_format.ParseDict(data, value)
            except (json_format.ParseError, TypeError, ValueError) as exc:
                raise InvalidArgument(f"data is not JSON-compatible: {exc}", ["data"]) from None
            event.data.CopyFrom(value)
        return await self.backend.update_execution_status(
            svc.UpdateExecutionStatusRequest(execution_id=execution_id, events=[event])
        )


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _phase_number(phase: str | int) -> int:
    """``"running"`` / ``"PHASE_RUNNING"`` / a number -> the ``Phase`` number (0: any)."""
    from stigmer.core import PHASE_NAMES

    if isinstance(phase, int):
        if phase not in PHASE_NAMES:
            raise InvalidArgument(f"unknown phase {phase}", ["phase"])
        return phase
    if not phase:
        return 0
    value = phase.upper().removeprefix("PHASE_")
    numbers = {name: number for number, name in sorted(PHASE_NAMES.items()) if number}
    if value not in numbers:
        raise InvalidArgument(f"unknown phase '{phase}' (phases: {', '.join(numbers)})", ["phase"])
    return numbers[value]


def _grantee(to: str, role: str) -> Any:
    from stigmer.core import InvalidArgument
    from stigmer.proto.v1 import secret_pb2

    if bool(to) == bool(role):
        raise InvalidArgument("give either to= (a token name) or role= (user, runner or admin)", ["grant"])
    return secret_pb2.SecretGrant(token_name=to, role=role)
