"""The ``logging`` side of the runtime's log: formats and the root handler.

Imported only once something imports ``logging`` (see :mod:`lambdaric.logsink`), so a
function that never logs never pays for ``logging``. Configuration comes from the
:class:`~lambdaric.logsink.LogConfig` read when the runtime starts, never at import.
"""
from __future__ import annotations

import logging
import time
import traceback

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

    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT, TEXT_DATEFMT)


#: LogRecord attributes that are not "extra" fields.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "aws_request_id", "tenant_id"}


class JsonFormatter(logging.Formatter):
    """The official JSON layout: ``timestamp``, ``level``, ``message`` (a dict stays an
    object), ``logger``, the error keys with exc_info, ``requestId``, ``location`` (with
    exc_info), ``tenantId``, then extra fields (``str()`` of what JSON cannot hold);
    None values dropped. Whole-second timestamps unless milliseconds were asked for."""

    def __init__(self, milliseconds: bool = False) -> None:
        super().__init__()
        self.milliseconds = milliseconds

    def format(self, record: logging.LogRecord) -> str:
        import json

        message = record.msg if isinstance(record.msg, dict) else record.getMessage()
        out = {
            "timestamp": json_timestamp(record.created, self.milliseconds),
            "level": record.levelname,
            "message": message,
            "logger": record.name,
        }
        if record.exc_info and record.exc_info[0] is not None:
            etype, value, tb = record.exc_info
            out["stackTrace"] = traceback.format_list(traceback.extract_tb(tb))
            out["errorType"] = etype.__name__
            out["errorMessage"] = str(value)
        out["requestId"] = getattr(record, "aws_request_id", None) or ""
        if record.exc_info and record.exc_info[0] is not None:
            out["location"] = "%s:%s:%s" % (record.pathname, record.funcName, record.lineno)
        out["tenantId"] = getattr(record, "tenant_id", None)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        return json.dumps({k: v for k, v in out.items() if v is not None}, default=str, ensure_ascii=False)


class SinkHandler(logging.Handler):
    """A logging handler writing each formatted record to the sink as one record."""

    def __init__(self, sink: StreamSink) -> None:
        super().__init__()
        self.sink = sink
        self.json = sink.config.json

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            # text frames are unleveled and JSON ones leveled, as the official client frames them
            self.sink.record(text, frame_level(record.levelno) if self.json else 0, self.json, record.created)
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
