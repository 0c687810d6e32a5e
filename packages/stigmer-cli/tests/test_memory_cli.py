"""`stigmer memory list|get|delete` over the embedded store, with memories an agent run wrote."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from stigmer.testing import ScriptedLLM, call, text


@pytest.fixture
def llm() -> Iterator[ScriptedLLM]:
    with ScriptedLLM() as server:
        yield server


def test_list_search_get_and_delete(cli: Callable[..., Any], tmp_path: Path, llm: ScriptedLLM) -> None:
    manifest = tmp_path / "agent.yaml"
    manifest.write_text(
        "apiVersion: stigmer.ai/v1\nkind: Agent\nmetadata: {name: bot}\n"
        "spec:\n  instructions: Be brief.\n"
        f"  model: {{provider: openai-compatible, name: stand-in, baseUrl: {llm.openai_base_url!r}}}\n"
        "  memory: {enabled: true}\n"
    )
    assert cli("apply", "-f", str(manifest)).code == 0
    for fact in ("The deploy window is Tuesday.", "The office is in Lyon."):
        llm.add(call("remember", fact=fact), text("ok"))
        ran = cli("agent", "execute", "bot", "note it", "-o", "json")
        assert ran.code == 0, ran.err

    listed = json.loads(cli("memory", "list", "-o", "json").out)
    assert [m["fact"] for m in listed] == ["The office is in Lyon.", "The deploy window is Tuesday."]
    assert all(m["agent"] == "bot" and m["id"].startswith("mem_") for m in listed)
    found = json.loads(
        cli("memory", "list", "--agent", "bot", "--search", "when do we deploy", "-o", "json").out
    )
    assert [m["fact"] for m in found] == ["The deploy window is Tuesday."]
    table = cli("memory", "list")
    assert "Lyon" in table.out and "FACT" in table.out

    first = listed[1]["id"]
    shown = cli("memory", "get", first)
    assert shown.code == 0 and "Tuesday" in shown.out and "execution aex_" in shown.out
    gone = cli("memory", "delete", first)
    assert gone.code == 0 and f"forgot {first}" in gone.out
    assert [m["fact"] for m in json.loads(cli("memory", "list", "-o", "json").out)] == [
        "The office is in Lyon."
    ]
    missing = cli("memory", "get", first)
    assert (
        missing.code == 1 and "does not exist" in missing.err and len(missing.err.strip().splitlines()) == 1
    )
    none = cli("memory", "list", "--agent", "nobody")
    assert none.code == 0 and not none.out.strip() and none.err.strip() == "no memories"
