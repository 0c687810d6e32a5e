"""``stigmer init``: a project whose workflow runs offline at once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from stigmer.cli._errors import CliError
from stigmer.cli.output._format import echo

__all__ = ["SCAFFOLD", "init_app", "scaffold"]

init_app = typer.Typer(add_completion=False)

SCAFFOLD: dict[str, str] = {
    "README.md": """\
# {name}

A Stigmer project: an agent, a workflow and an environment, declared as YAML.

```bash
stigmer apply -f .                              # create or update everything here
stigmer run hello --input '{{"name": "Ada"}}'     # runs offline: the workflow only sets data
stigmer get workflows                           # what is stored
stigmer execution list                          # what ran
```

The agent needs a model: set `OPENAI_API_KEY` with `stigmer secret set OPENAI_API_KEY`, then
`stigmer agent execute helper "Hello!"`.

- `workflows/hello.yaml` — a Serverless Workflow 1.0 document with one `set` task
- `agents/helper.yaml` — an LLM agent using the `dev` environment
- `environments/dev.yaml` — plain variables and the names of the secrets it grants
""",
    "workflows/hello.yaml": """\
# Runs offline at once: `stigmer run hello --input '{"name": "Ada"}'`
apiVersion: stigmer.ai/v1
kind: Workflow
metadata:
  name: hello
spec:
  document: {dsl: 1.0.0, namespace: default, name: hello, version: 1.0.0}
  do:
    - greet:
        set:
          greeting: '${ "Hello, " + (.name // "world") + "!" }'
""",
    "agents/helper.yaml": """\
apiVersion: stigmer.ai/v1
kind: Agent
metadata:
  name: helper
spec:
  description: A helpful assistant.
  instructions: You are a helpful assistant. Answer briefly.
  model: {provider: openai, name: gpt-4o-mini}
  environments: [dev]
""",
    "environments/dev.yaml": """\
apiVersion: stigmer.ai/v1
kind: Environment
metadata:
  name: dev
spec:
  description: Settings for local development.
  variables: {GREETING_STYLE: friendly}
  secrets: [OPENAI_API_KEY]
""",
}


def scaffold(directory: Path, *, force: bool = False) -> list[Path]:
    """Write the scaffold into ``directory``; existing files are refused unless ``force``."""
    targets = [directory / rel for rel in SCAFFOLD]
    existing = [p for p in targets if p.exists()]
    if existing and not force:
        names = ", ".join(str(p.relative_to(directory)) for p in existing)
        raise CliError(
            f"{directory} already has {names}; use --force to overwrite, or pick another directory"
        )
    name = directory.resolve().name or "stigmer-project"
    for rel, text in SCAFFOLD.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(name=name) if rel == "README.md" else text, encoding="utf-8")
    return targets


@init_app.command("init")
def init(
    directory: Annotated[Path, typer.Argument(help="Project directory (created if missing).")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Scaffold a project: an agent, a workflow, an environment and a README."""
    for path in scaffold(directory, force=force):
        echo(f"created {path}")
    where = "" if directory == Path(".") else f" -f {directory}"
    echo(f'\nnext: stigmer apply{where or " -f ."} && stigmer run hello --input \'{{"name": "Ada"}}\'')
