"""Tables, ages and colour rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from stigmer.cli.output._format import age, color_enabled, print_table


def test_plain_table_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(["NAME", "VERSION"], [["alpha", "1"], ["b", "12"]])
    out = capsys.readouterr().out
    assert out == "NAME   VERSION\nalpha  1\nb      12\n"


def test_empty_table_message_goes_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    print_table(["NAME"], [], empty="no agents")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == "no agents"


def test_age() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert age(now - timedelta(seconds=5), now) == "5s"
    assert age(now - timedelta(minutes=5), now) == "5m"
    assert age(now - timedelta(hours=5), now) == "5h"
    assert age(now - timedelta(days=5), now) == "5d"
    assert age(None) == "-"


def test_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert color_enabled(Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not color_enabled(Tty())
    monkeypatch.delenv("NO_COLOR")
    assert not color_enabled(object())
