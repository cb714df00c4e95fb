"""The ``logging`` side of the runtime's log: formats and the root handler.

Imported only once something imports ``logging`` (see :mod:`lambdaric.logsink`), so a
function that never logs never pays for ``logging``. Configuration comes from the
:class:`~lambdaric.logsink.LogConfig` read when the runtime starts, never at import.
"""
from __future__ import annotations

import logging
import time
import traceback

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Dict

from .logsink import StreamSink, current_request_id, current_tenant_id, frame_level, json_timestamp

TEXT_FORMAT = "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n"
TEXT_DATEFMT = "%Y-%m-%dT%H:%M:%S"


class RequestIdFilter(logging.Filter):
    """Stamps ``aws_request_id`` (and ``tenant_id``) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = current_request_id() or ""
        record.tenant_id = current_tenant_id()
        return True


class TextFormatter(logging.Formatter):
    """The official tab-separated text layout, in UTC, without touching the global converter."""

    converter = time.gmtime  # type: ignore[assignment]  # (a function of one optional argument, as the base's)

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, TEXT_DATEFMT)


#: Keys never taken from a record's "extra": LogRecord attributes, the runtime's own, and the
#: JSON layout's keys (an extra ``location`` or ``errorType`` would pass for the runtime's),
#: as the official client. ``tenantId`` is the one exception: used when the invoke has none.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message", "asctime", "aws_request_id", "tenant_id",
    "timestamp", "level", "logger", "stackTrace", "errorType", "errorMessage", "requestId", "location", "tenantId",
}
#: ``level`` in JSON records: the standard name at or below the record's level (a custom
#: level 25 is "INFO"), as the official client, so that log-level queries see five names.
_JSON_LEVELS = ((50, "CRITICAL"), (40, "ERROR"), (30, "WARNING"), (20, "INFO"), (10, "DEBUG"))


def json_level(levelno: int) -> str:
    for number, name in _JSON_LEVELS:
        if levelno >= number:
            return name
    return "NOTSET"


class JsonFormatter(logging.Formatter):
    """The official JSON layout: ``timestamp``, ``level``, ``message`` (a dict stays an
    object), ``logger``, the error keys with exc_info, ``requestId``, ``location`` (with
    exc_info), ``tenantId``, then extra fields (``str()`` of what JSON cannot hold);
    None values dropped. Whole-second timestamps unless milliseconds were asked for."""

    def __init__(self, milliseconds: bool = False) -> None:
        super().__init__()
        self.milliseconds = milliseconds

    def format(self, record: logging.LogRecord) -> str:
        msg = record.msg
        # a dict stays an object, unless it is a format string's template (then: the text)
        message = msg if isinstance(msg, dict) and not record.args else record.getMessage()
        out: "Dict[str, Any]" = {
            "timestamp": json_timestamp(record.created, self.milliseconds),
            "level": json_level(record.levelno),
            "message": message,
            "logger": record.name,
        }
        exc_info = record.exc_info
        # exc_info=True outside an except block gives (None, None, None): no error keys
        # (the official client fails the invoke with an AttributeError there)
        failed = bool(exc_info) and exc_info[0] is not None  # type: ignore[index]
        if failed:
            etype, value, tb = exc_info  # type: ignore[misc]
            out["stackTrace"] = traceback.format_list(traceback.extract_tb(tb))
            out["errorType"] = etype.__name__  # type: ignore[union-attr]  # (not None: see failed)
            out["errorMessage"] = str(value)
        out["requestId"] = getattr(record, "aws_request_id", None) or ""
        if failed:
            out["location"] = "%s:%s:%s" % (record.pathname, record.funcName, record.lineno)
        fields = vars(record)
        out["tenantId"] = getattr(record, "tenant_id", None) or fields.get("tenantId")
        for key, value in fields.items():
            if key not in _STANDARD:
                out[key] = value
        return _encode({k: v for k, v in out.items() if v is not None})


def _encode(out: dict) -> str:
    """The record as one JSON line; values JSON cannot hold are written with ``str()``.

    A value that still cannot be encoded (a dict with tuple keys, a circular structure)
    is replaced by its ``str()``, so the record is written rather than lost (the official
    client raises from inside the logging call and fails the invoke)."""
    import json

    try:
        return json.dumps(out, default=str, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        safe = {}
        for key, value in out.items():
            try:
                json.dumps(value, default=str)
                safe[key] = value
            except (TypeError, ValueError, RecursionError):
                safe[key] = _safe_str(value)
        return json.dumps(safe, default=str, ensure_ascii=False)


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception as exc:  # a hostile __str__
        return "<str() failed: %s>" % type(exc).__name__


class SinkHandler(logging.Handler):
    """A logging handler writing each formatted record to the sink as one record."""

    def __init__(self, sink: StreamSink) -> None:
        super().__init__()
        self.sink = sink
        self.json = sink.config.json
        # JSON frames carry the level; text frames only when AWS_LAMBDA_LOG_LEVEL is set
        # (to anything), as the official client frames them
        self.leveled = sink.config.json or sink.config.level_given

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            self.sink.record(text, frame_level(record.levelno) if self.leveled else 0, self.json, record.created)
        except RecursionError:  # pragma: no cover - as logging.StreamHandler does
            raise
        except Exception:
            self.handleError(record)


def install(sink: StreamSink) -> None:
    """Put the runtime's handler on the root logger (once) and apply the configured level."""
    root = logging.getLogger()
    if any(isinstance(h, SinkHandler) for h in root.handlers):
        return
    handler = SinkHandler(sink)
    handler.setFormatter(JsonFormatter(sink.config.milliseconds) if sink.config.json else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    if sink.config.level:
        root.setLevel(sink.config.level)
