"""A seeded behaviour model of one machine: states, counters, process signals and bearing wear.

Plain data and arithmetic, no I/O: a server advances it with ``step(now_s)`` (seconds of
simulated time, never going backwards) and encodes ``values()``; tests drive time by hand. The
same profile, seed, configuration and sequence of steps always give the same values.

What it models:

- a state machine over running / idle / down (with a fault code) / setup / planned_stop, with
  random durations (exponential for running and idle, lognormal for repairs and setups);
- a cycle counter that advances at the ideal cycle time (slowed a little, with jitter) only
  while running, and good/scrap counters with good + scrap == cycles × units_per_cycle;
- process parameters around the middle of their limits with noise, a slow bounded drift
  (Ornstein-Uhlenbeck) and occasional excursions beyond a limit (more scrap meanwhile);
- vibration that grows with running hours as a bearing wears: by default
  ``exp(wear_per_hour × running hours)``; with a ``bearing`` (``BearingWear``) the scalar
  vibration tags show ``BearingModel.overall_rms`` (with its scatter), the bearing temperature
  tag ``BearingModel.temperature`` and waveform tags a window of ``BearingModel.window``;
- plausible constants for every other tag.

Waveform tags (a profile ``waveform`` block) hold one window of samples, refreshed every window
period (``samples / sample_rate_hz``, or ``BearingWear.window_refresh_s``): ``window(tag)`` gives
the current one with its index and time, and ``values()`` holds its RMS. While the machine
stands the window is a quiet noise floor (0.02 mm/s RMS). Window ``i`` is stamped at
``start_s + i × refresh`` and drawn from ``(seed, i)`` at the machine's running hours then, so
windows are reproducible. A machine's running hours are ``initial_h + running time ×
wear_time_scale`` (tests and demos age a bearing fast); every random number of the windows comes
from numpy generators of their own, so a machine without waveform tags or a bearing draws
exactly the same numbers as before.
"""

from __future__ import annotations

import math
import random
import struct
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from protocols.profile import CanonicalState, Profile, Tag
from protocols.wire import Value
from simulators.bearing import BearingModel

SignalKind = Literal["process", "temperature", "vibration"]

_INT_RANGE: dict[str, tuple[int, int]] = {
    "int16": (-(2**15), 2**15 - 1),
    "uint16": (0, 2**16 - 1),
    "bitfield": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint64": (0, 2**64 - 1),
}
_TEMPERATURE_UNITS = ("°C", "degC", "C", "K", "°F", "degF")
_DEFAULT_CYCLE_S = 60.0
_MIN_STATE_S = 1.0
_STANDSTILL_RMS = 0.02  # vibration noise floor of a machine that stands, mm/s
_STANDSTILL_STREAM = 2  # numpy stream of the standstill windows (the bearing model uses 0 and 1)
_TEMPERATURE_NOISE_C = 0.1
_DEFAULT_LOAD_PCT = 75.0


@dataclass(frozen=True)
class BearingWear:
    """A machine whose vibration and bearing temperature follow a ``BearingModel``."""

    model: BearingModel
    initial_h: float = 0.0
    """Running hours the bearing had when the simulation starts."""
    wear_time_scale: float = 1.0
    """Running hours of wear per hour of running time (e.g. 3600: an hour a second)."""
    window_refresh_s: float | None = None
    """Seconds between two waveform windows; None: one window period (samples / rate)."""
    ambient_c: float = 25.0
    load_tag: str | None = None
    """Tag whose value is the motor load in %; None: the first process_param tag in %."""
    temperature_tag: str | None = None
    """Tag that shows the bearing temperature; None: the first tag with role temperature."""

    def __post_init__(self) -> None:
        if self.initial_h < 0:
            raise ValueError(f"bearing initial_h must not be negative, got {self.initial_h}")
        if self.wear_time_scale <= 0:
            raise ValueError(f"bearing wear_time_scale must be > 0, got {self.wear_time_scale}")
        if self.window_refresh_s is not None and self.window_refresh_s <= 0:
            raise ValueError(f"bearing window_refresh_s must be > 0, got {self.window_refresh_s}")


@dataclass(frozen=True)
class SimWindow:
    """The window a waveform tag holds now: its number, its time and its samples."""

    index: int
    at_s: float
    values: npt.NDArray[np.float64]

    @property
    def rms(self) -> float:
        return math.sqrt(float(np.mean(np.square(self.values))))


@dataclass(frozen=True)
class BehaviourConfig:
    """Tunable behaviour of one machine; every default is a plausible shop-floor figure."""

    mean_running_s: float = 900.0
    """Mean length of an uninterrupted running spell (exponential)."""
    mean_idle_s: float = 90.0
    """Mean wait for material or operator (exponential)."""
    mean_down_s: float = 240.0
    """Mean repair time after a fault (lognormal, shape ``down_sigma``)."""
    down_sigma: float = 0.8
    mean_setup_s: float = 600.0
    """Mean changeover time (lognormal, shape 0.4)."""
    mean_planned_stop_s: float = 900.0
    """Mean planned stop (normal, ±10 %)."""
    p_down: float = 0.3
    """Share of running spells that end in a fault."""
    p_setup: float = 0.1
    p_planned_stop: float = 0.05
    scrap_rate: float = 0.02
    """Probability that one unit is scrap while the process is inside its limits."""
    excursion_scrap_rate: float = 0.5
    """Probability that one unit is scrap while a process parameter is outside its limits."""
    speed_loss: float = 0.05
    """Mean slowdown against the ideal cycle time (0.05: cycles take 5 % longer)."""
    cycle_time_jitter: float = 0.05
    """Standard deviation of one cycle's time, relative."""
    noise: float = 0.02
    """Standard deviation of process noise, as a fraction of the limit span."""
    drift: float = 0.08
    """Standard deviation of the slow drift, as a fraction of the limit span."""
    drift_time_constant_s: float = 1800.0
    excursions_per_hour: float = 0.5
    """Rate of spontaneous excursions beyond a limit, per machine, while running."""
    mean_excursion_s: float = 45.0
    wear_per_hour: float = 0.05
    """Bearing wear: vibration grows by exp(wear_per_hour × running hours)."""
    initial_wear_h: float = 0.0
    """Running hours the bearing already had when the simulation starts."""
    bearing: BearingWear | None = None
    """Vibration and bearing temperature from a bearing model instead of ``wear_per_hour``."""
    fault_codes: tuple[int, ...] = (101, 102, 205, 310, 412)
    initial_state: CanonicalState = "running"
    constants: dict[str, Value] = field(default_factory=dict)
    """Values for info tags, by tag name (e.g. a program number)."""

    def __post_init__(self) -> None:
        positive = (
            "mean_running_s", "mean_idle_s", "mean_down_s", "mean_setup_s",
            "mean_planned_stop_s", "drift_time_constant_s", "mean_excursion_s", "down_sigma",
        )  # fmt: skip
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"behaviour {name} must be positive, got {getattr(self, name)}")
        for name in ("p_down", "p_setup", "p_planned_stop", "scrap_rate", "excursion_scrap_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"behaviour {name} must be within 0..1, got {getattr(self, name)}")
        if self.p_down + self.p_setup + self.p_planned_stop > 1.0:
            raise ValueError("behaviour p_down + p_setup + p_planned_stop must not exceed 1")
        nonnegative = (
            "speed_loss", "cycle_time_jitter", "noise", "drift", "excursions_per_hour",
            "wear_per_hour", "initial_wear_h",
        )  # fmt: skip
        for name in nonnegative:
            if getattr(self, name) < 0:
                raise ValueError(
                    f"behaviour {name} must not be negative, got {getattr(self, name)}"
                )
        if not self.fault_codes or any(code <= 0 for code in self.fault_codes):
            raise ValueError("behaviour fault_codes must list positive codes")
        if self.initial_state == "offline":
            raise ValueError("behaviour initial_state cannot be offline")


@dataclass
class Signal:
    """One analogue signal: a base value with drift, noise, excursions and a forced override."""

    tag: Tag
    kind: SignalKind
    base: float
    span: float
    follows_run: bool
    """True when the signal falls to zero while the machine stands (speeds, pressures, forces)."""
    drift: float = 0.0
    excursion_value: float | None = None
    excursion_until_s: float = 0.0
    forced_value: float | None = None
    forced_until_s: float = 0.0

    def in_excursion(self, now_s: float) -> bool:
        return self.excursion_value is not None and now_s < self.excursion_until_s


def _signal_for(tag: Tag) -> Signal | None:
    if tag.waveform is not None:
        return None  # a window, see MachineBehaviour.window
    if not tag.is_numeric or tag.role not in ("process_param", "temperature", "vibration"):
        return None
    limits = tag.limits
    low = limits.low if limits else None
    high = limits.high if limits else None
    if tag.role == "vibration":
        healthy = 0.25 * high if high is not None else 1.0
        return Signal(tag, "vibration", healthy, healthy, follows_run=True)
    if low is not None and high is not None:
        base, span = (low + high) / 2, high - low
    elif high is not None:
        base, span = 0.6 * high, 0.4 * abs(high)
    elif low is not None:
        base, span = 1.2 * low if low else 1.0, 0.2 * abs(low) or 1.0
    else:
        base, span = 1.0, 0.1
    span = span or max(abs(base) * 0.1, 1.0)
    is_temperature = tag.role == "temperature" or (tag.unit or "") in _TEMPERATURE_UNITS
    kind: SignalKind = "temperature" if is_temperature else "process"
    return Signal(tag, kind, base, span, follows_run=not is_temperature)


def quantize(tag: Tag, value: float | int) -> float | int:
    """The value as the device holds it: whole raw steps for integer types, float32 precision."""
    if tag.type in _INT_RANGE:
        lo, hi = _INT_RANGE[tag.type]
        raw = min(max(round((float(value) - tag.offset) / tag.scale), lo), hi)
        if tag.scale == 1.0 and tag.offset == 0.0:
            return raw
        return raw * tag.scale + tag.offset
    if tag.type == "float32":
        return float(struct.unpack(">f", struct.pack(">f", float(value)))[0])
    return float(value)


@dataclass
class MachineBehaviour:
    """The simulated life of one machine, advanced by ``step``; ``values()`` by tag name."""

    profile: Profile
    seed: int = 0
    config: BehaviourConfig = field(default_factory=BehaviourConfig)
    start_s: float = 0.0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.config.constants) - {t.name for t in self.profile.tags})
        if unknown:
            raise ValueError(f"behaviour constants name no tag of {self.profile.model}: {unknown}")
        self._rng = random.Random(self.seed)
        self.now_s = self.start_s
        self.state: CanonicalState = self.config.initial_state
        self.state_since_s = self.start_s
        self.fault_code = 0
        self.cycles = 0
        self.good = 0
        self.scrap = 0
        self.running_s = 0.0
        self._state_codes = _state_codes(self.profile)
        self._signals = {s.tag.name: s for s in map(_signal_for, self.profile.tags) if s}
        self._overrides: dict[str, Value] = dict(self.config.constants)
        self._next_transition_s = self.start_s + self._duration(self.state)
        self._cycle_s = self._draw_cycle_s()
        self._cycle_elapsed_s = 0.0
        self._bearing = self.config.bearing
        self._waveform_models = self._models_for_waveforms()
        self._windows: dict[str, SimWindow] = {}
        self._load_tag, self._temperature_tag = self._bearing_tags()
        self._values: dict[str, Value] = {}
        self._update_windows()
        self._compute_values()

    # -- public ----------------------------------------------------------------------------

    @property
    def wear_factor(self) -> float:
        """How much the vibration has grown with bearing wear (1.0 when new)."""
        hours = self.config.initial_wear_h + self.running_s / 3600.0
        return math.exp(self.config.wear_per_hour * hours)

    @property
    def running_h(self) -> float:
        """The bearing's running hours now (``initial_h + running time × wear_time_scale``)."""
        if self._bearing is None:
            return self.config.initial_wear_h + self.running_s / 3600.0
        return self._bearing.initial_h + self.running_s * self._bearing.wear_time_scale / 3600.0

    def window(self, name: str) -> SimWindow:
        """The window a waveform tag holds now."""
        try:
            return self._windows[name]
        except KeyError:
            raise KeyError(
                f"{name!r} is not a waveform tag of {self.profile.model} "
                f"(have: {', '.join(self._windows) or 'none'})"
            ) from None

    def window_refresh_s(self, name: str) -> float:
        """Seconds between two windows of a waveform tag."""
        tag = self.profile.tag(name)
        if tag.waveform is None:
            raise KeyError(f"{name!r} is not a waveform tag of {self.profile.model}")
        if self._bearing is not None and self._bearing.window_refresh_s is not None:
            return self._bearing.window_refresh_s
        return tag.waveform.period_s

    def step(self, now_s: float) -> None:
        """Advance the machine to ``now_s`` (seconds of simulated time)."""
        if now_s < self.now_s:
            raise ValueError(f"time goes backwards: {now_s} < {self.now_s}")
        dt = now_s - self.now_s
        t = self.now_s
        while t < now_s:
            segment_end = min(now_s, self._next_transition_s)
            if self.state == "running":
                self._run(segment_end - t, segment_end)
            t = segment_end
            if t >= self._next_transition_s:
                self._transition(t)
        self.now_s = now_s
        self._update_signals(dt)
        self._update_windows()
        self._compute_values()

    def values(self) -> dict[str, Value]:
        """Every tag's current value, by tag name, as the device holds it."""
        return dict(self._values)

    def excursion(self, metric: str, value: float, duration_s: float) -> None:
        """Hold one analogue signal at ``value`` for ``duration_s`` of simulated time."""
        signal = self._signals.get(metric)
        if signal is None:
            raise ValueError(
                f"{metric!r} is not an analogue signal of {self.profile.model} "
                f"(have: {', '.join(sorted(self._signals))})"
            )
        signal.forced_value = float(value)
        signal.forced_until_s = self.now_s + duration_s
        self._compute_values()

    def set_value(self, name: str, value: Value) -> None:
        """Hold a tag at ``value`` (a client's write to a writable tag, or a chosen constant)."""
        self.profile.tag(name)  # KeyError for an unknown tag
        self._overrides[name] = value
        self._compute_values()

    def force_state(
        self, state: CanonicalState, duration_s: float, fault_code: int | None = None
    ) -> None:
        """Put the machine into ``state`` now, for ``duration_s``; then it runs again."""
        self._enter(state, self.now_s, duration_s)
        if state == "down":
            self.fault_code = fault_code if fault_code is not None else self.fault_code or 1
        self._compute_values()

    # -- state machine ---------------------------------------------------------------------

    def _duration(self, state: str) -> float:
        c, rng = self.config, self._rng
        if state == "running":
            d = rng.expovariate(1.0 / c.mean_running_s)
        elif state == "idle":
            d = rng.expovariate(1.0 / c.mean_idle_s)
        elif state == "down":
            d = rng.lognormvariate(math.log(c.mean_down_s) - c.down_sigma**2 / 2, c.down_sigma)
        elif state == "setup":
            d = rng.lognormvariate(math.log(c.mean_setup_s) - 0.08, 0.4)
        else:
            d = rng.gauss(c.mean_planned_stop_s, 0.1 * c.mean_planned_stop_s)
        return max(d, _MIN_STATE_S)

    def _enter(self, state: CanonicalState, at_s: float, duration_s: float | None = None) -> None:
        self.state = state
        self.state_since_s = at_s
        self.fault_code = self._rng.choice(self.config.fault_codes) if state == "down" else 0
        self._next_transition_s = at_s + (
            duration_s if duration_s is not None else self._duration(state)
        )

    def _transition(self, at_s: float) -> None:
        if self.state != "running":
            self._enter("running", at_s)
            return
        c = self.config
        r = self._rng.random()
        if r < c.p_down:
            self._enter("down", at_s)
        elif r < c.p_down + c.p_setup:
            self._enter("setup", at_s)
        elif r < c.p_down + c.p_setup + c.p_planned_stop:
            self._enter("planned_stop", at_s)
        else:
            self._enter("idle", at_s)

    def _draw_cycle_s(self) -> float:
        ideal = self.profile.ideal_cycle_time_s or _DEFAULT_CYCLE_S
        c = self.config
        factor = (1.0 + c.speed_loss) * (1.0 + c.cycle_time_jitter * self._rng.gauss(0.0, 1.0))
        return ideal * max(factor, 0.5)

    def _run(self, dt: float, until_s: float) -> None:
        self.running_s += dt
        self._cycle_elapsed_s += dt
        while self._cycle_elapsed_s >= self._cycle_s:
            self._cycle_elapsed_s -= self._cycle_s
            self._complete_cycle(until_s)
            self._cycle_s = self._draw_cycle_s()

    def _complete_cycle(self, at_s: float) -> None:
        excursion = any(s.in_excursion(at_s) for s in self._signals.values())
        rate = self.config.excursion_scrap_rate if excursion else self.config.scrap_rate
        self.cycles += 1
        for _ in range(self.profile.units_per_cycle):
            if self._rng.random() < rate:
                self.scrap += 1
            else:
                self.good += 1

    # -- signals ---------------------------------------------------------------------------

    def _update_signals(self, dt: float) -> None:
        c, rng = self.config, self._rng
        decay = math.exp(-dt / c.drift_time_constant_s)
        for signal in self._signals.values():
            if signal.kind == "vibration":
                continue
            sigma = c.drift * signal.span
            signal.drift = signal.drift * decay + sigma * math.sqrt(1 - decay**2) * rng.gauss(0, 1)
        process = [s for s in self._signals.values() if s.kind != "vibration"]
        if self.state == "running" and process and dt > 0:
            p_start = 1.0 - math.exp(-c.excursions_per_hour * dt / 3600.0)
            if rng.random() < p_start:
                self._start_excursion(rng.choice(process))

    def _start_excursion(self, signal: Signal) -> None:
        rng = self._rng
        limits = signal.tag.limits
        beyond = (0.05 + 0.25 * rng.random()) * signal.span
        go_high = (
            limits is None or limits.low is None or (limits.high is not None and rng.random() < 0.5)
        )
        if go_high:
            edge = limits.high if limits and limits.high is not None else signal.base + signal.span
            signal.excursion_value = edge + beyond
        else:
            edge = limits.low if limits and limits.low is not None else signal.base - signal.span
            signal.excursion_value = edge - beyond
        signal.excursion_until_s = self.now_s + rng.expovariate(1.0 / self.config.mean_excursion_s)

    def _signal_value(self, signal: Signal) -> float:
        rng, now = self._rng, self.now_s
        if signal.forced_value is not None and now < signal.forced_until_s:
            return signal.forced_value
        running = self.state == "running"
        bearing = self._bearing
        if bearing is not None and signal.tag.name == self._temperature_tag:
            return self._bearing_temperature(bearing)
        if signal.kind == "vibration":
            if not running:
                return abs(rng.gauss(0.0, 0.02))
            if bearing is not None:
                return self._bearing_vibration(bearing)
            level = signal.base * self.wear_factor
            return max(level * (1.0 + 0.05 * rng.gauss(0.0, 1.0)), 0.0)
        if signal.follows_run and not running:
            return 0.0
        if signal.in_excursion(now) and signal.excursion_value is not None:
            centre = signal.excursion_value
        else:
            centre = signal.base + signal.drift
        return centre + self.config.noise * signal.span * rng.gauss(0.0, 1.0)

    # -- bearing and waveforms -------------------------------------------------------------

    def _models_for_waveforms(self) -> dict[str, BearingModel]:
        """One bearing model per waveform tag, at the tag's rate and window length (the
        second and later waveform tags of a machine get seeds of their own)."""
        base = self._bearing.model if self._bearing is not None else BearingModel(seed=self.seed)
        models: dict[str, BearingModel] = {}
        for tag in self.profile.tags:
            if tag.waveform is None:
                continue
            models[tag.name] = replace(
                base,
                seed=base.seed + 7919 * len(models),
                sample_rate_hz=tag.waveform.sample_rate_hz,
                samples=tag.waveform.samples,
            )
        return models

    def _bearing_tags(self) -> tuple[str | None, str | None]:
        if self._bearing is None:
            return None, None
        tags = self.profile.tags
        load = self._bearing.load_tag or next(
            (t.name for t in tags if t.role == "process_param" and t.unit == "%"), None
        )
        temperature = self._bearing.temperature_tag or next(
            (t.name for t in tags if t.role == "temperature"), None
        )
        for name in (load, temperature):
            if name is not None:
                self.profile.tag(name)  # KeyError for a tag the profile does not have
        return load, temperature

    def _update_windows(self) -> None:
        for name, model in self._waveform_models.items():
            refresh = self.window_refresh_s(name)
            index = max(0, math.floor((self.now_s - self.start_s) / refresh + 1e-9))
            current = self._windows.get(name)
            if current is not None and current.index == index:
                continue
            if self.state == "running":
                values = model.window(self.running_h, index)
            else:
                quiet = np.random.default_rng([model.seed, _STANDSTILL_STREAM, index])
                values = quiet.normal(0.0, _STANDSTILL_RMS, model.samples)
            if self.profile.tag(name).type == "float32":
                values = values.astype(np.float32).astype(np.float64)
            self._windows[name] = SimWindow(index, self.start_s + index * refresh, values)

    def _bearing_vibration(self, bearing: BearingWear) -> float:
        model = bearing.model
        return model.overall_rms(self.running_h) * math.exp(model.noise * self._rng.gauss(0, 1))

    def _bearing_temperature(self, bearing: BearingWear) -> float:
        load = 0.0
        if self.state == "running":
            current = self._values.get(self._load_tag) if self._load_tag else None
            numeric = isinstance(current, int | float) and not isinstance(current, bool)
            load = float(current) if numeric else _DEFAULT_LOAD_PCT  # type: ignore[arg-type]
        steady = bearing.model.temperature(self.running_h, load, bearing.ambient_c)
        return steady + _TEMPERATURE_NOISE_C * self._rng.gauss(0.0, 1.0)

    # -- values ----------------------------------------------------------------------------

    def _counter(self, count: int) -> int:
        rollover = self.profile.workarounds.counter_rollover
        return count % (rollover + 1) if rollover else count

    def _compute_values(self) -> None:
        out: dict[str, Value] = {}
        for tag in self.profile.tags:
            out[tag.name] = self._value_of(tag)
        self._values = out

    def _value_of(self, tag: Tag) -> Value:
        if tag.name in self._overrides:
            return self._overrides[tag.name]
        if tag.role == "state":
            return self._state_codes.get(self.state, 0)
        if tag.role == "fault_code":
            return self.fault_code if self.state == "down" else 0
        if tag.role == "cycle_count":
            return self._counter(self.cycles)
        if tag.role == "good_count":
            return self._counter(self.good)
        if tag.role == "scrap_count":
            return self._counter(self.scrap)
        signal = self._signals.get(tag.name)
        if signal is not None:
            return quantize(tag, self._signal_value(signal))
        window = self._windows.get(tag.name)
        if window is not None:
            return window.rms
        return self._constant(tag)

    def _constant(self, tag: Tag) -> Value:
        name = tag.name
        if tag.type == "bool" or (tag.type == "bitfield" and tag.bit is not None):
            return True
        if tag.type == "string":
            room = 2 * tag.length if tag.length else 32
            if "serial" in name:
                return f"SN{self.seed % 100:02d}{self.cycles + 1:08d}"[:room]
            initials = "".join(word[0] for word in name.split("_")).upper()
            return f"{initials}-001"[:room]
        if "ideal_cycle" in name:
            value: float = self.profile.ideal_cycle_time_s or _DEFAULT_CYCLE_S
        elif "cavit" in name or "units_per_cycle" in name:
            value = self.profile.units_per_cycle
        elif tag.unit == "kWh":
            value = 12_000.0 + self.running_s / 3600.0 * 11.0
        elif tag.unit == "%":
            value = 100
        elif tag.limits is not None and tag.limits.low is not None and tag.limits.high is not None:
            value = (tag.limits.low + tag.limits.high) / 2
        else:
            value = 1
        return quantize(tag, value)


def _state_codes(profile: Profile) -> dict[str, int]:
    """Canonical state → the machine's raw code for it (the lowest code when several map)."""
    codes: dict[str, int] = {}
    for code in sorted(profile.states):
        codes.setdefault(profile.states[code], code)
    return codes
