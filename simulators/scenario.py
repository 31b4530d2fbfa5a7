"""The scenario file: a whole simulated plant (site, lines, machines, behaviour, fault timeline).

A scenario is YAML validated here with errors that name the file, the line and the field
(``protocols.yaml_lines``). Built-in scenarios live in ``simulators/scenarios/`` and are named
by their file stem (``demo``); anything else is a path.

    site: demo-plant
    step_s: 0.25                       # simulated seconds per step (real time)
    lines:
      - name: Valve line
        area: Machining
        machines:
          - device_id: cnc-01
            profile: cnc_machining_centre    # built-in profile name, or a path
            seed: 11
            port: 15020                      # optional: pin the port (default: the OS picks)
            unit_id: 1                       # Modbus only
            behaviour: {mean_running_s: 600, scrap_rate: 0.03, wear_per_hour: 0.1}
            faults:
              - {kind: unresponsive, at_s: 30, duration_s: 10}
              - {kind: excursion, at_s: 60, duration_s: 20, metric: spindle_load, value: 95}
          - device_id: press-01
            profile: sole_injection_press
            opcua:                           # OPC UA machines only; all optional
              security: [Basic256Sha256/SignAndEncrypt]   # endpoints offered (default [None])
              users: [{username: operator, password: change-me}]   # no anonymous login
              certificate_dir: sim-pki/press-01   # server certificate (default: a temp dir)
              max_nodes_per_read: 50             # advertised and enforced
          - device_id: pump-07
            profile: pump_drive_monitor
            bearing:                         # vibration and bearing temperature from a
              seed: 7                        # BearingModel (default: the machine's seed)
              life_h: 1200                   # default: drawn from the seed (800..1600 h)
              baseline_rms: 1.0              # mm/s when new
              failure_rms: 4.5               # mm/s at failure
              initial_h: 600                 # running hours at the start
              wear_time_scale: 3600          # running hours of wear per hour running
              window_refresh_s: 1.0          # default: one window period
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from device_profiles import profile_path
from protocols.profile import CanonicalState, Profile, load_profile
from protocols.wire import Value
from protocols.yaml_lines import validate_file
from simulators.bearing import BearingModel
from simulators.behaviour import BearingWear, BehaviourConfig

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
FaultKind = Literal["unresponsive", "drop_connections", "bad_quality", "excursion"]
OpcUaSecurity = Literal["None", "Basic256Sha256/Sign", "Basic256Sha256/SignAndEncrypt"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BehaviourOverrides(_Strict):
    """Changes to a machine's behaviour; every field defaults to ``BehaviourConfig``'s value."""

    mean_running_s: float | None = Field(default=None, gt=0)
    mean_idle_s: float | None = Field(default=None, gt=0)
    mean_down_s: float | None = Field(default=None, gt=0)
    mean_setup_s: float | None = Field(default=None, gt=0)
    mean_planned_stop_s: float | None = Field(default=None, gt=0)
    p_down: float | None = Field(default=None, ge=0, le=1)
    p_setup: float | None = Field(default=None, ge=0, le=1)
    p_planned_stop: float | None = Field(default=None, ge=0, le=1)
    scrap_rate: float | None = Field(default=None, ge=0, le=1)
    speed_loss: float | None = Field(default=None, ge=0)
    noise: float | None = Field(default=None, ge=0)
    drift: float | None = Field(default=None, ge=0)
    excursions_per_hour: float | None = Field(default=None, ge=0)
    wear_per_hour: float | None = Field(default=None, ge=0)
    initial_wear_h: float | None = Field(default=None, ge=0)
    fault_codes: list[int] | None = Field(default=None, min_length=1)
    initial_state: CanonicalState | None = None
    constants: dict[str, Value] | None = None

    @model_validator(mode="after")
    def _valid(self) -> BehaviourOverrides:
        self.config()  # BehaviourConfig's own checks (e.g. p_down + p_setup + ... <= 1)
        return self

    def config(self) -> BehaviourConfig:
        """The behaviour configuration with these overrides applied."""
        known = {f.name for f in fields(BehaviourConfig)}
        changes = {k: v for k, v in self.model_dump(exclude_none=True).items() if k in known}
        if "fault_codes" in changes:
            changes["fault_codes"] = tuple(changes["fault_codes"])
        return BehaviourConfig(**changes)


class Fault(_Strict):
    """One fault in the timeline, ``at_s`` seconds after the plant starts."""

    kind: FaultKind
    at_s: float = Field(ge=0)
    duration_s: float | None = Field(default=None, gt=0)
    metric: str | None = None
    value: float | None = None
    metrics: list[str] | None = Field(default=None, description="bad_quality: tags (default all)")

    @model_validator(mode="after")
    def _complete(self) -> Fault:
        if self.kind == "excursion" and (self.metric is None or self.value is None):
            raise ValueError("an excursion needs 'metric' and 'value'")
        if self.kind in ("unresponsive", "bad_quality", "excursion") and self.duration_s is None:
            raise ValueError(f"a {self.kind} fault needs 'duration_s'")
        if self.kind != "excursion" and (self.metric is not None or self.value is not None):
            raise ValueError("'metric' and 'value' belong to excursion faults")
        return self


def _no_security() -> list[OpcUaSecurity]:
    return ["None"]


class SimUser(_Strict):
    username: str = Field(min_length=1)
    password: str


class OpcUaSimOptions(_Strict):
    """How an OPC UA machine's server is locked down (see ``simulators.opcua_server``)."""

    security: list[OpcUaSecurity] = Field(default_factory=_no_security, min_length=1)
    users: list[SimUser] | None = Field(default=None, min_length=1)
    certificate_dir: str | None = Field(
        default=None, description="server certificate folder (default: a temporary one)"
    )
    max_nodes_per_read: int | None = Field(default=None, ge=1)

    def user_map(self) -> dict[str, str] | None:
        return {u.username: u.password for u in self.users} if self.users is not None else None


class BearingSettings(_Strict):
    """A machine's bearing: its vibration and temperature follow ``simulators.bearing``."""

    seed: int | None = Field(default=None, description="default: the machine's seed")
    life_h: float | None = Field(default=None, gt=0, description="default: drawn from the seed")
    baseline_rms: float = Field(default=1.0, gt=0, description="mm/s when new")
    failure_rms: float = Field(default=4.5, gt=0, description="mm/s at failure")
    initial_h: float = Field(default=0.0, ge=0, description="running hours at the start")
    wear_time_scale: float = Field(default=1.0, gt=0, description="wear hours per running hour")
    window_refresh_s: float | None = Field(
        default=None, gt=0, description="seconds between waveform windows (default: a period)"
    )
    ambient_c: float = 25.0
    load_tag: str | None = Field(default=None, description="motor load in % (default: found)")
    temperature_tag: str | None = Field(default=None, description="default: role temperature")

    @field_validator("failure_rms")
    @classmethod
    def _above_baseline(cls, failure_rms: float, info: ValidationInfo) -> float:
        baseline = info.data.get("baseline_rms")
        if baseline is not None and failure_rms <= baseline:
            raise ValueError(f"failure_rms ({failure_rms}) must be above baseline_rms ({baseline})")
        return failure_rms

    def wear(self, machine_seed: int) -> BearingWear:
        """The behaviour's bearing for a machine of this seed."""
        model = BearingModel(
            seed=machine_seed if self.seed is None else self.seed,
            baseline_rms=self.baseline_rms,
            failure_rms=self.failure_rms,
            life_h=self.life_h,
        )
        return BearingWear(
            model,
            initial_h=self.initial_h,
            wear_time_scale=self.wear_time_scale,
            window_refresh_s=self.window_refresh_s,
            ambient_c=self.ambient_c,
            load_tag=self.load_tag,
            temperature_tag=self.temperature_tag,
        )


class Machine(_Strict):
    """One simulated device: which profile, how it behaves, where it listens."""

    device_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    profile: str
    seed: int = 0
    port: int | None = Field(default=None, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=247)
    behaviour: BehaviourOverrides = Field(default_factory=BehaviourOverrides)
    faults: list[Fault] = Field(default_factory=list)
    opcua: OpcUaSimOptions | None = None
    bearing: BearingSettings | None = None


class Line(_Strict):
    name: str
    area: str | None = None
    machines: list[Machine] = Field(min_length=1)


class Scenario(_Strict):
    """A simulated plant."""

    site: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    description: str | None = None
    step_s: float = Field(default=0.25, gt=0, le=10, description="simulated seconds per step")
    lines: list[Line] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Scenario:
        problems: list[str] = []
        seen: set[str] = set()
        ports: set[int] = set()
        for li, line in enumerate(self.lines):
            for mi, machine in enumerate(line.machines):
                where = f"lines[{li}]: machines[{mi}]"
                if machine.device_id in seen:
                    problems.append(f"{where}: device id {machine.device_id!r} appears twice")
                seen.add(machine.device_id)
                if machine.port is not None:
                    if machine.port in ports:
                        problems.append(f"{where}: port {machine.port} is pinned twice")
                    ports.add(machine.port)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def machines(self) -> list[tuple[Line, Machine]]:
        return [(line, machine) for line in self.lines for machine in line.machines]


def available() -> list[str]:
    """Names of the built-in scenarios."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def scenario_path(name_or_path: str | Path) -> Path:
    """A built-in scenario by name (``demo``), or a path to a scenario file as given."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        return candidate
    path = SCENARIO_DIR / f"{name_or_path}.yaml"
    if not path.exists():
        raise FileNotFoundError(
            f"no built-in scenario {str(name_or_path)!r}; built-in: {', '.join(available())}"
        )
    return path


def load_scenario(name_or_path: str | Path) -> Scenario:
    """Load and validate a scenario (ProfileError names file, line and field)."""
    return validate_file(Scenario, scenario_path(name_or_path))


def resolve_profile(name_or_path: str, scenario_file: Path | None = None) -> Profile:
    """A machine's profile: a built-in name, or a path (relative to the scenario file)."""
    candidate = Path(name_or_path)
    if (
        scenario_file is not None
        and candidate.suffix in (".yaml", ".yml")
        and not candidate.is_absolute()
    ):
        beside = scenario_file.parent / candidate
        if beside.exists():
            return load_profile(beside)
    return load_profile(profile_path(name_or_path))
