"""Ingest: MQTT messages in, deduplicated, batched and stored in one transaction each."""
