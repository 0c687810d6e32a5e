"""The ``stigmer`` command: a root group whose sub-commands are imported only when used."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated

import typer
from stigmer.cli._lazy import LazyGroup, lazy
from stigmer.cli._options import OPTIONS

__all__ = ["app", "main"]

lazy("apply", "stigmer.cli.commands._apply:apply_app", "Create or update resources from manifests.")
lazy(
    "validate",
    "stigmer.cli.commands._validate:validate_app",
    "Check manifests as apply and run would, without a backend.",
)
lazy("get", "stigmer.cli.commands._get:get_app", "List resources of a kind, or show one.")
lazy("list", "stigmer.cli.commands._get:list_app", "List resources of a kind (get KIND).")
lazy(
    "describe",
    "stigmer.cli.commands._get:describe_app",
    "Show a resource's spec, status and recent executions.",
)
lazy(
    "delete",
    "stigmer.cli.commands._apply:delete_app",
    "Delete resources by kind and name, or from manifests.",
)
lazy("run", "stigmer.cli.commands._run:run_app", "Run a workflow or an agent by name.")
lazy("agent", "stigmer.cli.commands._run:agent_app", "Execute agents.")
lazy("workflow", "stigmer.cli.commands._run:workflow_app", "Run workflows.")
lazy(
    "execution",
    "stigmer.cli.commands._executions:execution_app",
    "List, follow, approve and cancel executions.",
)
lazy("session", "stigmer.cli.commands._sessions:session_app", "Agent sessions: export their workspaces.")
lazy(
    "schedule",
    "stigmer.cli.commands._schedules:schedule_app",
    "List, pause, resume, trigger and backfill schedules; run-due fires what is due.",
)
lazy(
    "scheduler",
    "stigmer.cli.commands._schedules:scheduler_app",
    "Fire schedules as they fall due, in the foreground (local context).",
)
lazy(
    "event",
    "stigmer.cli.commands._events:event_app",
    "Publish CloudEvents to listen tasks and schedule.on workflows.",
)
lazy(
    "secret", "stigmer.cli.commands._secrets:secret_app", "Manage encrypted secrets (values are write-only)."
)
lazy("memory", "stigmer.cli.commands._memory:memory_app", "List, show and forget what agents remember.")
lazy(
    "context",
    "stigmer.cli.commands._contexts:context_app",
    "List, show and select contexts (local or servers).",
)
lazy("login", "stigmer.cli.commands._contexts:login_app", "Add a server context with a token and select it.")
lazy("logout", "stigmer.cli.commands._contexts:logout_app", "Forget a server context and its token.")
lazy("server", "stigmer.cli.commands._server:server_app", "Serve the local store over gRPC (stigmer server).")
lazy(
    "local",
    "stigmer.cli.commands._local:local_app",
    "Run the full stack locally (Temporal, server, runner workers).",
)
lazy(
    "console",
    "stigmer.cli.commands._console:console_app",
    "Serve the web console over the local store on 127.0.0.1 (runs, definitions, secrets).",
)
lazy("token", "stigmer.cli.commands._server:token_app", "Manage API tokens of a stigmer server.")
lazy(
    "init",
    "stigmer.cli.commands._init:init_app",
    "Scaffold a project with an agent, a workflow and an environment.",
)
lazy(
    "export",
    "stigmer.cli.commands._export:export_app",
    "Write resources back as manifests (one, a kind, or --all -o DIR).",
)
lazy(
    "convert",
    "stigmer.cli.commands._upstream:convert_app",
    "Print manifests as read here (upstream Stigmer's mapped; workflows as DSL documents).",
)
lazy(
    "resume",
    "stigmer.cli.commands._upstream:resume_app",
    "Continue a session with its agent, or resume an execution.",
)
lazy("skill", "stigmer.cli.commands._upstream:skill_app", "Push a skill directory (skill push DIR).")
lazy(
    "doctor",
    "stigmer.cli.commands._doctor:doctor_app",
    "Check the installation, the stack's ports, the context, the master key and the model.",
)
lazy(
    "version",
    "stigmer.cli.commands._version:version_app",
    "Show the versions of the installed stigmer packages.",
)

app = typer.Typer(
    name="stigmer",
    cls=LazyGroup,
    help="Stigmer: declare AI agents and workflows as YAML, apply them, run them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _complete_context(ctx: typer.Context, incomplete: str) -> list[str | tuple[str, str]]:
    """Context names for ``--context <TAB>`` (the completers' module is imported only then)."""
    from stigmer.cli.commands._complete import complete_context

    return complete_context(ctx, incomplete)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    context: Annotated[
        str,
        typer.Option(
            "--context",
            help="Use this context instead of the current one.",
            show_default=False,
            autocompletion=_complete_context,
        ),
    ] = "",
) -> None:
    if debug:
        OPTIONS.debug = True
    if context:
        OPTIONS.context = context


def _error_message(exc: BaseException) -> str | None:
    """The one-line message of an expected error, or None for a bug."""
    from stigmer.cli._errors import CliError

    if isinstance(exc, CliError):
        return exc.message
    errors = sys.modules.get("stigmer.core._errors")
    if errors is not None and isinstance(exc, errors.StigmerError):
        return str(exc)
    return None


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: run the CLI and turn errors into one line and an exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    _tune_collector()
    if "--debug" in args[: args.index("--")] if "--" in args else "--debug" in args:
        OPTIONS.debug = True
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="stigmer", standalone_mode=True)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        message = _error_message(exc)
        if OPTIONS.debug:
            import traceback

            sys.stderr.write(_masked(traceback.format_exc()))
        if message is None:
            message = f"unexpected {type(exc).__name__}: {exc}"
            if not OPTIONS.debug:
                message += " (run with --debug for the traceback)"
        print(f"error: {_one_line(_masked(message))}", file=sys.stderr)
        sys.stderr.flush()
        sys.exit(getattr(exc, "exit_code", 1) if message is not None else 1)


def _tune_collector() -> None:
    """Keep the cycle collector off the start-up's objects. A command imports what it needs as it
    goes (an agent run: pydantic-ai, the MCP SDK, the OpenAI client, some 200,000 objects that live
    until the end), and the collector would walk them again and again while they are made, and
    once more at exit (0.5-0.9 s between an agent run's last line and the end of its process).
    So it is off for the first seconds; then (long-running commands) what exists is frozen into
    the permanent generation and the collector runs as usual; at exit the same freeze skips the
    final walk. atexit handlers, stream flushing and module teardown run as always. Set up once
    (``main`` also runs in-process in tests: the timer gives the collector back there too)."""
    global _COLLECTOR_SET
    if _COLLECTOR_SET:
        return
    _COLLECTOR_SET = True
    import atexit
    import gc
    import threading

    def resume() -> None:
        gc.freeze()
        gc.enable()

    if gc.isenabled():
        gc.disable()
        timer = threading.Timer(_COLLECTOR_OFF_SECONDS, resume)
        timer.daemon = True
        timer.start()
    atexit.register(gc.freeze)


_COLLECTOR_SET = False
#: How long a command starts without the cycle collector.
_COLLECTOR_OFF_SECONDS = 5.0


def _masked(text: str) -> str:
    """``text`` with the secrets this process resolved (a Lite run) masked; none when no runner
    was loaded (the redactor's module is then not even imported)."""
    redact = sys.modules.get("stigmer.core._redact")
    return text if redact is None else str(redact.default_redactor().scrub(text))


def _one_line(text: str) -> str:
    return " ".join(text.split()) if "\n" in text else text
