"""Shift calendars: breaks, midnight, DST, holidays, overtime, current shift; YAML errors."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from cloud.oee.calendar import (
    ALWAYS,
    Calendar,
    Overtime,
    Shift,
    current_window,
    last_window,
    planned_segments,
    planned_windows,
    segments_ms,
)
from cloud.oee.calendar_schema import load_calendars_file
from protocols.errors import ProfileError

MIN = 60_000
HOUR = 60 * MIN
MON_FRI = frozenset(range(5))


def utc_ms(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


BERLIN = Calendar(
    name="press-shop",
    time_zone="Europe/Berlin",
    shifts=(
        Shift("early", time(6), time(14), MON_FRI, ((time(9), time(9, 15)), (time(12), time(12, 30)))),
        Shift("night", time(22), time(6), frozenset(range(7)), ((time(2), time(2, 30)),)),
    ),
    holidays=frozenset({date(2026, 12, 24), date(2026, 12, 25)}),
    overtime=(Overtime(datetime(2026, 12, 19, 6), datetime(2026, 12, 19, 12), "saturday"),),  # noqa: DTZ001 - local wall-clock times
)  # fmt: skip


def test_a_shift_with_breaks():
    # Monday 2026-03-02, Berlin is UTC+1 (winter): early 06:00-14:00 local = 05:00-13:00 UTC.
    start, end = utc_ms(2026, 3, 2, 5), utc_ms(2026, 3, 2, 13)
    windows = [w for w in planned_windows(BERLIN, start, end) if w.shift == "early"]
    assert [(w.key, w.start_ms, w.end_ms) for w in windows] == [("2026-03-02/early", start, end)]
    assert windows[0].breaks == (
        (utc_ms(2026, 3, 2, 8), utc_ms(2026, 3, 2, 8, 15)),
        (utc_ms(2026, 3, 2, 11), utc_ms(2026, 3, 2, 11, 30)),
    )
    # POT = 8 h - 15 min - 30 min = 435 min
    assert segments_ms(planned_segments(windows, start, end)) == 435 * MIN


def test_a_night_shift_belongs_to_the_day_it_starts():
    # Tuesday 00:00-06:00 local holds the tail of Monday's night shift (22:00 Mon -> 06:00 Tue).
    tue_midnight = utc_ms(2026, 3, 2, 23)  # 00:00 local (UTC+1)
    windows = planned_windows(BERLIN, tue_midnight, tue_midnight + 6 * HOUR)
    night = [w for w in windows if w.shift == "night"]
    assert [w.key for w in night] == ["2026-03-02/night"]
    assert (night[0].start_ms, night[0].end_ms) == (utc_ms(2026, 3, 2, 21), utc_ms(2026, 3, 3, 5))
    # the break 02:00-02:30 local is on Tuesday: 01:00-01:30 UTC
    assert night[0].breaks == ((utc_ms(2026, 3, 3, 1), utc_ms(2026, 3, 3, 1, 30)),)
    # inside [00:00, 06:00) local: 6 h of the shift - 30 min break = 330 min
    assert segments_ms(planned_segments(night, tue_midnight, tue_midnight + 6 * HOUR)) == 330 * MIN


@pytest.mark.parametrize(
    ("day", "hours"),
    [
        (date(2026, 3, 28), 7),  # clocks go forward 02:00 -> 03:00 on 2026-03-29: 7 h
        (date(2026, 10, 24), 9),  # clocks go back 03:00 -> 02:00 on 2026-10-25: 9 h
        (date(2026, 3, 21), 8),  # an ordinary Saturday night
    ],
)
def test_a_night_shift_over_a_dst_change(day, hours):
    around = utc_ms(day.year, day.month, day.day, 12)
    night = [w for w in planned_windows(BERLIN, around, around + 86_400_000) if w.shift == "night"]
    first = next(w for w in night if w.local_date == day)
    assert first.end_ms - first.start_ms == hours * HOUR


def test_holidays_drop_the_shifts_that_start_on_them():
    # Thursday 2026-12-24 and Friday 12-25 are holidays; Wednesday 12-23's night runs into 12-24.
    start, end = utc_ms(2026, 12, 23), utc_ms(2026, 12, 27)
    keys = [w.key for w in planned_windows(BERLIN, start, end)]
    assert "2026-12-23/early" in keys
    assert "2026-12-23/night" in keys
    assert not any(k.startswith(("2026-12-24", "2026-12-25")) for k in keys)
    assert "2026-12-26/night" in keys
    assert "2026-12-26/early" not in keys


def test_overtime_adds_a_window():
    # Saturday 2026-12-19 06:00-12:00 local (UTC+1) = 05:00-11:00 UTC, 6 h of POT.
    start, end = utc_ms(2026, 12, 19, 5), utc_ms(2026, 12, 19, 11)
    windows = planned_windows(BERLIN, start, end)
    assert [(w.key, w.start_ms, w.end_ms) for w in windows if w.shift == "saturday"] == [
        ("2026-12-19/saturday", start, end)
    ]
    # the Friday night shift ends 06:00 local = 05:00 UTC, so only overtime is in the window
    assert segments_ms(planned_segments(windows, start, end)) == 6 * HOUR


def test_current_and_last_shift():
    during = utc_ms(2026, 3, 2, 10)  # 11:00 local, Monday
    assert current_window(BERLIN, during).key == "2026-03-02/early"
    between = utc_ms(2026, 3, 2, 15)  # 16:00 local: between early and night
    assert current_window(BERLIN, between) is None
    assert last_window(BERLIN, between).key == "2026-03-02/early"


def test_no_calendar_is_planned_around_the_clock():
    windows = planned_windows(ALWAYS, utc_ms(2026, 3, 2, 10), utc_ms(2026, 3, 3, 10))
    assert [w.key for w in windows] == ["2026-03-02/day", "2026-03-03/day"]
    assert (
        segments_ms(planned_segments(windows, utc_ms(2026, 3, 2, 10), utc_ms(2026, 3, 3, 10)))
        == 24 * HOUR
    )


def test_the_yaml_file_and_its_errors(tmp_path):
    good = tmp_path / "calendars.yaml"
    good.write_text(
        "calendars:\n"
        "  - name: plant1\n"
        "    site: plant1\n"
        "    time_zone: Asia/Shanghai\n"
        "    shifts:\n"
        '      - {name: day, start: "08:00", end: "20:00", weekdays: mon-sat,\n'
        '         breaks: [{start: "12:00", end: "13:00"}]}\n'
        '      - {name: night, start: "20:00", end: "08:00", weekdays: [mon, tue]}\n'
        "    holidays: [2026-10-01]\n"
    )
    (spec,) = load_calendars_file(good)
    calendar = spec.to_calendar()
    assert calendar.shifts[0].weekdays == frozenset(range(6))
    assert calendar.holidays == frozenset({date(2026, 10, 1)})

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "calendars:\n"
        "  - name: plant1\n"
        "    site: plant1\n"
        "    time_zone: Europe/Berln\n"
        "    shifts:\n"
        '      - {name: day, start: "08:00", end: "20:00", breaks: [{start: "21:00", end: "21:30"}]}\n'
    )
    with pytest.raises(ProfileError) as caught:
        load_calendars_file(bad)
    text = str(caught.value)
    assert f"{bad}:4: calendars[0].time_zone" in text
    assert "IANA" in text
    assert f"{bad}:6: calendars[0].shifts[0]" in text
    assert "not inside the shift" in text
