"""Checkpoints (a killed run resumes after its last completed task) and just-in-time secrets."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pytest
from stigmer.runner.workflow import (
    CHECKPOINT_VERSION,
    InProcessHost,
    Interpreter,
    WorkflowError,
    run_workflow,
)

Doc = Callable[..., dict[str, Any]]


class Killed(BaseException):
    """Stands in for the process dying mid-task."""


class DyingHost(InProcessHost):
    """Dies on the ``die_on``-th sleep."""

    def __init__(self, die_on: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.die_on = die_on
        self.slept = 0

    async def sleep(self, seconds: float) -> None:
        self.slept += 1
        if self.slept == self.die_on:
            raise Killed()


def started(host: InProcessHost) -> list[str]:
    return [path for kind, path, _, _ in host.events if kind == "started"]


async def test_resume_continues_after_the_last_completed_task(document: Doc) -> None:
    wf = document(
        [
            {"a": {"set": {"steps": ["a"]}}},
            {
                "loop": {
                    "for": {"each": "x", "in": "${ [1, 2, 3] }"},
                    "do": [
                        {"add": {"set": {"steps": "${ .steps + [$x] }"}}},
                        {"pause": {"wait": {"milliseconds": 1}}},
                    ],
                }
            },
            {"c": {"set": {"steps": '${ .steps + ["c"] }'}}},
        ]
    )
    first = DyingHost(die_on=2)
    with pytest.raises(Killed):
        await run_workflow(wf, first)
    saved = first.last_checkpoint
    assert saved is not None and saved["version"] == CHECKPOINT_VERSION
    json.dumps(saved)  # plain JSON

    second = InProcessHost()
    assert await run_workflow(wf, second, checkpoint=saved) == {"steps": ["a", 1, 2, 3, "c"]}
    runs = started(second)
    assert "/do/0/a" not in runs
    assert runs.count("/do/1/loop/do/0/add") == 1  # only iteration 3 adds again
    assert runs.count("/do/1/loop/do/1/pause") == 2  # iteration 2 resumes at its pause


async def test_resume_inside_catch_do_does_not_rerun_the_try(document: Doc) -> None:
    wf = document(
        [
            {
                "t": {
                    "try": [{"fail": {"raise": {"error": {"type": "urn:x", "status": 500}}}}],
                    "catch": {
                        "do": [
                            {"one": {"set": {"n": 1}}},
                            {"pause": {"wait": "PT0.001S"}},
                            {"two": {"set": {"n": "${ .n + 1 }"}}},
                        ]
                    },
                }
            }
        ]
    )
    first = DyingHost(die_on=1)
    with pytest.raises(Killed):
        await run_workflow(wf, first)
    second = InProcessHost()
    assert await run_workflow(wf, second, checkpoint=first.last_checkpoint) == {"n": 2}
    assert started(second) == ["/do/0/t", "/do/0/t/catch/do/1/pause", "/do/0/t/catch/do/2/two"]


async def test_resume_keeps_exported_context_and_workflow_input(document: Doc) -> None:
    wf = document(
        [
            {"remember": {"set": {"x": 1}, "export": {"as": "${ {kept: $input.who} }"}}},
            {"pause": {"wait": {"milliseconds": 1}}},
            {"use": {"set": {"kept": "${ $context.kept }", "who": "${ $workflow.input.who }"}}},
        ]
    )
    first = DyingHost(die_on=1)
    with pytest.raises(Killed):
        await run_workflow(wf, first, {"who": "ada"})
    assert await run_workflow(wf, InProcessHost(), checkpoint=first.last_checkpoint) == {
        "kept": "ada",
        "who": "ada",
    }


async def test_resume_fork_skips_finished_branches(document: Doc) -> None:
    wf = document(
        [
            {
                "both": {
                    "fork": {
                        "branches": [
                            {"quick": {"set": {"b": "quick"}}},
                            {
                                "slow": {
                                    "do": [
                                        {"nap": {"wait": {"milliseconds": 1}}},
                                        {"done": {"set": {"b": "slow"}}},
                                    ]
                                }
                            },
                        ]
                    }
                }
            }
        ]
    )
    first = DyingHost(die_on=1)
    with pytest.raises(Killed):
        await run_workflow(wf, first)
    second = InProcessHost()
    assert await run_workflow(wf, second, checkpoint=first.last_checkpoint) == [{"b": "quick"}, {"b": "slow"}]
    assert "/do/0/both/fork/branches/0/quick" not in started(second)


class KeepingHost(InProcessHost):
    """Keeps every checkpoint it is offered as it is (no copy), and its JSON at that moment."""

    def __init__(self) -> None:
        super().__init__()
        self.kept: list[tuple[Mapping[str, Any], str]] = []

    async def checkpoint(self, state: Mapping[str, Any]) -> None:
        self.kept.append((state, json.dumps(state)))


async def test_an_offered_checkpoint_stays_as_it_was_while_the_run_goes_on(document: Doc) -> None:
    wf = document(
        [
            {"a": {"set": {"steps": ["a"], "seen": {}}}},
            {
                "outer": {
                    "for": {"each": "x", "in": "${ [1, 2] }"},
                    "do": [
                        {
                            "inner": {
                                "for": {"each": "y", "in": "${ [1, 2] }"},
                                "do": [
                                    {
                                        "add": {
                                            "set": {
                                                "steps": "${ .steps + [$x * 10 + $y] }",
                                                "seen": "${ .seen + {($x | tostring): $y} }",
                                            },
                                            "export": {"as": "${ $context + {last: .steps} }"},
                                        }
                                    }
                                ],
                            }
                        }
                    ],
                }
            },
        ],
        input={"from": "${ {start: .} }"},
    )
    host = KeepingHost()
    output = await run_workflow(wf, host, {"given": [1, 2]})
    assert output["steps"] == ["a", 11, 12, 21, 22]
    assert len(host.kept) > 10
    for state, offered in host.kept:
        assert json.dumps(state) == offered
    last = json.loads(host.kept[-1][1])
    assert last["rawInput"] == {"given": [1, 2]}
    assert last["input"] == {"start": {"given": [1, 2]}}
    assert last["context"] == {"last": ["a", 11, 12, 21, 22]}


async def test_a_foreign_checkpoint_is_refused(document: Doc) -> None:
    with pytest.raises(WorkflowError) as caught:
        await Interpreter(document([{"a": {"set": {"x": 1}}}]), InProcessHost()).run(
            checkpoint={"version": 99}
        )
    assert caught.value.type.endswith("/configuration")


class CountingSecrets:
    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = dict(values)
        self.calls: list[tuple[str, ...]] = []

    async def __call__(self, names: Sequence[str]) -> Mapping[str, str]:
        self.calls.append(tuple(names))
        return {n: self.values[n] for n in names if n in self.values}


SECRET = "s3cr3t-value-4242"


async def test_secrets_are_fetched_just_in_time_and_never_reported(document: Doc, stub: Any) -> None:
    provider = CountingSecrets({"TOKEN": SECRET, "OTHER": "unused-secret"})
    checkpoints: list[str] = []

    async def keep(state: Mapping[str, Any]) -> None:
        checkpoints.append(json.dumps(state))

    host = stub.host(secrets_provider=provider, on_checkpoint=keep)
    wf = document(
        [
            {"plain": {"set": {"n": 1}}},
            {
                "call": {
                    "call": "http",
                    "with": {
                        "method": "get",
                        "endpoint": "https://api.example.com/text",
                        "headers": {"Authorization": '${ "Bearer " + $secrets.TOKEN }', "X-Plain": "visible"},
                        "output": "response",
                    },
                }
            },
            {"short": {"set": {"h": "${ .request.headers }", "dot": "${ .secrets.TOKEN | length }"}}},
        ],
        use={"secrets": ["TOKEN"]},
    )
    out = await run_workflow(wf, host)
    assert stub.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET}"
    assert out == {"h": {"Authorization": "***", "X-Plain": "visible"}, "dot": len(SECRET)}
    assert provider.calls == [("TOKEN",), ("TOKEN",)]  # only declared names, only when read
    reported = json.dumps([e[3] for e in host.events]) + "".join(checkpoints)
    assert SECRET not in reported
    assert "unused-secret" not in reported


async def test_secret_values_do_not_leak_through_expression_errors(document: Doc) -> None:
    wf = document([{"bad": {"set": {"x": "${ $secrets.TOKEN + 1 }"}}}], use={"secrets": ["TOKEN"]})
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(wf, InProcessHost(secrets={"TOKEN": SECRET}))
    assert SECRET not in str(caught.value)
    assert SECRET not in json.dumps(caught.value.problem)
    # jq's message is rendered without the value it quoted (not even a masked or cut one)
    assert caught.value.problem["detail"].endswith("failed: string and number cannot be added")
    assert SECRET[:6] not in caught.value.problem["detail"]


async def test_a_workflow_may_copy_a_secret_on_purpose(document: Doc) -> None:
    wf = document([{"copy": {"set": {"t": "${ $secrets.TOKEN }"}}}], use={"secrets": ["TOKEN"]})
    assert await run_workflow(wf, InProcessHost(secrets={"TOKEN": SECRET})) == {"t": SECRET}


async def test_basic_auth_from_secrets_is_masked_in_response_output(document: Doc, stub: Any) -> None:
    wf = document(
        [
            {
                "login": {
                    "call": "http",
                    "with": {
                        "method": "get",
                        "endpoint": {
                            "uri": "https://httpbin.org/basic-auth/ada/{pw}",
                            "authentication": {"basic": {"username": "ada", "password": "${ $secrets.PW }"}},
                        },
                        "output": "response",
                    },
                }
            }
        ],
        use={"secrets": ["PW"]},
    )
    out = await run_workflow(wf, stub.host(secrets={"PW": "pw1"}), {"pw": "pw1"})
    assert out["statusCode"] == 200
    assert out["request"]["headers"] == {"Authorization": "***"}
