"""Structured logging for every forgeline process: key=value text, or one JSON object per line."""

from __future__ import annotations

import json
import logging
import sys
import time


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str = "INFO", fmt: str = "text", process: str | None = None) -> None:
    """Send logs to stderr; ``process`` (edge, cloud, sim ...) prefixes text lines."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        prefix = f"[{process}] " if process else ""
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {prefix}%(levelname)s %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Libraries under us repeat every failed connect attempt; our coordinators log a failure
    # once and the recovery once, so theirs are only shown at DEBUG.
    for noisy in ("asyncua", "pymodbus", "amqtt", "transitions", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.ERROR, root.level))
