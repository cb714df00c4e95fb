"""Where the function's log goes, and the request id it carries, without ``logging``.

``logging`` costs about 11 ms to import in a clean interpreter (it pulls in ``re``,
``traceback``, ``threading``...), more than the rest of the runtime together. Most of what
the invoke loop needs from "logging" is here instead: the request-id state, the stdout
sink, the uncaught-error record and the init warning. The ``logging`` integration
(:mod:`lambdaric.logs`) is installed the moment anything imports ``logging`` (see
:func:`install_when_imported`), so user records, even at import time, get the runtime's
format, and a function that never logs never pays for it.

The request id shown in each record comes from a contextvar set around each invoke,
with a process-wide fallback for threads the handler starts (threads do not inherit
contextvars); both are cleared when the invoke ends, so a late log line from a
background thread never carries a stale id.
"""
from __future__ import annotations

import contextvars
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, List, Optional, TextIO

request_id_var: "contextvars.ContextVar[Optional[str]]" = contextvars.ContextVar("lambdaric_request_id", default=None)
tenant_id_var: "contextvars.ContextVar[Optional[str]]" = contextvars.ContextVar("lambdaric_tenant_id", default=None)
# The invoke in progress, for threads that did not inherit the contextvar.
_current_request_id: "Optional[str]" = None
_current_tenant_id: "Optional[str]" = None

_LEVEL_ALIASES = {"TRACE": "DEBUG", "WARN": "WARNING", "FATAL": "CRITICAL"}
_LEVEL_NUMBERS = {"CRITICAL": 50, "ERROR": 40, "WARNING": 30, "INFO": 20, "DEBUG": 10, "NOTSET": 0}


def begin_invoke(request_id: str, tenant_id: "Optional[str]") -> None:
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


def current_request_id() -> "Optional[str]":
    return request_id_var.get() or _current_request_id


def current_tenant_id() -> "Optional[str]":
    return tenant_id_var.get() or _current_tenant_id


class LogConfig:
    """Logging settings read from the environment once, when the runtime starts."""

    def __init__(self, environ: "Dict[str, str]") -> None:
        self.json = environ.get("AWS_LAMBDA_LOG_FORMAT", "").upper() == "JSON"
        raw_level = environ.get("AWS_LAMBDA_LOG_LEVEL", "").upper()
        level = _LEVEL_ALIASES.get(raw_level, raw_level)
        #: the root logger's level when AWS_LAMBDA_LOG_LEVEL names one, else None (logging's WARNING)
        self.level: "Optional[str]" = level if level in _LEVEL_NUMBERS else None


class StreamSink:
    """Writes log text to a stream (stdout by default), looked up at write time so that
    a test or user replacing ``sys.stdout`` is honoured."""

    def __init__(self, config: "LogConfig", stream: "Optional[TextIO]" = None) -> None:
        self.config = config
        self._stream = stream

    def write(self, text: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(text)

    def write_error(self, lines: "List[str]") -> None:
        """An uncaught error: one record, lines joined by CR so CloudWatch keeps one event."""
        self.write("\r".join(lines) + "\n")


def log_uncaught(sink: StreamSink, error: "Dict[str, Any]") -> None:
    from .errors import error_log_lines

    sink.write_error(error_log_lines(error))


def _root_enabled_for(sink: StreamSink, level: int) -> bool:
    logging = sys.modules.get("logging")
    if logging is not None:
        return logging.getLogger().isEnabledFor(level)
    return level >= _LEVEL_NUMBERS[sink.config.level or "WARNING"]


def log_init_warning(sink: StreamSink, message: str) -> None:
    """The warning logged before an init error, as a WARNING record of the root logger
    (subject to its level), in the text layout; its text ends in CR LF, as the official
    client writes it."""
    if not _root_enabled_for(sink, 30):
        return
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    sink.write("[WARNING]\t%s.%03dZ\t%s\t%s\r\n" % (stamp, int(now * 1000) % 1000, current_request_id() or "", message))


class _LoggingWatcher:
    """A one-shot ``sys.meta_path`` entry: lets the normal import of ``logging`` happen,
    then calls ``on_import`` with the fresh module, before the importer gets it."""

    def __init__(self, on_import: "Callable[[Any], None]") -> None:
        self.on_import = on_import

    def find_spec(self, name: str, path: "Any" = None, target: "Any" = None) -> "Any":
        if name != "logging":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None and spec.loader is not None:
                spec.loader = _ThenCall(spec.loader, self.on_import)
                return spec
        return None


class _ThenCall:
    """A loader that runs another loader, then a callback on the module."""

    def __init__(self, loader: "Any", then: "Callable[[Any], None]") -> None:
        self._loader = loader
        self._then = then

    def create_module(self, spec: "Any") -> "Any":
        return self._loader.create_module(spec)

    def exec_module(self, module: "Any") -> None:
        self._loader.exec_module(module)
        self._then(module)

    def __getattr__(self, name: str) -> "Any":
        return getattr(self._loader, name)


def install_when_imported(sink: StreamSink) -> None:
    """Hook the runtime's log handler onto ``logging`` now if it is loaded, else at once
    when anything imports it."""

    def install(_module: "Any" = None) -> None:
        from . import logs

        logs.install(sink)

    if "logging" in sys.modules:
        install()
    else:
        sys.meta_path.insert(0, _LoggingWatcher(install))
