"""The forgeline cloud core: ingest, time-series store, assets, machine state and the REST API."""
