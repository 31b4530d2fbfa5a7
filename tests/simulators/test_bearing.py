"""The bearing run-to-failure model: the known trend, seeded windows, wear signatures, temperature."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from edge.features import window_features
from simulators.bearing import BearingModel


def _rms(x: np.ndarray) -> float:
    return math.sqrt(float(np.mean(np.square(x))))


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_trend_is_flat_then_reaches_failure_rms_at_failure_h(seed: int) -> None:
    model = BearingModel(seed=seed)
    life = model.failure_h
    assert model.life_min_h <= life <= model.life_max_h
    assert model.overall_rms(0.0) == model.baseline_rms
    assert model.overall_rms(0.99 * model.onset_h) == model.baseline_rms
    assert model.overall_rms(life) == model.failure_rms
    assert model.overall_rms(1.1 * life) > model.failure_rms
    # Strictly rising after the onset, with a constant logarithmic growth rate.
    hours = np.linspace(model.onset_h + 1.0, life, 50)
    values = np.array([model.overall_rms(h) for h in hours])
    assert np.all(np.diff(values) > 0)
    log_slopes = np.diff(np.log(values)) / np.diff(hours)
    assert np.allclose(log_slopes, model.growth_per_h, rtol=1e-9)
    expected_k = math.log(model.failure_rms / model.baseline_rms) / (life - model.onset_h)
    assert model.growth_per_h == pytest.approx(expected_k, rel=1e-12)


def test_life_is_drawn_from_the_seed_or_given() -> None:
    lives = {BearingModel(seed=s).failure_h for s in range(20)}
    assert len(lives) == 20
    assert all(800.0 <= life <= 1600.0 for life in lives)
    assert BearingModel(seed=5).failure_h == BearingModel(seed=5).failure_h
    given = BearingModel(seed=5, life_h=1000.0)
    assert given.failure_h == 1000.0
    assert given.overall_rms(1000.0) == given.failure_rms


@pytest.mark.parametrize("level", [1.4, 1.8, 2.8, 4.5, 7.1])
def test_crossing_h_inverts_the_trend(level: float) -> None:
    model = BearingModel(seed=2)
    hours = model.crossing_h(level)
    assert model.overall_rms(hours) == pytest.approx(level, rel=1e-12)
    assert model.overall_rms(hours - 1.0) < level
    assert model.crossing_h(model.baseline_rms) == 0.0


def test_window_is_reproducible_from_seed_and_index() -> None:
    model = BearingModel(seed=11)
    a = model.window(500.0, 3)
    assert a.dtype == np.float64
    assert a.shape == (model.samples,)
    assert np.array_equal(a, BearingModel(seed=11).window(500.0, 3))
    assert not np.array_equal(a, model.window(500.0, 4))
    assert not np.array_equal(a, BearingModel(seed=12).window(500.0, 3))


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.8, 1.0])
def test_window_rms_is_the_trend_times_the_seeded_scatter(fraction: float) -> None:
    model = BearingModel(seed=4)
    hours = fraction * model.failure_h
    ratios = np.array([_rms(model.window(hours, i)) / model.overall_rms(hours) for i in range(400)])
    logs = np.log(ratios)
    # log(RMS / trend) ~ N(0, noise²): mean within 4 standard errors, spread within 15 %.
    assert abs(float(np.mean(logs))) < 4 * model.noise / math.sqrt(len(logs))
    assert float(np.std(logs)) == pytest.approx(model.noise, rel=0.15)


def test_noise_free_window_has_exactly_the_trend_rms() -> None:
    model = BearingModel(seed=1, noise=0.0)
    for fraction in (0.1, 0.6, 0.9):
        hours = fraction * model.failure_h
        assert _rms(model.window(hours, 0)) == pytest.approx(model.overall_rms(hours), rel=1e-12)


def test_shaft_1x_dominates_a_new_bearing_spectrum() -> None:
    model = BearingModel(seed=0, samples=2560)
    spectrum = np.abs(np.fft.rfft(model.window(0.0, 0)))
    freqs = np.fft.rfftfreq(model.samples, 1.0 / model.sample_rate_hz)
    assert abs(freqs[int(np.argmax(spectrum))] - model.shaft_hz) < 1.0


def test_impacts_raise_peak_crest_factor_and_kurtosis_with_wear() -> None:
    model = BearingModel(seed=6)
    means = []
    for fraction in (0.0, 0.5, 0.8, 1.0):
        hours = fraction * model.failure_h
        feats = [window_features(model.window(hours, i)) for i in range(40)]
        means.append(
            (
                np.mean([f.peak for f in feats]),
                np.mean([f.crest_factor for f in feats]),
                np.mean([f.kurtosis for f in feats]),
            )
        )
    peaks, crests, kurtoses = zip(*means, strict=True)
    assert all(b > a for a, b in itertools.pairwise(peaks))
    assert all(b > a for a, b in itertools.pairwise(crests))
    assert all(b > a for a, b in itertools.pairwise(kurtoses))
    assert kurtoses[0] < 2.5  # a new bearing: mostly the 1x sine (1.5) plus noise (3)
    assert kurtoses[-1] > 4.5  # a failed one: impulsive


def test_failed_bearing_has_energy_at_the_resonance_and_defect_sidebands() -> None:
    model = BearingModel(seed=9, noise=0.0)
    envelope_freqs = np.fft.rfftfreq(model.samples, 1.0 / model.sample_rate_hz)
    x = model.window(model.failure_h, 0)
    power = np.abs(np.fft.rfft(x)) ** 2
    band = (envelope_freqs > 500) & (envelope_freqs < 900)
    new_power = np.abs(np.fft.rfft(model.window(0.0, 0))) ** 2
    # The resonance band's share of the power grows by far as the impacts take over.
    assert power[band].sum() / power.sum() > 5 * new_power[band].sum() / new_power.sum()
    # The envelope (|x| demodulated) repeats at the outer-race defect frequency.
    envelope = np.abs(np.fft.rfft(np.abs(x) - np.mean(np.abs(x))))
    low = (envelope_freqs > 50) & (envelope_freqs < 150)
    peak_hz = envelope_freqs[low][int(np.argmax(envelope[low]))]
    assert abs(peak_hz - model.bpfo_order * model.shaft_hz) < 4.0


def test_temperature_grows_with_load_and_wear() -> None:
    model = BearingModel(seed=3)
    new_idle = model.temperature(0.0, 0.0, ambient_c=20.0)
    assert new_idle == 20.0
    assert model.temperature(0.0, 100.0, ambient_c=20.0) == pytest.approx(20.0 + model.load_rise_c)
    failed = model.temperature(model.failure_h, 100.0, ambient_c=20.0)
    assert failed == pytest.approx(20.0 + model.load_rise_c + model.wear_rise_c)
    halfway = model.temperature(
        model.onset_h + 0.5 * (model.failure_h - model.onset_h), 100.0, 20.0
    )
    assert halfway == pytest.approx(20.0 + model.load_rise_c + 0.5 * model.wear_rise_c)


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"baseline_rms": 0.0}, "baseline_rms"),
        ({"failure_rms": 0.5}, "failure_rms"),
        ({"life_h": -1.0}, "life_h"),
        ({"life_min_h": 900.0, "life_max_h": 800.0}, "life_min_h"),
        ({"onset_fraction": 1.0}, "onset_fraction"),
        ({"samples": 4}, "samples"),
        ({"shaft_hz": 2000.0}, "shaft_hz"),
        ({"resonance_hz": 1300.0}, "resonance_hz"),
        ({"noise": -0.1}, "noise"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs: dict[str, float], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        BearingModel(**kwargs)  # type: ignore[arg-type]


def test_negative_window_index_is_refused() -> None:
    with pytest.raises(ValueError, match="window index"):
        BearingModel().window(0.0, -1)
