"""A seeded run-to-failure model of a rolling-element bearing: vibration velocity and housing temperature.

Pure numpy arithmetic, no I/O. The trend is exactly known, so predictions made from the simulated
windows can be checked against the truth (:attr:`BearingModel.failure_h`,
:meth:`BearingModel.overall_rms`, :meth:`BearingModel.crossing_h`).

The trend of the overall velocity RMS ``v(t)`` over running hours ``t`` has two stages:

- running-in and steady running, ``t < t_on``: flat at ``baseline_rms``;
- defect growth, ``t ≥ t_on``: an exponential rise ``v(t) = baseline_rms · exp(k · (t − t_on))``
  with ``k = ln(failure_rms / baseline_rms) / (failure_h − t_on)``, so ``v(failure_h) == failure_rms``
  exactly. It keeps rising past ``failure_h``.

``t_on = onset_fraction · failure_h``. ``failure_h`` is ``life_h`` when given, otherwise drawn
uniformly from ``[life_min_h, life_max_h]`` by the seed. The wear fraction
``w(t) = clip((t − t_on) / (failure_h − t_on), 0, 1)`` (equivalently ``ln(v / baseline) /
ln(failure / baseline)``) drives everything else that changes with wear.

One waveform window (``samples`` values at ``sample_rate_hz``, mm/s) is the sum of three parts,
each normalised to unit RMS and weighted by the square root of its share of the mean square:

- the shaft's 1x sine at ``shaft_hz`` (random phase), share ``1 − noise share − impact share``;
- broadband Gaussian noise, share ``noise_share`` (0.15);
- bearing defect impacts at the outer-race defect frequency ``bpfo_order × shaft_hz``: decaying
  bursts of a structural resonance (``resonance_hz``, time constant ``impact_decay_s``) with a
  little amplitude and timing jitter; share ``0.02 + 0.58 · w`` (2 % new, 60 % at failure).

The window is then scaled so that its RMS is exactly ``overall_rms(t) · exp(noise · ε)`` with
``ε ~ N(0, 1)`` drawn from the window's own generator: the seeded window-to-window scatter. As the
impact share grows, peak, crest factor and kurtosis rise. Every random number of a window comes
from ``numpy.random.default_rng([seed, 1, index])``, so the same ``(seed, index, running_h)``
always gives the same window; the life comes from ``default_rng([seed, 0])``.

The housing temperature is a steady-state figure, no noise:
``ambient_c + load_rise_c · load_pct / 100 + wear_rise_c · w(t)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

__all__ = ["BearingModel"]

_LIFE_STREAM = 0
_WINDOW_STREAM = 1
_NOISE_SHARE = 0.15
_IMPACT_SHARE_NEW = 0.02
_IMPACT_SHARE_FAILED = 0.60
_IMPACT_AMPLITUDE_JITTER = 0.2  # relative standard deviation of one impact's amplitude
_IMPACT_TIMING_JITTER = 0.01  # relative standard deviation of one defect period (rolling slip)


@dataclass(frozen=True)
class BearingModel:
    """Seeded run-to-failure model of a rolling-element bearing's vibration velocity (mm/s RMS)."""

    seed: int = 0
    baseline_rms: float = 1.0
    """mm/s overall velocity RMS when new."""
    failure_rms: float = 4.5
    """mm/s: the bearing has failed when the trend reaches it."""
    life_h: float | None = None
    """Running hours from new to failure; None: drawn from the seed in [life_min_h, life_max_h]."""
    life_min_h: float = 800.0
    life_max_h: float = 1600.0
    shaft_hz: float = 24.75
    """1485 rpm: a 4-pole induction motor at 50 Hz."""
    sample_rate_hz: float = 2560.0
    samples: int = 1024
    """Samples per window."""
    noise: float = 0.04
    """Relative window-to-window scatter of the RMS (standard deviation of its logarithm)."""
    onset_fraction: float = 0.3
    """Share of the life spent flat at the baseline before the defect starts to grow."""
    bpfo_order: float = 3.58
    """Outer-race defect frequency in multiples of the shaft speed (a typical deep-groove bearing)."""
    resonance_hz: float = 700.0
    """The structural resonance each defect impact rings at."""
    impact_decay_s: float = 0.0015
    """Time constant of one impact's decay."""
    load_rise_c: float = 30.0
    """Housing temperature rise above ambient at 100 % load, °C."""
    wear_rise_c: float = 15.0
    """Extra housing temperature rise of a failed bearing (friction), °C."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.baseline_rms > 0.0:
            problems.append(f"baseline_rms must be > 0 mm/s, got {self.baseline_rms}")
        if not self.failure_rms > self.baseline_rms:
            problems.append(
                f"failure_rms ({self.failure_rms}) must be above baseline_rms ({self.baseline_rms})"
            )
        if self.life_h is not None and not self.life_h > 0.0:
            problems.append(f"life_h must be > 0 running hours, got {self.life_h}")
        if not 0.0 < self.life_min_h <= self.life_max_h:
            problems.append(
                f"need 0 < life_min_h <= life_max_h, got {self.life_min_h} and {self.life_max_h}"
            )
        if not 0.0 <= self.onset_fraction < 1.0:
            problems.append(f"onset_fraction must be in [0, 1), got {self.onset_fraction}")
        if self.samples < 16:
            problems.append(f"samples must be at least 16 per window, got {self.samples}")
        if not self.sample_rate_hz > 0.0:
            problems.append(f"sample_rate_hz must be > 0, got {self.sample_rate_hz}")
        nyquist = self.sample_rate_hz / 2.0
        for name in ("shaft_hz", "resonance_hz"):
            value = getattr(self, name)
            if not 0.0 < value < nyquist:
                problems.append(f"{name} must be between 0 and Nyquist ({nyquist} Hz), got {value}")
        if not 0.0 < self.bpfo_order * self.shaft_hz < nyquist:
            problems.append(f"bpfo_order × shaft_hz must be below Nyquist ({nyquist} Hz)")
        if not self.impact_decay_s > 0.0:
            problems.append(f"impact_decay_s must be > 0, got {self.impact_decay_s}")
        if self.noise < 0.0:
            problems.append(f"noise must be >= 0, got {self.noise}")
        if problems:
            raise ValueError("BearingModel: " + "; ".join(problems))

    # ---- the exactly known trend -------------------------------------------------------------

    @cached_property
    def failure_h(self) -> float:
        """True life, running hours: the trend reaches ``failure_rms`` here."""
        if self.life_h is not None:
            return float(self.life_h)
        rng = np.random.default_rng([self.seed, _LIFE_STREAM])
        return float(rng.uniform(self.life_min_h, self.life_max_h))

    @property
    def onset_h(self) -> float:
        """Running hours at which the defect starts to grow (the end of the flat stage)."""
        return self.onset_fraction * self.failure_h

    @property
    def growth_per_h(self) -> float:
        """The exponential rate ``k`` of the defect stage, 1/h."""
        return math.log(self.failure_rms / self.baseline_rms) / (self.failure_h - self.onset_h)

    def overall_rms(self, running_h: float) -> float:
        """The noise-free overall velocity RMS trend, mm/s (``failure_rms`` at ``failure_h``)."""
        if running_h <= self.onset_h:
            return self.baseline_rms
        if running_h == self.failure_h:
            return self.failure_rms
        return self.baseline_rms * math.exp(self.growth_per_h * (running_h - self.onset_h))

    def crossing_h(self, level_rms: float) -> float:
        """Running hours at which the trend first reaches ``level_rms`` (0 if it starts there)."""
        if level_rms <= self.baseline_rms:
            return 0.0
        if level_rms == self.failure_rms:
            return self.failure_h
        return self.onset_h + math.log(level_rms / self.baseline_rms) / self.growth_per_h

    def wear(self, running_h: float) -> float:
        """Wear fraction, 0 new (and through the flat stage) … 1 failed."""
        fraction = (running_h - self.onset_h) / (self.failure_h - self.onset_h)
        return min(max(fraction, 0.0), 1.0)

    def impact_share(self, running_h: float) -> float:
        """Share of the window's mean square carried by the defect impacts."""
        return _IMPACT_SHARE_NEW + (_IMPACT_SHARE_FAILED - _IMPACT_SHARE_NEW) * self.wear(running_h)

    # ---- the simulated measurements ----------------------------------------------------------

    def window(self, running_h: float, index: int) -> npt.NDArray[np.float64]:
        """One velocity waveform window (mm/s), reproducible from ``(seed, index)`` and ``running_h``."""
        if index < 0:
            raise ValueError(f"window index must be >= 0, got {index}")
        rng = np.random.default_rng([self.seed, _WINDOW_STREAM, index])
        t = np.arange(self.samples, dtype=np.float64) / self.sample_rate_hz
        shaft = math.sqrt(2.0) * np.sin(
            2.0 * math.pi * self.shaft_hz * t + rng.uniform(0, 2 * math.pi)
        )
        broadband = rng.standard_normal(self.samples)
        impacts = _unit_rms(self._impact_train(t, rng))
        scatter = math.exp(self.noise * float(rng.standard_normal()))
        impact_share = self.impact_share(running_h)
        shaft_share = 1.0 - _NOISE_SHARE - impact_share
        waveform = (
            math.sqrt(shaft_share) * shaft
            + math.sqrt(_NOISE_SHARE) * _unit_rms(broadband)
            + math.sqrt(impact_share) * impacts
        )
        target = self.overall_rms(running_h) * scatter
        result: npt.NDArray[np.float64] = _unit_rms(waveform) * target
        return result

    def _impact_train(
        self, t: npt.NDArray[np.float64], rng: np.random.Generator
    ) -> npt.NDArray[np.float64]:
        """Decaying resonance bursts at the outer-race defect frequency, with jitter."""
        period = 1.0 / (self.bpfo_order * self.shaft_hz)
        duration = t[-1] + 1.0 / self.sample_rate_hz
        count = int(duration / period) + 2
        gaps = period * (1.0 + _IMPACT_TIMING_JITTER * rng.standard_normal(count))
        starts = rng.uniform(0.0, period) - period + np.cumsum(gaps)
        amplitudes = 1.0 + _IMPACT_AMPLITUDE_JITTER * rng.standard_normal(count)
        since = t[None, :] - starts[:, None]
        ringing = np.where(
            since >= 0.0,
            np.exp(-np.maximum(since, 0.0) / self.impact_decay_s)
            * np.sin(2.0 * math.pi * self.resonance_hz * since),
            0.0,
        )
        train: npt.NDArray[np.float64] = amplitudes @ ringing
        return train

    def temperature(self, running_h: float, load_pct: float, ambient_c: float = 25.0) -> float:
        """Bearing housing temperature, °C: ambient + a load term + a term that grows with wear."""
        load = min(max(load_pct, 0.0), 150.0)
        return ambient_c + self.load_rise_c * load / 100.0 + self.wear_rise_c * self.wear(running_h)


def _unit_rms(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """``values`` scaled to an RMS of exactly 1 (an all-zero array is returned unchanged)."""
    rms = math.sqrt(float(np.mean(np.square(values))))
    if rms == 0.0:
        return values
    scaled: npt.NDArray[np.float64] = values / rms
    return scaled
