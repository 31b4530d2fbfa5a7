"""The REST API (FastAPI): a thin layer over the domain service functions."""
