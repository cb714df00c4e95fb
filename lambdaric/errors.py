"""Exceptions to wire shapes: the error JSON, the X-Ray cause, the uncaught-error log lines.

The shapes are fixed by what users' dashboards and the platform parse (docs/runtime-api.md section 5):
key order, the runtime's own frames hidden from stack traces, and runtime faults typed
``LambdaValidationError`` in X-Ray.
"""
from __future__ import annotations

import os
# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import traceback
    from typing import Any, Dict, List, Optional, Sequence

from .faults import EXIT_ERROR, FaultException, exit_message
from .protocol import MAX_PAYLOAD

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def make_error(message: Any, error_type: Any, stack_trace: Optional[Sequence[str]], request_id: Optional[str]) -> Dict[str, Any]:
    """The error object posted to ``/error`` and ``/init/error``, keys in the official order."""
    return {
        "errorMessage": message if message else "",
        "errorType": error_type if error_type else "",
        "requestId": request_id if request_id is not None else "",
        "stackTrace": list(stack_trace) if stack_trace else [],
    }


def user_frames(tb: Any) -> "traceback.StackSummary":
    """Frames of ``tb`` from the first one outside lambdaric on.

    When every frame is lambdaric's own (a bug in the runtime), all are kept, so the
    report still points somewhere. (``traceback`` is imported here, on the error path
    only: it costs ~3 ms of cold start.)
    """
    import traceback

    frames = traceback.extract_tb(tb)
    for i, frame in enumerate(frames):
        if not frame.filename.startswith(_PACKAGE_DIR):
            return traceback.StackSummary.from_list(frames[i:])
    return frames


def safe_str(exc: BaseException) -> str:
    """``str(exc)``, or a clear stand-in when the exception's ``__str__`` itself fails."""
    try:
        return str(exc)
    except BaseException as inner:  # a hostile __str__ (even one raising KeyboardInterrupt
        # or SystemExit) must not take the runtime down: the handler's failure is reported
        return "<exception str() failed: %s>" % type(inner).__name__


class ErrorReport:
    """Everything the runtime sends and logs about one failure."""

    __slots__ = ("error", "frames", "is_fault")

    def __init__(self, error: Dict[str, Any], frames: Sequence[Any], is_fault: bool) -> None:
        self.error = error
        self.frames = frames
        self.is_fault = is_fault

    @property
    def error_type(self) -> str:
        return self.error["errorType"]

    def body(self) -> bytes:
        """The JSON body of the error POST: fits the payload limit, valid UTF-8 (:func:`error_body`)."""
        return error_body(self.error, MAX_PAYLOAD)

    def xray_cause(self) -> Dict[str, Any]:
        """The ``Lambda-Runtime-Function-XRay-Error-Cause`` object."""
        if self.is_fault:
            xray_type = "LambdaValidationError"
            stack: List[Dict[str, Any]] = []
            paths: List[str] = []
        else:
            xray_type = self.error["errorType"]
            stack = [{"label": f[2], "path": f[0], "line": f[1]} for f in self.frames]
            paths = list(dict.fromkeys(f[0] for f in self.frames))
        return {
            "working_directory": working_directory(),
            "exceptions": [{"message": self.error["errorMessage"], "type": xray_type, "stack": stack}],
            "paths": paths,
        }


def working_directory() -> str:
    """The cwd for the X-Ray cause. A handler may have removed its own working directory
    (``os.getcwd()`` then fails): Linux still names it, as ``/path (deleted)``."""
    try:
        return os.getcwd()
    except OSError:
        try:
            return os.readlink("/proc/self/cwd")
        except OSError:
            return ""


def release_frames(tb: Any) -> None:
    """Drop the locals of the finished frames of a traceback (the one still running, the
    caller's, cannot be cleared and is skipped). After a MemoryError the handler's locals
    may hold all the memory there is; the report (file names, lines) needs none of them."""
    while tb is not None:
        try:
            tb.tb_frame.clear()
        except RuntimeError:  # a frame still executing
            pass
        tb = tb.tb_next


def report_exception(exc: BaseException, request_id: Optional[str]) -> ErrorReport:
    """Build the report for an exception raised by user code (or a FaultException)."""
    if isinstance(exc, FaultException):
        return ErrorReport(make_error(exc.message, exc.error_type, exc.trace, request_id), (), True)
    if isinstance(exc, MemoryError):
        release_frames(exc.__traceback__)
    frames = user_frames(exc.__traceback__)
    error = make_error(safe_str(exc), type(exc).__name__, format_frames(frames), request_id)
    return ErrorReport(error, [(f.filename, f.lineno, f.name) for f in frames], False)


def format_frames(frames: "Sequence[traceback.FrameSummary]") -> List[str]:
    """``traceback.format_list`` without the column carets of Python 3.11+, as the official
    client reports stack traces (dashboards compare them across Python versions)."""
    import traceback

    return traceback.format_list([(f.filename, f.lineno, f.name, f.line) for f in frames])  # type: ignore[misc]


#: What replaces the end of an error message cut to fit the Runtime API's payload limit.
TRUNCATED = " ... (truncated; the whole error is in the log)"


def error_body(error: Dict[str, Any], limit: int) -> bytes:
    """The error object as the JSON body of an error POST, at most ``limit`` bytes.

    The Runtime API refuses a body over its payload limit (6 MB) and the error would be
    lost: a stack trace over half the limit keeps its last frames (where the error was
    raised), then a longer message (an exception carrying a whole document) keeps its
    start; each says what was left out (:data:`TRUNCATED`). The log record keeps the
    whole error. Text that is no valid Unicode (lone surrogates, from ``surrogateescape``)
    is sent as ``\\uXXXX`` escapes, so that the body is always valid UTF-8 JSON.
    """
    body = json_bytes(error)
    if len(body) <= limit:
        return body
    fitted = dict(error)
    trace = list(fitted["stackTrace"] or ())
    if trace and len(json_bytes(trace)) > limit // 2:
        total = len(trace)
        while len(trace) > 1 and len(json_bytes(trace)) > limit // 2:
            trace = trace[len(trace) // 2:]
        trace.insert(0, "  ... (%d of %d frames left out; the whole trace is in the log)\n" % (total - len(trace), total))
        fitted["stackTrace"] = trace
        body = json_bytes(fitted)
    message = fitted["errorMessage"] if isinstance(fitted["errorMessage"], str) else ""
    keep = len(message)
    while len(body) > limit and keep:
        keep = keep * limit // len(body) * 9 // 10  # escapes make the JSON longer than the text
        fitted["errorMessage"] = message[:keep] + TRUNCATED
        body = json_bytes(fitted)
    return body


def json_bytes(obj: Any) -> bytes:
    """``obj`` (an error object) as UTF-8 JSON, the body of an error POST or of streamed error
    trailers; always valid UTF-8."""
    from . import marshal  # (it imports this module; loaded long before an error is posted)

    try:
        return marshal.dumps(obj).encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: escaped, as in the X-Ray cause
        return marshal.dumps_ascii(obj).encode("ascii")


def report_fault(error_type: str, message: str, request_id: Optional[str], trace: Optional[List[str]] = None) -> ErrorReport:
    return ErrorReport(make_error(message, error_type, trace, request_id), (), True)


def exit_error(how: str, request_id: Optional[str]) -> ErrorReport:
    """``Runtime.ExitError`` for a runtime that exited (``how``: ``exit status 3``, ``signal:
    killed``); with the request it held, its message names it as Lambda's does."""
    return report_fault(EXIT_ERROR, exit_message(how, request_id), request_id)


#: Logged at WARNING before an init error, in the official words.
INIT_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function code. However, "
    "in rare cases, a Lambda runtime update can cause unexpected function behavior. For functions using "
    "managed runtimes, runtime updates can be triggered by a function change, or can be applied automatically. "
    "To determine if the runtime has been updated, check the runtime version in the INIT_START log entry. If "
    "this error correlates with a change in the runtime version, you may be able to mitigate this error by "
    "temporarily rolling back to the previous runtime version. For more information, see "
    "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html"
)


def error_log_lines(error: Dict[str, Any]) -> List[str]:
    """Lines of the uncaught-error log record, in the official text layout.

    Leading spaces of stack lines become U+00A0 so CloudWatch keeps the indentation.
    """
    description = "[ERROR]"
    error_type = error.get("errorType")
    message = error.get("errorMessage")
    if error_type:
        description += " " + error_type
    if message:
        if error_type:
            description += ":"
        description += " " + message
    lines = [description]
    stack = error.get("stackTrace")
    if stack is not None:
        lines.append("Traceback (most recent call last):")
        for element in stack:
            if element == "":
                lines.append("")
                continue
            for line in element.splitlines():
                stripped = line.lstrip(" ")
                lines.append("\u00a0" * (len(line) - len(stripped)) + stripped)
    return lines
