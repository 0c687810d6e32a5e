"""When a ``Schedule`` fires: its slots (cron in a time zone, or a fixed interval), which are due
at a given moment (catch-up window, deterministic jitter), and the checks ``apply`` runs on a spec.

Pure functions of the spec and the clock: every scheduler (``stigmer schedule run-due``,
``stigmer scheduler``, the server's) asks the same questions here, with the clock injected.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from stigmer.core._errors import InvalidArgument

__all__ = [
    "OVERLAP_POLICIES",
    "SCHEDULE_LABEL",
    "SLOT_LABEL",
    "Timetable",
    "parse_duration",
]

#: Labels of an execution a schedule started: the schedule's name, and the slot (RFC 3339, UTC).
SCHEDULE_LABEL = "stigmer.ai/schedule"
SLOT_LABEL = "stigmer.ai/fire-time"
OVERLAP_POLICIES = ("skip", "bufferOne", "allowAll")
DEFAULT_CATCHUP = timedelta(minutes=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_ISO = re.compile(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?")


def parse_duration(text: str, field: str = "duration") -> timedelta:
    """``"90s"``, ``"15m"``, ``"1h30m"``, ``"2d"`` or ISO 8601 ``"PT15M"`` -> a timedelta;
    ``InvalidArgument`` naming ``field`` otherwise."""
    try:
        found = _parse_duration(text, field)
    except OverflowError:
        found = None
    if found is None or found > _MAX_DURATION:
        raise InvalidArgument(f"{field}: {text!r} is longer than 366 days", [field])
    return found


_MAX_DURATION = timedelta(days=366)


def _parse_duration(text: str, field: str) -> timedelta:
    value = text.strip()
    iso = _ISO.fullmatch(value.upper()) if value.upper().startswith("P") else None
    if iso and any(iso.groups()):
        d, h, m, sec = (float(g) if g else 0.0 for g in iso.groups())
        return timedelta(days=d, hours=h, minutes=m, seconds=sec)
    pos, total = 0, 0.0
    for match in _DURATION.finditer(value):
        if match.start() != pos:
            break
        amount, unit = float(match.group(1)), match.group(2)
        total += amount / 1000 if unit == "ms" else amount * _UNITS[unit]
        pos = match.end()
    if not value or pos != len(value):
        raise InvalidArgument(
            f"{field}: {text!r} is not a duration; write it like 30s, 15m, 1h30m, 2d or PT15M", [field]
        )
    return timedelta(seconds=total)


@dataclass(frozen=True)
class Timetable:
    """The slots of one schedule spec (``stigmer.v1.ScheduleSpec`` or its JSON form)."""

    cron: str = ""
    time_zone: str = ""
    every: timedelta | None = None
    after: timedelta | None = None  # since the previous run ended: no clock slots (see ``next_after``)
    catchup_window: timedelta = DEFAULT_CATCHUP
    jitter: timedelta = timedelta(0)

    @classmethod
    def of(cls, spec: Any) -> Timetable:
        """Read and check a spec (a message or a dict with camelCase keys); ``InvalidArgument``
        with the field path of the first problem."""
        get = spec.get if isinstance(spec, dict) else (lambda k, _d="": getattr(spec, _snake(k)))
        cron, every_text = str(get("cron", "") or "").strip(), str(get("every", "") or "").strip()
        after_text = str(get("after", "") or "").strip()
        zone = str(get("timeZone", "") or "").strip()
        if [bool(cron), bool(every_text), bool(after_text)].count(True) != 1:
            raise InvalidArgument(
                "a Schedule needs exactly one of spec.cron, spec.every and spec.after", ["spec.cron"]
            )
        every = None
        after = parse_duration(after_text, "spec.after") if after_text else None
        if after is not None and zone:
            raise InvalidArgument("spec.timeZone goes with spec.cron, not spec.after", ["spec.timeZone"])
        if every_text:
            every = parse_duration(every_text, "spec.every")
            if every < timedelta(seconds=1):
                raise InvalidArgument("spec.every must be at least 1s", ["spec.every"])
            if zone:
                raise InvalidArgument("spec.timeZone goes with spec.cron, not spec.every", ["spec.timeZone"])
        catchup_text = str(get("catchupWindow", "") or "").strip()
        jitter_text = str(get("jitter", "") or "").strip()
        table = cls(
            cron=cron,
            time_zone=zone,
            every=every,
            after=after,
            catchup_window=parse_duration(catchup_text, "spec.catchupWindow")
            if catchup_text
            else DEFAULT_CATCHUP,
            jitter=parse_duration(jitter_text, "spec.jitter") if jitter_text else timedelta(0),
        )
        table._zone()  # an unknown time zone fails here
        if cron:
            from cronsim import CronSim, CronSimError

            try:
                CronSim(cron, datetime(2000, 1, 1))
            except CronSimError as exc:
                raise InvalidArgument(
                    f"spec.cron: {cron!r} is not a cron expression ({exc}); "
                    "five fields: minute hour day-of-month month day-of-week, e.g. '0 9 * * 1-5'",
                    ["spec.cron"],
                ) from None
        overlap = str(get("overlap", "") or "")
        if overlap and overlap not in OVERLAP_POLICIES:
            raise InvalidArgument(
                f"spec.overlap: {overlap!r}; use one of {', '.join(OVERLAP_POLICIES)}", ["spec.overlap"]
            )
        return table

    def _zone(self) -> Any:
        if not self.time_zone:
            return UTC
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            return ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidArgument(
                f"spec.timeZone: unknown time zone {self.time_zone!r}; use an IANA name like Europe/Berlin",
                ["spec.timeZone"],
            ) from None

    def slots_after(self, after: datetime) -> Iterator[datetime]:
        """The slots strictly after ``after``, in order, as aware UTC datetimes (endless; none
        for an ``after`` schedule, whose next slot depends on its last run: ``next_after``)."""
        if self.after is not None:
            return
        after = _aware(after)
        if self.every is not None:
            step = self.every
            n = (after - _EPOCH) // step + 1
            while True:
                yield _EPOCH + n * step
                n += 1
        from cronsim import CronSim

        local = after.astimezone(self._zone())
        for slot in CronSim(self.cron, local):
            yield slot.astimezone(UTC)

    def next_slots(self, after: datetime, count: int) -> list[datetime]:
        return list(itertools.islice(self.slots_after(after), count))

    def next_after(self, created: datetime, last_ended: datetime | None, last_open: bool) -> datetime | None:
        """An ``after`` schedule's next slot: ``after`` past the end of its last run (or past its
        creation, before any); None while that run has not ended."""
        if self.after is None or last_open:
            return None
        return _aware(last_ended or created) + self.after

    def jitter_for(self, key: str, slot: datetime) -> timedelta:
        """The random delay of ``slot`` (below ``jitter``), the same in every process."""
        if not self.jitter:
            return timedelta(0)
        digest = hashlib.sha256(f"{key}/{slot.isoformat()}".encode()).digest()
        return self.jitter * (int.from_bytes(digest[:8], "big") / 2**64)

    def due(self, key: str, since: datetime, now: datetime) -> list[datetime]:
        """Slots after ``since`` due at ``now``: within the catch-up window (older missed slots
        are skipped) and past their jitter; at most 1,000 (the oldest first)."""
        since, now = _aware(since), _aware(now)
        start = max(since, now - self.catchup_window - timedelta(microseconds=1))
        fire: list[datetime] = []
        for slot in self.slots_after(start):
            if slot > now or len(fire) >= 1000:
                break
            if slot + self.jitter_for(key, slot) <= now:
                fire.append(slot)
        return fire


def _aware(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _snake(key: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), key)
