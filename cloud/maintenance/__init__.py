"""Predictive maintenance: vibration severity zones, trend fits, remaining useful life, health index
and temperature trends (pure: plain values in, plain values out; no database).

    zones        VibrationClass, load_vibration_classes, zone_of (boundaries are data: the YAML)
    trend        least-squares linear and exponential fits with standard errors and intervals
    rul          estimate_rul: hinge fit of the degrading trend, extrapolated to the C/D boundary
    health       baseline_of, health_index: 100 healthy … 0 failed, against the machine's baseline
    temperature  temperature_trend: a rise at constant load, and the hours left to a limit
"""
