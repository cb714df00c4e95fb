"""Startup and the invoke loop: ``/next`` -> handler -> ``/response`` or ``/error``.

Everything here talks to the Runtime API through the :class:`~lambdaric.transport.Transport`
interface only. Decisions about status codes, retries and exits are made here, once,
for every transport.
"""
from __future__ import annotations

import os
import sys
import time
from types import AsyncGeneratorType, GeneratorType  # already imported at interpreter startup (site)
# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, NoReturn, Optional

from . import __version__, logsink, marshal, protocol
from .logsink import flush_std_streams
from .context import LambdaContext, StaticContext
from .errors import EXIT_ERROR, RESPONSE_TOO_LARGE, ErrorReport, FaultException, error_body, report_exception, report_fault
from .handler import load_handler
from .traceenv import TraceEnv
from .transport import Transport, TransportError, create

#: Backoff delays before each retry of a failed connection to the Runtime API.
RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
#: Handler results sent as a response stream (lambdaric.streaming), checked with one ``in``.
STREAMED_RESULTS = (GeneratorType, AsyncGeneratorType)
INIT_WARNING = (
    "LAMBDA_WARNING: Unhandled exception. The most likely cause is an issue in the function code. However, "
    "in rare cases, a Lambda runtime update can cause unexpected function behavior. For functions using "
    "managed runtimes, runtime updates can be triggered by a function change, or can be applied automatically. "
    "To determine if the runtime has been updated, check the runtime version in the INIT_START log entry. If "
    "this error correlates with a change in the runtime version, you may be able to mitigate this error by "
    "temporarily rolling back to the previous runtime version. For more information, see "
    "https://docs.aws.amazon.com/lambda/latest/dg/runtimes-update.html"
)


def user_agent() -> str:
    v = sys.version_info
    return "lambdaric-python/%d.%d.%d-%s" % (v[0], v[1], v[2], __version__)


def say(message: str) -> None:
    """One line from the runtime itself, on stderr (never mixed into the function's stdout)."""
    try:
        sys.stderr.write("lambdaric: %s\n" % message)
        sys.stderr.flush()
    except Exception:  # pragma: no cover - a closed stderr must not hide the real problem
        pass


class RuntimeExit(Exception):
    """Leave the loop with this exit code (the reason has been said already)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Runtime:
    """One runtime process: a transport, a handler, and the loop between them."""

    #: writes ``_X_AMZN_TRACE_ID`` per invoke (None under Managed Instances: invokes overlap)
    trace_env: Optional[TraceEnv]

    def __init__(self, transport: Transport, environ: Dict[str, str], sink: logsink.StreamSink) -> None:
        self.transport = transport
        self.environ = environ
        self.sink = sink
        self.static = StaticContext(environ)
        self.trace_env = TraceEnv()
        self.handler: Optional[Callable[..., Any]] = None
        self._loop: Any = None  # the asyncio loop kept for the process, made on first need

    # ------------------------------------------------------------------ retries

    def call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call the transport, retrying connection failures with backoff, then giving up
        with one clear line and a non-zero exit."""
        for delay in RETRY_DELAYS + (None,):
            try:
                return fn(*args)
            except TransportError as exc:
                if delay is None:
                    say(
                        "cannot reach the Runtime API at %s (%s): %s; giving up after %d attempts"
                        % (exc.endpoint, exc.call, _os_error_text(exc.cause), len(RETRY_DELAYS) + 1)
                    )
                    raise RuntimeExit(1) from None
                if not isinstance(exc.cause, ConnectionRefusedError):  # a broken exchange, not "not up (yet)"
                    say("%s to %s failed: %s; retrying" % (exc.call, exc.endpoint, _os_error_text(exc.cause)))
                time.sleep(delay)
            except protocol.ProtocolError as exc:
                say("invalid answer from the Runtime API at %s (%s): %s" % (self.transport_address, what, exc))
                raise RuntimeExit(1) from None
        raise AssertionError("unreachable")  # pragma: no cover

    @property
    def transport_address(self) -> str:
        return getattr(self.transport, "address", "?")

    # ------------------------------------------------------------------ init

    def init(self, handler_name: str) -> None:
        try:
            self.handler = load_handler(handler_name)
            flush_std_streams()  # init's output reaches the log before the runtime waits on /next
        except Exception as exc:
            self.init_failed(report_exception(exc, None))
        except SystemExit as exc:
            self.init_failed(report_fault(EXIT_ERROR, "Runtime exited with error: exit status %s" % _exit_code(exc), None))

    def init_failed(self, report: ErrorReport) -> NoReturn:
        logsink.log_init_warning(self.sink, INIT_WARNING)
        logsink.log_uncaught(self.sink, report.error)
        flush_std_streams()
        status, body = self.call("POST /init/error", self.transport.init_error, _error_body(report), report.error_type)
        if status not in (202, 403):
            say("POST /init/error answered %d: %s" % (status, protocol.error_message_from_body(body)))
        raise RuntimeExit(1)

    # ------------------------------------------------------------------ loop

    def run_forever(self) -> NoReturn:
        transport_next = self.transport.next
        while True:
            invocation = self.call("GET /next", transport_next)
            self.handle(invocation)

    def handle(self, inv: protocol.Invocation) -> None:
        if inv.deadline_problem:
            say(inv.deadline_problem)
        logsink.begin_invoke(inv.request_id, inv.tenant_id)
        if self.trace_env is not None:
            self.trace_env.set(inv.trace_id)
        try:
            try:
                context = LambdaContext(inv, self.static, self.sink.context_log)
                event = marshal.parse_event(inv.body, inv.content_type)
                if type(event) is bytearray:
                    event = bytes(event)
                result = self.handler(event, context)  # type: ignore[misc]
                if getattr(type(result), "__await__", None) is not None:  # a coroutine or future
                    result = self.run_async(result)
                if type(result) in STREAMED_RESULTS:  # a generator, or a @streaming_handler's call
                    from .streaming import respond

                    respond(self, inv, result)  # raises only what came before anything was sent
                    return
                body, content_type = marshal.to_response(result)
            except RuntimeExit:  # the runtime's decision (e.g. a stream's 5xx answer), not the function's error
                raise
            except SystemExit as exc:
                code = _exit_code(exc)
                report = report_fault(
                    EXIT_ERROR,
                    "RequestId: %s Error: Runtime exited with error: exit status %d" % (inv.request_id, code),
                    inv.request_id,
                )
                self.report_error(inv, report)
                flush_std_streams()
                raise
            except BaseException as exc:  # KeyboardInterrupt, custom BaseExceptions: an error, not an exit
                self.report_error(inv, report_exception(exc, inv.request_id))
                return
            if len(body) > protocol.MAX_PAYLOAD:
                self.report_too_large(inv, len(body))
                return
            flush_std_streams()  # the invoke's output reaches the log before its result
            status, answer = self.call(
                "POST /response", self.transport.respond, inv.request_id, body, content_type, inv.invocation_id
            )
            if status != 202:
                if status == 413:
                    self.report_too_large(inv, len(body))
                else:
                    self.check_answer("POST /response", inv.request_id, status, answer)
        finally:
            logsink.end_invoke()
            flush_std_streams()

    def run_async(self, awaitable: Any) -> Any:
        """Run a coroutine on one event loop kept for the whole process."""
        if self._loop is None:
            import asyncio

            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
        return self._loop.run_until_complete(awaitable)

    def report_too_large(self, inv: protocol.Invocation, size: int) -> None:
        message = "Response payload size (%d bytes) exceeded maximum allowed payload size (%d bytes)." % (
            size,
            protocol.MAX_PAYLOAD,
        )
        self.report_error(inv, report_fault(RESPONSE_TOO_LARGE, message, inv.request_id))

    def report_error(self, inv: protocol.Invocation, report: ErrorReport) -> None:
        logsink.log_uncaught(self.sink, report.error)
        flush_std_streams()
        cause = marshal.dumps_ascii(report.xray_cause())
        xray = cause if len(cause) < protocol.MAX_XRAY_CAUSE else None
        status, answer = self.call(
            "POST /error",
            self.transport.fail,
            inv.request_id,
            _error_body(report),
            report.error_type,
            xray,
            inv.invocation_id,
        )
        if status != 202:
            self.check_answer("POST /error", inv.request_id, status, answer)

    def check_answer(self, call: str, request_id: str, status: int, answer: bytes) -> None:
        """What a non-202 answer to a POST means: 410/4xx are logged, 5xx ends the runtime."""
        detail = protocol.error_message_from_body(answer)
        if status == 410:
            say("%s for %s answered 410 (the invoke timed out already): %s" % (call, request_id, detail))
        elif 400 <= status < 500:
            say("%s for %s answered %d: %s" % (call, request_id, status, detail))
        else:
            say("%s for %s answered %d: %s; exiting" % (call, request_id, status, detail))
            raise RuntimeExit(1)


def _error_body(report: ErrorReport) -> bytes:
    return error_body(report.error, protocol.MAX_PAYLOAD)  # fits the payload limit, valid UTF-8


def _exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1


def _os_error_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return "[Errno %s] %s" % (exc.errno, exc.strerror) if exc.errno else exc.strerror
    return str(exc) or type(exc).__name__


def run(handler_name: str, environ: Optional[Dict[str, str]] = None) -> int:
    """Run the runtime until it must exit; returns the exit code."""
    env = dict(os.environ if environ is None else environ)
    address = env["AWS_LAMBDA_RUNTIME_API"]
    if env.get("AWS_LAMBDA_MAX_CONCURRENCY", "0") not in ("", "0"):
        from .concurrency import run_managed_instances  # Lambda Managed Instances: N pollers

        return run_managed_instances(handler_name, env)
    try:
        transport = create(address, user_agent(), env.get("LAMBDARIC_TRANSPORT"))
    except (ValueError, RuntimeError) as exc:
        say(str(exc))
        return 2
    sink = logsink.StreamSink(logsink.LogConfig(env), telemetry_fd=logsink.telemetry_fd_from(env))
    logsink.install_when_imported(sink)
    logsink.setup_output()
    if sink.config.level == "DEBUG":
        reason = getattr(transport, "fallback_reason", None)
        say("[DEBUG] transport: %s%s" % (transport.name, " (native module unavailable: %s)" % reason if reason else ""))
    runtime = Runtime(transport, env, sink)
    try:
        runtime.init(handler_name)
        _sigterm_extension(env, address)
        if env.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
            from .snapstart import restore

            restore(runtime)  # hooks and /restore/next (lambdaric.snapstart); exits 64/65 on failure
        runtime.run_forever()
    except RuntimeExit as exc:
        return exc.code
    finally:
        shutdown = sys.modules.get("lambdaric.shutdown")
        if shutdown is not None:  # on_shutdown callbacks on a normal exit (SIGTERM: logsink)
            shutdown.run_callbacks()
        flush_std_streams()


def _sigterm_extension(env: Dict[str, str], address: str) -> None:
    """Register the no-op extension that makes Lambda send SIGTERM (lambdaric.shutdown),
    during init, when asked for or when on_shutdown callbacks were registered. Not under
    SnapStart: its connection would not survive the snapshot."""
    choice = env.get("LAMBDARIC_SIGTERM_EXTENSION")
    if choice == "0" or (not choice and "lambdaric.shutdown" not in sys.modules):
        return
    from . import shutdown

    if not shutdown.wanted(env):
        return
    if env.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
        say("the SIGTERM extension is not registered under SnapStart (it would not survive the snapshot)")
        return
    shutdown.start_extension(address, user_agent())
