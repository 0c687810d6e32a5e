"""Who runs the executions a server creates.

Without Temporal configured, the server runs each one in a child process of its own
(:class:`ChildDispatcher`): ``python -m stigmer.runner.<workflow|agent> --execution ID``, with a
scrubbed environment, talking back to the server over gRPC with a token scoped to that execution.
Nothing a user wrote (jq, a shell command, an MCP server) runs in the server's process or sees its
environment, and no run can stall the server's event loop. The Temporal dispatcher replaces it
behind the same :class:`ExecutionDispatcher` interface; :class:`NoDispatcher` leaves executions
PENDING for external runner workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol, cast

from stigmer.core import LIMIT_SETTINGS, TERMINAL_PHASES, Backend, InvalidArgument, Limits, StigmerError
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2
from stigmer.server._process import find_script

if TYPE_CHECKING:
    from stigmer.server._auth import ExecutionTokens

__all__ = [
    "CHILD_ENVIRONMENT",
    "DEFAULT_LEASE_SECONDS",
    "LEASE_ENV",
    "ChildDispatcher",
    "ExecutionDispatcher",
    "NoDispatcher",
    "child_environment",
    "runner_command",
    "runner_name",
    "server_lease_seconds",
]

logger = logging.getLogger("stigmer.server")

#: How often the server checks that an execution a child runs has not ended without it (cancelled),
#: and how long such a child gets to notice by itself before it is stopped.
END_POLL_SECONDS = 1.0
END_GRACE_SECONDS = 3.0

#: A server's lease on the executions it runs: renewed every third of it; another server on the same
#: database takes over an execution whose lease was not renewed for this long (seconds).
DEFAULT_LEASE_SECONDS = 30.0
LEASE_ENV = "STIGMER_SERVER_LEASE_SECONDS"


def server_lease_seconds(environ: Mapping[str, str] | None = None) -> float:
    """The lease time to live of ``$STIGMER_SERVER_LEASE_SECONDS`` (default 30 s, at least 1 s)."""
    text = (os.environ if environ is None else environ).get(LEASE_ENV, "").strip()
    if not text:
        return DEFAULT_LEASE_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 1.0 <= value <= 86_400.0:
        raise InvalidArgument(
            f"{LEASE_ENV}={text!r} is not valid: give the lease time in seconds, from 1 to 86400 "
            f"(default {DEFAULT_LEASE_SECONDS:g})",
            [LEASE_ENV],
        )
    return value


class _Leases(Protocol):
    """What a store offers a server that shares it with other servers (``LocalBackend``)."""

    server_id: str

    async def hold_execution(self, execution_id: str, *, ttl: float, force: bool = False) -> bool: ...

    async def renew_executions(self, execution_ids: Sequence[str]) -> set[str]: ...

    async def take_over_executions(
        self, *, ttl: float, own: bool = False
    ) -> Sequence[tuple[execution_pb2.Execution, str]]: ...


def runner_name(kind: str) -> str:
    """The ``stigmer.runners`` plugin that runs executions of ``kind``."""
    return "workflow" if kind == "WorkflowExecution" else "agent"


class ExecutionDispatcher(Protocol):
    """Hands executions to whatever runs them."""

    def start(self, execution: execution_pb2.Execution) -> None:
        """Run (or resume) ``execution``; must return at once."""
        ...

    async def shutdown(self, grace: float) -> None:
        """Let running work finish for up to ``grace`` seconds, then stop it."""
        ...

    # Optional: ``async def recover(self) -> list[str]`` — called once at server start to pick up
    # executions a dead process left running (see ChildDispatcher.recover); and
    # ``def bind(self, endpoint: str, tokens: ExecutionTokens) -> None`` — called once the server
    # is bound, with the address its runner processes reach it at and the registry of the tokens
    # it issues them (see ChildDispatcher.bind).


class NoDispatcher:
    """Runs nothing: executions stay PENDING until an external runner picks them up."""

    def start(self, execution: execution_pb2.Execution) -> None:
        return None

    async def shutdown(self, grace: float) -> None:
        return None

    async def recover(self) -> list[str]:
        return []


# Runner identities look like `host:pid:workflow` or `agent-runner@host:pid`.
_IDENTITY = re.compile(r"(?:[^@:]*@)?(?P<host>[^:@\s]+):(?P<pid>\d+)(?::|$)")


def orphaned(runner: str, hostname: str | None = None) -> bool:
    """True when ``runner`` names a process on this host that no longer exists."""
    match = _IDENTITY.match(runner)
    if match is None or match["host"] != (hostname or socket.gethostname()):
        return False
    pid = int(match["pid"])
    if pid == os.getpid() or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, owned by someone else
    return _zombie(pid)


def _zombie(pid: int) -> bool:
    """True for a process that has exited but was not reaped yet (a runner child whose server died
    waits for init to reap it; until then it still answers ``kill(pid, 0)``). Linux only."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] == b"Z"


class ChildDispatcher:
    """Runs each execution in a child process: ``python -m stigmer.runner.<name> --execution ID``.

    The child gets only ``PATH``, ``PYTHONPATH``, locale, ``TZ``, TLS-roots and proxy variables of the server's
    environment, and a private temporary ``HOME`` (also its working directory and ``TMPDIR``),
    removed when it exits. Its credential, a token scoped to the execution
    (:class:`ExecutionTokens`), is written to its stdin, never to its arguments or environment,
    and revoked when it exits; the server keeps that pipe open, so a child whose server died exits
    at once (``--watch-stdin``). A child that dies without finishing its execution fails it with
    the reason. ``command`` maps a runner name to the command that starts it (None: not
    installed). :meth:`bind` (called by ``serve``) gives the server's address and token registry.

    With ``spares`` (the default), once a runner has run an execution one spare child of it is kept
    started ahead (``--execution -``: it loads the runner, then waits on stdin for an execution id
    and its token), so the next execution skips the process start and the imports.

    Several servers on one database: when the backend has a ``server_id`` (``LocalBackend`` of
    ``stigmer server``), this server holds a lease on each execution it runs and renews it every
    third of ``lease_seconds`` (default ``$STIGMER_SERVER_LEASE_SECONDS``, else 30 s); at the same
    pace it takes over the RUNNING and PENDING executions of a server whose leases have not been
    renewed for ``lease_seconds`` (it is gone) and runs them: the runner resumes each from its
    checkpoint. A run whose lease this server lost (it could not renew it in time, and another
    server took it over) is stopped here.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        command: Callable[[str], list[str] | None] | None = None,
        spares: bool = True,
        lease_seconds: float | None = None,
    ) -> None:
        self._backend = backend
        has_leases = bool(getattr(backend, "server_id", "")) and hasattr(backend, "take_over_executions")
        self._leases: _Leases | None = cast("_Leases", backend) if has_leases else None
        self._lease_seconds = lease_seconds if lease_seconds is not None else server_lease_seconds()
        self._heartbeat: asyncio.Task[None] | None = None
        self._taken_from_us: set[str] = set()  # runs another server took over while this one ran them
        self._command = command if command is not None else runner_command
        self._keep_spares = spares
        self._limits = Limits.load()  # the admin's settings (environment, config.yaml), for every run
        self._spares: dict[str, asyncio.Task[_Child]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._children: dict[str, asyncio.subprocess.Process] = {}
        self._endpoint = ""
        self._tokens: ExecutionTokens | None = None
        self._draining = False  # shutting down: no more spares
        self._stopping = False  # the grace period is over: no more runs, children are stopped

    def bind(self, endpoint: str, tokens: ExecutionTokens) -> None:
        """The ``grpc://`` address children reach the server at, and where their tokens are issued."""
        self._endpoint = endpoint
        self._tokens = tokens

    @property
    def running(self) -> int:
        """How many executions are being run right now."""
        return sum(1 for task in self._tasks.values() if not task.done())

    @property
    def endpoint(self) -> str:
        """Where the children reach the server (set by :meth:`bind`)."""
        return self._endpoint

    @property
    def tokens(self) -> ExecutionTokens | None:
        """The registry the children's tokens are issued in (set by :meth:`bind`)."""
        return self._tokens

    def children(self) -> dict[str, int]:
        """The process id of the child running each execution right now."""
        return {execution_id: proc.pid for execution_id, proc in self._children.items()}

    def spares(self) -> dict[str, int]:
        """The process id of the spare child started ahead for each runner, once it is started."""
        found: dict[str, int] = {}
        for name, task in self._spares.items():
            if task.done() and not task.cancelled() and task.exception() is None:
                found[name] = task.result().proc.pid
        return found

    def start(self, execution: execution_pb2.Execution) -> None:
        if self._stopping:
            return
        execution_id = execution.metadata.id
        previous = self._tasks.get(execution_id)
        task = asyncio.create_task(
            self._run(execution.kind, execution_id, previous), name=f"stigmer-run-{execution_id}"
        )
        self._tasks[execution_id] = task
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        for key, value in list(self._tasks.items()):
            if value is task:
                del self._tasks[key]

    async def _run(self, kind: str, execution_id: str, previous: asyncio.Task[None] | None) -> None:
        if previous is not None and not previous.done():
            # Never run one execution twice at once: a resume waits for the earlier run to return.
            with contextlib.suppress(BaseException):
                await asyncio.shield(previous)
        if self._stopping:
            return
        if self._leases is not None:
            try:  # this server runs it now (it created it, resumes it, or took it over)
                await self._leases.hold_execution(execution_id, ttl=self._lease_seconds, force=True)
            except StigmerError as err:
                logger.warning("could not record that this server runs %s: %s", execution_id, err)
        name = runner_name(kind)
        argv = self._command(name)
        if argv is None:
            logger.warning("cannot run %s: the %s runner is not installed", execution_id, name)
            await self._fail(
                execution_id,
                title="runner not installed",
                detail=f"no '{name}' runner is installed on the server; install it with: "
                f"pip install stigmer-runner-{name}",
            )
            return
        if self._tokens is None:
            raise RuntimeError("ChildDispatcher.bind() was not called: serve() binds it")
        token = self._tokens.issue(execution_id)
        code: int | None = None
        child = await self._take_spare(name)
        try:
            if child is None:
                child = await self._spawn(argv, execution_id)
                lines = [token]
            else:
                lines = [execution_id, token]
            if self._keep_spares:
                self._start_spare(name, argv)
            self._children[execution_id] = child.proc
            logger.info(
                "running execution %s in child process %d%s",
                execution_id,
                child.proc.pid,
                " (started ahead)" if len(lines) == 2 else "",
            )
            assert child.proc.stdin is not None
            child.proc.stdin.write("".join(f"{line}\n" for line in lines).encode("ascii"))
            with contextlib.suppress(ConnectionError):
                await child.proc.stdin.drain()
            # stdin stays open: its end of file tells the child that the server is gone.
            code, ended = await self._wait(child, execution_id)
        except OSError as err:
            logger.warning("cannot start the %s runner for %s: %s", name, execution_id, err)
            await self._fail(
                execution_id,
                title="runner not started",
                detail=f"the server could not start the {name} runner process ({err.strerror or err})",
            )
            return
        finally:
            self._tokens.revoke(execution_id)
            self._children.pop(execution_id, None)
            if child is not None:
                child.close()
        if execution_id in self._taken_from_us:
            self._taken_from_us.discard(execution_id)
            return  # another server runs it now: its failure here is not the execution's
        if code != 0 and not self._stopping and not ended:
            logger.warning("the %s runner of %s ended with %s", name, execution_id, _exit_reason(code))
            await self._fail(
                execution_id,
                title="runner process died",
                detail=f"the {name} runner process {_exit_reason(code)} before the execution finished; "
                "see the server log",
            )

    async def _wait(self, child: _Child, execution_id: str) -> tuple[int, bool]:
        """Wait for the child to exit; its exit code, and whether it was stopped because its
        execution had ended without it (cancelled) and it did not exit by itself."""
        exited = asyncio.ensure_future(child.proc.wait())
        while True:
            done, _ = await asyncio.wait({exited}, timeout=END_POLL_SECONDS)
            if done:
                return exited.result(), False
            try:
                current = await self._backend.get_execution(svc.GetExecutionRequest(id=execution_id))
            except StigmerError:
                continue
            if current.status.phase not in TERMINAL_PHASES:
                continue
            # Cancelled (or ended elsewhere) while the child runs, e.g. inside a long `wait`.
            done, _ = await asyncio.wait({exited}, timeout=END_GRACE_SECONDS)
            if done:
                return exited.result(), False
            logger.info("execution %s has ended; stopping its child process %d", execution_id, child.proc.pid)
            with contextlib.suppress(ProcessLookupError):
                child.proc.terminate()
            done, _ = await asyncio.wait({exited}, timeout=5.0)
            if not done:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.kill()
            return await exited, True

    async def _spawn(self, argv: list[str], execution: str) -> _Child:
        """Start a runner child for ``execution`` (an id, or ``-``: a spare that reads it later)."""
        home = tempfile.mkdtemp(prefix="stigmer-run-")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                "--execution",
                execution,
                "--endpoint",
                self._endpoint,
                "--token-file",
                "-",
                "--watch-stdin",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.DEVNULL,
                env=child_environment(home, limits=self._limits),
                cwd=home,
                start_new_session=True,  # a Ctrl-C at the server's terminal reaches the server only
            )
        except BaseException:
            shutil.rmtree(home, ignore_errors=True)
            raise
        return _Child(proc, home)

    def _start_spare(self, name: str, argv: list[str]) -> None:
        if name not in self._spares and not self._draining:
            self._spares[name] = asyncio.create_task(self._spawn(argv, "-"), name=f"stigmer-spare-{name}")

    async def _take_spare(self, name: str) -> _Child | None:
        """The spare child of runner ``name`` if there is a live one (it may still be loading)."""
        task = self._spares.pop(name, None)
        if task is None:
            return None
        try:
            child = await task
        except Exception:
            logger.warning("could not start a spare %s runner", name, exc_info=True)
            return None
        if child.proc.returncode is not None:
            child.close()
            return None
        return child

    async def _fail(self, execution_id: str, *, title: str, detail: str) -> None:
        try:
            current = await self._backend.get_execution(svc.GetExecutionRequest(id=execution_id))
            if current.status.phase in TERMINAL_PHASES:
                return
            await self._backend.update_execution_status(
                svc.UpdateExecutionStatusRequest(
                    execution_id=execution_id,
                    phase=execution_pb2.PHASE_FAILED,
                    error=execution_pb2.ExecutionError(
                        type="https://stigmer.ai/errors/runner", title=title, status=500, detail=detail
                    ),
                    runner="stigmer-server",
                )
            )
        except StigmerError as err:
            logger.warning("could not mark execution %s failed: %s", execution_id, err)

    async def recover(self) -> list[str]:
        """Resume RUNNING executions whose runner was a process of this host that has died
        (a server or Lite run that was killed); the runners resume from their checkpoints.

        With leases: first the executions this server held before it restarted, and those of
        servers whose leases expired; an execution another server holds is left to it. Then the
        heartbeat starts (renewing this server's leases, taking over those of servers gone)."""
        resumed: list[str] = []
        if self._leases is not None:
            resumed += await self._take_over(own=True)
            self._heartbeat = asyncio.create_task(self._beat(), name="stigmer-server-leases")
        page_token = ""
        while True:
            page = await self._backend.list_executions(
                svc.ListExecutionsRequest(
                    phase=execution_pb2.PHASE_RUNNING, page_size=100, page_token=page_token
                )
            )
            for execution in page.executions:
                if execution.metadata.id not in self._tasks and orphaned(execution.status.runner):
                    if self._leases is not None and not await self._leases.hold_execution(
                        execution.metadata.id, ttl=self._lease_seconds
                    ):
                        continue  # another server holds it (and its runner may run elsewhere)
                    logger.info(
                        "resuming execution %s, left running by %s",
                        execution.metadata.id,
                        execution.status.runner,
                    )
                    self.start(execution)
                    resumed.append(execution.metadata.id)
            page_token = page.next_page_token
            if not page_token:
                return resumed

    async def _take_over(self, *, own: bool = False) -> list[str]:
        """Run the executions of servers whose leases expired (and, with ``own``, this server's
        own from before a restart); their ids."""
        assert self._leases is not None
        taken: list[str] = []
        for execution, holder in await self._leases.take_over_executions(ttl=self._lease_seconds, own=own):
            execution_id = execution.metadata.id
            if execution_id in self._tasks or self._draining:
                continue
            if holder == self._leases.server_id:
                logger.info("resuming execution %s, held by this server before it restarted", execution_id)
            else:
                logger.info(
                    "taking over execution %s from server %s (its lease was not renewed for %g s)",
                    execution_id,
                    holder,
                    self._lease_seconds,
                )
            self.start(execution)
            taken.append(execution_id)
        return taken

    async def _beat(self) -> None:
        """Every third of the lease: renew this server's leases, stop what it lost, take over."""
        assert self._leases is not None
        while not self._stopping:
            await asyncio.sleep(self._lease_seconds / 3)
            try:
                running = [eid for eid, task in self._tasks.items() if not task.done()]
                held = await self._leases.renew_executions(running)
                for execution_id in running:
                    if execution_id not in held:
                        self._lost(execution_id)
                if not self._draining:
                    await self._take_over()
            except StigmerError as err:
                logger.warning("could not renew this server's leases: %s", err)
            except Exception:
                logger.exception("the lease heartbeat failed; retrying")

    def _lost(self, execution_id: str) -> None:
        """Another server took over ``execution_id`` (this one did not renew its lease in time):
        stop the child running it here, so it never runs twice."""
        proc = self._children.get(execution_id)
        logger.warning(
            "execution %s was taken over by another server (this server did not renew its lease "
            "within %g s); stopping its run here",
            execution_id,
            self._lease_seconds,
        )
        if proc is not None:
            self._taken_from_us.add(execution_id)  # its exit is not the execution's failure
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()

    async def _stop_heartbeat(self) -> None:
        task, self._heartbeat = self._heartbeat, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def shutdown(self, grace: float) -> None:
        """Let the children finish for up to ``grace`` seconds (the server must still answer their
        calls: ``serve`` stops it afterwards), then terminate them: their executions stay RUNNING
        and are resumed by the next start (:meth:`recover`)."""
        self._draining = True
        await self._stop_spares()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while True:  # an execution started meanwhile (an approval, a create) is waited for too
            tasks = [task for task in self._tasks.values() if not task.done()]
            remaining = deadline - loop.time()
            if not tasks or remaining <= 0:
                break
            await asyncio.wait(tasks, timeout=remaining)
        self._stopping = True
        # The leases of what is left expire: another server (or this one, restarted) resumes it.
        await self._stop_heartbeat()
        pending = [task for task in self._tasks.values() if not task.done()]
        if not pending:
            return
        logger.warning(
            "stopping %d running execution(s) at shutdown; they resume on the next start", len(pending)
        )
        for proc in list(self._children.values()):
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        _done, still = await asyncio.wait(pending, timeout=5.0)
        for proc in list(self._children.values()):
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        if still:
            await asyncio.wait(still, timeout=5.0)

    async def _stop_spares(self) -> None:
        """End the spare children: their stdin closes before they got an execution, so they exit."""
        for name in list(self._spares):
            child = await self._take_spare(name)
            if child is None:
                continue
            child.close()
            try:
                await asyncio.wait_for(child.proc.wait(), 5.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    child.proc.kill()
                await child.proc.wait()


class _Child:
    """A runner child process and its private home folder."""

    def __init__(self, proc: asyncio.subprocess.Process, home: str) -> None:
        self.proc = proc
        self.home = home

    def close(self) -> None:
        """Close its stdin (a child still running then exits) and remove its home."""
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        shutil.rmtree(self.home, ignore_errors=True)


def runner_command(name: str) -> list[str] | None:
    """The console script that runs the ``name`` runner (``stigmer-agent-runner``,
    ``stigmer-workflow-runner``): the one next to the server's interpreter, else on ``PATH``;
    None if that runner is not installed."""
    found = find_script(f"stigmer-{name}-runner")
    return [found] if found else None


#: What a runner child keeps of the server's environment (besides ``LC_*``): nothing that opens
#: the store (``STIGMER_*``: master key, database URL, tokens) and no credentials of the server.
CHILD_ENVIRONMENT = (
    "PATH",
    "PYTHONPATH",  # where the server's interpreter finds the runner packages
    "LANG",
    "LANGUAGE",
    "TZ",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)


def child_environment(
    home: str, environ: Mapping[str, str] | None = None, limits: Limits | None = None
) -> dict[str, str]:
    """The environment of a runner child whose private home (and temp folder) is ``home``, with
    the server's ``limits`` as ``STIGMER_LIMIT_*`` (the child reads them, then drops every
    ``STIGMER_*`` variable before it runs anything)."""
    source = os.environ if environ is None else environ
    env = {key: value for key, value in source.items() if key in CHILD_ENVIRONMENT or key.startswith("LC_")}
    env.setdefault("PATH", os.defpath)
    env.update({"HOME": home, "TMPDIR": home})
    if limits is not None:
        values = limits.to_dict()
        env.update({variable: str(values[name]) for name, (variable, _key) in LIMIT_SETTINGS.items()})
    return env


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "could not be waited for"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory, or killed by someone)" if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code}"
