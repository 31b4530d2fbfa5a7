"""The device-profile schema: one machine model's protocol, tag map, states and quirks.

A profile is data (``device_profiles/*.yaml``), validated here with errors that name the file,
the YAML line and the field. A site's edge config names a profile and adds the instance's host,
port and unit id; nothing instance-specific lives in a profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocols.expr import ConditionError, compile_condition
from protocols.wire.messages import DataType, MetricDefinition
from protocols.yaml_lines import validate_file, validate_yaml

Protocol = Literal["modbus_tcp", "modbus_rtu", "opcua"]
Role = Literal[
    "state", "cycle_count", "good_count", "scrap_count", "fault_code",
    "process_param", "vibration", "temperature", "unit_serial", "info",
]  # fmt: skip
CanonicalState = Literal["running", "idle", "down", "setup", "planned_stop", "offline"]
CANONICAL_STATES: tuple[str, ...] = ("running", "idle", "down", "setup", "planned_stop", "offline")
Table = Literal["holding", "input", "coil", "discrete"]
# What kind of loss a fault code stands for (the OEE loss breakdown groups downtime by it).
FaultCategory = Literal[
    "breakdown", "tooling", "material", "quality", "operator", "utilities", "external", "other",
]  # fmt: skip
WordOrder = Literal["ABCD", "CDAB", "BADC", "DCBA"]
# Features the edge computes from each window of a waveform tag, published as f"{tag}_{feature}".
WaveformFeature = Literal["rms", "peak", "crest_factor", "kurtosis"]
WAVEFORM_FEATURES: tuple[WaveformFeature, ...] = ("rms", "peak", "crest_factor", "kurtosis")
_UNITLESS_FEATURES = frozenset(("crest_factor", "kurtosis"))

# Roles a device has at most one of: the OEE and state engines and the unit binder rely on
# finding them (``unit_serial``: the serial of the unit now in the machine).
SINGLE_ROLES = ("state", "cycle_count", "good_count", "scrap_count", "fault_code", "unit_serial")
COUNTER_ROLES = ("cycle_count", "good_count", "scrap_count")
REGISTER_WIDTH: dict[str, int] = {
    "bool": 1, "bitfield": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2,
    "int64": 4, "uint64": 4, "float32": 2, "float64": 4,
}  # fmt: skip

_NAME = r"^[a-z][a-z0-9_]{0,62}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Strict):
    """Engineering limits of a process parameter (the range the process is meant to stay in)."""

    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Limits:
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low ({self.low}) must not exceed high ({self.high})")
        return self


class Waveform(_Strict):
    """A tag that holds one window of vibration samples (an OPC UA array), not a single value.

    The edge publishes the window's features (``{tag}_{feature}``) instead of the array, and the
    raw window only on demand (the ``forward_waveform`` command) or always (``forward_raw``).
    """

    sample_rate_hz: float = Field(gt=0, description="samples per second of the window")
    samples: int = Field(ge=16, le=65536, description="samples per window")
    features: tuple[WaveformFeature, ...] = Field(
        default=WAVEFORM_FEATURES, min_length=1, description="features published per window"
    )
    forward_raw: bool = Field(default=False, description="also publish every raw window")

    @model_validator(mode="after")
    def _unique(self) -> Waveform:
        repeated = sorted({f for f in self.features if self.features.count(f) > 1})
        if repeated:
            raise ValueError(f"features list {repeated} more than once")
        return self

    @property
    def period_s(self) -> float:
        """How long one window lasts."""
        return self.samples / self.sample_rate_hz


class Tag(_Strict):
    """One named measurement: where it lives on the device and how to turn it into a value."""

    name: str = Field(pattern=_NAME, description="metric name, snake_case")
    role: Role = "info"
    type: DataType
    unit: str | None = None
    description: str | None = None
    # Modbus: which table and (profile-addressed) register or bit
    table: Table | None = None
    address: int | None = Field(default=None, ge=0, le=65535)
    order: WordOrder | None = Field(default=None, description="32/64-bit word and byte order")
    bit: int | None = Field(default=None, ge=0, le=15, description="bit of a 16-bit register")
    length: int | None = Field(default=None, ge=1, le=125, description="registers of a string")
    # OPC UA: node id, e.g. "ns=2;s=Press.Temperature" or "s=Press.Temperature" (profile namespace)
    node: str | None = None
    # value = raw * scale + offset (numeric types only)
    scale: float = 1.0
    offset: float = 0.0
    deadband: float | None = Field(default=None, ge=0, description="absolute, engineering units")
    limits: Limits | None = None
    writable: bool = False
    scan_class: str | None = Field(
        default=None, description="name in the profile's scan_classes (default: poll_interval_s)"
    )
    waveform: Waveform | None = Field(
        default=None, description="the tag is an array of vibration samples (OPC UA only)"
    )

    @property
    def register_count(self) -> int:
        """How many registers (or bits, for coils and discrete inputs) the tag spans."""
        if self.table in ("coil", "discrete"):
            return 1
        if self.type == "string":
            return self.length or 1
        return REGISTER_WIDTH[self.type]

    @property
    def is_numeric(self) -> bool:
        return self.type not in ("bool", "string")

    @model_validator(mode="after")
    def _consistent(self) -> Tag:
        if self.type == "string" and self.length is None and self.node is None:
            raise ValueError("a string tag on Modbus needs 'length' (registers, 2 chars each)")
        if self.table in ("coil", "discrete") and self.type != "bool":
            raise ValueError(f"a {self.table} holds one bit: its type must be bool")
        if self.bit is not None and self.type not in ("bool", "bitfield"):
            raise ValueError("'bit' applies to bool and bitfield tags only")
        if self.table in ("holding", "input") and self.type == "bool" and self.bit is None:
            raise ValueError("a bool in a register needs 'bit' (0-15)")
        if (self.scale != 1.0 or self.offset != 0.0) and not self.is_numeric:
            raise ValueError(f"scale/offset apply to numbers, not {self.type}")
        if self.writable and self.table in ("input", "discrete"):
            raise ValueError(f"{self.table} registers are read-only on Modbus")
        if self.waveform is not None:
            self._check_waveform()
        return self

    def _check_waveform(self) -> None:
        if self.role != "vibration":
            raise ValueError(f"a waveform tag needs role 'vibration', not {self.role!r}")
        if self.type not in ("float32", "float64"):
            raise ValueError(f"a waveform tag is an array of float32 or float64, not {self.type}")
        if self.table is not None or self.address is not None:
            raise ValueError("a waveform is read from an OPC UA array node, not Modbus registers")
        if self.writable:
            raise ValueError("a waveform tag cannot be writable")
        if len(self.name) > 50:
            raise ValueError(
                f"a waveform tag's name is at most 50 characters (its feature metrics add a "
                f"suffix), {self.name!r} has {len(self.name)}"
            )

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The metrics this tag is published as: its name, or its waveform's feature metrics."""
        if self.waveform is None:
            return (self.name,)
        return tuple(f"{self.name}_{feature}" for feature in self.waveform.features)

    def definitions(self) -> tuple[MetricDefinition, ...]:
        """Every metric definition this tag is published with (see ``metric_names``)."""
        if self.waveform is None:
            return (self.definition(),)
        limits = self.limits or Limits()
        return tuple(
            MetricDefinition(
                name=f"{self.name}_{feature}",
                data_type="float64",
                role="vibration",
                unit=None if feature in _UNITLESS_FEATURES else self.unit,
                low_limit=limits.low if feature == "rms" else None,
                high_limit=limits.high if feature == "rms" else None,
                description=f"{feature} of each window of {self.name}"
                + (f" ({self.description})" if self.description else ""),
            )
            for feature in self.waveform.features
        )

    def definition(self) -> MetricDefinition:
        """The metric definition this tag is published with in a birth message."""
        limits = self.limits or Limits()
        data_type: DataType = self.type
        if self.type == "bitfield" and self.bit is not None:
            data_type = "bool"
        elif self.is_numeric and (self.scale != 1.0 or self.offset != 0.0):
            data_type = "float64"
        return MetricDefinition(
            name=self.name,
            data_type=data_type,
            role=self.role,
            unit=self.unit,
            low_limit=limits.low,
            high_limit=limits.high,
            description=self.description,
        )


class ModbusOptions(_Strict):
    addressing: Literal["zero_based", "one_based"] = "zero_based"
    word_order: WordOrder = "ABCD"
    max_gap: int = Field(default=8, ge=0, le=123, description="unmapped registers merged over")
    max_registers_per_read: int = Field(default=125, ge=1, le=125)
    max_bits_per_read: int = Field(default=2000, ge=1, le=2000)
    timeout_s: float = Field(default=1.0, gt=0)


class OpcUaOptions(_Strict):
    namespace_uri: str | None = Field(
        default=None,
        description="namespace of node ids written without 'ns=' (resolved at connect)",
    )
    subscribe: bool = True
    sampling_interval_ms: int = Field(default=500, ge=0)
    publishing_interval_ms: int = Field(default=500, ge=10)
    timeout_s: float = Field(default=4.0, gt=0)


class Workarounds(_Strict):
    """Named device quirks, so code never says ``if model == ...``."""

    single_register_reads: bool = Field(
        default=False, description="the PLC answers one register per request only"
    )
    request_delay_ms: int = Field(default=0, ge=0, description="pause between two requests")
    counter_rollover: int | None = Field(
        default=None, gt=0, description="counters wrap to 0 after this value (not a reset)"
    )


class FaultCode(_Strict):
    """What a machine's fault (alarm) number means: the text operators know, and its category."""

    reason: str = Field(min_length=1, max_length=200)
    category: FaultCategory = "breakdown"

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: object) -> object:
        # `12: Spindle overload` is short for `12: {reason: Spindle overload}`
        return {"reason": data} if isinstance(data, str) else data


class StateRule(_Strict):
    """The machine is in ``state`` while ``when`` holds; rules are tried in order.

    For machines without a state tag, e.g. ``{state: running, when: "spindle_speed > 0 and
    door_closed"}``. A rule without ``when`` is the fallback and must come last.
    """

    state: CanonicalState
    when: str | None = Field(default=None, min_length=1, max_length=500)


class Profile(_Strict):
    """A machine model: what an edge needs to read it and the cloud needs to understand it."""

    model: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    vendor: str | None = None
    description: str | None = None
    protocol: Protocol
    poll_interval_s: float = Field(default=1.0, gt=0)
    scan_classes: dict[str, float] = Field(
        default_factory=dict,
        description="named poll/sampling intervals in seconds, e.g. {fast: 0.2, slow: 5}",
    )
    heartbeat_s: float = Field(
        default=30.0, gt=0, description="publish unchanged values this often"
    )
    ideal_cycle_time_s: float | None = Field(default=None, gt=0)
    units_per_cycle: int = Field(default=1, ge=1, description="e.g. cavities of a mould")
    states: dict[int, CanonicalState] = Field(default_factory=dict)
    fault_codes: dict[int, FaultCode] = Field(
        default_factory=dict, description="fault_code tag value -> reason text and category"
    )
    state_rules: list[StateRule] = Field(
        default_factory=list, description="state from conditions over tags (no state tag)"
    )
    modbus: ModbusOptions | None = None
    opcua: OpcUaOptions | None = None
    workarounds: Workarounds = Field(default_factory=Workarounds)
    tags: list[Tag] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Profile:
        problems: list[str] = []
        seen: set[str] = set()
        for i, tag in enumerate(self.tags):
            if tag.name in seen:
                problems.append(f"tags[{i}].name: {tag.name!r} appears twice")
            seen.add(tag.name)
            if self.protocol == "opcua":
                if tag.node is None:
                    problems.append(f"tags[{i}] ({tag.name}): an OPC UA tag needs 'node'")
                if tag.table is not None or tag.address is not None:
                    problems.append(f"tags[{i}] ({tag.name}): 'table'/'address' are Modbus fields")
            else:
                if tag.table is None or tag.address is None:
                    problems.append(
                        f"tags[{i}] ({tag.name}): a Modbus tag needs 'table' and 'address'"
                    )
                elif tag.address + tag.register_count > 65536:
                    problems.append(f"tags[{i}] ({tag.name}): runs past register 65535")
                if tag.node is not None:
                    problems.append(f"tags[{i}] ({tag.name}): 'node' is an OPC UA field")
        problems += self._waveform_problems(seen)
        for i, tag in enumerate(self.tags):
            if tag.scan_class is not None and tag.scan_class not in self.scan_classes:
                problems.append(
                    f"tags[{i}].scan_class: {tag.scan_class!r} is not one of the profile's "
                    f"scan_classes {sorted(self.scan_classes)}"
                )
        for name, interval in self.scan_classes.items():
            if interval <= 0:
                problems.append(f"scan class {name!r} needs an interval above 0 s")
        for role in SINGLE_ROLES:
            holders = [t.name for t in self.tags if t.role == role]
            if len(holders) > 1:
                problems.append(f"role {role!r} is held by {holders}; a device has at most one")
        if any(t.role == "state" for t in self.tags) and not self.states:
            problems.append("a 'state' tag needs 'states': machine code -> canonical state")
        problems += self._state_rule_problems()
        if self.protocol == "opcua" and self.modbus is not None:
            problems.append("'modbus' options on an OPC UA profile")
        if self.protocol != "opcua" and self.opcua is not None:
            problems.append("'opcua' options on a Modbus profile")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _waveform_problems(self, tag_names: set[str]) -> list[str]:
        problems: list[str] = []
        for i, tag in enumerate(self.tags):
            if tag.waveform is None:
                continue
            if self.protocol != "opcua":
                problems.append(f"tags[{i}].waveform: waveform tags are read from OPC UA array "
                                f"nodes; this profile's protocol is {self.protocol}")  # fmt: skip
            clashes = sorted(set(tag.metric_names) & tag_names)
            if clashes:
                problems.append(f"tags[{i}].waveform: feature metrics {clashes} clash with tags "
                                "of the same name; rename the tag or the waveform")  # fmt: skip
        return problems

    def _state_rule_problems(self) -> list[str]:
        if not self.state_rules:
            return []
        if any(t.role == "state" for t in self.tags):
            return ["state_rules[0]: a profile with a 'state' tag takes its state from it; "
                    "remove either the rules or the tag's state role"]  # fmt: skip
        problems: list[str] = []
        names = frozenset(t.name for t in self.tags)
        last = len(self.state_rules) - 1
        for i, rule in enumerate(self.state_rules):
            if rule.when is None:
                if i != last:
                    problems.append(f"state_rules[{i}].when: only the last rule may leave out "
                                    "'when' (it is the fallback)")  # fmt: skip
                continue
            try:
                compile_condition(rule.when, names)
            except ConditionError as error:
                problems.append(f"state_rules[{i}].when: {error}")
        return problems

    @property
    def modbus_options(self) -> ModbusOptions:
        return self.modbus or ModbusOptions()

    @property
    def opcua_options(self) -> OpcUaOptions:
        return self.opcua or OpcUaOptions()

    def scan_interval(self, tag: Tag) -> float:
        """How often a tag is read (or sampled): its scan class, else the poll interval."""
        if tag.scan_class is None:
            return self.poll_interval_s
        return self.scan_classes[tag.scan_class]

    def metric_definitions(self) -> tuple[MetricDefinition, ...]:
        """What a birth message defines: one metric per tag, the features of a waveform tag."""
        return tuple(d for t in self.tags for d in t.definitions())

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The names of every published metric (see ``metric_definitions``)."""
        return tuple(name for t in self.tags for name in t.metric_names)

    def tag(self, name: str) -> Tag:
        for tag in self.tags:
            if tag.name == name:
                return tag
        raise KeyError(name)

    def tag_with_role(self, role: str) -> Tag | None:
        return next((t for t in self.tags if t.role == role), None)

    def word_order(self, tag: Tag) -> WordOrder:
        return tag.order or self.modbus_options.word_order

    def state_of(self, code: object) -> str:
        """The canonical state of a raw state code; unknown codes count as ``offline``."""
        if isinstance(code, bool) or not isinstance(code, int | float):
            return "offline"
        return self.states.get(int(code), "offline")


def load_profile(path: str | Path) -> Profile:
    """Load and validate one profile file (raises ProfileError naming file, line and field)."""
    return validate_file(Profile, path)


def parse_profile(text: str, source: str = "<profile>") -> Profile:
    return validate_yaml(Profile, text, source)
