"""``stigmer run``, ``stigmer agent execute`` and ``stigmer workflow run``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from stigmer.cli._backend import open_session, run_async
from stigmer.cli._launch import RunRequest, Started, detach_on_interrupt, report, start
from stigmer.cli._output import Output, OutputOption, echo
from stigmer.cli._params import parse_env, parse_input, parse_secret_file, read_secret_value

__all__ = ["agent_app", "run_app", "workflow_app"]

run_app = typer.Typer(add_completion=False)
agent_app = typer.Typer(add_completion=False, help="Execute agents.", no_args_is_help=True)
workflow_app = typer.Typer(add_completion=False, help="Run workflows.", no_args_is_help=True)

InputOption = Annotated[
    str | None,
    typer.Option("--input", "-i", help="Input as JSON, or @file.json / @file.yaml.", show_default=False),
]
EnvOption = Annotated[
    list[str] | None,
    typer.Option("--env", "-e", help="Run-time variable K=V (repeatable).", show_default=False),
]
SecretOption = Annotated[
    list[str] | None,
    typer.Option(
        "--secret",
        help="Secret name whose value is asked for (hidden) and given to this run only (repeatable).",
        show_default=False,
    ),
]
SecretFileOption = Annotated[
    Path | None,
    typer.Option("--secret-file", help="File of KEY=VALUE secret lines for this run.", show_default=False),
]
DetachOption = Annotated[
    bool, typer.Option("--detach/--follow", "-d", help="Print only the execution id and return at once.")
]
SessionOption = Annotated[
    str,
    typer.Option(
        "--session",
        help="Agents: continue the session with this name (started on first use) or id (ses_...).",
        show_default=False,
    ),
]


def _request(
    kind: str,
    name: str,
    input: str | None,
    message: str,
    session: str,
    env: list[str] | None,
    secret: list[str] | None,
    secret_file: Path | None,
) -> RunRequest:
    secrets: dict[str, str] = parse_secret_file(secret_file) if secret_file else {}
    for key in secret or []:
        secrets[key] = read_secret_value(key)
    req = RunRequest(
        kind=kind,
        name=name,
        message=message,
        session_id=session,
        env=parse_env(env or []),
        secrets=secrets,
    )
    if input is not None:
        req.input = parse_input(input)
        req.has_input = True
    return req


def _execute(req: RunRequest, output: Output, detach: bool, *, find: bool = False) -> None:
    started = Started()

    async def go() -> int:
        async with open_session() as session:
            if find:
                from stigmer.core import find_target

                req.kind = await find_target(
                    session.backend,
                    req.name,
                    choose_hint=f"say which: `stigmer workflow run {req.name}` or "
                    f"`stigmer agent execute {req.name} MESSAGE`",
                    create_hint="`stigmer apply -f FILE` creates one",
                )
            ex = await start(session, req, output, detach, started)
            if detach:
                if output is Output.table:
                    echo(ex.metadata.id)
                    return 0
                return report(ex, output)
            return report(ex, output, streamed=True)

    try:
        code = run_async(go())
    except KeyboardInterrupt:
        detach_on_interrupt(started)
        raise typer.Exit(130) from None
    raise typer.Exit(code)


@run_app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="Name of a workflow or an agent.")],
    input: InputOption = None,
    message: Annotated[str, typer.Option("--message", "-m", help="User message (agents).")] = "",
    session: SessionOption = "",
    env: EnvOption = None,
    secret: SecretOption = None,
    secret_file: SecretFileOption = None,
    detach: DetachOption = False,
    output: OutputOption = Output.table,
) -> None:
    """Run the workflow or agent called NAME and follow it live (exit 0 on success, 1 on failure)."""
    req = _request("", name, input, message, session, env, secret, secret_file)
    _execute(req, output, detach, find=True)


@agent_app.command("execute")
def agent_execute(
    agent: Annotated[str, typer.Argument(help="Agent name.")],
    message: Annotated[str, typer.Argument(help="What to ask the agent.")],
    session: SessionOption = "",
    input: InputOption = None,
    env: EnvOption = None,
    secret: SecretOption = None,
    secret_file: SecretFileOption = None,
    detach: DetachOption = False,
    output: OutputOption = Output.table,
) -> None:
    """Send MESSAGE to AGENT and stream its answer, tool calls and approvals."""
    req = _request("Agent", agent, input, message, session, env, secret, secret_file)
    _execute(req, output, detach)


@workflow_app.command("run")
def workflow_run(
    name: Annotated[str, typer.Argument(help="Workflow name.")],
    input: InputOption = None,
    env: EnvOption = None,
    secret: SecretOption = None,
    secret_file: SecretFileOption = None,
    detach: DetachOption = False,
    output: OutputOption = Output.table,
) -> None:
    """Run the workflow NAME and show its tasks as they start and finish."""
    req = _request("Workflow", name, input, "", "", env, secret, secret_file)
    _execute(req, output, detach)


@agent_app.callback()
def _agent_group() -> None:
    """Execute agents."""


@workflow_app.callback()
def _workflow_group() -> None:
    """Run workflows."""
