"""Statistical process control: control-chart limits, phase I/II evaluation, run rules and
capability (pure)."""
