"""OEE settings of one cloud process, taken from ``CloudConfig`` (defaults where it has none)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class OeeSettings:
    """Plant-wide defaults; a machine's own settings (``oee_machine_settings``) win."""

    micro_stop_ms: int = 120_000
    startup_scrap_window_ms: int = 600_000
    counter_gap_ms: int = 300_000
    rollup_interval_s: float = 300.0
    rollup_lookback_ms: int = 3 * 3_600_000
    calendars_file: Path | None = None

    @classmethod
    def from_config(cls, config: Any | None) -> OeeSettings:
        """From a ``CloudConfig`` (fields ``micro_stop_s``, ``calendars_file`` ...) or None."""
        if config is None:
            return cls()
        defaults = cls()

        def ms(name: str, default_ms: int) -> int:
            value = getattr(config, name, None)
            return default_ms if value is None else round(float(value) * 1000)

        interval = getattr(config, "rollup_interval_s", None)
        calendars = getattr(config, "calendars_file", None)
        return cls(
            micro_stop_ms=ms("micro_stop_s", defaults.micro_stop_ms),
            startup_scrap_window_ms=ms("startup_scrap_window_s", defaults.startup_scrap_window_ms),
            counter_gap_ms=ms("counter_gap_s", defaults.counter_gap_ms),
            rollup_interval_s=defaults.rollup_interval_s if interval is None else float(interval),
            rollup_lookback_ms=ms("rollup_lookback_s", defaults.rollup_lookback_ms),
            calendars_file=None if calendars is None else Path(calendars),
        )
