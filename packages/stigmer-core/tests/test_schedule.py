"""``Timetable`` and ``parse_duration``: what a Schedule spec means, and that any bad spec is one
clear ``InvalidArgument`` naming its field, never another error or a hang."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stigmer.core import InvalidArgument, Timetable, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("1h30m", 5400),
        ("2d", 172800),
        ("PT15M", 900),
        ("P1DT1H", 90000),
        ("500ms", 0.5),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


def test_every_slots_are_multiples_of_the_interval_since_the_epoch() -> None:
    table = Timetable.of({"every": "15m"})
    after = datetime(2026, 12, 5, 14, 7, 3, tzinfo=UTC)
    assert table.next_slots(after, 2) == [
        datetime(2026, 12, 5, 14, 15, tzinfo=UTC),
        datetime(2026, 12, 5, 14, 30, tzinfo=UTC),
    ]


def test_due_keeps_only_the_catchup_window() -> None:
    table = Timetable.of({"every": "1m", "catchupWindow": "2m"})
    since = datetime(2026, 12, 5, 10, 0, 30, tzinfo=UTC)
    now = datetime(2026, 12, 5, 11, 0, 10, tzinfo=UTC)
    assert table.due("k", since, now) == [
        datetime(2026, 12, 5, 10, 59, tzinfo=UTC),
        datetime(2026, 12, 5, 11, 0, tzinfo=UTC),
    ]


specs = st.fixed_dictionaries(
    {},
    optional={
        "cron": st.text(max_size=30),
        "every": st.text(max_size=12),
        "after": st.text(max_size=12),
        "timeZone": st.text(max_size=20),
        "overlap": st.text(max_size=10),
        "catchupWindow": st.text(max_size=10),
        "jitter": st.text(max_size=10),
    },
)


@settings(max_examples=300, deadline=None)
@given(specs)
def test_any_spec_is_valid_or_one_invalid_argument(spec: dict[str, Any]) -> None:
    try:
        table = Timetable.of(spec)
    except InvalidArgument as exc:
        assert exc.field_paths and exc.field_paths[0].startswith("spec.")
        assert "\n" not in exc.message
        return
    table.next_slots(datetime(2026, 1, 1, tzinfo=UTC), 1)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=20))
def test_any_duration_text_parses_or_is_refused_clearly(text: str) -> None:
    try:
        assert parse_duration(text, "spec.every") >= timedelta(0)
    except InvalidArgument as exc:
        assert list(exc.field_paths) == ["spec.every"]


@pytest.mark.parametrize("text", ["99999999999d", "P99999999999D", "367d"])
def test_absurd_durations_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument, match="longer than 366 days"):
        Timetable.of({"every": text})
