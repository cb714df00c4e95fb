"""Log records in the official formats, and where they go.

The request id shown in each record comes from a contextvar set around each invoke,
with a process-wide fallback for threads the handler starts (threads do not inherit
contextvars); both are cleared when the invoke ends, so a late log line from a
background thread never carries a stale id.

Configuration is read by :func:`setup` when the runtime starts, never at import.
"""
from __future__ import annotations

import contextvars
import logging
import sys
import time
# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Dict, List, Optional, TextIO

request_id_var: "contextvars.ContextVar[Optional[str]]" = contextvars.ContextVar("lambdaric_request_id", default=None)
tenant_id_var: "contextvars.ContextVar[Optional[str]]" = contextvars.ContextVar("lambdaric_tenant_id", default=None)
# The invoke in progress, for threads that did not inherit the contextvar.
_current_request_id: Optional[str] = None
_current_tenant_id: Optional[str] = None

TEXT_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
TEXT_DATEFMT = "%Y-%m-%dT%H:%M:%S"

_LEVELS = {"TRACE": "DEBUG", "WARN": "WARNING", "FATAL": "CRITICAL"}


def begin_invoke(request_id: str, tenant_id: Optional[str]) -> None:
    global _current_request_id, _current_tenant_id
    _current_request_id = request_id
    _current_tenant_id = tenant_id
    request_id_var.set(request_id)
    tenant_id_var.set(tenant_id)


def end_invoke() -> None:
    global _current_request_id, _current_tenant_id
    _current_request_id = None
    _current_tenant_id = None
    request_id_var.set(None)
    tenant_id_var.set(None)


def current_request_id() -> Optional[str]:
    return request_id_var.get() or _current_request_id


def current_tenant_id() -> Optional[str]:
    return tenant_id_var.get() or _current_tenant_id


class RequestIdFilter(logging.Filter):
    """Stamps ``aws_request_id`` (and ``tenant_id``) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = current_request_id() or ""
        record.tenant_id = current_tenant_id()
        return True


class TextFormatter(logging.Formatter):
    """The official tab-separated text layout, in UTC, without touching the global converter."""

    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, TEXT_DATEFMT)


class StreamSink:
    """Writes log text to a stream (stdout by default), looked up at write time so that
    a test or user replacing ``sys.stdout`` is honoured."""

    def __init__(self, stream: Optional[TextIO] = None) -> None:
        self._stream = stream

    def write(self, text: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(text)

    def write_error(self, lines: List[str]) -> None:
        """An uncaught error: one record, lines joined by CR so CloudWatch keeps one event."""
        self.write("\r".join(lines) + "\n")


class SinkHandler(logging.Handler):
    """A logging handler writing formatted records to a sink, as one write each."""

    def __init__(self, sink: StreamSink) -> None:
        super().__init__()
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.sink.write(self.format(record))
        except RecursionError:  # pragma: no cover - as logging.StreamHandler does
            raise
        except Exception:
            self.handleError(record)


class LogConfig:
    """Logging settings read from the environment once, at startup."""

    def __init__(self, environ: Dict[str, str]) -> None:
        self.json = environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"
        raw_level = environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
        self.level: Optional[str] = _LEVELS.get(raw_level, raw_level) or None


def setup(environ: Dict[str, str]) -> StreamSink:
    """Install the runtime's handler on the root logger; returns the sink for error records."""
    config = LogConfig(environ)
    sink = StreamSink()
    handler = SinkHandler(sink)
    handler.setFormatter(TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    if config.level and isinstance(logging.getLevelName(config.level), int):
        root.setLevel(config.level)
    return sink


def log_uncaught(sink: StreamSink, error: Dict[str, Any]) -> None:
    from .errors import error_log_lines

    sink.write_error(error_log_lines(error))


def log_init_warning(sink: StreamSink, message: str) -> None:
    """The warning logged before an init error, as a WARNING record of the root logger.

    It goes through the root logger's level like any record, and its text form ends in
    CR LF, as the official client writes it.
    """
    root = logging.getLogger()
    if not root.isEnabledFor(logging.WARNING):
        return
    record = root.makeRecord(root.name, logging.WARNING, __file__, 0, message, (), None)
    RequestIdFilter().filter(record)
    sink.write(TextFormatter().format(record)[:-1] + "\r\n")
