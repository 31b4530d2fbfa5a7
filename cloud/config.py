"""The cloud's configuration: one YAML file (every field optional) plus command-line overrides.

    mqtt_url: mqtt://127.0.0.1:1883      # mqtts://user:password@host:8883 for TLS
    db_url: null                         # default: sqlite file <data_dir>/forgeline.db
    data_dir: forgeline-data
    api_host: 127.0.0.1
    api_port: 8000
    worker_id: cloud-1                   # stable: names the MQTT client and presence topic
    shared_subscription: true            # $share/<share_group>/... for data and events
    share_group: forgeline-ingest
    batch_max_messages: 500
    batch_max_ms: 0                      # 0: write what has arrived at once
    alarm_rules_file: null               # alarm rules YAML (docs/alarms.md); null: none
    alarm_builtin_rules: true            # built-in rules: profile limits, down > 10 min, stale
    alarm_tick_s: 1.0                    # alarm ticker: delays, stale data, escalation, shelves
    alarm_refresh_s: 10.0                # reload alarm rules, limits and machines this often
    production_count_s: 2.0              # machine counts into running operations this often
    spc_charts_file: null                # SPC control charts YAML (docs/spc.md); null: none
    condition_file: null                 # condition monitor settings (deploy/condition.sample.yaml); null: defaults
    condition_interval_s: 300            # assess every machine's vibration and temperature this often
    erp_webhooks: {poll_s: 1.0, max_attempts: 12}   # completions to the ERP
                                         # (docs/erp-integration.md)
    operator_position: line              # alarm figures per line | area | site
    notifications:                       # alarm notifications (docs/notifications.md)
      channels: {ui: {type: websocket}}  # name -> settings; type: websocket mqtt webhook
                                         # dingtalk wecom email
      routes: [{channels: [ui]}]         # the channels of every matching route are used
      retry: {max_attempts: 5, initial_backoff_s: 2, max_backoff_s: 300, jitter: 0.5}
    calendars_file: null                 # shift calendars YAML (docs/oee.md); null: 24/7
    micro_stop_s: 120                    # shorter down/idle stops: performance loss, not availability
    startup_scrap_window_s: 600          # scrap this long after a setup ends: "reduced yield"
    counter_gap_s: 300                   # no counter sample for longer: reported as a gap
    rollup_interval_s: 300               # OEE roll-up job period (hourly and per-shift rows)
    rollup_lookback_s: 10800             # each roll-up run re-does the periods of this look-back

Validated once with pydantic; a bad file raises ``ProfileError`` naming file, line and field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cloud.integration.settings import WebhookDeliverySettings
from cloud.notify.settings import NotificationSettings
from protocols.mqtt_url import MqttUrl, parse_mqtt_url
from protocols.wire.topics import check_id
from protocols.yaml_lines import validate_file


class CloudConfig(BaseModel):
    """Settings of one cloud process (ingest worker + API)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_client_id: str | None = Field(
        default=None, description="default: forgeline-cloud-<worker_id> (must be stable)"
    )
    mqtt_keepalive_s: int = Field(default=30, ge=5, le=3600)
    mqtt_ca_file: str | None = Field(default=None, description="CA bundle for mqtts://")
    db_url: str | None = None
    data_dir: Path = Path("forgeline-data")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    worker_id: str = "cloud-1"
    shared_subscription: bool = True
    share_group: str = "forgeline-ingest"
    batch_max_messages: int = Field(default=500, ge=1, le=50_000)
    batch_max_ms: int = Field(
        default=0,
        ge=0,
        le=60_000,
        description="wait up to this long for more messages to fill a batch; 0: write what has "
        "arrived at once (batches still grow under load: messages queue while one is written)",
    )
    queue_max_messages: int = Field(default=100_000, ge=100)
    retry_max_s: float = Field(default=30.0, gt=0, description="longest wait between DB retries")
    log_level: str = "INFO"
    alarm_rules_file: Path | None = Field(default=None, description="YAML alarm rules")
    alarm_builtin_rules: bool = Field(default=True, description="the built-in alarm rule set")
    alarm_tick_s: float = Field(default=1.0, ge=0.05, le=60, description="alarm ticker period")
    alarm_refresh_s: float = Field(default=10.0, ge=0.1, le=3600, description="rule reload")
    erp_webhooks: WebhookDeliverySettings = Field(default_factory=WebhookDeliverySettings)
    production_count_s: float = Field(
        default=2.0, ge=0.1, le=3600, description="recount machine output into operations"
    )
    spc_charts_file: Path | None = Field(
        default=None, description="SPC control charts YAML (deploy/spc-charts.sample.yaml)"
    )
    condition_file: Path | None = Field(default=None, description="condition monitoring YAML")
    condition_interval_s: float = Field(
        default=300.0, ge=1, le=86_400, description="condition monitor period"
    )
    operator_position: str = Field(default="line", pattern="^(line|area|site)$")
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    calendars_file: Path | None = Field(default=None, description="shift calendars YAML")
    micro_stop_s: float = Field(default=120.0, gt=0, description="micro-stop threshold")
    startup_scrap_window_s: float = Field(default=600.0, ge=0, description="reduced-yield window")
    counter_gap_s: float = Field(default=300.0, gt=0, description="counter silence reported")
    rollup_interval_s: float = Field(default=300.0, ge=1, description="OEE roll-up period")
    rollup_lookback_s: float = Field(default=10_800.0, ge=3600, description="roll-up re-do span")

    @field_validator("mqtt_url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        parse_mqtt_url(value)
        return value

    @field_validator("worker_id", "share_group")
    @classmethod
    def _topic_level(cls, value: str) -> str:
        check_id("worker", value)
        return value

    @property
    def mqtt(self) -> MqttUrl:
        return parse_mqtt_url(self.mqtt_url)

    @property
    def client_id(self) -> str:
        return self.mqtt_client_id or f"forgeline-cloud-{self.worker_id}"

    @property
    def database_url(self) -> str:
        """``db_url``, or the default SQLite file in ``data_dir``."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.data_dir / 'forgeline.db').resolve()}"

    def with_overrides(self, **overrides: Any) -> CloudConfig:
        """A copy with the given fields replaced (None means "not given"), validated again."""
        given = {k: v for k, v in overrides.items() if v is not None}
        return CloudConfig.model_validate(self.model_dump() | given)


def load_cloud_config(path: str | Path | None = None, **overrides: Any) -> CloudConfig:
    """Read the YAML file (if any) and apply overrides such as ``mqtt_url=...``."""
    config = validate_file(CloudConfig, path) if path is not None else CloudConfig()
    return config.with_overrides(**overrides) if overrides else config
