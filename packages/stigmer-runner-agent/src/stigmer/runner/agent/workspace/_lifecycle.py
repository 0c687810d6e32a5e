"""A session's workspace over a run: where it lives, what it starts with, how it is saved.

The folder of an execution is ``$STIGMER_HOME/workspaces/<execution id>`` on the machine that runs
it. It is opened (:meth:`RunWorkspace.open`) as follows:

- it is there and holds what the execution last saved (``status.workspace``; a marker file next to
  it names the artifact it matches) or the execution never saved one: it is used as it is (a Lite
  run resumed after an approval or a crash, a worker's next tool call) — unless a call that may
  change files was under way there and never saved (a worker killed during a shell command): then
  the last save is restored, and that call runs again on the files it started from;
- the execution saved one this folder does not hold (another worker changed it since): that
  artifact is unpacked into a fresh folder;
- a new turn: the files the session's previous turn saved, else the agent's ``workspace.path``
  artifact, else a clone of ``workspace.git``, else nothing; then the run's attachments go to
  ``attachments/``.

:meth:`RunWorkspace.save` packs the folder (links that leave it are left out) as a content-addressed
artifact and returns the ``WorkspaceState`` to record on the execution: at the end of each turn
and at a pause for approval (and, on the full stack, after each call that may change files), so
the next turn of the session, on any worker, after a restart, sees the same files.

A git clone allows the ``http``, ``https``, ``ssh`` and ``git`` transports, plus local paths and
``file://`` only with the execution's ``run`` capability (they read the runner's own disk); never
``ext::`` (which runs a command).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import Mapping
from pathlib import Path

from stigmer.core import (
    TAR_MEDIA_TYPE,
    Backend,
    CapabilityDenied,
    FailedPrecondition,
    is_terminal,
    pack_tree,
    private_dir,
    unpack_tree,
)
from stigmer.proto.v1 import agent_pb2, execution_pb2
from stigmer.proto.v1 import backend_service_pb2 as svc

from ._paths import Workspace

__all__ = ["ATTACHMENTS", "RunWorkspace", "needs_workspace", "session_workspace", "workspaces_dir"]

ATTACHMENTS = "attachments"
GIT_TIMEOUT = 300.0


def workspaces_dir(environ: Mapping[str, str]) -> Path:
    """Where executions' workspaces live on this machine: ``$STIGMER_HOME/workspaces``."""
    home = Path(environ.get("STIGMER_HOME") or Path.home() / ".stigmer").expanduser()
    return home / "workspaces"


def needs_workspace(spec: agent_pb2.AgentSpec, execution: execution_pb2.Execution) -> bool:
    """Whether a run of ``spec`` has a workspace (built-in tools, a seed, or attachments)."""
    return bool(
        spec.tools
        or spec.HasField("workspace")
        or execution.spec.attachments
        or any(sub.tools for sub in spec.sub_agents)
    )


async def session_workspace(backend: Backend, session_id: str, current_id: str) -> str:
    """The workspace artifact the session's latest finished turn saved ("" if none)."""
    token = ""
    while True:
        page = await backend.list_executions(
            svc.ListExecutionsRequest(kind="AgentExecution", session_id=session_id, page_token=token)
        )
        for execution in page.executions:  # newest first
            if execution.metadata.id == current_id or not is_terminal(execution.status.phase):
                continue
            if execution.status.workspace.artifact:
                return execution.status.workspace.artifact
        if not page.next_page_token:
            return ""
        token = page.next_page_token


class RunWorkspace:
    """The workspace of one agent execution on this machine."""

    def __init__(
        self,
        backend: Backend,
        execution: execution_pb2.Execution,
        spec: agent_pb2.AgentSpec,
        *,
        environ: Mapping[str, str],
        allow_run: bool,
    ) -> None:
        self.backend = backend
        self.execution = execution
        self.spec = spec
        self.allow_run = allow_run
        self.id = execution.metadata.id
        self.folder = private_dir(workspaces_dir(environ)) / self.id
        self.marker = self.folder.with_name(f"{self.id}.saved")
        # Present while a call that may change files runs unsaved (full stack): a worker that
        # restarts finds it and restores the last save instead of a half-changed folder.
        self.dirty = self.folder.with_name(f"{self.id}.changing")
        source = spec.workspace
        self.workspace = Workspace(self.folder, max_files=source.max_files, max_bytes=source.max_bytes)
        self.seeded_from = ""  # what a new turn started from: session, path, git or ""

    # -- opening ---------------------------------------------------------------------------------
    async def open(self, *, new_turn: bool) -> Workspace:
        """The folder, ready: reused, restored from the execution's last save, or seeded."""
        saved = self.execution.status.workspace.artifact
        fresh = not self.dirty.exists()
        if not new_turn and fresh and self.folder.is_dir() and (not saved or self._marker() == saved):
            return self.workspace
        self.dirty.unlink(missing_ok=True)
        self._wipe()
        if saved and not new_turn:
            await self._unpack(saved, "the workspace saved by this execution")
            self.marker.write_text(saved)
            return self.workspace
        await self._seed()
        await self._attach()
        self.workspace.check_bounds()
        return self.workspace

    async def _seed(self) -> None:
        session = self.execution.spec.session_id
        previous = await session_workspace(self.backend, session, self.id) if session else ""
        source = self.spec.workspace
        if previous:
            self.seeded_from = "session"
            await self._unpack(previous, "the session's workspace")
        elif source.artifact:
            self.seeded_from = "path"
            await self._unpack(source.artifact, f"the agent's workspace ({source.path or source.artifact})")
        elif source.git.url:
            self.seeded_from = "git"
            await self._clone(source.git)

    async def _unpack(self, key: str, what: str) -> None:
        blob = await self.backend.get_artifact(svc.GetArtifactRequest(key=key))
        unpack_tree(
            blob.content,
            self.folder,
            what=what,
            max_files=self.workspace.max_files,
            max_bytes=self.workspace.max_bytes,
        )

    async def _clone(self, git: agent_pb2.GitSource) -> None:
        url = git.url.strip()
        local = "://" not in url or url.startswith("file://")
        if local and not self.allow_run:
            raise CapabilityDenied(f"cloning the local repository {url} into the workspace")
        if shutil.which("git") is None:
            raise FailedPrecondition("the agent's workspace is a git repository, but git is not installed")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.folder),
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ALLOW_PROTOCOL": "http:https:ssh:git" + (":file" if self.allow_run else ""),
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        await _git(["clone", "--quiet", "--no-checkout", "--", url, str(self.folder)], env, url)
        ref = git.ref.strip() or "HEAD"
        await _git(["-C", str(self.folder), "checkout", "--quiet", ref, "--"], env, url, ref=ref)

    async def _attach(self) -> None:
        attachments = list(self.execution.spec.attachments)
        if not attachments:
            return
        folder = self.folder / ATTACHMENTS
        folder.mkdir(exist_ok=True)
        for attachment in attachments:
            name = Path(attachment.name).name or attachment.artifact.replace(":", "-")
            target = self.workspace.path(f"{ATTACHMENTS}/{name}")
            blob = await self.backend.get_artifact(svc.GetArtifactRequest(key=attachment.artifact))
            self.workspace.check_write(target, len(blob.content))
            target.write_bytes(blob.content)

    def changing(self) -> None:
        """A call that may change files starts; :meth:`save` ends it."""
        self.dirty.write_text(self.id)

    # -- saving ----------------------------------------------------------------------------------
    async def save(self) -> execution_pb2.WorkspaceState:
        """Pack the folder as an artifact; the state to record on the execution."""
        packed = await asyncio.to_thread(
            pack_tree,
            self.folder,
            what="the workspace",
            links="skip",
            max_files=self.workspace.max_files,
            max_bytes=self.workspace.max_bytes,
        )
        meta = await self.backend.put_artifact(
            svc.PutArtifactRequest(content=packed.content, media_type=TAR_MEDIA_TYPE)
        )
        key = meta.key or packed.key
        self.marker.write_text(key)
        self.dirty.unlink(missing_ok=True)
        self.execution.status.workspace.artifact = key
        return execution_pb2.WorkspaceState(artifact=key, files=len(packed.files), bytes=packed.size)

    def discard(self) -> None:
        """Remove the folder (the execution ended; its files are in the saved artifact)."""
        self._wipe(recreate=False)
        with contextlib.suppress(FileNotFoundError):
            self.marker.unlink()
        self.dirty.unlink(missing_ok=True)

    def _marker(self) -> str:
        try:
            return self.marker.read_text().strip()
        except OSError:
            return ""

    def _wipe(self, *, recreate: bool = True) -> None:
        if self.folder.is_symlink() or self.folder.is_file():
            self.folder.unlink()
        elif self.folder.exists():
            shutil.rmtree(self.folder)
        if recreate:
            self.folder.mkdir(mode=0o700, parents=True)


async def _git(args: list[str], env: dict[str, str], url: str, *, ref: str = "") -> None:
    process = await asyncio.create_subprocess_exec(
        "git",
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(process.communicate(), timeout=GIT_TIMEOUT)
    except TimeoutError:
        process.kill()
        raise FailedPrecondition(f"cloning {url} took more than {GIT_TIMEOUT:g} s") from None
    if process.returncode != 0:
        lines = [line for line in err.decode(errors="replace").splitlines() if line.strip()]
        last = lines[-1].strip() if lines else f"git exited with {process.returncode}"
        what = f"checking out {ref!r} of {url}" if ref else f"cloning {url}"
        raise FailedPrecondition(f"{what} into the agent's workspace failed: {last}")
