"""The edge agent's configuration: one YAML file, validated once at start-up.

Every default is documented in ``deploy/edge.sample.yaml``; errors name the file, line and field.
"""

from __future__ import annotations

from pathlib import Path

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
    poll_interval_s: float | None = Field(default=None, gt=0, description="override the profile")
    area: str | None = None
    line: str | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _id(self) -> DeviceSettings:
        check_id("device", self.id)
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
