"""The condition monitor's settings file: defaults, the documented sample, and errors that name
the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.maintenance.condition_config import (
    ConditionSettings,
    TemperatureWatch,
    condition_settings,
    load_condition_file,
)
from protocols.errors import ProfileError

SAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "condition.sample.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "condition.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_sample_documents_every_field_and_its_defaults():
    settings = load_condition_file(SAMPLE)
    defaults = ConditionSettings()
    for name in ConditionSettings.model_fields:
        assert f"\n{name}:" in SAMPLE.read_text(encoding="utf-8"), f"{name} is not in the sample"
        if name not in ("profiles", "machines"):
            assert getattr(settings, name) == getattr(defaults, name), name
    watch = settings.profiles["pump_drive_monitor"].temperature
    assert watch is not None
    for name, field in TemperatureWatch.model_fields.items():
        assert f" {name}:" in SAMPLE.read_text(encoding="utf-8"), f"temperature.{name}"
        if name not in ("metric", "limit_c", "load_metric"):
            assert getattr(watch, name) == field.default, name


def test_a_machine_name_wins_over_its_profile(tmp_path):
    path = write(tmp_path, """\
profiles:
  acme-pump:
    vibration_class: iso10816_1_class1
    temperature: {limit_c: 80, load_metric: motor_load}
machines:
  Pump 7:
    vibration_class: iso20816_3_group2_flexible
""")  # fmt: skip
    settings = load_condition_file(path)
    assert settings.class_for("Pump 7", "acme-pump") == "iso20816_3_group2_flexible"
    assert settings.class_for("Pump 8", "acme-pump") == "iso10816_1_class1"
    assert settings.class_for("Pump 8", None) is None
    assert settings.temperature_for("Pump 7", "acme-pump").limit_c == 80  # Pump 7 has none
    assert settings.temperature_for("Pump 8", "other") == TemperatureWatch()
    assert settings.rul_horizon_h == 168
    assert settings.baseline_windows == 50


def test_an_unknown_class_is_named_with_its_line(tmp_path):
    path = write(tmp_path, """\
rul_horizon_h: 100
machines:
  Pump 7:
    vibration_class: iso20816_3_group2_rigid
  Pump 8:
    vibration_class: iso20816_3_group9
""")  # fmt: skip
    with pytest.raises(ProfileError) as caught:
        load_condition_file(path)
    (problem,) = caught.value.problems
    assert problem[0] == 6
    assert problem[1] == "machines.Pump 8.vibration_class"
    assert "iso20816_3_group9" in problem[2]
    assert "iso20816_3_group2_rigid" in problem[2]  # the known ones are listed
    assert str(path) in str(caught.value)


def test_a_bad_value_or_an_unknown_field_names_the_line_and_field(tmp_path):
    path = write(tmp_path, """\
lookback_h: 720
rul_horizon_h: -5
profiles:
  acme-pump:
    temperature:
      limit: 90
""")  # fmt: skip
    with pytest.raises(ProfileError) as caught:
        load_condition_file(path)
    problems = {field: (line, message) for line, field, message in caught.value.problems}
    assert problems["rul_horizon_h"][0] == 2
    assert "greater than 0" in problems["rul_horizon_h"][1]
    assert problems["profiles.acme-pump.temperature.limit"][0] == 6
    assert "unknown field" in problems["profiles.acme-pump.temperature.limit"][1]


def test_a_plant_class_table_of_its_own(tmp_path):
    classes = tmp_path / "classes.yaml"
    classes.write_text("""\
classes:
  - id: plant_fans
    title: Roof fans
    standard: plant rule 12
    a_b: 2.0
    b_c: 4.0
    c_d: 6.0
""")  # fmt: skip
    path = write(tmp_path, f"""\
vibration_classes_file: {classes}
profiles:
  roof-fan: {{vibration_class: plant_fans}}
  acme-pump: {{vibration_class: iso10816_1_class1}}
""")  # fmt: skip
    with pytest.raises(ProfileError) as caught:
        load_condition_file(path)
    assert [p[1] for p in caught.value.problems] == ["profiles.acme-pump.vibration_class"]
    assert "known: plant_fans" in caught.value.problems[0][2]


def test_no_file_means_every_default(tmp_path):
    assert condition_settings(None) == ConditionSettings()
    path = write(tmp_path, "rul_horizon_h: 72\n")
    assert condition_settings(path).rul_horizon_h == 72


def test_hours_left_read_in_the_unit_people_use() -> None:
    from cloud.maintenance.signals import hours_text

    assert [hours_text(h) for h in (150.2, 1.0, 0.75, 0.01)] == ["150 h", "1 h", "45 min", "36 s"]
