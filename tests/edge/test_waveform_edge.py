"""Waveform tags at the edge: windows become feature samples, raw windows go out on demand.

The end-to-end tests run the real edge agent in this process against the OPC UA simulator
(a pump drive monitor whose bearing wears fast) and a real Mosquitto, and read what the agent
publishes with a plain MQTT client. The processor tests feed windows by hand.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import paho.mqtt.client as paho
import pytest
from asyncua import ua
from paho.mqtt.enums import CallbackAPIVersion

from device_profiles import profile_path
from edge.agent import EdgeAgent, build_agent
from edge.config import DeviceSettings, EdgeConfig, MqttSettings
from edge.drivers.opcua import window_of
from edge.features import WaveformWindow, window_features
from edge.processors import REASON_BAD_WINDOW, REASON_SHORT_WINDOW, WaveformProcessor
from protocols.opcua import ReadResult, epoch_ms
from protocols.profile import load_profile
from protocols.quality import Quality
from protocols.wire import (
    BirthMessage,
    CommandMessage,
    DataMessage,
    EventMessage,
    JsonCodec,
    Sample,
    Topic,
    TopicKind,
    parse_topic,
)
from protocols.yaml_lines import validate_yaml
from simulators.behaviour import SimWindow
from simulators.runner import SimulatedPlant
from simulators.scenario import Scenario

pytestmark = pytest.mark.anyio

PROFILE = load_profile(profile_path("pump_drive_monitor"))
TAG = "motor_de_velocity"
FEATURES = tuple(f"{TAG}_{s}" for s in ("rms", "peak", "crest_factor", "kurtosis"))
SITE, EDGE, DEVICE = "pump-house", "edge-pumps", "pump-07"
REFRESH_S = 0.5
SCENARIO = f"""
site: {SITE}
step_s: 0.1
lines:
  - name: Cooling water
    machines:
      - device_id: {DEVICE}
        profile: pump_drive_monitor
        seed: 7
        behaviour: {{mean_running_s: 1000000}}
        bearing: {{life_h: 1000, initial_h: 500, wear_time_scale: 36000,
                   window_refresh_s: {REFRESH_S}}}
"""


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


# --------------------------------------------------------------------------- processor


def _window(values: Any, ts_ms: int = 1_000, quality: Quality = Quality.GOOD) -> WaveformWindow:
    array = None if values is None else np.asarray(values, dtype=np.float64)
    reason = None if quality is Quality.GOOD else "opcua:BadSensorFailure"
    return WaveformWindow(TAG, ts_ms, array, quality, reason)


def _sine(samples: int = 1024) -> npt.NDArray[np.float64]:
    return np.asarray(2.0 * np.sin(2 * np.pi * 25.0 * np.arange(samples) / 2560.0))


def test_a_new_window_becomes_one_sample_per_feature_at_its_source_time() -> None:
    processor = WaveformProcessor(PROFILE)
    samples, events = processor.process([_window(_sine(), ts_ms=5_000)])
    assert [s.metric for s in samples] == list(FEATURES)
    assert all(s.ts_ms == 5_000 and s.quality is Quality.GOOD for s in samples)
    values = {s.metric: s.value for s in samples}
    assert values[f"{TAG}_rms"] == pytest.approx(2.0 / np.sqrt(2))
    assert values[f"{TAG}_crest_factor"] == pytest.approx(np.sqrt(2), rel=1e-3)
    assert values[f"{TAG}_kurtosis"] == pytest.approx(1.5)
    assert events == []


def test_the_same_window_read_twice_gives_features_once() -> None:
    processor = WaveformProcessor(PROFILE)
    first, _ = processor.process([_window(_sine(), 5_000), _window(_sine(), 5_000)])
    again, _ = processor.process([_window(_sine(), 5_000)])
    later, _ = processor.process([_window(_sine(), 5_400)])
    assert len(first) == 4
    assert again == []
    assert len(later) == 4


@pytest.mark.parametrize(
    ("window", "reason"),
    [
        (_window(_sine(1000)), f"{REASON_SHORT_WINDOW}:1000/1024"),
        (_window([*_sine(1023), float("nan")]), REASON_BAD_WINDOW),
        (_window(None, quality=Quality.BAD), "opcua:BadSensorFailure"),
    ],
)
def test_a_short_non_finite_or_bad_window_gives_bad_features_with_the_reason(
    window: WaveformWindow, reason: str
) -> None:
    processor = WaveformProcessor(PROFILE)
    processor.forward(TAG, 2)
    samples, events = processor.process([window])
    assert [s.metric for s in samples] == list(FEATURES)
    assert all(s.value is None and s.quality is Quality.BAD for s in samples)
    assert {s.reason for s in samples} == {reason}
    assert events == []  # nothing raw to forward, and the request still stands
    assert processor.pending(TAG) == 2


def test_an_uncertain_window_keeps_its_quality_on_every_feature() -> None:
    processor = WaveformProcessor(PROFILE)
    samples, _ = processor.process([_window(_sine(), quality=Quality.UNCERTAIN)])
    assert {s.quality for s in samples} == {Quality.UNCERTAIN}
    assert all(isinstance(s.value, float) for s in samples)


def test_forwarding_publishes_the_next_n_good_windows_raw() -> None:
    processor = WaveformProcessor(PROFILE)
    processor.forward(TAG, 2)
    out = [processor.process([_window(_sine() * k, ts_ms=1000 * k)])[1] for k in (1, 2, 3)]
    assert [len(events) for events in out] == [1, 1, 0]
    event = out[1][0]
    assert (event.kind, event.metric, event.ts_ms) == ("waveform", TAG, 2000)
    assert event.detail is not None
    detail = json.loads(event.detail)
    assert detail["sample_rate_hz"] == 2560.0
    assert detail["unit"] == "mm/s"
    np.testing.assert_allclose(detail["samples"], _sine() * 2, rtol=1e-6, atol=1e-6)
    assert " " not in event.detail  # compact JSON


def test_forward_requests_are_checked() -> None:
    processor = WaveformProcessor(PROFILE)
    with pytest.raises(KeyError, match="not a waveform tag"):
        processor.forward("motor_load", 1)
    with pytest.raises(ValueError, match=r"1\.\.60"):
        processor.forward(TAG, 61)
    processor.forward(TAG, 50)
    processor.forward(TAG, 50)
    assert processor.pending(TAG) == 60  # capped


def test_bad_device_gives_bad_features_of_every_waveform_tag() -> None:
    samples = WaveformProcessor(PROFILE).bad(7_000, "comm:not_connected")
    assert [s.metric for s in samples] == list(FEATURES)
    assert {(s.quality, s.reason, s.ts_ms) for s in samples} == {
        (Quality.BAD, "comm:not_connected", 7_000)
    }


def _result(value: object, quality: Quality = Quality.GOOD) -> ReadResult:
    status = "Good" if quality is Quality.GOOD else "BadSensorFailure"
    return ReadResult(
        ua.NodeId.from_string("ns=2;i=1"),
        value,
        ua.VariantType.Float,
        0,
        status,
        quality,
        9_000,
        "source",
    )


def test_the_driver_turns_an_array_read_into_a_window_and_anything_else_into_a_bad_one() -> None:
    tag = PROFILE.tag(TAG)
    window = window_of(tag, _result([1.0, -2.0, 3.5]))
    assert window.values is not None
    assert window.values.tolist() == [1.0, -2.0, 3.5]
    assert (window.ts_ms, window.quality) == (9_000, Quality.GOOD)
    for raw in (1.5, "abc", [1.0, "x"], [[1.0, 2.0]], [True, False]):
        bad = window_of(tag, _result(raw))
        assert (bad.values, bad.quality, bad.reason) == (None, Quality.BAD, "value:decode_error")
    failed = window_of(tag, _result(None, Quality.BAD))
    assert (failed.quality, failed.reason) == (Quality.BAD, "opcua:BadSensorFailure")


# --------------------------------------------------------------------------- end to end


@dataclass
class Listener:
    """A plain MQTT client that keeps every message the edge publishes."""

    url_port: int
    messages: list[tuple[str, bytes | bytearray]] = field(default_factory=list)
    client: paho.Client | None = None

    def start(self) -> None:
        client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
        client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
        client.on_connect = lambda c, *_a: c.subscribe(f"forgeline/v1/{SITE}/#", qos=1)
        client.connect("127.0.0.1", self.url_port)
        client.loop_start()
        self.client = client

    def stop(self) -> None:
        if self.client is not None:
            self.client.loop_stop()
            self.client.disconnect()

    def decoded(self, kind: TopicKind) -> list[Any]:
        codec = JsonCodec()
        return [
            codec.decode(kind, bytes(payload))
            for topic, payload in list(self.messages)
            if parse_topic(topic).kind is kind
        ]

    def samples(self) -> list[Sample]:
        messages: list[DataMessage] = self.decoded(TopicKind.DATA)
        return [s for m in messages for s in m.samples]

    def waveform_events(self) -> list[Any]:
        messages: list[EventMessage] = self.decoded(TopicKind.EVENT)
        return [e for m in messages for e in m.events if e.kind == "waveform"]

    def command(self, name: str, args: dict[str, Any]) -> str:
        assert self.client is not None
        command_id = str(uuid.uuid4())
        message = CommandMessage(name, command_id, int(time.time() * 1000), args)
        topic = str(Topic.edge_topic(TopicKind.CMD, SITE, EDGE))
        self.client.publish(topic, JsonCodec().encode(message), qos=1)
        return command_id


@dataclass
class Rig:
    plant: SimulatedPlant
    agent: EdgeAgent
    listener: Listener
    windows: dict[int, SimWindow]  # every window the simulator served, by source time (ms)


async def _until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout_s} s for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def rig(tmp_path: Path, mosquitto: Any) -> AsyncIterator[Rig]:
    plant = SimulatedPlant(validate_yaml(Scenario, SCENARIO, "pump-house.yaml"))
    device = plant.device(DEVICE)
    # the first window is served at start-up, stamped with the plant's epoch before start()
    first = device.behaviour.window(TAG)
    windows: dict[int, SimWindow] = {_source_ms(plant.epoch_s, first): first}
    step = device.step

    async def step_and_record(now_s: float) -> None:  # remember each window as it is served
        await step(now_s)
        window = device.behaviour.window(TAG)
        windows[_source_ms(plant.epoch_s, window)] = window

    device.step = step_and_record  # type: ignore[method-assign]
    await plant.start()
    config = EdgeConfig(
        site=SITE,
        edge_id=EDGE,
        data_dir=tmp_path / "edge",
        mqtt=MqttSettings(url=mosquitto.url),
        devices=[
            DeviceSettings(id=DEVICE, profile="pump_drive_monitor",
                           endpoint_url=plant.endpoints[0]["endpoint_url"])
        ],
        drain_on_stop_s=0.1,
    )  # fmt: skip
    agent = build_agent(config)
    listener = Listener(mosquitto.port)
    listener.start()
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    try:
        yield Rig(plant, agent, listener, windows)
    finally:
        stop.set()
        await task
        listener.stop()
        await plant.stop()


def _source_ms(epoch_s: float, window: SimWindow) -> int:
    """The source time the edge reads for a window (the server's stamp, as the driver takes it)."""
    ms = epoch_ms(datetime.fromtimestamp(epoch_s + window.at_s, UTC))
    assert ms is not None
    return ms


async def test_features_arrive_with_the_window_source_time_and_match_the_window(rig: Rig) -> None:
    await _until(lambda: len({s.ts_ms for s in rig.listener.samples()
                              if s.metric == f"{TAG}_kurtosis"}) >= 4, 30,
                 "feature samples of four windows")  # fmt: skip
    births: list[BirthMessage] = rig.listener.decoded(TopicKind.BIRTH)
    names = {m.name for m in births[-1].metrics}
    assert set(FEATURES) <= names
    assert TAG not in names
    kurtosis = [s for s in rig.listener.samples() if s.metric == f"{TAG}_kurtosis"]
    checked = 0
    for sample in kurtosis:
        window = rig.windows.get(sample.ts_ms)
        assert window is not None, f"{sample.ts_ms} is no window's source time"
        assert sample.quality is Quality.GOOD
        expected = window_features(window.values)
        assert sample.value == pytest.approx(expected.kurtosis, rel=1e-9)
        checked += 1
    assert checked >= 4
    # one feature sample per window served, in the order the windows were served
    stamps = sorted({s.ts_ms for s in kurtosis})
    indices = [rig.windows[ts].index for ts in stamps]
    assert indices == sorted(set(indices))


async def test_forward_waveform_publishes_the_next_n_windows_raw(rig: Rig) -> None:
    await _until(lambda: bool(rig.listener.decoded(TopicKind.BIRTH)), 30, "the birth")
    await _until(lambda: any(s.metric in FEATURES for s in rig.listener.samples()), 30,
                 "the first features")  # fmt: skip
    rig.listener.command("forward_waveform", {"device": DEVICE, "metric": TAG, "windows": 3})
    await _until(lambda: len(rig.listener.waveform_events()) >= 3, 30, "three waveform events")
    await asyncio.sleep(4 * REFRESH_S)  # no fourth one comes
    events = rig.listener.waveform_events()
    assert len(events) == 3
    assert len({e.ts_ms for e in events}) == 3
    for event in events:
        assert event.metric == TAG
        detail = json.loads(event.detail)
        assert detail["sample_rate_hz"] == 2560.0
        assert detail["unit"] == "mm/s"
        assert len(detail["samples"]) == 1024
        window = rig.windows[event.ts_ms]
        np.testing.assert_allclose(detail["samples"], window.values, rtol=1e-6, atol=1e-7)
    # the features of a forwarded window were published from the same samples
    rms = {s.ts_ms: s.value for s in rig.listener.samples() if s.metric == f"{TAG}_kurtosis"}
    for event in events:
        expected = window_features(json.loads(event.detail)["samples"]).kurtosis
        assert rms[event.ts_ms] == pytest.approx(expected, rel=1e-6)


async def test_wrong_forward_requests_are_refused_logged_and_audited(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    await _until(lambda: bool(rig.listener.decoded(TopicKind.BIRTH)), 30, "the birth")
    asks: list[dict[str, Any]] = [
        {"device": "pump-99", "metric": TAG},
        {"device": DEVICE, "metric": "motor_load"},
        {"device": DEVICE, "metric": TAG, "windows": 61},
        {"device": DEVICE, "metric": TAG, "windows": True},
        {"device": DEVICE, "metric": TAG, "windows": 2.5},
    ]
    ids = [rig.listener.command("forward_waveform", args) for args in asks]
    audit_path = rig.agent.config.data_dir / "audit.sqlite"

    def audited() -> dict[str, tuple[str, str]]:
        if not audit_path.exists():
            return {}
        db = sqlite3.connect(audit_path)
        try:
            rows = db.execute("SELECT command_id, result, detail FROM write_audit").fetchall()
        finally:
            db.close()
        return {r[0]: (r[1], r[2]) for r in rows if r[1] != "pending"}

    await _until(lambda: set(ids) <= set(audited()), 30, "five audited refusals")
    outcome = audited()
    assert [outcome[i][0] for i in ids] == ["rejected"] * 5
    assert "no device 'pump-99'" in outcome[ids[0]][1]
    assert "'motor_load' is not a waveform tag" in outcome[ids[1]][1]
    assert "1..60, got 61" in outcome[ids[2]][1]
    assert "got True" in outcome[ids[3]][1]
    assert "whole number 1..60, got 2.5" in outcome[ids[4]][1]
    assert "forward_waveform rejected" in caplog.text
    await asyncio.sleep(3 * REFRESH_S)
    assert rig.listener.waveform_events() == []
    # the agent is still at work: features keep coming
    before = len(rig.listener.samples())
    await _until(lambda: len(rig.listener.samples()) > before, 30, "more samples")


async def test_a_bad_waveform_read_gives_bad_features_and_recovers(rig: Rig) -> None:
    await _until(lambda: any(s.metric in FEATURES for s in rig.listener.samples()), 30,
                 "the first features")  # fmt: skip
    device = rig.plant.device(DEVICE)
    await device.set_bad_quality(True, [TAG])

    def bad() -> list[Sample]:
        return [s for s in rig.listener.samples()
                if s.metric in FEATURES and s.quality is Quality.BAD]  # fmt: skip

    await _until(lambda: {s.metric for s in bad()} == set(FEATURES), 30, "bad features")
    assert {s.reason for s in bad()} == {"opcua:BadSensorFailure"}
    assert all(s.value is None for s in bad())
    await device.set_bad_quality(False, [TAG])
    count = len(rig.listener.samples())

    def good_again() -> bool:
        later = rig.listener.samples()[count:]
        return any(s.metric == f"{TAG}_kurtosis" and s.quality is Quality.GOOD for s in later)

    await _until(good_again, 30, "good features again")
