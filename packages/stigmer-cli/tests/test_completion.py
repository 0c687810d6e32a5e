"""Shell completion (typer's) sees the lazily imported command groups."""

from __future__ import annotations

import os
import subprocess
import sys


def _complete(words: str, cword: int) -> list[str]:
    env = {**os.environ, "_STIGMER_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    result = subprocess.run(
        [sys.executable, "-m", "stigmer.cli"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_completes_top_level_commands() -> None:
    assert _complete("stigmer exe", 1) == ["execution"]


def test_completes_inside_a_lazy_group() -> None:
    assert _complete("stigmer execution l", 2) == ["list", "logs"]
    assert _complete("stigmer secret rot", 2) == ["rotate-key"]


def test_sub_commands_do_not_repeat_completion_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "stigmer.cli", "execution", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "list" in result.stdout
    assert "--install-completion" not in result.stdout
