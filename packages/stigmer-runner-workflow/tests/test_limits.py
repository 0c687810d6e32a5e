"""Per-execution limits in Lite (WorkflowRunner on a real LocalBackend), and jq with no environment.

Each limit is hit with its clear error; the defaults are not hit by ordinary workflows; jq's
``env``/``$ENV`` see nothing; arbitrary small jq programs end (a result or a clear error) within
the jq time limit."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stigmer.core import Backend, Limits, Redactor, parse_manifest
from stigmer.proto.v1 import backend_service_pb2 as svc
from stigmer.proto.v1 import execution_pb2, meta_pb2
from stigmer.runner.workflow import WorkflowRunner
from stigmer.runner.workflow._errors import WorkflowError
from stigmer.runner.workflow._expr import (
    evaluate,
    evaluate_field,
    guarded,
    template_needs,
    template_uses_secrets,
)
from stigmer.runner.workflow._jq_process import is_bounded
from stigmer.runner.workflow._limits import LIMIT_ERROR_TYPE, LimitExceeded

MASTER = "mk-3c1f9e0d2b7a4e55"
SMALL = Limits(jq_seconds=1.0, jq_memory_bytes=96 * 1024 * 1024)


async def run(
    backend: Backend, body: str, limits: Limits | None = None, input: Any = None
) -> execution_pb2.Execution:
    text = f"apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {{name: wf}}\nspec:\n{body}"
    for loaded in parse_manifest(text, "test.yaml"):
        await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
    spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="wf"))
    if input is not None:
        json_format.ParseDict(input, spec.input)
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    runner = WorkflowRunner(redactor=Redactor(), limits=limits or Limits())
    return await runner.execute(backend, created.metadata.id)


def assert_limit(done: execution_pb2.Execution, title: str, setting: str) -> None:
    assert execution_pb2.Phase.Name(done.status.phase) == "PHASE_FAILED", done.status
    error = done.status.error
    assert (error.type, error.title, error.status) == (LIMIT_ERROR_TYPE, title, 429)
    assert setting in error.detail and "\n" not in error.detail


DOC = "  document: {dsl: 1.0.0, namespace: t, name: wf, version: 1.0.0}\n"
SELF_LOOP = DOC + "  do:\n    - again: {set: {n: 1}, then: again}\n"


# ------------------------------------------------------------------ jq sees no environment
ENV_PROBES = [
    "$ENV",
    "env",
    "$ENV.STIGMER_MASTER_KEY",
    "env.STIGMER_MASTER_KEY",
    '$ENV | with_entries(select(.key|startswith("STIGMER")))',
    "def f: $ENV; f",
    "def env: $ENV; env",
    "[$ENV | paths]",
    '$ENV | getpath(["STIGMER_MASTER_KEY"])',
    "[$ENV[]]",
    "[env | to_entries[] | .value]",
    "$__loc__ | $ENV",
    "try input catch $ENV",
    "[inputs] | $ENV",
    "[range(1)] | env",
]


@pytest.mark.parametrize("probe", ENV_PROBES)
def test_jq_sees_no_environment(monkeypatch: pytest.MonkeyPatch, probe: str) -> None:
    monkeypatch.setenv("STIGMER_MASTER_KEY", MASTER)
    result = evaluate(probe, {"a": 1}, {})
    assert MASTER not in repr(result)
    assert result in ({}, None, [])


async def test_env_exfiltration_through_a_workflow_returns_nothing(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STIGMER_MASTER_KEY", MASTER)
    done = await run(
        backend,
        DOC
        + "  do:\n    - leak:\n        set:\n"
        + "          a: '${ $ENV | with_entries(select(.key|startswith(\"STIGMER\"))) }'\n"
        + "          b: '${ env.STIGMER_MASTER_KEY }'\n"
        + "          c: '${ [env[]] | length }'\n",
    )
    assert execution_pb2.Phase.Name(done.status.phase) == "PHASE_SUCCEEDED", done.status.error
    assert json_format.MessageToDict(done.status.output) == {"a": {}, "b": None, "c": 0}


def test_jq_modules_cannot_be_loaded(tmp_path: Path) -> None:
    (tmp_path / "data.json").write_text('{"k": "from-a-file"}')
    with pytest.raises(WorkflowError, match="invalid jq expression"):
        evaluate(f'import "{tmp_path}/data" as $d; $d', None, {})


# ------------------------------------------------------------------------- task and event limits
async def test_a_task_whose_then_names_itself_ends_with_the_task_limit(backend: Backend) -> None:
    started = time.monotonic()
    done = await run(backend, SELF_LOOP, Limits(tasks=300))
    assert time.monotonic() - started < 20
    assert_limit(done, "Task limit exceeded", "STIGMER_LIMIT_TASKS")
    assert "300 tasks" in done.status.error.detail
    assert done.status.error.instance == "/do/0/again"
    assert done.status.last_sequence < 700  # two events per task, then the failure


async def test_try_catch_does_not_catch_a_limit(backend: Backend) -> None:
    body = (
        DOC
        + "  do:\n    - guard:\n        try:\n          - again: {set: {n: 1}, then: again}\n"
        + "        catch:\n          do:\n            - swallowed: {set: {caught: true}}\n"
    )
    done = await run(backend, body, Limits(tasks=50))
    assert_limit(done, "Task limit exceeded", "STIGMER_LIMIT_TASKS")


async def test_endless_retries_end_with_the_event_limit(backend: Backend) -> None:
    body = (
        DOC
        + "  do:\n    - guard:\n        try:\n          - boom: {raise: {error: {type: https://e.x/boom, status: 500}}}\n"
        + "        catch:\n          retry: {limit: {attempt: {count: 100000000}}}\n"
    )
    done = await run(backend, body, Limits(events=120))
    assert_limit(done, "Event limit exceeded", "STIGMER_LIMIT_EVENTS")
    assert done.status.last_sequence <= 125


async def test_an_oversized_event_ends_with_the_event_size_limit(backend: Backend) -> None:
    body = DOC + "  do:\n    - big: {set: {text: '${ \"x\" * 5000 }'}}\n"
    done = await run(backend, body, Limits(event_bytes=2000))
    assert_limit(done, "Event size limit exceeded", "STIGMER_LIMIT_EVENT_BYTES")
    assert "2000 bytes" in done.status.error.detail
    assert done.status.error.instance == "/do/0/big"


async def test_an_oversized_output_ends_with_the_output_limit(backend: Backend) -> None:
    body = DOC + "  do:\n    - big: {set: {text: '${ \"x\" * 5000 }'}}\n"
    done = await run(backend, body, Limits(output_bytes=3000))
    assert_limit(done, "Output size limit exceeded", "STIGMER_LIMIT_OUTPUT_BYTES")
    body = DOC + "  do:\n    - a: {set: {text: abc}}\n    - b: {set: {a: '${ .text }', b: '${ .text }'}}\n"
    done = await run(backend, body, Limits(output_bytes=20))
    assert_limit(done, "Output size limit exceeded", "STIGMER_LIMIT_OUTPUT_BYTES")
    assert "the workflow's output is" in done.status.error.detail


# --------------------------------------------------------------------------- jq time and memory
async def test_repeat_ends_with_a_jq_limit_within_seconds(backend: Backend) -> None:
    started = time.monotonic()
    done = await run(backend, DOC + "  do:\n    - grow: {set: {all: '${ [repeat(1)] }'}}\n", SMALL)
    assert time.monotonic() - started < 10
    assert execution_pb2.Phase.Name(done.status.phase) == "PHASE_FAILED"
    assert done.status.error.title in ("jq time limit exceeded", "jq memory limit exceeded")
    assert done.status.error.type == LIMIT_ERROR_TYPE


def test_a_long_evaluation_ends_with_the_jq_time_limit() -> None:
    started = time.monotonic()
    with pytest.raises(LimitExceeded, match=r"ran longer than 0\.5 seconds") as raised:
        evaluate("last(range(1e12))", None, {}, Limits(jq_seconds=0.5))
    assert time.monotonic() - started < 3
    assert raised.value.problem["limit"] == "jq_seconds"
    assert evaluate("[range(5)] | add", None, {}, Limits(jq_seconds=0.5)) == 10  # a fresh jq process


def test_a_large_allocation_ends_with_the_jq_memory_limit() -> None:
    with pytest.raises(LimitExceeded, match="more than 67108864 bytes") as raised:
        evaluate('"x" * 300000000 | length', None, {}, Limits(jq_memory_bytes=64 * 1024 * 1024))
    assert raised.value.problem["title"] == "jq memory limit exceeded"


def test_a_huge_result_ends_with_the_output_limit() -> None:
    with pytest.raises(LimitExceeded, match="over the limit of 1000 bytes"):
        evaluate("[range(1000)]", None, {}, Limits(output_bytes=1000))


def test_errors_of_guarded_expressions_read_like_in_process_ones() -> None:
    with pytest.raises(WorkflowError, match=r"jq expression '\[\.\[\] \| error\(\"boom\"\)\]' failed: boom"):
        evaluate('[.[] | error("boom")]', [1], {})
    with pytest.raises(WorkflowError, match=r"jq expression '\.a \+ 1' failed: .*cannot be added"):
        evaluate(".a + 1", {"a": "text"}, {})


def test_ordinary_expressions_run_in_process_and_loops_do_not() -> None:
    for body in [
        ".total + 1",
        ".n - 1",
        "$input.id",
        "{total: 0}",
        ".a | length",
        '.x == "y" and .z',
        ".a // 3",
    ]:
        assert is_bounded(body), body
    for body in [
        "[repeat(1)]",
        "[range(10)]",
        ". - .",
        ".a - .b",
        ".[]",
        "..",
        '"x" * 3',
        '"\\(.a)"',
        "def f: f; f",
        "{a}",
    ]:
        assert not is_bounded(body), body
    assert evaluate_field("${ [.[] | . * 2] }", [1, 2], {}) == [2, 4]  # a guarded one, same result


def test_a_template_is_read_in_one_walk_as_its_two_questions_would() -> None:
    for template in [
        "plain text",
        "${ .a + 1 }",
        "${ [range(10)] }",
        "${ $secrets.token }",
        "$secrets.token",  # not an expression: a literal string
        {"a": "${ .a }", "b": ["x", {"c": "${ .secrets.key }"}]},
        {"a": ["${ [repeat(1)] }", "${ .a }"], "n": 3, "z": None},
        [{"deep": [['${ $secrets["k"] | length }']]}],
        {},
        7,
    ]:
        assert template_needs(template) == (template_uses_secrets(template), guarded(template)), template


JQ_ATOMS = [".", "1", '"ab"', "[]", "{}", "null", ".a", "$x", "range(3)", "repeat(.)", "recurse", "..", "env"]
JQ_FORMS = [
    "[{0}]",
    "{0} | {1}",
    "{0}, {1}",
    "{0} + {1}",
    "{0} * {1}",
    "[limit(5; {0})]",
    "first({0})",
    "reduce {0} as $i (0; . + 1)",
    "{0} as $y | {1}",
    "[.[]?]",
    "({0} | tostring) * 3",
    "def f: {0} | f; f",
    "if {0} then {1} else {0} end",
    "try {0} catch {1}",
    "[{0}] | length",
]


def _program(draw: Any, depth: int) -> str:
    if depth == 0:
        return str(draw(st.sampled_from(JQ_ATOMS)))
    form = draw(st.sampled_from(JQ_FORMS))
    return str(form.format(_program(draw, depth - 1), _program(draw, depth - 1)))


@st.composite
def programs(draw: Any) -> str:
    return _program(draw, draw(st.integers(0, 3)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(program=programs(), data=st.sampled_from([None, 1, "s", [1, 2], {"a": [1, {"a": 2}]}]))
def test_small_jq_programs_end_within_the_limit(program: str, data: Any) -> None:
    limits = Limits(jq_seconds=0.5, jq_memory_bytes=96 * 1024 * 1024, output_bytes=1024 * 1024)
    started = time.monotonic()
    try:
        evaluate(program, data, {"x": 1}, limits)
    except LimitExceeded as error:
        assert error.problem["title"].endswith("limit exceeded")
    except WorkflowError as error:
        assert error.problem["type"].endswith("/expression")
        assert str(error.problem["detail"]).startswith(("jq expression", "invalid jq expression"))
    assert time.monotonic() - started < 0.5 + 2.5


# ------------------------------------------------------------------------- defaults and settings
async def test_ordinary_workflows_stay_far_below_the_default_limits(backend: Backend) -> None:
    body = (
        DOC
        + "  do:\n    - start: {set: {total: 0, sum: 0}}\n"
        + "    - loop:\n        for: {each: n, in: '${ [range(2000)] }'}\n        do:\n"
        + "          - add:\n              set:\n                total: '${ .total + 1 }'\n"
        + "                sum: '${ .sum + ([range($n % 4)] | map(. * 2) | add // 0) }'\n"
    )
    done = await run(backend, body)
    assert execution_pb2.Phase.Name(done.status.phase) == "PHASE_SUCCEEDED", done.status.error
    assert json_format.MessageToDict(done.status.output) == {"total": 2000, "sum": 500 * (0 + 0 + 2 + 6)}


async def test_the_runner_reads_its_limits_from_its_settings(
    backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.yaml").write_text("limits:\n  tasks: 40\n  events: 9999\n")
    monkeypatch.setenv("STIGMER_HOME", str(home))
    monkeypatch.setenv("STIGMER_LIMIT_EVENTS", "777")
    runner = WorkflowRunner(redactor=Redactor())
    assert (runner.limits.tasks, runner.limits.events) == (40, 777)
    text = f"apiVersion: stigmer.ai/v1\nkind: Workflow\nmetadata: {{name: wf}}\nspec:\n{SELF_LOOP}"
    for loaded in parse_manifest(text, "test.yaml"):
        await backend.apply(svc.ApplyRequest(resource=loaded.resource))  # type: ignore[arg-type]
    spec = execution_pb2.ExecutionSpec(target=meta_pb2.ResourceRef(kind="Workflow", name="wf"))
    created = await backend.create_execution(svc.CreateExecutionRequest(spec=spec))
    done = await runner.execute(backend, created.metadata.id)
    assert_limit(done, "Task limit exceeded", "STIGMER_LIMIT_TASKS")
    assert "40 tasks" in done.status.error.detail


@pytest.mark.parametrize(
    ("body", "limits", "title"),
    [
        (DOC + "  do:\n    - spin: {set: {n: '${ last(range(1e12)) }'}}\n", SMALL, "jq time limit exceeded"),
        (SELF_LOOP, Limits(tasks=30000), "Task limit exceeded"),
    ],
)
async def test_the_event_loop_stays_free_while_a_heavy_run_computes(
    backend: Backend, body: str, limits: Limits, title: str
) -> None:
    gaps: list[float] = []

    async def tick() -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.02)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.ensure_future(tick())
    try:
        done = await run(backend, body, limits)
    finally:
        ticker.cancel()
    assert done.status.error.title == title
    assert len(gaps) > 20 and max(gaps) < 0.5  # other coroutines (a server's calls) kept running


def test_a_forked_process_uses_jq_processes_of_its_own() -> None:
    from stigmer.runner.workflow import _jq_process

    while _jq_process._IDLE:  # start from an empty pool
        _jq_process._IDLE.pop().end()
    assert evaluate("[.[] | . + 1]", [1], {}) == [2]  # leaves one idle jq process in the pool
    parents = {child.process.pid for child in _jq_process._IDLE}
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the forked process: the pool's jq processes belong to its parent
        try:
            result = evaluate("[.[] | . * 3]", [2], {})
            used = [child.process.pid for child in _jq_process._IDLE]
            os.write(writer, json.dumps([result, used]).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader) as answer:
        result, used = json.loads(answer.read())
    os.waitpid(pid, 0)
    assert result == [6]
    assert set(used) - parents  # it started its own instead of sharing its parent's pipes
    assert evaluate("[.[] | . + 1]", [5], {}) == [6]  # the parent's own process still answers
