"""Per-execution limits: defaults, environment and config.yaml, clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from stigmer.core import LIMIT_SETTINGS, InvalidArgument, Limits


def test_defaults_without_settings(tmp_path: Path) -> None:
    assert Limits.load({"STIGMER_HOME": str(tmp_path)}) == Limits()
    assert Limits().tasks >= 10_000 and Limits().jq_seconds >= 1


def test_environment_overrides_config(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("limits:\n  tasks: 70\n  jqSeconds: 0.5\n  eventBytes: 2048\n")
    limits = Limits.load({"STIGMER_HOME": str(tmp_path), "STIGMER_LIMIT_TASKS": "12"})
    assert (limits.tasks, limits.jq_seconds, limits.event_bytes) == (12, 0.5, 2048)
    assert limits.events == Limits().events


@pytest.mark.parametrize("raw", ["0", "-3", "lots", ""])
def test_bad_value_names_the_variable(tmp_path: Path, raw: str) -> None:
    with pytest.raises(InvalidArgument, match="STIGMER_LIMIT_EVENTS: expected a whole number above 0"):
        Limits.load({"STIGMER_HOME": str(tmp_path), "STIGMER_LIMIT_EVENTS": raw})


def test_bad_config_value_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("limits:\n  jqMemoryBytes: big\n")
    with pytest.raises(InvalidArgument, match=r"limits\.jqMemoryBytes"):
        Limits.load({"STIGMER_HOME": str(tmp_path)})


def test_every_field_has_a_setting_and_round_trips() -> None:
    limits = Limits(tasks=3, jq_seconds=0.25)
    assert set(LIMIT_SETTINGS) == set(limits.to_dict())
    assert Limits.from_dict({**limits.to_dict(), "unknown": 1}) == limits
    assert Limits.from_dict(None) == Limits()
