"""try/catch, retry backoff and limits, raise, timeouts — on a virtual clock against the local stub."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from stigmer.runner.workflow import InProcessHost, WorkflowError, error_type, run_workflow

Doc = Callable[..., dict[str, Any]]
COMM = "https://serverlessworkflow.io/spec/1.0.0/errors/communication"


def flaky_call(**retry: Any) -> dict[str, Any]:
    return {
        "guarded": {
            "try": [
                {
                    "get": {
                        "call": "http",
                        "with": {"method": "get", "endpoint": "https://api.example.com/echo"},
                    }
                }
            ],
            "catch": {"errors": {"with": {"type": COMM, "status": 503}}, "retry": retry},
        }
    }


@pytest.mark.parametrize(
    ("backoff", "expected"),
    [
        ({"constant": {}}, [2.0, 2.0, 2.0]),
        ({"linear": {}}, [2.0, 4.0, 6.0]),
        ({"exponential": {}}, [2.0, 4.0, 8.0]),
    ],
)
async def test_retry_backoff(
    document: Doc, stub: Any, clock_host: Any, backoff: dict[str, Any], expected: list[float]
) -> None:
    stub.flaky["/echo"] = [503, 503, 503]
    host = clock_host()
    wf = document([flaky_call(delay={"seconds": 2}, backoff=backoff, limit={"attempt": {"count": 5}})])
    result = await run_workflow(wf, host)
    assert result["method"] == "GET"
    assert host.sleeps == expected
    retried = [payload for kind, _, _, payload in host.events if kind == "retried"]
    assert [r["attempt"] for r in retried] == [1, 2, 3]
    assert retried[0]["error"]["status"] == 503


async def test_retry_jitter_comes_from_the_host(document: Doc, stub: Any, clock_host: Any) -> None:
    stub.flaky["/echo"] = [503]
    host = clock_host(jitter=0.5)
    wf = document(
        [flaky_call(delay="PT1S", jitter={"from": {"milliseconds": 100}, "to": {"milliseconds": 300}})]
    )
    await run_workflow(wf, host)
    assert host.sleeps == [pytest.approx(1.2)]


async def test_retry_attempt_count_is_a_limit(document: Doc, stub: Any, clock_host: Any) -> None:
    stub.flaky["/echo"] = [503] * 10
    host = clock_host()
    wf = document([flaky_call(delay={"seconds": 1}, limit={"attempt": {"count": 2}})])
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(wf, host)
    assert caught.value.status == 503
    assert caught.value.instance == "/do/0/guarded/try/0/get"
    assert len([r for r in stub.requests if r["path"] == "/echo"]) == 3
    assert host.sleeps == [1.0, 1.0]


async def test_retry_total_duration_is_a_limit(document: Doc, stub: Any, clock_host: Any) -> None:
    stub.flaky["/echo"] = [503] * 10
    host = clock_host()
    wf = document([flaky_call(delay={"seconds": 4}, limit={"duration": {"seconds": 10}})])
    with pytest.raises(WorkflowError):
        await run_workflow(wf, host)
    assert host.sleeps == [4.0, 4.0]


async def test_retry_reference_and_when_conditions(document: Doc, stub: Any, clock_host: Any) -> None:
    stub.flaky["/echo"] = [503, 503]
    host = clock_host()
    task = flaky_call()
    task["guarded"]["catch"]["retry"] = "fast"
    wf = document(
        [task],
        use={"retries": {"fast": {"delay": {"milliseconds": 10}, "when": "${ $error.status == 503 }"}}},
    )
    assert (await run_workflow(wf, host))["method"] == "GET"
    assert host.sleeps == [0.01, 0.01]


async def test_catch_filter_mismatch_propagates(document: Doc, stub: Any) -> None:
    wf = document(
        [
            {
                "t": {
                    "try": [
                        {
                            "get": {
                                "call": "http",
                                "with": {"method": "get", "endpoint": "https://x.test/status/404"},
                            }
                        }
                    ],
                    "catch": {"errors": {"with": {"status": 500}}},
                }
            }
        ]
    )
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(wf, stub.host())
    assert caught.value.type == COMM
    assert caught.value.status == 404


async def test_catch_as_when_do_and_then(document: Doc) -> None:
    wf = document(
        [
            {
                "t": {
                    "try": [
                        {
                            "boom": {
                                "raise": {"error": {"type": "urn:app:oops", "status": 409, "title": "Oops"}}
                            }
                        }
                    ],
                    "catch": {
                        "as": "problem",
                        "when": "${ $problem.status == 409 }",
                        "exceptWhen": "${ .never == true }",
                        "do": [{"handle": {"set": {"caught": "${ $problem.title }", "input": "${ .v }"}}}],
                        "then": "last",
                    },
                }
            },
            {"skipped": {"set": {"skipped": True}}},
            {"last": {"set": {"result": "${ . }"}}},
        ]
    )
    assert await run_workflow(wf, InProcessHost(), {"v": 1}) == {"result": {"caught": "Oops", "input": 1}}


async def test_catch_except_when_lets_the_error_through(document: Doc) -> None:
    wf = document(
        [
            {
                "t": {
                    "try": [{"boom": {"raise": {"error": {"type": "urn:app:oops", "status": 409}}}}],
                    "catch": {"exceptWhen": "${ $error.status == 409 }"},
                }
            }
        ]
    )
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(wf, InProcessHost())
    assert caught.value.type == "urn:app:oops"


async def test_raise_reusable_error_with_expression_detail(document: Doc) -> None:
    wf = document(
        [{"stop": {"raise": {"error": "notImplemented"}}}],
        use={
            "errors": {
                "notImplemented": {
                    "type": "https://serverlessworkflow.io/errors/not-implemented",
                    "status": 500,
                    "title": "Not Implemented",
                    "detail": '${ "\\($workflow.definition.document.name) is not done" }',
                }
            }
        },
    )
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(wf, InProcessHost())
    assert caught.value.problem == {
        "type": "https://serverlessworkflow.io/errors/not-implemented",
        "status": 500,
        "title": "Not Implemented",
        "detail": "t is not done",
        "instance": "/do/0/stop",
    }


async def test_task_timeout_is_a_catchable_timeout_error(document: Doc, clock_host: Any) -> None:
    wf = document(
        [
            {
                "t": {
                    "try": [{"slow": {"wait": "PT1M", "timeout": {"after": {"seconds": 2}}}}],
                    "catch": {
                        "errors": {"with": {"type": error_type("timeout")}},
                        "do": [{"note": {"set": {"timedOut": "${ $error.instance }"}}}],
                    },
                }
            }
        ]
    )
    host = clock_host()
    assert await run_workflow(wf, host) == {"timedOut": "/do/0/t/try/0/slow"}


async def test_workflow_timeout_by_reference(document: Doc) -> None:
    wf = document(
        [{"slow": {"wait": {"seconds": 30}}}],
        use={"timeouts": {"short": {"after": {"milliseconds": 20}}}},
        timeout="short",
    )
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(wf, InProcessHost())
    assert caught.value.type == error_type("timeout")
    assert caught.value.status == 408
    assert caught.value.instance == "/"


async def test_wait_accepts_iso_inline_and_expression_durations(document: Doc, clock_host: Any) -> None:
    wf = document(
        [
            {"a": {"wait": "PT1M30S"}},
            {"b": {"wait": {"minutes": 1, "milliseconds": 500}}},
            {"c": {"wait": "P1DT1H"}},
            {"d": {"wait": "${ .pause }"}},
        ]
    )
    host = clock_host()
    assert await run_workflow(wf, host, {"pause": "PT2S"}) == {"pause": "PT2S"}
    assert host.sleeps == [90.0, 60.5, 90000.0, 2.0]


async def test_old_error_type_hosts_match_the_spec_types(document: Doc, stub: Any) -> None:
    old = "https://open-workflow-specification.org/dsl/errors/types/communication"
    wf = document(
        [
            {
                "t": {
                    "try": [
                        {
                            "get": {
                                "call": "http",
                                "with": {"method": "get", "endpoint": "https://x.test/status/502"},
                            }
                        }
                    ],
                    "catch": {
                        "errors": {"with": {"type": old, "status": 502}},
                        "as": "e",
                        "do": [{"s": {"set": {"t": "${ $e.type }"}}}],
                    },
                }
            }
        ]
    )
    assert await run_workflow(wf, stub.host()) == {"t": COMM}


async def test_retry_attempt_duration_limits_each_attempt(document: Doc, clock_host: Any) -> None:
    wf = document(
        [
            {
                "guarded": {
                    "try": [{"slow": {"wait": "PT10S"}}],
                    "catch": {
                        "errors": {"with": {"type": error_type("timeout")}},
                        "retry": {"delay": "PT1S", "limit": {"attempt": {"count": 1, "duration": "PT2S"}}},
                        "as": "e",
                        "do": [{"gaveUp": {"set": {"status": "${ $e.status }"}}}],
                    },
                }
            }
        ]
    )
    host = clock_host()
    assert await run_workflow(wf, host) == {"status": 408}
    retried = [payload["attempt"] for kind, _, _, payload in host.events if kind == "retried"]
    assert retried == [1]  # one retry, then catch.do once the attempts are used up
