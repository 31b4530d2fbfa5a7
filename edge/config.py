"""The edge agent's configuration: one YAML file, validated once at start-up.

Every default is documented in ``deploy/edge.sample.yaml``; errors name the file, line and field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from protocols.wire.topics import check_id
from protocols.yaml_lines import validate_file, validate_yaml


class EdgeConfigError(Exception):
    """A config that validates but cannot be run (a device's profile and endpoint disagree)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttSettings(_Strict):
    url: str = Field(default="mqtt://127.0.0.1:1883", description="mqtt[s]://user:pass@host:port")
    client_id: str | None = Field(default=None, description="default: forgeline-edge-<edge_id>")
    keepalive_s: int = Field(default=30, ge=5)
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_insecure: bool = Field(default=False, description="skip host-name check (testing only)")


class BufferSettings(_Strict):
    """Store-and-forward: what is kept on disk until the cloud says it is stored."""

    max_bytes: int = Field(default=1 << 30, gt=0, description="oldest dropped beyond this")
    max_age_s: float = Field(default=7 * 86400, gt=0, description="older messages are dropped")
    resend_after_s: float = Field(default=10.0, gt=0, description="unacknowledged → re-send")
    backlog_rate: float = Field(default=200.0, gt=0, description="backlog messages per second")
    flush_interval_s: float = Field(default=0.05, gt=0, description="group-commit window")


class DeviceSettings(_Strict):
    """One device instance: a profile plus where it is reached."""

    id: str
    profile: str = Field(description="built-in profile name or a path to a profile file")
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=247)
    endpoint_url: str | None = Field(default=None, description="OPC UA: opc.tcp://host:port/path")
    username: str | None = None
    password: str | None = None
    # Modbus RTU: the serial line (several devices may share one port: one bus, one lock)
    serial_port: str | None = Field(default=None, description="Modbus RTU: e.g. /dev/ttyUSB0")
    baudrate: int = Field(default=19200, gt=0)
    parity: Literal["N", "E", "O"] = "E"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    inter_frame_delay_ms: float | None = Field(
        default=None, ge=0, description="Modbus RTU: silence between frames (default 3.5 chars)"
    )
    timeout_s: float | None = Field(
        default=None, gt=0, description="per-device request timeout (default: the profile's)"
    )
    # OPC UA security: the edge's certificate lives in <data_dir>/pki (made on first start)
    security_policy: Literal["None", "Basic256Sha256"] = "None"
    security_mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    trust_on_first_use: bool = Field(
        default=False,
        description="trust an unknown server certificate the first time (then pin it)",
    )
    poll_interval_s: float | None = Field(default=None, gt=0, description="override the profile")
    area: str | None = None
    line: str | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _id(self) -> DeviceSettings:
        check_id("device", self.id)
        if (self.security_policy == "None") != (self.security_mode == "None"):
            raise ValueError(
                "security_policy and security_mode go together: both None, or "
                "Basic256Sha256 with Sign or SignAndEncrypt"
            )
        return self


class EdgeConfig(_Strict):
    site: str
    edge_id: str
    data_dir: Path = Path("/var/lib/forgeline/edge")
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    buffer: BufferSettings = Field(default_factory=BufferSettings)
    connect_timeout_s: float = Field(default=3.0, gt=0)
    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=30.0, gt=0)
    status_interval_s: float = Field(default=10.0, gt=0)
    drain_on_stop_s: float = Field(
        default=10.0, ge=0, description="on SIGTERM, wait this long for the cloud to ack the log"
    )
    command_max_age_s: float = Field(
        default=60.0, gt=0, description="older write commands are refused, not carried out"
    )
    metrics_port: int | None = Field(default=None, ge=0, le=65535, description="Prometheus")
    devices: list[DeviceSettings] = Field(min_length=1)

    @model_validator(mode="after")
    def _ids(self) -> EdgeConfig:
        check_id("site", self.site)
        check_id("edge", self.edge_id)
        ids = [d.id for d in self.devices]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"device ids must be unique; repeated: {duplicates}")
        return self


def load_edge_config(path: str | Path) -> EdgeConfig:
    """Load and validate the edge config (raises ProfileError naming file, line and field)."""
    return validate_file(EdgeConfig, path)


def parse_edge_config(text: str, source: str = "<edge config>") -> EdgeConfig:
    return validate_yaml(EdgeConfig, text, source)
