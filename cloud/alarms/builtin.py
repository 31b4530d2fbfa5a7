"""The built-in alarm rules every plant gets unless ``alarm_builtin_rules: false``."""

from __future__ import annotations

from cloud.alarms.rules import AlarmRule, HelpText

_LIMITED_ROLES = ("process_param", "temperature", "vibration")


def builtin_rules() -> tuple[AlarmRule, ...]:
    """High and low engineering limits, machine down over 10 minutes, and stale data.

    Each can be replaced or taken out of service by storing a rule of the same name through
    the API (e.g. ``PUT /api/alarm-rules/builtin_limit_high`` with ``enabled: false``).
    """
    return (
        AlarmRule(
            name="builtin_limit_high",
            kind="high",
            metric_role=_LIMITED_ROLES,
            limit="profile",
            deadband_pct=1.0,
            on_delay_s=2.0,
            priority="medium",
            roles=("maintenance", "quality"),
            help=HelpText(
                cause="The process value rose above the engineering limit of its profile.",
                consequence="Parts made now may be out of specification; the machine may wear.",
                action="Check the setpoint, cooling and the sensor; quarantine suspect parts.",
            ),
            description="built-in: a process parameter above its profile's high limit",
        ),
        AlarmRule(
            name="builtin_limit_low",
            kind="low",
            metric_role=_LIMITED_ROLES,
            limit="profile",
            deadband_pct=1.0,
            on_delay_s=2.0,
            priority="medium",
            roles=("maintenance", "quality"),
            help=HelpText(
                cause="The process value fell below the engineering limit of its profile.",
                consequence="Parts made now may be out of specification.",
                action="Check the setpoint, the supply (heat, pressure, material) and the sensor.",
            ),
            description="built-in: a process parameter below its profile's low limit",
        ),
        AlarmRule(
            name="builtin_machine_down",
            kind="state_duration",
            state="down",
            duration_s=600.0,
            priority="high",
            roles=("maintenance", "production"),
            help=HelpText(
                cause="The machine reports a fault (down) and has not recovered for 10 minutes.",
                consequence="Lost production; downstream stations starve.",
                action="Read the fault code on the machine, fix the cause, restart the machine.",
            ),
            description="built-in: a machine down for more than 10 minutes",
        ),
        AlarmRule(
            name="builtin_data_stale",
            kind="stale",
            after_s=300.0,
            priority="low",
            roles=("maintenance",),
            help=HelpText(
                cause="The edge is online but this device sent no sample for 5 minutes: the "
                "PLC is off or unreachable, or the tag mapping is wrong.",
                consequence="State, OEE and alarms of this machine are blind.",
                action="Check the PLC's power and network and the edge agent's log.",
            ),
            description="built-in: no data from a device for 5 minutes while its edge is online",
        ),
    )
