"""Live rendering of execution events."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from stigmer.cli.output._render import Renderer, short
from stigmer.proto.v1 import execution_pb2


def _ev(type: str, **kw: object) -> execution_pb2.ExecutionEvent:
    data = kw.pop("data", None)
    ev = execution_pb2.ExecutionEvent(type=type, **kw)  # type: ignore[arg-type]
    if data is not None:
        value = struct_pb2.Value()
        json_format.ParseDict(data, value)  # type: ignore[arg-type]
        ev.data.CopyFrom(value)
    return ev


def _render(*events: execution_pb2.ExecutionEvent) -> str:
    out = io.StringIO()
    renderer = Renderer(out)
    for ev in events:
        renderer.event(ev)
    renderer.end_text()
    return out.getvalue()


def test_workflow_tasks() -> None:
    text = _render(
        _ev("phase", phase=execution_pb2.PHASE_RUNNING),
        _ev("task.started", subject="/do/0/greet"),
        _ev("task.completed", subject="/do/0/greet"),
        _ev("task.failed", subject="/do/1/fetch", text="HTTP 500"),
        _ev("phase", phase=execution_pb2.PHASE_FAILED),
    )
    lines = text.splitlines()
    assert lines[0] == "phase RUNNING"
    assert lines[1].endswith("greet") and "/do/0" not in lines[1]
    assert "fetch: HTTP 500" in lines[3]
    assert lines[4] == "phase FAILED"
    assert "\033[" not in text  # no colour when not a terminal


def test_agent_text_streams_inline_then_tools() -> None:
    text = _render(
        _ev("text.delta", text="Hel"),
        _ev("text.delta", text="lo"),
        _ev("tool.call", subject="call_1", data={"tool": "search", "arguments": {"q": "x"}}),
        _ev("tool.result", subject="call_1", data={"result": "found"}),
        _ev("text.delta", text="Done."),
        _ev("message.assistant", text="Hello Done."),
    )
    lines = text.splitlines()
    assert lines[0] == "Hello"
    assert "search" in lines[1] and '{"q":"x"}' in lines[1]
    assert "found" in lines[2]
    assert lines[3] == "Done."
    assert len(lines) == 4  # the final message is not repeated after streaming


def test_assistant_message_without_streaming_is_printed() -> None:
    assert _render(_ev("message.assistant", text="Full answer")).strip() == "Full answer"


def test_approvals_and_unknown_events() -> None:
    text = _render(
        _ev("approval.requested", subject="call_1", data={"tool": "create_issue"}),
        _ev("approval.resolved", subject="call_1", data={"approved": False}, text="too risky"),
        _ev("usage", data={"inputTokens": 3}),
        _ev("custom.thing", subject="s", text="t"),
    )
    lines = text.splitlines()
    assert "approval requested: create_issue" in lines[0]
    assert "rejected" in lines[1] and "too risky" in lines[1]
    assert lines[2] == "custom.thing s t"
    assert len(lines) == 3


def test_short() -> None:
    assert short({"a": 1}) == '{"a":1}'
    assert short("x" * 300, 10) == "x" * 9 + "…"
    assert short("a\n  b") == "a b"


class _Tty(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def test_colour_on_a_terminal_unless_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    out = _Tty()
    Renderer(out).event(_ev("task.completed", subject="/do/0/greet"))
    assert "\033[32m" in out.getvalue() and "✓ greet" in out.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    plain = _Tty()
    Renderer(plain).event(_ev("task.completed", subject="/do/0/greet"))
    assert plain.getvalue() == "✓ greet\n"


def test_ascii_markers_when_the_stream_is_not_utf8() -> None:
    class Latin(io.StringIO):
        encoding = "latin-1"

    out = Latin()
    Renderer(out).event(_ev("task.started", subject="/do/0/greet"))
    assert out.getvalue() == "> greet\n"


class _Utf8(io.StringIO):
    encoding = "utf-8"


def _fancy(*events: execution_pb2.ExecutionEvent, report_follows: bool = False) -> str:
    out = _Utf8()
    renderer = Renderer(out, report_follows=report_follows)
    for ev in events:
        renderer.event(ev)
    return out.getvalue()


_COMM: dict[str, Any] = {
    "type": "https://serverlessworkflow.io/spec/1.0.0/errors/communication",
    "title": "Communication Error",
    "status": 503,
    "detail": "GET http://127.0.0.1:9/x failed: ConnectError: refused",
    "instance": "/do/0/probe/try/0/get",
}


def test_a_retry_says_which_attempt_when_and_why() -> None:
    text = _fancy(
        _ev(
            "task.retried",
            subject="/do/0/probe",
            text="probe",  # older runners wrote the task name here: the data says it
            data={"attempt": 1, "maxAttempts": 3, "delay": 0.2, "error": _COMM},
        ),
        _ev("task.retried", subject="/do/0/probe", data={"attempt": 2, "delay": 1.5, "error": {}}),
    )
    assert text.splitlines() == [
        "↻ probe: retry 1/3 in 0.2s (communication error)",
        "↻ probe: retry 2 in 1.5s",
    ]


def test_a_failure_detail_is_not_repeated_on_every_line() -> None:
    """The detail is said once, by the report at the end (or the FAILED phase line in logs)."""
    events = (
        _ev("task.failed", subject="/do/0/probe/try/0/get", text=_COMM["detail"], data=_COMM),
        _ev("task.failed", subject="/do/0/probe", text=_COMM["detail"], data=_COMM),
        _ev("phase", phase=execution_pb2.PHASE_FAILED, text=_COMM["detail"]),
    )
    assert _fancy(*events, report_follows=True).splitlines() == [
        "✗ get (communication error)",
        "✗ probe (communication error)",
        "phase FAILED",
    ]
    logs = _render(*events)  # `execution logs`: no report follows, the phase line says it once
    assert logs.count(_COMM["detail"]) == 1
    assert logs.splitlines()[-1] == f"phase FAILED: {_COMM['detail']}"


def test_each_for_iteration_has_its_own_line() -> None:
    text = _fancy(
        _ev("task.started", subject="/do/0/each", text="each"),
        _ev("task.started", subject="/do/0/each/for/0", text="each[0]"),
        _ev("task.completed", subject="/do/0/each/for/0", text="each[0]"),
        _ev("task.started", subject="/do/0/each/for/1"),
        _ev("task.completed", subject="/do/0/each/for/1"),
    )
    assert text.splitlines() == ["▶ each", "▶ each[0]", "✓ each[0]", "▶ each[1]", "✓ each[1]"]


def test_timestamps_start_each_line_and_each_streamed_text() -> None:
    from google.protobuf import timestamp_pb2

    def at(ms: int) -> timestamp_pb2.Timestamp:
        stamp = timestamp_pb2.Timestamp()
        stamp.FromMilliseconds(1_796_470_704_000 + ms)
        return stamp

    out = _Utf8()
    renderer = Renderer(out, timestamps=True)
    for ev in (
        _ev("task.started", subject="/do/0/greet", time=at(5)),
        _ev("text.delta", text="Hel", time=at(120)),
        _ev("text.delta", text="lo", time=at(130)),
        _ev("task.completed", subject="/do/0/greet", time=at(1999)),
    ):
        renderer.event(ev)
    assert out.getvalue().splitlines() == [
        "2026-12-05T11:38:24.005Z ▶ greet",
        "2026-12-05T11:38:24.120Z Hello",
        "2026-12-05T11:38:25.999Z ✓ greet",
    ]


def test_the_status_line_is_wiped_before_a_prompt_and_by_close() -> None:
    import time

    out = _Utf8()
    renderer = Renderer(out, live_status=True)
    renderer.event(_ev("task.started", subject="/do/0/ask", text="ask"))
    deadline = time.monotonic() + 5
    while "ask running… 1s" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert re.search(r"\r\x1b\[K. ask running… 1s", out.getvalue())
    renderer.hold()
    held = out.getvalue()
    assert held.endswith("\r\x1b[K")
    time.sleep(0.5)
    assert out.getvalue() == held, "nothing is drawn while a person is asked"
    renderer.event(_ev("task.completed", subject="/do/0/ask", text="ask"))
    renderer.close()
    assert out.getvalue().endswith("✓ ask\n")
