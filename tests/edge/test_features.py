"""Features of one waveform window, checked against closed-form values for known signals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.features import FEATURE_SUFFIXES, WaveformError, feature_metric, window_features
from protocols.profile import WAVEFORM_FEATURES

RATE_HZ = 2560.0
SAMPLES = 1024


def _sine(amplitude: float, frequency_hz: float, phase: float = 0.0) -> np.ndarray:
    t = np.arange(SAMPLES) / RATE_HZ
    return amplitude * np.sin(2 * np.pi * frequency_hz * t + phase)


@pytest.mark.parametrize("amplitude", [0.5, 2.0, 7.3])
def test_a_whole_number_of_sine_periods_gives_the_textbook_figures(amplitude: float) -> None:
    features = window_features(_sine(amplitude, 25.0, phase=0.3))  # 10 periods in the window
    assert features.rms == pytest.approx(amplitude / math.sqrt(2), rel=1e-9)
    assert features.peak == pytest.approx(amplitude, rel=1e-3)
    assert features.crest_factor == pytest.approx(math.sqrt(2), rel=1e-3)
    assert features.kurtosis == pytest.approx(1.5, rel=1e-9)


def test_gaussian_noise_has_a_kurtosis_near_three() -> None:
    noise = np.random.default_rng(7).normal(0.0, 1.8, size=200_000)
    features = window_features(noise)
    assert features.kurtosis == pytest.approx(3.0, abs=0.05)
    assert features.rms == pytest.approx(1.8, rel=0.01)


def test_impacts_raise_crest_factor_and_kurtosis_above_the_clean_signal() -> None:
    clean = _sine(1.0, 25.0)
    impacted = clean.copy()
    impacted[::128] += 6.0  # one sharp impact every 50 ms
    before, after = window_features(clean), window_features(impacted)
    assert after.crest_factor > 2 * before.crest_factor
    assert after.kurtosis > 5 * before.kurtosis


def test_rms_is_taken_about_zero_and_kurtosis_about_the_mean() -> None:
    offset = _sine(1.0, 25.0) + 3.0
    features = window_features(offset)
    assert features.rms == pytest.approx(math.sqrt(3.0**2 + 0.5), rel=1e-9)
    assert features.kurtosis == pytest.approx(1.5, rel=1e-9)


def test_an_all_zero_window_gives_zeros_not_a_division_error() -> None:
    features = window_features(np.zeros(64))
    assert (features.rms, features.peak, features.crest_factor, features.kurtosis) == (0, 0, 0, 0)


def test_plain_python_lists_and_float32_arrays_are_accepted() -> None:
    as_list = [float(x) for x in _sine(1.0, 25.0)]
    from_list = window_features(as_list)
    from_f32 = window_features(np.asarray(as_list, dtype=np.float32))
    assert from_list.rms == pytest.approx(from_f32.rms, rel=1e-6)
    assert isinstance(from_list.rms, float)


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ([], "empty"),
        ([1.0, float("nan"), 2.0], "1 NaN/infinite"),
        ([1.0, float("inf")], "1 NaN/infinite"),
        ([[1.0, 2.0], [3.0, 4.0]], "one-dimensional"),
        (["a", "b"], "not a sequence of numbers"),
    ],
)
def test_a_window_without_features_raises_waveform_error_saying_why(
    window: object, message: str
) -> None:
    with pytest.raises(WaveformError, match=message):
        window_features(window)  # type: ignore[arg-type]


def test_feature_names_are_the_pinned_suffixes_and_the_profile_schema_agrees() -> None:
    assert FEATURE_SUFFIXES == ("rms", "peak", "crest_factor", "kurtosis")
    assert FEATURE_SUFFIXES == WAVEFORM_FEATURES
    assert feature_metric("motor_de_velocity", "crest_factor") == "motor_de_velocity_crest_factor"
    features = window_features(_sine(2.0, 25.0))
    assert [features.value(s) for s in FEATURE_SUFFIXES] == [
        features.rms, features.peak, features.crest_factor, features.kurtosis,
    ]  # fmt: skip
    with pytest.raises(KeyError, match="unknown waveform feature"):
        features.value("skewness")
