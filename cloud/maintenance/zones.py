"""Vibration severity zones (A/B/C/D) of a machine from its vibration class; the classes are data.

A class holds three boundaries of the overall vibration velocity (mm/s RMS): A/B, B/C and C/D.
``zone_of`` puts a value on a boundary in the upper zone: ``rms < a_b`` is A, ``a_b ≤ rms < b_c``
is B, ``b_c ≤ rms < c_d`` is C and ``rms ≥ c_d`` is D.

The packaged ``vibration_classes.yaml`` holds the ISO 20816-3 groups 1 and 2 on rigid and
flexible supports, ISO 10816-1 class I (small machines) and the ISO 10816-7 rotodynamic pump
table; ``load_vibration_classes(path)`` reads a plant's own file of the same shape. A mistake in
a file raises ``protocols.errors.ProfileError`` naming the file, the line and the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from protocols.errors import ProfileError
from protocols.yaml_lines import field_name, line_of, load_with_lines, validate_file

__all__ = [
    "PACKAGED_CLASSES",
    "VibrationClass",
    "Zone",
    "load_vibration_classes",
    "zone_of",
]

Zone = Literal["A", "B", "C", "D"]
PACKAGED_CLASSES = Path(__file__).with_name("vibration_classes.yaml")


@dataclass(frozen=True, slots=True)
class VibrationClass:
    """The zone boundaries of one class of machine, mm/s RMS overall velocity."""

    id: str
    title: str
    standard: str
    a_b: float
    b_c: float
    c_d: float
    unit: str = "mm/s"
    note: str = ""
    """What a plant should check before relying on the boundaries (empty: nothing special)."""

    @property
    def boundaries(self) -> tuple[float, float, float]:
        """``(a_b, b_c, c_d)``."""
        return self.a_b, self.b_c, self.c_d


class _ClassEntry(BaseModel):
    """One class in the YAML file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_]+$", min_length=1, max_length=100)
    title: str = Field(min_length=1)
    standard: str = Field(min_length=1)
    a_b: float
    b_c: float
    c_d: float
    unit: Literal["mm/s"] = "mm/s"
    note: str = ""

    @field_validator("a_b", "b_c", "c_d")
    @classmethod
    def _ascending(cls, value: float, info: ValidationInfo) -> float:
        if not math.isfinite(value) or value <= 0.0:
            raise ValueError(f"must be a finite velocity above 0 mm/s, got {value}")
        previous = {"b_c": "a_b", "c_d": "b_c"}.get(str(info.field_name))
        if previous is not None and previous in info.data and value <= info.data[previous]:
            raise ValueError(
                f"must be above {previous} ({info.data[previous]}): the boundaries rise A/B < B/C < C/D"
            )
        return value


class _ClassesFile(BaseModel):
    """The whole file: a list of classes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    classes: tuple[_ClassEntry, ...] = Field(min_length=1)


def load_vibration_classes(path: Path | None = None) -> dict[str, VibrationClass]:
    """The classes of a YAML file by id (None: the packaged ISO classes).

    Raises ``ProfileError`` naming the file, line and field of every mistake (including an id
    used twice).
    """
    source = PACKAGED_CLASSES if path is None else Path(path)
    parsed = validate_file(_ClassesFile, source)
    classes: dict[str, VibrationClass] = {}
    duplicates: list[tuple[int | None, str, str]] = []
    lines: dict[tuple[str | int, ...], int] | None = None
    for index, entry in enumerate(parsed.classes):
        if entry.id in classes:
            if lines is None:
                _data, lines = load_with_lines(source.read_text(encoding="utf-8"), str(source))
            loc = ("classes", index, "id")
            duplicates.append(
                (
                    line_of(lines, loc),
                    field_name(loc),
                    f"the id {entry.id!r} is used twice; give each class its own id",
                )
            )
            continue
        classes[entry.id] = VibrationClass(
            id=entry.id,
            title=entry.title,
            standard=entry.standard,
            a_b=entry.a_b,
            b_c=entry.b_c,
            c_d=entry.c_d,
            unit=entry.unit,
            note=entry.note,
        )
    if duplicates:
        raise ProfileError(str(source), duplicates)
    return classes


def zone_of(rms: float, cls: VibrationClass) -> Zone:
    """The zone of an overall velocity RMS value (a value on a boundary is in the upper zone)."""
    if not math.isfinite(rms) or rms < 0.0:
        raise ValueError(
            f"zone_of: overall velocity RMS must be a finite value >= 0 {cls.unit}, got {rms} "
            f"(class {cls.id}); drop bad-quality samples before classifying"
        )
    if rms < cls.a_b:
        return "A"
    if rms < cls.b_c:
        return "B"
    if rms < cls.c_d:
        return "C"
    return "D"
