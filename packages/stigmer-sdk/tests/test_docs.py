"""docs/sdk.md: every ``python`` block runs, in order, in one namespace, against a fresh local store."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[3] / "docs" / "sdk.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def test_the_doc_has_python_blocks() -> None:
    assert len(BLOCK.findall(DOC.read_text())) >= 8


def test_every_python_block_of_the_sdk_guide_runs(tmp_path: Path) -> None:
    blocks = BLOCK.findall(DOC.read_text())
    script = "\n\n".join(f"# --- block {i}\n{code}" for i, code in enumerate(blocks))
    (tmp_path / "skills" / "acme-faq").mkdir(parents=True)
    (tmp_path / "skills" / "acme-faq" / "SKILL.md").write_text("# FAQ\n")
    (tmp_path / "doc.py").write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
    env.update(STIGMER_HOME=str(tmp_path / "home"), STIGMER_MASTER_KEY="c" * 64)
    result = subprocess.run(
        [sys.executable, "doc.py"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    # what the page says the snippets print
    assert "{'greeting': 'Hello, world!'}" in out
    assert "{'labels': ['crash', 'docs']}" in out
    assert "workflow/ping created" in out
    assert "429 Quota exceeded /do/0/check" in out
    assert "True CANCELLED" in out
    assert "['GH_TOKEN']" in out
    assert "[{'greeting': 'Hello, Ada!'}, {'greeting': 'Hello, Grace!'}]" in out
    assert (tmp_path / "exported" / "SECRETS.md").exists()


def test_the_package_readme_example_runs(tmp_path: Path) -> None:
    readme = Path(__file__).resolve().parents[1] / "README.md"
    [code] = BLOCK.findall(readme.read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("STIGMER_")}
    env.update(STIGMER_HOME=str(tmp_path / "home"), STIGMER_MASTER_KEY="d" * 64)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "{'greeting': 'Hello, world'}"
