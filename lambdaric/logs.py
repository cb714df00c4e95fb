"""The ``logging`` side of the runtime's log: formats and the root handler.

Imported only once something imports ``logging`` (see :mod:`lambdaric.logsink`), so a
function that never logs never pays for ``logging``. Configuration comes from the
:class:`~lambdaric.logsink.LogConfig` read when the runtime starts, never at import.
"""
from __future__ import annotations

import logging
import time

from .logsink import StreamSink, current_request_id, current_tenant_id

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


def install(sink: StreamSink) -> None:
    """Put the runtime's handler on the root logger (once) and apply the configured level."""
    root = logging.getLogger()
    if any(isinstance(h, SinkHandler) for h in root.handlers):
        return
    handler = SinkHandler(sink)
    handler.setFormatter(TextFormatter())
    handler.addFilter(RequestIdFilter())
    root.addHandler(handler)
    if sink.config.level:
        root.setLevel(sink.config.level)
