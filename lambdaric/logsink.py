"""Where the function's log goes, and the request id it carries, without ``logging``.

``logging`` costs about 11 ms to import in a clean interpreter (it pulls in ``re``,
``traceback``, ``threading``...), more than the rest of the runtime together. Most of what
the invoke loop needs from "logging" is here instead: the request-id state, the stdout
sink, the uncaught-error record and the init warning. The ``logging`` integration
(:mod:`lambdaric.logs`) is installed the moment anything imports ``logging`` (see
:func:`when_logging_imported`), so user records, even at import time, get the runtime's
format, and a function that never logs never pays for it.

The request id shown in each record comes from a contextvar set around each invoke,
with a process-wide fallback for threads the handler starts (threads do not inherit
contextvars); both are cleared when the invoke ends, so a late log line from a
background thread never carries a stale id. Where several invokes run at once in one
process (Managed Instances' thread and asyncio modes) there is no fallback
(:func:`overlapping_invokes`): such a thread's line carries no id rather than another
invoke's.
"""
from __future__ import annotations

import os
import sys
import time
from _contextvars import ContextVar  # what contextvars re-exports, without that module's import

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, List, Optional, TextIO, Tuple

request_id_var: "ContextVar[Optional[str]]" = ContextVar("lambdaric_request_id", default=None)
tenant_id_var: "ContextVar[Optional[str]]" = ContextVar("lambdaric_tenant_id", default=None)
#: The invoke's X-Ray trace header (``_X_AMZN_TRACE_ID`` holds it too, outside Managed Instances).
trace_id_var: "ContextVar[Optional[str]]" = ContextVar("lambdaric_trace_id", default=None)
# The invoke in progress, for threads that did not inherit the contextvar (only while
# one invoke at a time runs in this process: see overlapping_invokes).
_current_request_id: "Optional[str]" = None
_current_tenant_id: "Optional[str]" = None
_fallback = True

_LEVEL_ALIASES = {"TRACE": "DEBUG", "WARN": "WARNING", "FATAL": "CRITICAL"}
_LEVEL_NUMBERS = {"CRITICAL": 50, "ERROR": 40, "WARNING": 30, "INFO": 20, "DEBUG": 10, "NOTSET": 0}


def overlapping_invokes() -> None:
    """Several invokes run at once in this process from now on: drop the process-wide
    fallback, which would hold whichever invoke began last (a line logged by a thread one
    handler started would carry another invoke's id)."""
    global _fallback, _current_request_id, _current_tenant_id
    _fallback = False
    _current_request_id = _current_tenant_id = None


def flush_std_streams() -> None:
    """Flush stdout and stderr; a stream that cannot flush (closed, replaced, reentrant)
    must not hide what the caller was doing."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            if _stdout_fd_reopened(stream):
                try:
                    stream.flush()
                except Exception:
                    pass
        except Exception:
            pass


def _stdout_fd_reopened(stream: "Any") -> bool:
    """The function closed fd 1 (``os.close(1)``): what stdout holds, the runtime's error
    records among it, could never be written. Point fd 1 at stderr (Lambda puts both in
    the same log) and say so; False when fd 1 is open (another failure) or not stdout's."""
    try:
        if stream is not sys.stdout or stream.fileno() != 1:
            return False
        os.fstat(1)
        return False
    except OSError:
        pass
    except Exception:  # no fileno (replaced), closed (ValueError)
        return False
    try:
        os.dup2(2, 1)
    except OSError:
        return False
    try:
        os.write(2, b"lambdaric: fd 1 (stdout) was closed by the function; stdout now goes to stderr\n")
    except OSError:
        pass
    return True


def begin_invoke(request_id: str, tenant_id: "Optional[str]", trace_id: "Optional[str]" = None) -> None:
    global _current_request_id, _current_tenant_id
    if _fallback:
        _current_request_id = request_id
        _current_tenant_id = tenant_id
    request_id_var.set(request_id)
    tenant_id_var.set(tenant_id)
    trace_id_var.set(trace_id)


def end_invoke() -> None:
    global _current_request_id, _current_tenant_id
    _current_request_id = None
    _current_tenant_id = None
    request_id_var.set(None)
    tenant_id_var.set(None)
    trace_id_var.set(None)


def current_ids() -> "Tuple[Optional[str], Optional[str], Optional[str]]":
    """The invoke's (request id, tenant id, trace id), to carry into another context."""
    return current_request_id(), current_tenant_id(), trace_id_var.get()


def set_ids(ids: "Tuple[Optional[str], Optional[str], Optional[str]]") -> None:
    """Set the ids :func:`current_ids` gave in this context (a task on another thread's loop)."""
    request_id_var.set(ids[0])
    tenant_id_var.set(ids[1])
    trace_id_var.set(ids[2])


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
        #: text frames carry the record's level only when AWS_LAMBDA_LOG_LEVEL is set to
        #: anything (even a name that is no level), as the official client frames them
        self.level_given = bool(environ.get("AWS_LAMBDA_LOG_LEVEL"))
        #: JSON timestamps with milliseconds (opt-in; the official client has whole seconds)
        self.milliseconds = environ.get("AWS_LAMBDA_LOG_TIMESTAMP_PRECISION", "").lower() == "milliseconds"


#: Telemetry frame levels (docs/runtime-api.md section 6) by logging level number.
FRAME_LEVELS = {10: 2, 20: 3, 30: 4, 40: 5, 50: 6}
_FRAME_TYPE = 0xA55A0000
_FRAME_HEAD = None  # struct.Struct(">IIQ"), made on first use


def frame_level(levelno: int) -> int:
    """The frame level of a logging level number (between the named levels: the one below)."""
    for number in (50, 40, 30, 20, 10):
        if levelno >= number:
            return FRAME_LEVELS[number]
    return 0


def json_timestamp(created: float, milliseconds: bool) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return stamp + (".%03dZ" % (int(created * 1000) % 1000) if milliseconds else "Z")


class StreamSink:
    """Where log records go: framed to the telemetry fd when Lambda gives one (one
    ``write()`` per record), else to stdout, looked up at write time so that a test or
    user replacing ``sys.stdout`` is honoured.

    On stdout a multi-line text record has its inner line breaks turned into CR, so
    CloudWatch keeps it as one event (the official client does it only for uncaught
    errors); frames need no such care.
    """

    def __init__(self, config: "LogConfig", stream: "Optional[TextIO]" = None, telemetry_fd: "Optional[int]" = None) -> None:
        self.config = config
        self._stream = stream
        self.telemetry_fd = telemetry_fd

    def write(self, text: str) -> None:
        """Raw text (``context.log`` in text mode): as is, an unleveled text frame."""
        if self.telemetry_fd is not None:
            self._frame(text, 0, False, time.time())
        else:
            self._out(text)

    def record(self, text: str, level: int, is_json: bool, created: float, frame_newline: bool = True) -> None:
        """One log record (``level`` is the frame level, 0 for none). JSON frames end with a
        newline like the official client's, except its uncaught-error frame
        (``frame_newline=False``); stdout always gets one record per line."""
        if self.telemetry_fd is not None:
            if is_json and frame_newline and not text.endswith("\n"):
                text += "\n"
            self._frame(text, level, is_json, created)
            return
        if not is_json:
            body = text[:-1] if text.endswith("\n") else text
            if "\n" in body:
                body = body.replace("\r\n", "\r").replace("\n", "\r")
            text = body + "\n"
        elif not text.endswith("\n"):
            text += "\n"
        self._out(text)

    def _out(self, text: str) -> None:
        """Write to the stream (stdout looked up now). The function may have closed
        ``sys.stdout``, set it to None, closed fd 1, or logged text no codec takes (lone
        surrogates): then the record goes out escaped, or straight to fd 1, else fd 2,
        rather than failing the runtime with a traceback (the official client dies)."""
        stream = self._stream or sys.stdout
        try:
            stream.write(text)
            return
        except UnicodeEncodeError:
            encoding = getattr(stream, "encoding", None) or "utf-8"
            text = text.encode(encoding, "backslashreplace").decode(encoding)
            try:
                stream.write(text)
                return
            except Exception:
                pass
        except Exception:  # closed (ValueError), None (AttributeError), bad fd (OSError)...
            pass
        data = text.encode("utf-8", "backslashreplace")
        for fd in (1, 2):
            try:
                while data:
                    data = data[os.write(fd, data):]
                return
            except OSError:
                continue

    def _frame(self, text: str, level: int, is_json: bool, created: float) -> None:
        global _FRAME_HEAD
        # print() output still in the stdout buffer was written before this record: let
        # it reach the log first, so CloudWatch keeps the order (no syscall when empty)
        try:
            sys.stdout.flush()
        except Exception:
            pass
        if _FRAME_HEAD is None:
            import struct

            _FRAME_HEAD = struct.Struct(">IIQ")
        data = text.encode("utf-8", "backslashreplace")
        kind = _FRAME_TYPE | (level << 2) | (2 if is_json else 3)
        frame = _FRAME_HEAD.pack(kind, len(data), int(created * 1_000_000)) + data
        try:
            while frame:
                written = os.write(self.telemetry_fd, frame)  # type: ignore[arg-type]
                frame = frame[written:]
        except OSError:
            pass  # a closed telemetry fd must not fail the function

    def context_log(self, msg: str) -> None:
        """``context.log(msg)``: raw text, or a JSON record in JSON mode (the official client
        writes raw text even then, which breaks JSON log parsing)."""
        if not self.config.json:
            self.write(msg)
            return
        now = time.time()
        record = {"timestamp": json_timestamp(now, self.config.milliseconds), "level": "INFO", "message": msg.rstrip("\n")}
        record["requestId"] = current_request_id() or ""
        tenant = current_tenant_id()
        if tenant:
            record["tenantId"] = tenant
        self.record(_dumps(record), 3, True, now)


def _dumps(obj: "Any") -> str:
    import json  # JSON log mode only

    return json.dumps(obj, default=str, ensure_ascii=False)


def log_uncaught(sink: StreamSink, error: "Dict[str, Any]") -> None:
    """The record of an uncaught error: text lines (joined by CR on stdout, by LF in a
    frame, as the official client), or a JSON object without ``logger``; then stdout and
    stderr are flushed, so the record (and what the invoke printed before it) reaches the
    log before whatever the runtime does next: post the error, or exit."""
    _write_uncaught(sink, error)
    flush_std_streams()


def _write_uncaught(sink: StreamSink, error: "Dict[str, Any]") -> None:
    now = time.time()
    if sink.config.json:
        record = {
            "timestamp": json_timestamp(now, sink.config.milliseconds),
            "level": "ERROR",
            "errorMessage": error.get("errorMessage"),
            "errorType": error.get("errorType"),
            "requestId": error.get("requestId") or current_request_id() or "",
            "stackTrace": error.get("stackTrace"),
        }
        sink.record(_dumps(record), 5, True, now, frame_newline=False)
        return
    from .errors import error_log_lines

    lines = error_log_lines(error)
    if sink.telemetry_fd is not None:
        sink.record("\n".join(lines), 5, False, now)
    else:
        # a line break inside the message too (the official client leaves it, splitting
        # the record into two CloudWatch events)
        text = "\r".join(lines)
        sink.write(text.replace("\r\n", "\r").replace("\n", "\r") + "\n")


def _root_enabled_for(sink: StreamSink, level: int) -> bool:
    logging = sys.modules.get("logging")
    if logging is not None:
        return logging.getLogger().isEnabledFor(level)
    return level >= _LEVEL_NUMBERS[sink.config.level or "WARNING"]


def log_init_warning(sink: StreamSink, message: str) -> None:
    """The warning logged before an init error, as a WARNING record of the root logger
    (subject to its level); its message ends in CR, as the official client writes it."""
    if not _root_enabled_for(sink, 30):
        return
    now = time.time()
    if sink.config.json:
        record = {
            "timestamp": json_timestamp(now, sink.config.milliseconds),
            "level": "WARNING",
            "message": message + "\r",
            "logger": "root",
            "requestId": current_request_id() or "",
        }
        sink.record(_dumps(record), 4, True, now)
        return
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    text = "[WARNING]\t%s.%03dZ\t%s\t%s\r\n" % (stamp, int(now * 1000) % 1000, current_request_id() or "", message)
    if sink.telemetry_fd is not None:
        sink.record(text, 4 if sink.config.level_given else 0, False, now)
    else:
        sink.write(text)


def telemetry_fd_from(environ: "Dict[str, str]") -> "Optional[int]":
    """Take ``_LAMBDA_TELEMETRY_LOG_FD`` out of the environment (so child processes do
    not write frames into it) and return it, or None when absent or unusable."""
    raw = environ.pop("_LAMBDA_TELEMETRY_LOG_FD", None)
    os.environ.pop("_LAMBDA_TELEMETRY_LOG_FD", None)
    if raw is None:
        return None
    try:
        fd = int(raw)
        os.fstat(fd)
    except (ValueError, OSError) as exc:
        sys.stderr.write("lambdaric: ignoring _LAMBDA_TELEMETRY_LOG_FD=%r: %s\n" % (raw[:50], exc))
        return None
    return fd


class Flusher:
    """Flushes stdout and stderr every ``interval`` seconds.

    ``print()`` then costs no syscall of its own (the official client flushes every
    write), yet output reaches the log within ``interval``, even when the function is
    killed by its timeout or a background thread writes between invokes; the bootstrap
    also flushes after init and before every answer. A frozen sandbox runs nothing, so
    the wakeups cost only while the function runs. Started with the runtime (a bare
    ``_thread``: ~80 us), only when stdout is block-buffered.
    """

    def __init__(self, interval: float = 0.1) -> None:
        import _thread

        self.interval = interval
        _thread.start_new_thread(self._run, ())

    def _run(self) -> None:
        while True:
            time.sleep(self.interval)
            flush_std_streams()

    @staticmethod
    def wanted() -> bool:
        stream = sys.stdout
        return not getattr(stream, "line_buffering", False) and not getattr(stream, "write_through", False)


def buffer_stdout() -> None:
    """Make stdout block-buffered when it is not a terminal, even under ``PYTHONUNBUFFERED``
    / ``-u`` (set by habit in many Dockerfiles): each ``print()`` would cost two ``write()``
    syscalls. Nothing is lost for it: the flusher, the flushes after init and before every
    answer, at exit and on SIGTERM (:func:`flush_on_sigterm`) bound how late output gets.
    A function that wants every write to go out at once can still call
    ``sys.stdout.reconfigure(write_through=True)``."""
    stream: "Any" = sys.stdout  # a TextIOWrapper, unless the function replaced it
    try:
        if stream.isatty() or not (stream.write_through or stream.line_buffering):
            return
        stream.reconfigure(line_buffering=False, write_through=False)
    except Exception:  # not a TextIOWrapper (replaced by the caller): leave it alone
        pass


def flush_on_sigterm() -> None:
    """With SIGTERM at its default (the process just dies), run the ``on_shutdown``
    callbacks (:mod:`lambdaric.shutdown`, when used), flush stdout and stderr, then die of
    the same signal, so the exit status is unchanged. As PID 1 (a container without an
    init) a process cannot die of a signal it sends itself (the kernel drops it), so it
    exits with the status a shell would show, 128 + 15 = 143. A handler the function
    installs replaces this one."""
    import _signal

    if _signal.getsignal(_signal.SIGTERM) != _signal.SIG_DFL:
        return
    started: "List[int]" = []

    def on_sigterm(signum: int, _frame: "Any") -> None:
        if started:  # a second SIGTERM while the callbacks run: let them finish
            return
        started.append(signum)
        shutdown = sys.modules.get("lambdaric.shutdown")
        if shutdown is not None:
            shutdown.run_on_sigterm()
        flush_std_streams()  # (a flush may fail reentrantly: the signal came in mid-write)
        from .console import die_of

        die_of(signum)

    try:
        _signal.signal(_signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread (run() called from a test's thread)
        pass


_real_os_exit: "Optional[Callable[[int], Any]]" = None
_os_exit_pid = 0


def flush_on_os_exit() -> None:
    """Make ``os._exit()`` flush stdout and stderr first. It skips every flush, so output
    a function printed just before calling it would be lost from the block buffer
    (:func:`buffer_stdout`), where the official client (a flush per write) keeps it. Only
    in the process that set this up: a forked child (multiprocessing) that calls it must
    not write its copy of the parent's buffer a second time."""
    global _real_os_exit, _os_exit_pid
    _os_exit_pid = os.getpid()
    if _real_os_exit is not None:
        return
    real = _real_os_exit = os._exit

    def _exit(status: int) -> "Any":
        if os.getpid() == _os_exit_pid:
            flush_std_streams()
        real(status)

    _exit.__doc__ = real.__doc__
    os._exit = _exit


def setup_output(flusher: bool = True) -> "Optional[Flusher]":
    """What the runtime does to stdout when it starts: buffer it, flush it on SIGTERM and
    on ``os._exit()``, and start the flusher (returned) when stdout ends up block-buffered.
    A preloading supervisor (:mod:`lambdaric.preload`) starts no flusher: a thread that
    holds stdout's lock when it forks would leave that lock held in every worker."""
    buffer_stdout()
    flush_on_sigterm()
    flush_on_os_exit()
    return Flusher() if flusher and Flusher.wanted() else None


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


def when_logging_imported(install: "Callable[[Any], None]") -> None:
    """Call ``install(logging)`` now if ``logging`` is loaded, else at once when anything
    imports it (before the importer gets it), so that no record escapes the runtime's
    handler and ``logging`` stays off the cold-start path of functions that never use it."""
    if "logging" in sys.modules:
        install(sys.modules["logging"])
    else:
        sys.meta_path.insert(0, _LoggingWatcher(install))
