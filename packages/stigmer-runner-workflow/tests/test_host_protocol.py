"""The Host protocol is the interpreter's only door to the world: a host written from scratch
(no InProcessHost) runs workflows, and a deterministic host gives identical runs — what a
durable (Temporal) host relies on when it replays a workflow."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from stigmer.runner.workflow import GrpcRequest, Host, HttpRequest, HttpResponse, ProcessResult, run_workflow

Doc = Callable[..., dict[str, Any]]


class ScriptedHost:
    """Answers every effect from a script; time, randomness and ids are deterministic."""

    def __init__(self) -> None:
        self.clock = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
        self.ids = 0
        self.log: list[Any] = []
        self.http_failures = 2

    def now(self) -> datetime.datetime:
        return self.clock

    def random(self) -> float:
        return 0.25

    def new_id(self) -> str:
        self.ids += 1
        return f"id-{self.ids}"

    async def sleep(self, seconds: float) -> None:
        self.log.append(("sleep", seconds))
        self.clock += datetime.timedelta(seconds=seconds)

    async def get_secrets(self, names: Sequence[str]) -> Mapping[str, str]:
        self.log.append(("secrets", tuple(names)))
        return {"KEY": "k-123"}

    async def http_request(self, request: HttpRequest) -> HttpResponse:
        self.log.append(("http", request.method, request.url, dict(request.headers)))
        if self.http_failures:
            self.http_failures -= 1
            return HttpResponse(503, {}, b"busy")
        return HttpResponse(200, {"content-type": "application/json"}, b'{"ok": true}', request.url)

    async def call_agent(
        self, agent: str, message: Any, session: str | None, *, attachments: Sequence[Mapping[str, Any]] = ()
    ) -> Any:
        self.log.append(("agent", agent, message))
        return f"{agent}: noted {message}"

    async def listen(self, filters: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {"type": "x", "data": 1}

    async def emit(self, event: Mapping[str, Any]) -> None:
        self.log.append(("emit", dict(event)))

    async def run_shell(
        self, command: str, arguments: Sequence[str], environment: Mapping[str, str], stdin: str | None
    ) -> ProcessResult:
        return ProcessResult(0, f"ran {command}", "")

    async def run_script(
        self,
        language: str,
        code: str,
        arguments: Sequence[str],
        environment: Mapping[str, str],
        stdin: str | None,
    ) -> ProcessResult:
        return ProcessResult(0, "", "")

    async def run_workflow(self, namespace: str, name: str, version: str, input: Any) -> Any:
        return None

    async def grpc_call(self, request: GrpcRequest) -> Any:
        self.log.append(("grpc", request.service, request.method))
        return {"ok": True}

    async def task_started(self, path: str, name: str, input: Any) -> None:
        self.log.append(("started", path))

    async def task_completed(self, path: str, name: str, output: Any) -> None:
        self.log.append(("completed", path, output))

    async def task_failed(self, path: str, name: str, error: Mapping[str, Any]) -> None:
        self.log.append(("failed", path, dict(error)))

    async def task_retried(
        self,
        path: str,
        name: str,
        attempt: int,
        delay: float,
        error: Mapping[str, Any],
        *,
        max_attempts: int | None = None,
    ) -> None:
        self.log.append(("retried", path, attempt, delay))

    async def checkpoint(self, state: Mapping[str, Any]) -> None:
        self.log.append(("checkpoint", json.dumps(state, sort_keys=True)))


def busy_workflow(document: Doc) -> dict[str, Any]:
    return document(
        [
            {
                "fetch": {
                    "try": [
                        {
                            "get": {
                                "call": "http",
                                "with": {
                                    "method": "get",
                                    "endpoint": "https://api.example.com/x",
                                    "headers": {"X-Key": "${ $secrets.KEY }"},
                                },
                            }
                        }
                    ],
                    "catch": {
                        "errors": {"with": {"status": 503}},
                        "retry": {
                            "delay": {"seconds": 1},
                            "backoff": {"exponential": {}},
                            "jitter": {"from": {"seconds": 0}, "to": {"seconds": 4}},
                        },
                    },
                }
            },
            {"tell": {"emit": {"event": {"with": {"type": "com.example.fetched", "data": "${ . }"}}}}},
            {"ask": {"call": "agent", "with": {"agent": "clerk", "message": "${ .data.ok }"}}},
            {
                "stamp": {
                    "set": {
                        "answer": "${ . }",
                        "at": "${ $task.startedAt.iso8601 }",
                        "wf": "${ $workflow.id }",
                    }
                }
            },
        ],
        use={"secrets": ["KEY"]},
    )


async def test_a_host_written_from_scratch_satisfies_the_protocol(document: Doc) -> None:
    host = ScriptedHost()
    assert isinstance(host, Host)
    out = await run_workflow(busy_workflow(document), host, workflow_id="wf-1")
    assert out == {"answer": "clerk: noted True", "at": "2030-01-01T00:00:05+00:00", "wf": "wf-1"}
    sleeps = [entry[1] for entry in host.log if entry[0] == "sleep"]
    assert sleeps == [2.0, 3.0]  # 1s then 2s of backoff, plus 0.25 x 4s of jitter each
    assert [e for e in host.log if e[0] == "secrets"] == [("secrets", ("KEY",))] * 3
    assert (
        "emit",
        {
            "id": "id-1",
            "specversion": "1.0",
            "time": "2030-01-01T00:00:05+00:00",
            "type": "com.example.fetched",
            "data": {"ok": True},
            "source": "stigmer://workflow/test/t",
            "datacontenttype": "application/json",
        },
    ) in host.log


async def test_identical_hosts_give_identical_runs(document: Doc) -> None:
    first, second = ScriptedHost(), ScriptedHost()
    await run_workflow(busy_workflow(document), first, workflow_id="wf-1")
    await run_workflow(busy_workflow(document), second, workflow_id="wf-1")
    assert first.log == second.log
    assert any(entry[0] == "checkpoint" for entry in first.log)
