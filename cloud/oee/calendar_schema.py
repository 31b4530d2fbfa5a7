"""The shift-calendar schema (YAML file and API bodies), validated with pydantic.

    calendars:
      - name: plant1-two-shifts
        site: plant1                       # the site id (the MQTT topic's site level)
        area: Press shop                   # area + line: a line's calendar (wins over the site's)
        line: Line 1
        time_zone: Europe/Berlin           # IANA name
        shifts:
          - {name: early, start: "06:00", end: "14:00", weekdays: mon-fri,
             breaks: [{start: "09:00", end: "09:15"}]}
          - {name: night, start: "22:00", end: "06:00", weekdays: [sun, mon, tue, wed, thu]}
        holidays: [2026-12-24, 2026-12-25]
        overtime:
          - {name: saturday, start: "2026-12-19T06:00", end: "2026-12-19T12:00"}

``load_calendars_file(path)`` reads such a file; errors name the file, the line and the field.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cloud.oee.calendar import Calendar, Overtime, Shift, zone
from protocols.yaml_lines import validate_file

WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


def parse_hhmm(value: str) -> time:
    """``"06:00"`` → 06:00; ``"24:00"`` → midnight (as a shift's end)."""
    if not isinstance(value, str) or not _HHMM.match(value.strip()):
        raise ValueError(f'{value!r} is not a local time: write it as "HH:MM", e.g. "06:00"')
    hours, minutes = value.strip().split(":")
    return time(int(hours) % 24, int(minutes))


def parse_weekdays(value: Any) -> list[str]:
    """``mon-fri``, ``[mon, wed]``, ``all`` → a list of day names."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("all", "daily"):
            return list(WEEKDAY_NAMES)
        if "-" in text:
            first, _, last = text.partition("-")
            if first in WEEKDAY_NAMES and last in WEEKDAY_NAMES:
                i, j = WEEKDAY_NAMES.index(first), WEEKDAY_NAMES.index(last)
                span = range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)]
                return [WEEKDAY_NAMES[k] for k in span]
        value = [part.strip() for part in text.split(",")]
    if not isinstance(value, list):
        raise ValueError("weekdays: give a list such as [mon, tue] or a range such as mon-fri")
    out = []
    for item in value:
        name = str(item).strip().lower()[:3]
        if name not in WEEKDAY_NAMES:
            raise ValueError(f"{item!r} is not a weekday (mon tue wed thu fri sat sun)")
        out.append(name)
    return out


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BreakSpec(_Strict):
    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _time(cls, value: str) -> str:
        parse_hhmm(value)
        return value


class ShiftSpec(_Strict):
    name: str = Field(min_length=1, max_length=64)
    start: str
    end: str
    weekdays: list[str] = Field(default_factory=lambda: list(WEEKDAY_NAMES))
    breaks: list[BreakSpec] = Field(default_factory=list)

    @field_validator("start", "end")
    @classmethod
    def _time(cls, value: str) -> str:
        parse_hhmm(value)
        return value

    @field_validator("weekdays", mode="before")
    @classmethod
    def _days(cls, value: Any) -> list[str]:
        return parse_weekdays(value)

    def to_shift(self) -> Shift:
        return Shift(
            name=self.name,
            start=parse_hhmm(self.start),
            end=parse_hhmm(self.end),
            weekdays=frozenset(WEEKDAY_NAMES.index(d) for d in self.weekdays),
            breaks=tuple((parse_hhmm(b.start), parse_hhmm(b.end)) for b in self.breaks),
        )

    @model_validator(mode="after")
    def _breaks_inside(self) -> ShiftSpec:
        shift = self.to_shift()
        for i, (offset, length) in enumerate(shift.break_offsets()):
            if length == 0 or offset + length > shift.length_min:
                raise ValueError(
                    f"breaks[{i}] {self.breaks[i].start}-{self.breaks[i].end} is not inside the "
                    f"shift {self.start}-{self.end}: a break must start and end within its shift"
                )
        return self


class OvertimeSpec(_Strict):
    start: datetime = Field(description="local wall-clock time, e.g. 2026-12-19T06:00")
    end: datetime
    name: str = Field(default="overtime", min_length=1, max_length=64)

    @model_validator(mode="after")
    def _order(self) -> OvertimeSpec:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("overtime start/end are local times: leave out the UTC offset")
        if self.end <= self.start:
            raise ValueError(f"overtime {self.name!r}: end {self.end} is not after start")
        return self


class CalendarSpec(_Strict):
    """One calendar for a site, or for one line (``area`` + ``line``) of it."""

    name: str = Field(min_length=1, max_length=128)
    site: str = Field(min_length=1, max_length=64)
    area: str | None = Field(default=None, min_length=1, max_length=128)
    line: str | None = Field(default=None, min_length=1, max_length=128)
    time_zone: str = "UTC"
    shifts: list[ShiftSpec] = Field(min_length=1)
    holidays: list[date] = Field(default_factory=list)
    overtime: list[OvertimeSpec] = Field(default_factory=list)

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zone(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone (e.g. Europe/Berlin, Asia/Shanghai, UTC)"
            ) from None
        return value

    @model_validator(mode="after")
    def _scope(self) -> CalendarSpec:
        if (self.area is None) != (self.line is None):
            raise ValueError("give both 'area' and 'line' for a line's calendar, or neither")
        names = [s.name for s in self.shifts]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"shift names must be unique within a calendar: {duplicates}")
        return self

    def to_calendar(self) -> Calendar:
        return Calendar(
            name=self.name,
            time_zone=self.time_zone,
            shifts=tuple(s.to_shift() for s in self.shifts),
            holidays=frozenset(self.holidays),
            overtime=tuple(Overtime(o.start, o.end, o.name) for o in self.overtime),
        )


class CalendarsFile(_Strict):
    calendars: list[CalendarSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> CalendarsFile:
        problems = []
        seen_names: set[str] = set()
        seen_scopes: set[tuple[str, str | None, str | None]] = set()
        for i, spec in enumerate(self.calendars):
            if spec.name in seen_names:
                problems.append(f"calendars[{i}].name: {spec.name!r} is used twice")
            scope = (spec.site, spec.area, spec.line)
            if scope in seen_scopes:
                problems.append(f"calendars[{i}].site: a second calendar for the same site/line")
            seen_names.add(spec.name)
            seen_scopes.add(scope)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def load_calendars_file(path: str | Path) -> list[CalendarSpec]:
    """Read and validate a calendars YAML file (``ProfileError`` naming file, line and field)."""
    return validate_file(CalendarsFile, path).calendars
