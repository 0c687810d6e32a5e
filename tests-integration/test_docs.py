"""The docs' runnable snippets run as written, offline, and show what the docs say they show.

Convention (CONTRIBUTING.md): in docs, a ```bash block is a command sequence a test runs; a
```console block is a transcript (not run); a block of any language whose first line is
``# save as: NAME`` is written to NAME before the next block runs; any other ```python block is
run with this interpreter. A page's blocks run in order, each in its own shell, in a fresh working
directory (with ``examples/`` linked into it) and a fresh ``STIGMER_HOME``. An agent's model is a
local stand-in OpenAI-compatible server (``STIGMER_LLM_BASE_URL``), as a reader would point agents
at a local Ollama.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from stigmer.testing import (
    STIGMER,
    HttpWorld,
    Request,
    Response,
    ScriptedLLM,
    UserCli,
    json_response,
    text,
    user_env,
)

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```\s*$", re.S | re.M)


def blocks(text: str) -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in FENCE.findall(text)]


@dataclass
class Page:
    """The result of running one page's blocks."""

    outputs: list[subprocess.CompletedProcess[str]] = field(default_factory=list)
    workdir: Path = Path()
    home: Path = Path()

    @property
    def stdout(self) -> str:
        return "\n".join(r.stdout for r in self.outputs)

    @property
    def text(self) -> str:
        return "\n".join(r.stdout + r.stderr for r in self.outputs)


def run_page(path: Path, tmp_path: Path, env: dict[str, str] | None = None, stdin: str = "") -> Page:
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "examples").symlink_to(ROOT / "examples")
    home = tmp_path / "stigmer-home"
    home.mkdir()
    shell_env = user_env(home, **(env or {}))
    page = Page(workdir=workdir, home=home)
    ran = 0
    for lang, body in blocks(path.read_text()):
        first = body.splitlines()[0] if body.strip() else ""
        if first.startswith("# save as: "):
            (workdir / first.removeprefix("# save as: ").strip()).write_text(body)
            continue
        if lang == "bash":
            command = ["bash", "-e", "-o", "pipefail", "-c", body]
        elif lang == "python":
            command = [sys.executable, "-c", body]
        else:
            continue
        done = subprocess.run(
            command, input=stdin, capture_output=True, text=True, cwd=workdir, env=shell_env, timeout=180
        )
        assert done.returncode == 0, (
            f"{path.name} block {ran + 1} failed:\n{body}\n{done.stdout}\n{done.stderr}"
        )
        page.outputs.append(done)
        ran += 1
    assert ran, f"{path.name} has no runnable block"
    return page


def test_getting_started(tmp_path: Path) -> None:
    llm = ScriptedLLM(
        [
            text("A workflow engine runs steps in order and keeps track of them."),
            text("Nice to meet you, Ada."),
            text("Your name is Ada."),
        ],
        default="OK",
    )
    with llm:
        page = run_page(DOCS / "getting-started.md", tmp_path, env=llm.env(), stdin="tok-docs-12345\n")
        assert len(llm.requests) == 3
        # the second session turn saw the first
        assert "My name is Ada." in str(llm.messages(2)) and "Nice to meet you, Ada." in str(llm.messages(2))
    out = page.stdout
    assert (page.workdir / "my-project" / "workflows" / "hello.yaml").is_file()
    assert '"greeting": "Hello, Ada!"' in out
    assert '"authorization": "Bearer ***"' in out
    assert "tok-docs-12345" not in page.text
    assert "A workflow engine runs steps in order" in out
    assert "Your name is Ada." in out
    assert "API_TOKEN" in out  # secret list
    # the page's own transcript matches what the CLI printed
    transcript = next(
        body
        for lang, body in blocks((DOCS / "getting-started.md").read_text())
        if lang == "console" and "phase SUCCEEDED" in body
    )
    for line in transcript.splitlines()[1:]:
        assert line in out, line


def test_getting_started_workflow_matches_the_scaffold(tmp_path: Path) -> None:
    """The YAML the page shows is what `stigmer init` writes."""
    shown = next(
        body
        for lang, body in blocks((DOCS / "getting-started.md").read_text())
        if lang == "yaml" and "name: hello" in body
    )
    done = subprocess.run(
        [str(STIGMER), "init", str(tmp_path / "p")],
        capture_output=True,
        text=True,
        env=user_env(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "p" / "workflows" / "hello.yaml").read_text()
    assert shown.strip() in written


def test_secrets(tmp_path: Path) -> None:
    value = "demo-secret-value-8d1f"
    page = run_page(DOCS / "secrets.md", tmp_path, stdin=value + "\n")
    out = page.stdout
    assert out.count('"header": "Bearer ***"') == 2  # the stored secret, then the run-time one
    assert "$secrets.DEMO_TOKEN" in out
    assert "DEMO_TOKEN" in out and "for the demo" in out
    assert value not in page.text
    assert "secret/DEMO_TOKEN updated (version 2)\nsecret/DEMO_DB_URL created\n" in out  # secret import
    stored = b"".join(p.read_bytes() for p in page.home.rglob("*") if p.is_file())
    for secret in (value, "demo-token-from-a-file", "p@ss word@localhost"):
        assert secret not in page.text
        assert secret.encode() not in stored
    key = page.home / "master.key"
    assert key.stat().st_mode & 0o777 == 0o600


def test_backends_page_certifies_and_serves_a_backend(tmp_path: Path) -> None:
    page = run_page(DOCS / "backends.md", tmp_path)
    conformance, served = page.outputs
    summary = conformance.stdout.strip().splitlines()[-1]
    match = re.search(r"(\d+) passed", summary)
    assert match and int(match.group(1)) >= 80, summary
    assert "failed" not in summary and "error" not in summary, summary
    # the CLI ran hello through the served backend, and switched back
    assert '"greeting": "Hello, Ada!"' in served.stdout
    assert "listening on 127.0.0.1:7300" in (page.workdir / "server.log").read_text()
    assert (page.workdir / "server-home" / "stigmer.db").exists()  # the server's store, not the CLI's
    assert not (page.home / "stigmer.db").exists()


def _body(request: Request) -> Any:
    """A POST's JSON body ({} when empty); None for other methods."""
    return (request.json() or {}) if request.method == "POST" else None


class _TodoAPI(HttpWorld):
    """POST /todos creates a todo (id 1); anything else is 404."""

    @property
    def seen(self) -> list[tuple[str, Any]]:
        with self.lock:
            return [(r.target, _body(r)) for r in self.received]

    def handle(self, request: Request) -> Response:
        body = _body(request)
        if request.path == "/todos" and body is not None:
            return json_response({"id": 1, "title": body.get("title"), "done": False}, 201)
        return json_response({"message": "Not Found"}, 404)


def test_workflows_page_every_task_type_gives_the_output_it_shows(tmp_path: Path) -> None:
    page = DOCS / "workflows.md"
    workdir = tmp_path / "work"
    workdir.mkdir()
    cli = UserCli(tmp_path / "home", cwd=ROOT)
    cli.home.mkdir()
    saved = []
    commands: list[str] = []
    for lang, body in blocks(page.read_text()):
        first = body.splitlines()[0]
        if first.startswith("# save as: "):
            saved.append(first.removeprefix("# save as: "))
            (workdir / saved[-1]).write_text(body)
        elif lang == "bash":
            commands += [line for line in body.splitlines() if line.strip()]
    assert len(saved) >= 11 and commands[0] == "stigmer apply -f ."
    # the files are applied from the page's directory, as a reader would
    applied = cli.ok("apply", "-f", str(workdir))
    assert applied.stdout.count(" created") == len(saved) + 1  # wf-agent.yaml holds two resources

    checked = 0
    with _TodoAPI() as api, ScriptedLLM([text("Runs agents and workflows.")], default="OK") as llm:
        cli.extra_env.update(llm.env())
        for line in commands[1:]:
            command, _, expected = line.partition("# output:")
            args = shlex.split(command.replace("https://api.example.com", api.url))
            assert args[:2] == ["stigmer", "run"], line
            execution = cli.json(*args[1:])
            assert execution["phase"] == "SUCCEEDED", (line, execution["error"])
            assert execution["output"] == json.loads(expected), line
            checked += 1
        assert [path for path, _ in api.seen].count("/missing") == 3  # the first try and two retries
        assert ("/todos", {"title": "write docs"}) in api.seen
        assert "Stigmer runs agents and workflows." in json.dumps(llm.requests[0]["messages"])
    assert checked == len(commands) - 1 >= 12

    # the failing run the page shows
    transcript = next(b for lang, b in blocks(page.read_text()) if lang == "console" and "wf-raise" in b)
    argv = shlex.split(transcript.splitlines()[0].removeprefix("$ "))
    failed = cli(*argv[1:])
    assert failed.returncode == 1
    printed = failed.stdout + failed.stderr
    for shown in [line for line in transcript.splitlines()[1:] if line not in ("$ echo $?", "1")]:
        pattern = re.escape(shown).replace(re.escape("wex_..."), "wex_[0-9a-z]+")
        assert re.search(pattern, printed), shown
    error = json.loads(cli("run", "wf-raise", "--input", '{"amount": -3}', "-o", "json").stdout)["error"]
    assert error == {
        "type": "https://example.com/errors/negative-amount",
        "status": 400,
        "title": "Negative amount",
        "detail": "amount -3 is below zero",
        "instance": "/do/1/reject",
    }


def test_workflows_page_authentication_example_is_a_valid_document() -> None:
    from stigmer.runner.workflow import load_workflow

    section = (DOCS / "workflows.md").read_text().partition("## Authentication")[2].partition("\n## ")[0]
    [example] = [body for lang, body in blocks(section) if lang == "yaml"]
    workflow = load_workflow(example)
    policy = workflow.definition["use"]["authentications"]["orders"]["oidc"]
    assert policy["client"]["authentication"] == "private_key_jwt"
    assert policy["grant"] == "urn:ietf:params:oauth:grant-type:token-exchange"


def test_readme_tour(tmp_path: Path) -> None:
    """The README's 60-second tour, with `uv run stigmer` as the installed `stigmer` (as test_readme.py)."""
    readme = (ROOT / "README.md").read_text()
    tour = [body for lang, body in blocks(readme) if lang == "bash"][1]
    assert "uv run stigmer apply -f examples" in tour
    page = tmp_path / "tour.md"
    page.write_text("```bash\n" + tour.replace("uv run stigmer", "stigmer") + "```\n")
    with ScriptedLLM([text("Hello! How can I help?")], default="OK") as llm:
        result = run_page(page, tmp_path, env=llm.env(), stdin="ghp_tour_value_123\n")
        assert len(llm.requests) == 1
    out = result.stdout
    assert "workflow/hello created" in out and "agent/support created" in out
    assert '"greeting": "Hello, Ada!"' in out
    assert "phase SUCCEEDED" in out
    assert "GH_TOKEN" in out and "ghp_tour_value_123" not in result.text
    assert "Hello! How can I help?" in out


LINKED = [
    ROOT / "README.md",
    ROOT / "CONTRIBUTING.md",
    ROOT / "SECURITY.md",
    *sorted(DOCS.glob("*.md")),
    *sorted(ROOT.glob("examples/**/*.md")),
]


def _anchors(path: Path) -> set[str]:
    """GitHub's heading anchors of a Markdown file (outside code blocks)."""
    text = FENCE.sub("", path.read_text())
    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


@pytest.mark.parametrize("path", LINKED, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    text = FENCE.sub("", path.read_text())
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    for link in links:
        if re.match(r"[a-z]+:", link):
            continue  # a web address
        target, _, anchor = link.partition("#")
        resolved = (path.parent / target).resolve() if target else path
        assert resolved.exists(), f"{path.name}: broken link {link}"
        if anchor and resolved.suffix == ".md":
            assert anchor in _anchors(resolved), (
                f"{path.name}: no heading for #{anchor} in {target or path.name}"
            )


def test_docs_index_lists_every_page() -> None:
    index = (DOCS / "index.md").read_text()
    pages = sorted(DOCS.glob("*.md"))
    assert pages, "found no files to check"
    for page in pages:
        if page.name != "index.md":
            assert f"]({page.name})" in index, f"docs/index.md does not link {page.name}"


def test_readme_package_map_lists_every_distribution() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = set(re.findall(r"^\| `(stigmer[a-z-]*)` \|", readme, re.M))
    packages = {p.name for p in (ROOT / "packages").iterdir() if (p / "pyproject.toml").exists()}
    assert packages | {"stigmer"} == rows


def test_migrating_from_upstream_page_runs(tmp_path: Path) -> None:
    page = run_page(DOCS / "migrating-from-upstream.md", tmp_path)
    applied, converted, refused = page.outputs
    assert "per file:" in applied.stdout and "would be created" in applied.stdout
    assert "notice: upstream-agent.yaml: Agent/helper read as agentic.stigmer.ai/v1" in applied.stderr
    run = json.loads(applied.stdout.split("workflow/count-items created\n", 1)[1])
    assert run["output"] == {"verdict": "many"}
    assert (
        "stigmer.ai/dialect: zigflow" in converted.stdout
        and "apiVersion: agentic.stigmer.ai/v1" in converted.stdout
    )
    assert (
        "upstream-think.yaml:10: spec.tasks[1].kind: task kind llm_call cannot be converted" in refused.stderr
    )


def test_schedules_page_applies_lists_triggers_and_describes(tmp_path: Path) -> None:
    page = run_page(DOCS / "schedules.md", tmp_path)
    out = page.stdout
    assert "cron '0 6 * * 1-5' Europe/Berlin -> workflow/report, next " in out
    assert '"report": "for support"' in out or "for support" in out
    assert "Target:    Workflow/report" in out
    assert "fired" in out.partition("Last runs:")[2]


def test_triggers_page_sends_events_that_start_schedule_on_runs(tmp_path: Path) -> None:
    page = run_page(DOCS / "triggers.md", tmp_path)
    out = page.stdout
    assert "workflow/on-paid created" in out
    assert "(com.acme.order.paid) delivered to 0 execution(s), started 1 run(s)" in out
    assert "SUCCEEDED" in out
    assert "(com.acme.order.refunded) delivered to 0 execution(s), started 0 run(s)" in out
