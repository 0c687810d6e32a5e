"""Running the installed ``stigmer`` executable as a user would, in a private ``STIGMER_HOME``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["STIGMER", "UserCli", "user_env"]

#: The ``stigmer`` executable of this environment.
STIGMER = Path(sys.executable).parent / "stigmer"


def user_env(home: Path, **extra: str) -> dict[str, str]:
    """A user's shell: a private store, this environment's executables first on PATH, no colour,
    no inherited ``STIGMER_`` / ``OPENAI_`` / ``OLLAMA_`` settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STIGMER_", "OPENAI_", "OLLAMA_"))}
    env.update(
        STIGMER_HOME=str(home),
        NO_COLOR="1",
        COLUMNS="200",
        PATH=f"{STIGMER.parent}{os.pathsep}{env.get('PATH', '')}",
    )
    env.update(extra)
    return env


@dataclass
class UserCli:
    """Runs ``stigmer ARGS`` from ``cwd`` in one private home (``extra_env`` added to the shell)."""

    home: Path
    cwd: Path = field(default_factory=Path.cwd)
    extra_env: dict[str, str] = field(default_factory=dict)

    def __call__(self, *args: str, input: str = "", timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(STIGMER), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.cwd,
            env=user_env(self.home, **self.extra_env),
        )

    def ok(self, *args: str, input: str = "") -> subprocess.CompletedProcess[str]:
        """Run and assert it exited 0."""
        done = self(*args, input=input)
        assert done.returncode == 0, f"stigmer {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done

    def json(self, *args: str, input: str = "") -> Any:
        """Run with ``-o json`` and parse the output."""
        return json.loads(self.ok(*args, "-o", "json", input=input).stdout)

    def events(self, execution_id: str) -> list[dict[str, Any]]:
        """The events of an execution (``stigmer execution logs -o json``)."""
        out = self.ok("execution", "logs", execution_id, "-o", "json").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]
