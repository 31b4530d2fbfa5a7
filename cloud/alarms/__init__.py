"""Alarms (ISA-18.2): rules, the evaluation engine fed by ingest, lifecycle, history, figures."""
