"""The server's log lines: readable text (the default) or one JSON object per line.

Lines that describe an event carry its fields in the record's ``fields`` attribute (``extra=
{"fields": {...}}``): the API call line (:mod:`vmexec.api.observe`) and the execution line
(:mod:`vmexec.services.telemetry`). Text shows them as ``key=value`` after the message; JSON
puts them beside ``time``, ``level``, ``logger`` and ``message``.

Every line passes the redaction of :mod:`vmexec.api.log_redaction` (session tokens in paths),
whatever logger wrote it; the fields never hold a secret in the first place.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from vmexec.api.log_redaction import TokenPathFilter, install

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


class TextFormatter(logging.Formatter):
    """``TEXT_FORMAT``, then the event's fields as ``key=value`` (nulls left out)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items()
                         if v is not None and k != "event")
        return f"{line} [{extra}]" if extra else line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``, the event's fields, and ``exception`` (its traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        for key, value in _fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def configure_logging(level: str = "info", log_format: LogFormat = "text",
                      stream: TextIO | None = None) -> None:
    """Send every logger's records to ``stream`` (stderr) in ``log_format`` at ``level``;
    installs the redaction filters. Replaces handlers set up before (``basicConfig``'s)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(TokenPathFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    install()
