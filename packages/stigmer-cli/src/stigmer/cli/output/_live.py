"""A run on the terminal: its live events, approval prompts, and the report at its end.

Following itself (the in-process runner next to a watch of its events, answering approvals) is
``stigmer.sdk.AsyncExecution.follow``; this module renders what it passes on and asks the person.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from stigmer.cli._errors import CliError
from stigmer.cli.output._format import Output, echo, echo_err, emit_json, emit_yaml, is_tty
from stigmer.cli.output._render import Renderer, short
from stigmer.cli.output._view import execution_to_dict

if TYPE_CHECKING:
    from stigmer.proto.v1 import execution_pb2
    from stigmer.sdk import AsyncExecution
    from stigmer.sdk._execution import OnApproval

__all__ = [
    "ApprovalPrompt",
    "approval_hint",
    "approval_prompt",
    "follow",
    "interactive_terminal",
    "interrupted_hint",
    "report",
]


def approval_hint(execution_id: str) -> str:
    return (
        f"execution {execution_id} waits for approval: "
        f"`stigmer execution approve {execution_id}` or `stigmer execution reject {execution_id}`"
    )


def interrupted_hint(execution_id: str, local: bool) -> str:
    """What Ctrl-C did: detached (the run goes on) and how to re-attach."""
    where = " in a background process" if local else ""
    return (
        f"detached; execution {execution_id} goes on{where}: "
        f"re-attach with `stigmer execution logs -f {execution_id}` "
        f"(stop it with `stigmer execution cancel {execution_id}`)"
    )


def interactive_terminal() -> bool:
    """True when approvals can be asked inline (stdin and stderr are terminals)."""
    return is_tty(sys.stdin) and is_tty(sys.stderr)


class ApprovalPrompt:
    """The answer to a pending approval: asked inline on a terminal (``interactive``); otherwise
    left unanswered, after saying how to answer it (when ``explain``).

    The question is read without blocking the event loop, so the watch of the execution goes on
    meanwhile: a decision made elsewhere ends the asking (``follow`` cancels it and :meth:`event`
    says so), and Ctrl-C interrupts it at once.
    """

    def __init__(
        self,
        execution_id: str,
        *,
        interactive: bool,
        explain: bool = True,
        prompt: Callable[[str], str] | None = None,
    ) -> None:
        self.execution_id = execution_id
        self.interactive = interactive
        self.explain = explain
        self.prompt = prompt
        self.asking = False

    async def __call__(self, ex: execution_pb2.Execution) -> tuple[bool, str] | None:
        if not self.interactive:
            if self.explain:
                echo_err(approval_hint(self.execution_id))
            return None
        from google.protobuf import json_format

        pending = ex.status.pending_approval
        what = pending.tool or "the pending action"
        if pending.server:
            what += f" (MCP server {pending.server})"
        args = json_format.MessageToDict(pending.arguments) if pending.HasField("arguments") else {}
        echo_err(f"approval needed: {what}" + (f" with {short(args, 300)}" if args else ""))
        self.asking = True
        try:
            answer = (await self._ask("approve? [y/N] ")).strip().lower()
            approved = answer in ("y", "yes")
            reason = "" if approved else (await self._ask("reason (optional): ")).strip()
        except EOFError:
            raise CliError(f"no answer (end of input); {approval_hint(self.execution_id)}") from None
        finally:
            self.asking = False
        return approved, reason

    async def _ask(self, question: str) -> str:
        if self.prompt is not None:
            return self.prompt(question)
        return await _read_line(question)

    def event(self, ev: execution_pb2.ExecutionEvent) -> None:
        """Say so when an approval is decided elsewhere while the question is asked here."""
        if not self.asking or ev.type != "approval.resolved":
            return
        from stigmer.cli.output._view import value_to_python

        data = value_to_python(ev, "data")
        approved = data.get("approved") if isinstance(data, dict) else None
        verdict = "approved" if approved else "rejected"
        echo_err(f"\n{verdict} elsewhere" + (f": {ev.text}" if ev.text else "") + "; following on")


def approval_prompt(
    execution_id: str,
    *,
    interactive: bool,
    explain: bool = True,
    prompt: Callable[[str], str] | None = None,
) -> ApprovalPrompt:
    """The answer to a pending approval (see :class:`ApprovalPrompt`)."""
    return ApprovalPrompt(execution_id, interactive=interactive, explain=explain, prompt=prompt)


async def _read_line(question: str) -> str:
    """Ask on stderr and read one line of stdin on the event loop (not blocking it)."""
    import asyncio
    import os

    sys.stderr.write(question)
    sys.stderr.flush()
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    line: asyncio.Future[str] = loop.create_future()
    got = bytearray()

    def readable() -> None:
        if line.done():
            return
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            line.set_exception(exc)
            return
        if not chunk:
            line.set_exception(EOFError())
            return
        got.extend(chunk)
        if b"\n" in got:
            line.set_result(got.decode(errors="replace"))

    try:
        loop.add_reader(fd, readable)
    except (NotImplementedError, ValueError, OSError):  # no reader for this stdin: read in a thread
        text: str = await asyncio.to_thread(sys.stdin.readline)
        if not text:
            raise EOFError from None
        return text
    try:
        return await line
    finally:
        loop.remove_reader(fd)


async def follow(
    handle: AsyncExecution,
    output: Output,
    *,
    start: bool = False,
    stop_on_approval: bool = True,
    after_sequence: int | None = None,
    ask: bool = True,
    report_follows: bool = True,
    timestamps: bool = False,
    observe: Callable[[execution_pb2.ExecutionEvent], None] | None = None,
    approve_all: bool = False,
) -> execution_pb2.Execution:
    """Follow an execution until it ends or waits (running it here when the handle does), showing
    its events live in table output and asking approvals on a terminal (when ``ask``).
    ``report_follows``: the caller prints :func:`report` after it (the error is said there);
    ``observe`` sees every event too; ``approve_all`` approves every request without asking
    (``--auto-approve``)."""
    renderer = (
        Renderer(report_follows=report_follows, live_status=is_tty(sys.stdout), timestamps=timestamps)
        if output is Output.table
        else None
    )
    on_approval = approval_prompt(
        handle.id,
        interactive=ask and interactive_terminal(),
        explain=renderer is not None or stop_on_approval,
    )
    shown_calls: set[str] = set()

    def on_event(ev: execution_pb2.ExecutionEvent) -> None:
        if observe is not None:
            observe(ev)
        on_approval.event(ev)
        if renderer is None:
            return
        # The same lines whoever runs it: the call, its approval request, WAITING_APPROVAL, the
        # prompt. (A runner that reports a call only when it runs, after the approval, is shown
        # the call with the request; the report that follows is not shown twice.)
        if ev.type == "tool.call":
            if ev.subject in shown_calls:
                return
            shown_calls.add(ev.subject)
        elif ev.type == "approval.requested" and ev.subject and ev.subject not in shown_calls:
            shown_calls.add(ev.subject)
            call = type(ev)()
            call.CopyFrom(ev)
            call.type = "tool.call"
            renderer.event(call)
        renderer.event(ev)

    async def approve(ex: execution_pb2.Execution) -> tuple[bool, str] | None:
        if output is Output.table:
            echo_err("approved (--auto-approve)")
        return True, "approved with --auto-approve"

    try:
        return await handle.follow(
            on_event,
            approve if approve_all else _holding_status(renderer, on_approval),
            start=start,
            stop_on_approval=stop_on_approval,
            after_sequence=after_sequence,
        )
    finally:
        if renderer is not None:
            renderer.close()


def _holding_status(renderer: Renderer | None, on_approval: OnApproval) -> OnApproval:
    """The live status line stops (and is wiped) before a person is asked anything."""
    if renderer is None or not renderer.live_status:
        return on_approval

    async def ask(ex: execution_pb2.Execution) -> tuple[bool, str] | None:
        renderer.hold()
        return await on_approval(ex)

    return ask


def report(ex: execution_pb2.Execution, output: Output, *, streamed: bool = True) -> int:
    """Print the end of a run (summary or one JSON/YAML object); returns the exit code."""
    from stigmer.core import phase_name

    phase = phase_name(ex.status.phase)
    data = execution_to_dict(ex)
    # exit 0 when it succeeded or has not ended (waiting for a person, or for its turn)
    code = 0 if phase in ("SUCCEEDED", "WAITING_APPROVAL", "PENDING", "RUNNING") else 1
    if output is Output.json:
        emit_json(data)
        return code
    if output is Output.yaml:
        emit_yaml([data])
        return code
    ex_id = ex.metadata.id
    if phase == "SUCCEEDED":
        out = data["output"]
        if out is not None:
            if isinstance(out, str):
                if not streamed:
                    echo(out)
            else:
                import json

                echo(json.dumps(out, indent=2, ensure_ascii=False))
        echo_err(f"{ex.kind} {ex_id} succeeded{_duration(ex)}")
    elif phase == "FAILED":
        err = data["error"] or {}
        detail = ": ".join(x for x in (err.get("title"), err.get("detail")) if x) or "no error details"
        where = f" at {err['instance']}" if err.get("instance") else ""
        echo_err(f"error: {ex.kind} {ex_id} failed{where}: {detail}")
    elif phase == "CANCELLED":
        echo_err(f"{ex.kind} {ex_id} was cancelled")
    elif phase == "WAITING_APPROVAL":
        pass  # the follower already said how to answer
    else:
        echo_err(f"{ex.kind} {ex_id} is {phase}: follow it with `stigmer execution logs -f {ex_id}`")
    return code


def _duration(ex: execution_pb2.Execution) -> str:
    start, end = ex.status.started_at, ex.status.finished_at
    if not start.seconds or not end.seconds:
        return ""
    seconds = (end.seconds - start.seconds) + (end.nanos - start.nanos) / 1e9
    return f" in {seconds:.2f}s"
