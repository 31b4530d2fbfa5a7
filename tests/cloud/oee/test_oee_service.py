"""OEE views over a real database (SQLite and PostgreSQL), data written by the real ingest path."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from sqlalchemy import func, select

from cloud.assets.models import Machine
from cloud.db import writer_engine
from cloud.ingest.writer import IngestWriter, ReceivedMessage
from cloud.oee.calendar_schema import CalendarSpec
from cloud.oee.kpi import compute_kpis
from cloud.oee.losses import six_big_losses
from cloud.oee.models import OeeRollup
from cloud.oee.rollup import roll_up
from cloud.oee.service import current_oee, machine_oee, site_oee
from cloud.oee.settings import OeeSettings
from cloud.oee.store import MachineSettings, put_machine_settings, save_calendar
from protocols.wire import TopicKind
from tests.cloud.conftest import CODEC, Wire
from tests.cloud.oee.conftest import HOUR, T0, birth

S = 1000
SETTINGS = OeeSettings()
NOW = T0 + 6 * HOUR + 10 * 60 * S  # 06:10 on the Monday: every sample is in the past


def test_machine_oee_over_the_planned_hour(plant):
    with plant["engine"].connect() as conn:
        view = machine_oee(conn, SETTINGS, plant["press1"], T0, T0 + HOUR, NOW)
    e = view.result.elements
    # no calendar: 24/7, so POT is the whole hour (see conftest for the hand-made hour)
    assert (e.pot_ms, e.pdot_ms, e.pbt_ms) == (3600 * S, 300 * S, 3300 * S)
    assert (e.apt_ms, e.micro_stop_ms, e.aust_ms) == (2000 * S, 60 * S, 300 * S)
    assert (e.adet_ms, e.adot_ms, e.unkt_ms) == (300 * S, 300 * S, 400 * S)
    assert (e.micro_stops, e.failure_events) == (1, 1)
    assert e.accounted_ms == e.pbt_ms
    q = view.result.quantities
    assert (q.produced, q.good, q.scrap, q.startup_scrap) == (320, 300, 20, 4)
    k = view.kpis
    assert k.availability == pytest.approx(2000 / 3300)
    assert k.effectiveness == pytest.approx(5 * 320 / 2000)
    assert k.quality_ratio == pytest.approx(300 / 320)
    assert k.mttr_s == pytest.approx(300)
    assert view.machine.ideal_cycle_time_source == "profile"
    assert view.machine.calendar.name == "24/7"
    losses = six_big_losses(view.result.totals)
    assert losses.total_s == pytest.approx(3300 - 5 * 300)  # PBT - PRI x GQ


def test_per_machine_settings_win(plant):
    engine = plant["engine"]
    with writer_engine(engine).begin() as conn:
        put_machine_settings(conn, MachineSettings(plant["press1"], 5.0, 600.0, None, None), 1)
    with engine.connect() as conn:
        view = machine_oee(conn, SETTINGS, plant["press1"], T0, T0 + HOUR, NOW)
    assert view.machine.params.pri_s == 2.5  # 5 s / 2 units
    assert view.machine.ideal_cycle_time_source == "override"
    e = view.result.elements
    # a 600 s threshold makes the 300 s idle and down stops micro-stops: APT 2000 + 600
    assert (e.apt_ms, e.adet_ms, e.adot_ms, e.micro_stops) == (2600 * S, 0, 0, 3)
    assert view.kpis.effectiveness == pytest.approx(2.5 * 320 / 2600)


def test_a_calendar_limits_planned_time(plant):
    engine = plant["engine"]
    # Line 1 works 00:30-01:30 UTC with a break 00:45-01:00: POT in [T0, T0+1h) = 15 min
    spec = CalendarSpec.model_validate(
        {
            "name": "line1", "site": "plant1", "area": "Press shop", "line": "Line 1",
            "time_zone": "UTC",
            "shifts": [{"name": "short", "start": "00:30", "end": "01:30",
                        "breaks": [{"start": "00:45", "end": "01:00"}]}],
        }
    )  # fmt: skip
    with writer_engine(engine).begin() as conn:
        save_calendar(conn, spec, "api", 1)
    with engine.connect() as conn:
        view = machine_oee(conn, SETTINGS, plant["press1"], T0, T0 + HOUR, NOW)
        other = machine_oee(conn, SETTINGS, plant["press2"], T0, T0 + HOUR, NOW)
    e = view.result.elements
    # planned: 1800-2700 s of the hour (00:30-00:45) = 900 s of POT, in which
    # idle 1800-2100 → ADOT 300 s, setup 2100-2400 → AUST 300 s, down 2400-2700 → ADET 300 s
    assert view.machine.calendar.name == "line1"
    assert e.pot_ms == 900 * S
    assert (e.adot_ms, e.aust_ms, e.adet_ms, e.apt_ms) == (300 * S, 300 * S, 300 * S, 0)
    assert e.accounted_ms == e.pbt_ms
    # good counted at 600 and 1500 s lie outside planned time: reported apart
    assert view.result.units_outside_planned == 300  # +100 at 600, 1500 and 3500 s
    assert other.machine.calendar.name == "24/7"  # Line 2 has no calendar, the site none


def test_roll_ups_are_idempotent_and_match_live(plant):
    engine = plant["engine"]
    written = roll_up(engine, SETTINGS, T0, T0 + 6 * HOUR, NOW)
    again = roll_up(engine, SETTINGS, T0, T0 + 6 * HOUR, NOW)
    # 6 hours x 2 machines + one 24/7 "day" shift each? none: the day ends at 24:00, after NOW
    assert written == again == 12
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(OeeRollup)).scalar() == 12
        first = conn.execute(
            select(OeeRollup.apt_ms, OeeRollup.good).where(
                OeeRollup.machine_id == plant["press1"], OeeRollup.period_start_ms == T0
            )
        ).one()
        assert tuple(first) == (2000 * S, 300)
        live = site_oee(conn, SETTINGS, "plant1", T0, T0 + 6 * HOUR, NOW, use_rollups=False)
        summed = site_oee(conn, SETTINGS, "plant1", T0, T0 + 6 * HOUR, NOW)
    assert summed.rollup_hours == 6
    assert live.rollup_hours == 0
    assert summed.kpis.totals == live.kpis.totals
    # the site sums before dividing: press2's APT is 6 h, its ideal time 2160 units x 5 s = 3 h
    press2 = next(k for m, k in live.machines if m.id == plant["press2"])
    assert press2.effectiveness == pytest.approx(0.5)
    assert live.kpis.oee == pytest.approx(compute_kpis(live.kpis.totals).oee)


def test_a_partial_window_uses_roll_ups_inside_and_live_at_the_ends(plant):
    engine = plant["engine"]
    roll_up(engine, SETTINGS, T0, T0 + 6 * HOUR, NOW)
    start, end = T0 + 30 * 60 * S, T0 + 5 * HOUR + 15 * 60 * S  # 00:30 - 05:15
    with engine.connect() as conn:
        live = site_oee(conn, SETTINGS, "plant1", start, end, NOW, use_rollups=False)
        summed = site_oee(conn, SETTINGS, "plant1", start, end, NOW)
    assert summed.rollup_hours == 4  # 01:00-05:00 from roll-ups, the ends live
    assert summed.kpis.totals == live.kpis.totals


@pytest.mark.parametrize("workers", [4])
def test_concurrent_roll_ups_never_double_count(plant, workers):
    engine = plant["engine"]
    errors: list[BaseException] = []

    def run() -> None:
        try:
            roll_up(engine, SETTINGS, T0, T0 + 6 * HOUR, NOW)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(OeeRollup)).scalar() == 12
        apt = conn.execute(
            select(func.sum(OeeRollup.apt_ms)).where(OeeRollup.machine_id == plant["press2"])
        ).scalar()
    assert apt == 6 * HOUR  # press2 ran all six hours, counted once


def test_current_shift_of_every_machine(plant):
    with plant["engine"].connect() as conn:
        views = current_oee(conn, SETTINGS, NOW)
    assert sorted(v.machine.name for v in views) == ["press1", "press2"]
    press2 = next(v for v in views if v.machine.name == "press2")
    # 24/7: the current "day" shift runs from 00:00, so the window is 00:00-06:10 so far
    assert (press2.window.from_ms, press2.window.to_ms, press2.window.live) == (T0, NOW, True)
    assert press2.window.shift is not None
    assert press2.window.shift.key == "2026-03-02/day"
    assert press2.result.elements.apt_ms == NOW - T0


def test_the_profiles_counter_rollover_comes_with_the_birth(db_engine):
    # a 16-bit good counter that wraps: 65530 → 65535 (+5), → 3 (+1 to 0, +3) = 9 units;
    # read as a reset, the drop would give 5 + 3 = 8
    wire = Wire()
    writer = IngestWriter(db_engine)
    wrapping = replace(
        CODEC.decode(TopicKind.BIRTH, birth(wire, "press9", "Line 9").payload),
        counter_rollover=65535,
    )
    writer.write([
        ReceivedMessage(wire.topic(TopicKind.BIRTH, "press9"), CODEC.encode(wrapping), 0),
        wire.data("press9", [("state", T0, 2), ("good", T0, 65530), ("scrap", T0, 0),
                             ("good", T0 + 60 * S, 65535), ("good", T0 + 120 * S, 3)]),
    ])  # fmt: skip
    with db_engine.connect() as conn:
        machine_id = conn.execute(select(Machine.id).where(Machine.device == "press9")).scalar_one()
        view = machine_oee(conn, SETTINGS, machine_id, T0, T0 + HOUR, NOW)
    assert view.machine.params.counter_rollover == 65535
    assert view.result.quantities.good == 9
    assert view.result.counter_rollovers == 1
