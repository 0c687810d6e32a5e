"""Every spec example runs on an offline host to an output or an RFC 7807 fault — never another
exception, never a hang. Effects are answered locally: HTTP goes to a closed port, processes and
agents are refused or stubbed, events are synthetic and run out."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from stigmer.runner.workflow import (
    ErrorKind,
    InProcessHost,
    ProcessResult,
    WorkflowError,
    load_workflow,
    run_workflow,
)

EXAMPLES = sorted((Path(__file__).parent / "fixtures" / "examples").glob("*.yaml"))


class OfflineHost(InProcessHost):
    def __init__(self) -> None:
        super().__init__(rewrite_url=lambda url: "http://127.0.0.1:9/", secrets={})
        self.heard = 0

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)

    async def listen(self, filters: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        self.heard += 1
        if self.heard > 20:
            raise WorkflowError.of(ErrorKind.TIMEOUT, "no more events")
        return {"id": str(self.heard), "type": "test.event", "source": "test", "data": {"n": self.heard}}

    async def run_shell(
        self, command: str, arguments: Sequence[str], environment: Mapping[str, str], stdin: str | None
    ) -> ProcessResult:
        return ProcessResult(0, "shell output\n", "")

    async def run_script(
        self,
        language: str,
        code: str,
        arguments: Sequence[str],
        environment: Mapping[str, str],
        stdin: str | None,
    ) -> ProcessResult:
        return ProcessResult(0, "script output\n", "")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
async def test_example_runs_to_an_output_or_a_fault(path: Path) -> None:
    workflow = load_workflow(path.read_text(encoding="utf-8"))
    host = OfflineHost()
    try:
        output = await asyncio.wait_for(run_workflow(workflow, host, {}), timeout=20)
    except WorkflowError as error:
        assert error.problem["type"] and isinstance(error.problem["status"], int)
        assert str(error.problem.get("instance", "")).startswith("/")
    else:
        assert output is None or isinstance(output, dict | list | str | int | float | bool)
    finally:
        await host.aclose()
