"""Logs: the request id of every line, and the text or JSON line format.

`REQUEST_ID` holds the id of the request being handled (set by
`RequestContextMiddleware`, "-" outside requests); `RequestIdFilter`, installed on
the handlers, copies it onto each record so that any format can say
`%(request_id)s`. `AGENT_RUNTIME__LOG_FORMAT=json` writes one JSON object per line.

`agent-runtime serve` hands `logging_config()` to uvicorn (its master and every
worker); under plain `uvicorn agent_runtime.main:app` the lifespan calls
`install()`, which puts the filter and the format on uvicorn's handlers (lines
uvicorn writes before the app starts keep uvicorn's own format).
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "NO_REQUEST",
    "REQUEST_ID",
    "TEXT_FORMAT",
    "JsonFormatter",
    "LogFormat",
    "RequestIdFilter",
    "TextFormatter",
    "TortoiseLifecycleFilter",
    "install",
    "logging_config",
]

LogFormat = Literal["text", "json"]

NO_REQUEST = "-"
REQUEST_ID: ContextVar[str] = ContextVar("agent_runtime_request_id", default=NO_REQUEST)

TEXT_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class RequestIdFilter(logging.Filter):
    """Adds `request_id` (the current request's, or "-") to every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class TortoiseLifecycleFilter(logging.Filter):
    """Drops Tortoise's "Tortoise-ORM started" (a dump of object reprs) and "shutdown"
    lines: its FastAPI integration writes the shutdown line twice, and Aerich's private
    connections (the start-up schema check) once more each, before anything started.
    The lifespan says when the database is connected and closed instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(("Tortoise-ORM started", "Tortoise-ORM shutdown"))


def _request_id(record: logging.LogRecord) -> str:
    value = getattr(record, "request_id", None)
    return value if isinstance(value, str) else REQUEST_ID.get()


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT`; a record that met no `RequestIdFilter` gets the id too."""

    def __init__(self, fmt: str = TEXT_FORMAT, datefmt: str | None = None) -> None:
        super().__init__(fmt, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        record.request_id = _request_id(record)
        return super().format(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, message,
    request_id, and exc_info (the formatted traceback) when there is one. uvicorn's
    access lines also carry client, method, path and status."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _request_id(record),
        }
        args = record.args
        if record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
            entry["client"], entry["method"], entry["path"], _, entry["status"] = args
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def formatter(log_format: LogFormat) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def level_number(level: str) -> int:
    """`info` -> 20; uvicorn's `trace` is 5."""
    if level.lower() == "trace":
        return 5
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}")
    return number


def logging_config(log_format: LogFormat, level: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` configuration, for uvicorn's `log_config`: the
    service's format and the request id on every handler; uvicorn's access lines
    on stdout, everything else on stderr."""
    number = level_number(level)
    kind = "JsonFormatter" if log_format == "json" else "TextFormatter"
    handler = {"formatter": "service", "filters": ["request_id"], "class": "logging.StreamHandler"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.RequestIdFilter"}},
        "formatters": {"service": {"()": f"{__name__}.{kind}"}},
        "handlers": {
            "default": {**handler, "stream": "ext://sys.stderr"},
            "access": {**handler, "stream": "ext://sys.stdout"},
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": number, "propagate": False},
            "uvicorn.error": {"level": number},
            "uvicorn.access": {"handlers": ["access"], "level": number, "propagate": False},
        },
        "root": {"handlers": ["default"], "level": number},
    }


def _ours_to_replace(current: logging.Formatter | None) -> bool:
    """uvicorn's stock formatters and ours are replaced; a formatter someone else
    configured (`uvicorn --log-config`, pytest) is left alone."""
    if isinstance(current, TextFormatter | JsonFormatter):
        return True
    try:
        from uvicorn.logging import ColourizedFormatter
    except ImportError:  # pragma: no cover - uvicorn is a dependency
        return False
    return isinstance(current, ColourizedFormatter)


def install(log_format: LogFormat, level: str) -> None:
    """Apply the request id and the format to the handlers already configured
    (uvicorn's, the root logger's); with none on the root logger (plain uvicorn
    configures its own loggers only), give it one on stderr, so that the service's
    own lines are written too. Safe to call again."""
    tortoise = logging.getLogger("tortoise")
    if not any(isinstance(f, TortoiseLifecycleFilter) for f in tortoise.filters):
        tortoise.addFilter(TortoiseLifecycleFilter())
    root = logging.getLogger()
    if not root.handlers:
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setFormatter(formatter(log_format))
        root.addHandler(stderr)
        root.setLevel(level_number(level))
    for name in ("", *_UVICORN_LOGGERS):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
                handler.addFilter(RequestIdFilter())
            if _ours_to_replace(handler.formatter) and not _matches(handler.formatter, log_format):
                handler.setFormatter(formatter(log_format))


def _matches(current: logging.Formatter | None, log_format: LogFormat) -> bool:
    return isinstance(current, JsonFormatter if log_format == "json" else TextFormatter)
