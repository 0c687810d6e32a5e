"""Issue 17, items 1–4, written from the DSL 1.0.3 reference and schema:

- a ``duration`` may be a runtime expression ("DurationExpression" in ``schema/workflow.yaml``):
  ``timeout.after`` (task, workflow, ``use.timeouts``), ``retry.delay``, ``retry.jitter.from/to``,
  ``retry.limit.duration`` and ``retry.limit.attempt.duration``;
- "A ``listen`` task produces a sequentially ordered array of all the events it has consumed, and
  potentially transformed using ``foreach.output.as``"; ``listen.read`` (``data`` by default,
  ``envelope``, ``raw``) says how events are read — for the output, ``until`` and ``foreach``;
- ``$workflow.id`` is the id of the running workflow instance, never empty.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from stigmer.runner.workflow import InProcessHost, WorkflowError, error_type, run_workflow

Doc = Callable[..., dict[str, Any]]
COMM = "https://serverlessworkflow.io/spec/1.0.0/errors/communication"


def flaky(retry: Any) -> dict[str, Any]:
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


@pytest.fixture
async def clock(clock_host: Any) -> AsyncIterator[Callable[..., Any]]:
    """``clock_host`` whose hosts (and their HTTP clients) are closed after the test."""
    made: list[InProcessHost] = []

    def make(**kwargs: Any) -> Any:
        made.append(clock_host(**kwargs))
        return made[-1]

    yield make
    for host in made:
        await host.aclose()


# ------------------------------------------------------------------ 1. duration expressions
async def test_retry_delay_written_as_an_expression_is_evaluated(
    document: Doc, stub: Any, clock: Any
) -> None:
    stub.flaky["/echo"] = [503, 503]
    host = clock()
    wf = document([flaky({"delay": '${ "PT\\(.delay)S" }', "limit": {"attempt": {"count": 5}}})])
    result = await run_workflow(wf, host, {"delay": 3})
    assert result["method"] == "GET"
    assert host.sleeps == [3.0, 3.0]


async def test_retry_delay_expression_sees_the_error(document: Doc, stub: Any, clock: Any) -> None:
    stub.flaky["/echo"] = [503]
    host = clock()
    delay = '${ if $error.status == 503 then {seconds: 7} else "PT1S" end }'
    await run_workflow(document([flaky({"delay": delay})]), host)
    assert host.sleeps == [7.0]


async def test_retry_jitter_and_limits_written_as_expressions(document: Doc, stub: Any, clock: Any) -> None:
    stub.flaky["/echo"] = [503] * 10
    host = clock(jitter=0.5)
    policy = {
        "delay": "${ .delay }",
        "jitter": {"from": '${ "PT\\(.low)S" }', "to": '${ "PT\\(.high)S" }'},
        "limit": {"duration": "${ .budget }"},
    }
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(
            document([flaky(policy)]), host, {"delay": "PT2S", "low": 0, "high": 2, "budget": "PT7S"}
        )
    assert caught.value.status == 503
    assert host.sleeps == [3.0, 3.0]  # 2 s + jitter 0..2 s at 0.5; a third retry would end past 7 s


async def test_reusable_retry_policy_with_an_expression_delay(document: Doc, stub: Any, clock: Any) -> None:
    stub.flaky["/echo"] = [503]
    host = clock()
    task = flaky("quick")
    wf = document([task], use={"retries": {"quick": {"delay": "${ {milliseconds: .ms} }"}}})
    await run_workflow(wf, host, {"ms": 250})
    assert host.sleeps == [0.25]


async def test_retry_attempt_duration_expression_bounds_each_attempt(document: Doc, clock_host: Any) -> None:
    wf = document(
        [
            {
                "t": {
                    "try": [{"slow": {"wait": "PT1M"}}],
                    "catch": {
                        "errors": {"with": {"type": error_type("timeout")}},
                        "retry": {"limit": {"attempt": {"duration": '${ "PT\\(.per)S" }', "count": 0}}},
                        "do": [{"note": {"set": {"gaveUp": True}}}],
                    },
                }
            }
        ]
    )
    host = clock_host()
    assert await run_workflow(wf, host, {"per": 2}) == {"gaveUp": True}
    assert 2.0 in host.sleeps  # the attempt's timer


async def test_task_timeout_after_written_as_an_expression(document: Doc, clock_host: Any) -> None:
    wf = document(
        [
            {
                "t": {
                    "try": [{"slow": {"wait": "PT1M", "timeout": {"after": '${ "PT\\(.limit)S" }'}}}],
                    "catch": {
                        "errors": {"with": {"type": error_type("timeout")}},
                        "do": [{"note": {"set": {"timedOut": "${ $error.detail }"}}}],
                    },
                }
            }
        ]
    )
    assert await run_workflow(wf, clock_host(), {"limit": 2}) == {
        "timedOut": "did not finish within 2 seconds"
    }


async def test_task_timeout_expression_that_leaves_time_lets_the_task_finish(
    document: Doc, clock_host: Any
) -> None:
    wf = document([{"quick": {"wait": "PT1S", "timeout": {"after": "${ {minutes: .m} }"}}}])
    assert await run_workflow(wf, clock_host(), {"m": 5}) == {"m": 5}


async def test_workflow_timeout_after_written_as_an_expression(document: Doc) -> None:
    wf = document(
        [{"slow": {"wait": {"seconds": 30}}}], timeout={"after": '${ "PT\\($workflow.input.limit)S" }'}
    )
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(wf, InProcessHost(), {"limit": 0.02})
    assert caught.value.type == error_type("timeout")
    assert caught.value.instance == "/"


async def test_reusable_timeout_written_as_an_expression(document: Doc, clock_host: Any) -> None:
    wf = document(
        [
            {
                "t": {
                    "try": [{"slow": {"wait": "PT1M", "timeout": "short"}}],
                    "catch": {
                        "errors": {"with": {"type": error_type("timeout")}},
                        "do": [{"n": {"set": {"ok": 1}}}],
                    },
                }
            }
        ],
        use={"timeouts": {"short": {"after": "${ .after }"}}},
    )
    host = clock_host()
    assert await run_workflow(wf, host, {"after": "PT3S"}) == {"ok": 1}
    assert min(host.sleeps) == 3.0


async def test_a_duration_expression_that_yields_no_duration_is_a_clear_error(document: Doc) -> None:
    wf = document([{"quick": {"set": {"a": 1}, "timeout": {"after": "${ .nope }"}}}])
    with pytest.raises(WorkflowError) as caught:
        await run_workflow(wf, InProcessHost(), {})
    assert "is not a duration" in str(caught.value.problem["detail"])
    assert "${ .nope }" in str(caught.value.problem["detail"])
    assert caught.value.instance == "/do/0/quick"


# ------------------------------------------------------------------ 2./3. listen
def publish(host: InProcessHost, *events: dict[str, Any]) -> None:
    for n, event in enumerate(events):
        host.publish({"specversion": "1.0", "id": f"e{n}", "source": "test", **event})


async def test_listen_foreach_outputs_the_ordered_array_of_transformed_events(document: Doc) -> None:
    host = InProcessHost()
    publish(host, *({"type": "tick", "data": {"n": n}} for n in range(4)))
    wf = document(
        [
            {
                "ticks": {
                    "listen": {"to": {"any": [], "until": "( . | length ) >= 3"}},
                    "foreach": {
                        "item": "tick",
                        "at": "i",
                        "do": [{"double": {"set": {"n2": "${ $tick.n * 2 }", "at": "${ $i }"}}}],
                        "output": {"as": "${ .n2 + .at }"},
                    },
                }
            }
        ]
    )
    assert await run_workflow(wf, host) == [0, 3, 6]


async def test_listen_foreach_without_do_transforms_each_event(document: Doc) -> None:
    host = InProcessHost()
    publish(host, {"type": "a", "data": {"v": 1}}, {"type": "b", "data": {"v": 2}})
    wf = document(
        [
            {
                "both": {
                    "listen": {"to": {"all": [{"with": {"type": "a"}}, {"with": {"type": "b"}}]}},
                    "foreach": {"output": {"as": "${ .v * 10 }"}},
                }
            }
        ]
    )
    assert await run_workflow(wf, host) == [10, 20]


async def test_listen_foreach_export_updates_the_context_per_event(document: Doc) -> None:
    host = InProcessHost()
    publish(host, *({"type": "tick", "data": n} for n in (5, 6)))
    wf = document(
        [
            {
                "ticks": {
                    "listen": {"to": {"any": [], "until": "length >= 2"}},
                    "foreach": {"export": {"as": "${ $context + {last: .} }"}},
                }
            },
            {"report": {"set": {"events": "${ . }", "last": "${ $context.last }"}}},
        ]
    )
    assert await run_workflow(wf, host) == {"events": [5, 6], "last": 6}


async def test_listen_any_until_condition_reads_event_data(document: Doc) -> None:
    host = InProcessHost()
    publish(host, *({"type": "vitals", "data": {"temperature": t}} for t in (36, 37, 39, 35)))
    wf = document(
        [
            {
                "fever": {
                    "listen": {
                        "to": {"any": [{"with": {"type": "vitals"}}], "until": "${ any(.temperature > 38) }"}
                    }
                }
            }
        ]
    )
    assert await run_workflow(wf, host) == [{"temperature": 36}, {"temperature": 37}, {"temperature": 39}]


async def test_listen_until_condition_reads_envelopes_when_read_is_envelope(document: Doc) -> None:
    host = InProcessHost()
    publish(host, {"type": "a", "data": 1}, {"type": "stop", "data": 2}, {"type": "a", "data": 3})
    wf = document(
        [
            {
                "l": {
                    "listen": {"to": {"any": [], "until": '${ any(.type == "stop") }'}, "read": "envelope"},
                    "output": {"as": "${ [.[].data] }"},
                }
            }
        ]
    )
    assert await run_workflow(wf, host) == [1, 2]


async def test_listen_read_raw_gives_the_data_as_written(document: Doc) -> None:
    host = InProcessHost()
    publish(
        host,
        {"type": "j", "data": {"a": 1}},
        {"type": "t", "datacontenttype": "text/plain", "data": "hello"},
    )
    wf = document(
        [
            {
                "l": {
                    "listen": {
                        "to": {"all": [{"with": {"type": "j"}}, {"with": {"type": "t"}}]},
                        "read": "raw",
                    },
                    "foreach": {"output": {"as": "${ type }"}},
                }
            },
        ]
    )
    assert await run_workflow(wf, host) == ["string", "string"]


async def test_listen_read_raw_output(document: Doc) -> None:
    host = InProcessHost()
    publish(host, {"type": "j", "data": {"a": 1}})
    wf = document([{"l": {"listen": {"to": {"one": {"with": {"type": "j"}}}, "read": "raw"}}}])
    (raw,) = await run_workflow(wf, host)
    assert json.loads(raw) == {"a": 1}


async def test_listen_foreach_items_follow_read_envelope(document: Doc) -> None:
    host = InProcessHost()
    publish(host, {"type": "a", "data": 1})
    wf = document(
        [
            {
                "l": {
                    "listen": {"to": {"one": {"with": {"type": "a"}}}, "read": "envelope"},
                    "foreach": {"item": "e", "output": {"as": '${ $e.type + ":" + (.data | tostring) }'}},
                }
            }
        ]
    )
    assert await run_workflow(wf, host) == ["a:1"]


# ------------------------------------------------------------------ 4. $workflow.id
async def test_workflow_id_is_generated_when_none_is_given(document: Doc) -> None:
    wf = document([{"who": {"set": {"id": "${ $workflow.id }"}}}])
    first = (await run_workflow(wf, InProcessHost()))["id"]
    second = (await run_workflow(wf, InProcessHost()))["id"]
    assert re.fullmatch(r"[a-z]+_[0-9a-z]{26}", first), first
    assert first != second


async def test_a_given_workflow_id_is_kept(document: Doc) -> None:
    wf = document([{"who": {"set": {"id": "${ $workflow.id }"}}}])
    assert await run_workflow(wf, InProcessHost(), workflow_id="wex_given") == {"id": "wex_given"}


async def test_listen_forever_runs_foreach_for_each_event_as_it_arrives(document: Doc) -> None:
    """The spec's `listen-to-any-forever-foreach` example: `until` never holds, yet each event is
    processed by `foreach.do` when consumed (FIFO), not after the listening ends."""
    host = InProcessHost()
    publish(host, {"type": "gossip", "data": "a"}, {"type": "gossip", "data": "b"})
    wf = document(
        [
            {
                "bounded": {
                    "try": [
                        {
                            "listenToGossips": {
                                "listen": {"to": {"any": [], "until": "${ false }"}},
                                "foreach": {
                                    "item": "event",
                                    "at": "i",
                                    "do": [{"note": {"set": {"seen": "${ $event }", "at": "${ $i }"}}}],
                                    "export": {"as": "${ $context + {seen: (($context.seen // []) + [.])} }"},
                                },
                                "timeout": {"after": {"milliseconds": 300}},
                            }
                        }
                    ],
                    "catch": {
                        "errors": {"with": {"type": error_type("timeout")}},
                        "do": [{"report": {"set": "${ $context.seen }"}}],
                    },
                }
            }
        ]
    )
    assert await run_workflow(wf, host) == [{"seen": "a", "at": 0}, {"seen": "b", "at": 1}]


async def test_listen_any_until_waits_for_one_event_at_least(document: Doc) -> None:
    """`any` waits "for any of the defined events before resuming": an `until` that already holds
    still consumes one event (as sdk-java's runtime does)."""
    host = InProcessHost()
    publish(host, {"type": "a", "data": 1}, {"type": "a", "data": 2})
    wf = document([{"l": {"listen": {"to": {"any": [], "until": "${ true }"}}}}])
    assert await run_workflow(wf, host) == [1]


async def test_a_listen_resumed_from_a_checkpoint_runs_foreach_do_from_its_first_task(document: Doc) -> None:
    """Consumed events are not checkpointed, so a resumed `listen` starts over: a position saved
    inside `foreach.do` for an earlier event must not skip tasks of the next one."""
    from stigmer.runner.workflow import Interpreter

    saved: list[dict[str, Any]] = []

    async def keep(state: Any) -> None:
        if "/do/0/l/foreach/do" in state["frames"]:
            saved.append(json.loads(json.dumps(state)))

    wf = document(
        [
            {
                "l": {
                    "listen": {"to": {"one": {"with": {"type": "a"}}}},
                    "foreach": {
                        "do": [
                            {"first": {"set": {"first": "${ $item }"}}},
                            {"second": {"set": {"first": "${ .first }", "second": "${ $item }"}}},
                        ]
                    },
                }
            }
        ]
    )
    host = InProcessHost(on_checkpoint=keep)
    publish(host, {"type": "a", "data": "old"})
    assert await run_workflow(wf, host) == [{"first": "old", "second": "old"}]
    resumed = InProcessHost()
    publish(resumed, {"type": "a", "data": "new"})
    output = await Interpreter(wf, resumed).run(checkpoint=saved[0])
    assert output == [{"first": "new", "second": "new"}]
