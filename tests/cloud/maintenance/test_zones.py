"""Vibration classes as data: every packaged class's boundaries, zone_of, and file errors by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.maintenance.zones import (
    PACKAGED_CLASSES,
    VibrationClass,
    load_vibration_classes,
    zone_of,
)
from protocols.errors import ProfileError

# (A/B, B/C, C/D) mm/s RMS: ISO 20816-3 and 10816-1 as in DESIGN.md; ISO 10816-7 Annex A.
EXPECTED = {
    "iso20816_3_group1_rigid": (2.3, 4.5, 7.1),
    "iso20816_3_group1_flexible": (3.5, 7.1, 11.0),
    "iso20816_3_group2_rigid": (1.4, 2.8, 4.5),
    "iso20816_3_group2_flexible": (2.3, 4.5, 7.1),
    "iso10816_1_class1": (0.71, 1.8, 4.5),
    "iso10816_7_pump_cat1_up_to_200kw": (2.5, 4.0, 6.6),
    "iso10816_7_pump_cat1_above_200kw": (3.5, 5.0, 7.6),
    "iso10816_7_pump_cat2_up_to_200kw": (3.2, 5.1, 6.6),
    "iso10816_7_pump_cat2_above_200kw": (4.2, 6.1, 7.6),
}


def test_packaged_file_holds_every_class_with_its_boundaries() -> None:
    classes = load_vibration_classes()
    assert {cid: c.boundaries for cid, c in classes.items()} == EXPECTED
    for cid, cls in classes.items():
        assert cls.id == cid
        assert cls.unit == "mm/s"
        assert cls.title
        assert cls.standard.startswith("ISO ")
    # The pump figures carry a note to verify them against the standard.
    assert all(classes[cid].note for cid in EXPECTED if "10816_7" in cid)


def test_packaged_path_is_the_default() -> None:
    assert load_vibration_classes(PACKAGED_CLASSES) == load_vibration_classes()


@pytest.mark.parametrize("cid", sorted(EXPECTED))
def test_zone_of_every_class_at_and_around_each_boundary(cid: str) -> None:
    cls = load_vibration_classes()[cid]
    a_b, b_c, c_d = EXPECTED[cid]
    assert zone_of(0.0, cls) == "A"
    assert zone_of(a_b * 0.999, cls) == "A"
    assert zone_of(a_b, cls) == "B"  # a value on a boundary belongs to the upper zone
    assert zone_of(b_c * 0.999, cls) == "B"
    assert zone_of(b_c, cls) == "C"
    assert zone_of(c_d * 0.999, cls) == "C"
    assert zone_of(c_d, cls) == "D"
    assert zone_of(10 * c_d, cls) == "D"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -0.1])
def test_zone_of_refuses_a_value_that_is_not_a_velocity(bad: float) -> None:
    cls = VibrationClass("x", "x", "x", 1.0, 2.0, 3.0)
    with pytest.raises(ValueError, match="class x"):
        zone_of(bad, cls)


GOOD_ENTRY = """\
  - id: press_line_fan
    title: Fan on the press line
    standard: plant rule 7
    a_b: 2.0
    b_c: 3.0
    c_d: 5.0
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "classes.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_plant_file_is_read(tmp_path: Path) -> None:
    classes = load_vibration_classes(_write(tmp_path, "classes:\n" + GOOD_ENTRY))
    assert list(classes) == ["press_line_fan"]
    assert classes["press_line_fan"].boundaries == (2.0, 3.0, 5.0)


@pytest.mark.parametrize(
    ("entry_lines", "line", "field", "message"),
    [
        # Boundaries out of order: the error points at the field that breaks the order.
        (
            ["  - id: fan", "    title: t", "    standard: s", "    a_b: 2.0", "    b_c: 1.5",
             "    c_d: 5.0"],
            12, "classes[1].b_c", "must be above a_b",
        ),
        (
            ["  - id: fan", "    title: t", "    standard: s", "    a_b: 2.0", "    b_c: 3.0",
             "    c_d: 3.0"],
            13, "classes[1].c_d", "must be above b_c",
        ),
        (
            ["  - id: fan", "    title: t", "    standard: s", "    a_b: -1", "    b_c: 3.0",
             "    c_d: 5.0"],
            11, "classes[1].a_b", "above 0",
        ),
        (
            ["  - id: fan", "    title: t", "    standard: s", "    a_b: 1", "    b_c: 3.0",
             "    c_d: 5.0", "    colour: red"],
            14, "classes[1].colour", "unknown field",
        ),
        (
            ["  - id: fan", "    title: t", "    standard: s", "    a_b: 1", "    b_c: 3.0",
             "    c_d: 5.0", "    unit: in/s"],
            14, "classes[1].unit", "mm/s",
        ),
        (
            ["  - id: fan blower", "    title: t", "    standard: s", "    a_b: 1",
             "    b_c: 3.0", "    c_d: 5.0"],
            8, "classes[1].id", "pattern",
        ),
        (
            ["  - id: press_line_fan", "    title: t", "    standard: s", "    a_b: 1",
             "    b_c: 3.0", "    c_d: 5.0"],
            8, "classes[1].id", "used twice",
        ),
    ],
)  # fmt: skip
def test_a_bad_file_names_file_line_and_field(
    tmp_path: Path, entry_lines: list[str], line: int, field: str, message: str
) -> None:
    # The good entry takes lines 2-7, the bad one starts on line 8.
    text = "classes:\n" + GOOD_ENTRY + "\n".join(entry_lines) + "\n"
    path = _write(tmp_path, text)
    with pytest.raises(ProfileError) as caught:
        load_vibration_classes(path)
    error = caught.value
    assert error.source == str(path)
    assert any(
        got_line == line and got_field == field and message in got_message
        for got_line, got_field, got_message in error.problems
    ), error.problems
    assert f"{path}:{line}: {field}:" in str(error)


def test_a_missing_field_and_an_empty_list_are_named(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "classes:\n  - id: fan\n    title: t\n    a_b: 1\n    b_c: 2\n    c_d: 3\n"
    )
    with pytest.raises(ProfileError, match=r"classes\[0\]\.standard: Field required"):
        load_vibration_classes(path)
    with pytest.raises(ProfileError, match="classes"):
        load_vibration_classes(_write(tmp_path, "classes: []\n"))


def test_unreadable_and_invalid_yaml_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ProfileError, match=r"nope\.yaml: \(file\): cannot read"):
        load_vibration_classes(missing)
    with pytest.raises(ProfileError, match=r"classes.yaml:\d+: \(yaml\): not valid YAML"):
        load_vibration_classes(_write(tmp_path, "classes:\n  - id: [unclosed\n"))
