"""Settings of the condition monitor: the YAML file named by ``condition_file`` in the cloud config.

Which vibration class a machine falls in by default (per device profile, per machine name;
a class set through the API wins over both), how far back the monitor looks, how many first
windows make a machine's baseline, the remaining-life horizon that raises an alarm, and the
temperature limit and load metric per profile. Every field is documented, with its default,
in ``deploy/condition.sample.yaml``. ``load_condition_file`` validates once; its errors name
the file, the line and the field (an unknown vibration class included).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from protocols.errors import ProfileError
from protocols.yaml_lines import line_of, load_with_lines, validate_file


class TemperatureWatch(BaseModel):
    """How one machine's temperature trend is judged."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str | None = Field(
        default=None, description="the temperature metric; None: every role-temperature metric"
    )
    limit_c: float | None = Field(
        default=None, description="the alarm limit the trend is extrapolated to (hours to limit)"
    )
    load_metric: str | None = Field(
        default=None, description="a process_param giving the load, e.g. motor current"
    )
    load_band_pct: float = Field(default=10.0, gt=0, le=100)
    min_slope_c_per_h: float = Field(default=0.2, gt=0)
    lookback_h: float = Field(default=24.0, gt=0, le=24 * 365)
    min_span_h: float = Field(
        default=2.0, ge=0, description="a trend over less data than this is not judged"
    )
    enabled: bool = Field(
        default=True, description="false: the machine's temperature is not watched"
    )


class MachineCondition(BaseModel):
    """Defaults of the machines of one profile, or of one machine by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vibration_class: str | None = Field(default=None, description="an id of the class table")
    temperature: TemperatureWatch | None = None


class ConditionSettings(BaseModel):
    """The condition monitor's settings (all optional; the defaults are the sample file's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lookback_h: float = Field(default=720.0, gt=0, le=24 * 3650)
    trend_bucket_s: float = Field(default=600.0, ge=0, le=86_400)
    zone_windows: int = Field(default=3, ge=1, le=1000)
    baseline_windows: int = Field(default=50, ge=5, le=100_000)  # health.MIN_BASELINE
    rul_horizon_h: float = Field(default=168.0, gt=0)
    rul_confidence: float = Field(default=0.9, gt=0, lt=1)
    vibration_classes_file: Path | None = None
    profiles: dict[str, MachineCondition] = Field(default_factory=dict)
    machines: dict[str, MachineCondition] = Field(default_factory=dict)

    def class_for(self, machine_name: str, profile: str | None) -> str | None:
        """The configured vibration class of a machine: by its name, else by its profile."""
        for entry in (self.machines.get(machine_name), self._profile(profile)):
            if entry is not None and entry.vibration_class is not None:
                return entry.vibration_class
        return None

    def temperature_for(self, machine_name: str, profile: str | None) -> TemperatureWatch:
        """How the machine's temperature is judged: by its name, else its profile, else defaults."""
        for entry in (self.machines.get(machine_name), self._profile(profile)):
            if entry is not None and entry.temperature is not None:
                return entry.temperature
        return TemperatureWatch()

    def _profile(self, profile: str | None) -> MachineCondition | None:
        return None if profile is None else self.profiles.get(profile)


def load_condition_file(
    path: str | Path, known_classes: set[str] | None = None
) -> ConditionSettings:
    """The settings of a YAML file; a ``ProfileError`` names the file, line and field.

    Class ids are checked against ``known_classes`` (default: the class table of
    ``vibration_classes_file``, else the packaged one).
    """
    path = Path(path)
    settings = validate_file(ConditionSettings, path)
    if known_classes is None:
        from cloud.maintenance.zones import load_vibration_classes  # its errors name its file

        known_classes = set(load_vibration_classes(settings.vibration_classes_file))
    unknown = [
        (group, name)
        for group, entries in (("profiles", settings.profiles), ("machines", settings.machines))
        for name, entry in entries.items()
        if entry.vibration_class is not None and entry.vibration_class not in known_classes
    ]
    if not unknown:
        return settings
    _data, lines = load_with_lines(path.read_text(encoding="utf-8"), str(path))
    known = ", ".join(sorted(known_classes)) or "(none)"
    problems: list[tuple[int | None, str, str]] = [
        (
            line_of(lines, (group, name, "vibration_class")),
            f"{group}.{name}.vibration_class",
            f"unknown vibration class {getattr(settings, group)[name].vibration_class!r}; "
            f"known: {known}",
        )
        for group, name in unknown
    ]
    raise ProfileError(str(path), problems)


def condition_settings(path: str | Path | None) -> ConditionSettings:
    """The settings of ``condition_file`` (None: every default)."""
    return ConditionSettings() if path is None else load_condition_file(path)
