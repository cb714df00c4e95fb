"""The runtime client: a transport, how its failures are retried, and what each answer means.

Every exchange with the Runtime API goes through :class:`RuntimeClient`, for every mode (the
classic loop, each Managed Instances poller, streaming, SnapStart), so each decision is made
once: a broken call is retried with backoff (:class:`Retry`) and then given up in one line;
an invalid answer ends the runtime (or, where the retry says so, is retried); a result is
posted after the invoke's output reached the log; a 4xx answer is logged, a 5xx one ends the
runtime where answers are fatal (the classic loop) and is logged where they are not (Managed
Instances, where the other invokes go on). The error reports it posts come from
:mod:`lambdaric.errors`, their log records go to the sink first.
"""
from __future__ import annotations

import time

# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, NoReturn, Optional, Tuple

    from .errors import ErrorReport
    from .transport import Transport

from . import logsink, marshal, protocol
from .console import RuntimeExit, exit_code, os_error_text, say
from .errors import INIT_WARNING, exit_error, report_fault
from .faults import RESPONSE_TOO_LARGE
from .logsink import flush_std_streams
from .transport import TransportError


class Retry:
    """How a failed call is tried again: ``delays`` between the tries (so ``len + 1`` tries);
    ``invalid``: whether an invalid answer is tried again too (else it ends the runtime at
    once); ``fatal``: whether giving up ends the runtime (else the call returns ``(0, b"")``,
    "not delivered, said already", and the runtime goes on)."""

    __slots__ = ("delays", "invalid", "fatal", "schedule")

    def __init__(self, delays: "Tuple[float, ...]", invalid: bool = False, fatal: bool = True) -> None:
        self.delays = delays
        #: the delay after each try, None after the last (made once: call() runs per invoke)
        self.schedule: "Tuple[Optional[float], ...]" = delays + (None,)
        self.invalid = invalid
        self.fatal = fatal


#: The classic runtime: 7 tries over ~3 s; an invalid answer or giving up ends the runtime.
CLASSIC = Retry((0.05, 0.1, 0.2, 0.4, 0.8, 1.6))
#: Managed Instances ``/next``: the official client's 5 tries from 0.1 s, invalid answers too.
MANAGED_NEXT = Retry((0.1, 0.2, 0.4, 0.8), invalid=True)
#: Managed Instances POSTs: a failed answer is said and the poller carries on.
MANAGED_POST = Retry(CLASSIC.delays, fatal=False)


def retries(env: "Dict[str, str]", managed: bool = False) -> "Tuple[Retry, Retry]":
    """The (``/next``, POST) retries for a runtime: CLASSIC for both, or Managed Instances'
    pair; ``LAMBDARIC_RETRY_DELAYS`` (seconds between tries, comma-separated) replaces the
    delays of both. ValueError, with a clear message, for a value that is no such list."""
    next_retry, post_retry = (MANAGED_NEXT, MANAGED_POST) if managed else (CLASSIC, CLASSIC)
    text = env.get("LAMBDARIC_RETRY_DELAYS", "")
    if not text:
        return next_retry, post_retry
    try:
        delays = tuple(float(part) for part in text.split(","))
    except ValueError:
        delays = (-1.0,)
    if not 0 < len(delays) <= 20 or not all(0 <= d <= 60 for d in delays):  # (NaN fails too)
        raise ValueError("LAMBDARIC_RETRY_DELAYS must be 1 to 20 comma-separated seconds (0 to 60 each), not %r"
                         % text[:50])
    return (Retry(delays, next_retry.invalid, next_retry.fatal), Retry(delays, post_retry.invalid, post_retry.fatal))


class RuntimeClient:
    """One connection's calls to the Runtime API and the rules above (see module docstring).

    ``init_token``: under Managed Instances only one poller of all may post ``/init/error``;
    it returns True for the one that may (the others log their error and exit quietly)."""

    def __init__(self, transport: Transport, sink: logsink.StreamSink, next_retry: Retry = CLASSIC,
                 post_retry: Retry = CLASSIC, init_token: "Optional[Callable[[], bool]]" = None) -> None:
        self.transport = transport
        self.sink = sink
        self.next_retry = next_retry
        self.post_retry = post_retry
        self.init_token = init_token
        self.init_reported = False  # this client posted /init/error
        self.answers_fatal = post_retry.fatal

    @property
    def address(self) -> str:
        return getattr(self.transport, "address", "?")

    # ------------------------------------------------------------------ retries

    def call(self, what: str, fn: "Callable[..., Any]", *args: "Any", retry: "Optional[Retry]" = None) -> "Any":
        """``fn(*args)``, retried as ``retry`` (the POST policy by default) says."""
        retry = retry or self.post_retry
        for delay in retry.schedule:
            try:
                return fn(*args)
            except TransportError as exc:
                if delay is None:
                    say("cannot reach the Runtime API at %s (%s): %s; giving up after %d attempts"
                        % (exc.endpoint, exc.call, os_error_text(exc.cause), len(retry.schedule)))
                    return self._give_up(retry)
                if not isinstance(exc.cause, ConnectionRefusedError):  # a broken exchange, not "not up (yet)"
                    say("%s to %s failed: %s; retrying" % (exc.call, exc.endpoint, os_error_text(exc.cause)))
            except protocol.ProtocolError as exc:
                if not retry.invalid:
                    say("invalid answer from the Runtime API at %s (%s): %s" % (self.address, what, exc))
                    return self._give_up(retry)
                if delay is None:
                    say("invalid answer from the Runtime API at %s (%s): %s; giving up after %d attempts"
                        % (self.address, what, exc, len(retry.schedule)))
                    return self._give_up(retry)
            time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _give_up(self, retry: Retry) -> "Tuple[int, bytes]":
        if retry.fatal:
            raise RuntimeExit(1) from None
        return 0, b""

    def invalid_answer(self, what: str, exc: Exception) -> "NoReturn":
        """An answer no Runtime API gives: say it and end the runtime (never retried blindly)."""
        say("invalid answer from the Runtime API at %s (%s): %s" % (self.address, what, exc))
        raise RuntimeExit(1) from None

    def next(self) -> protocol.Invocation:
        return self.call("GET /next", self.transport.next, retry=self.next_retry)

    # ------------------------------------------------------------------ answers

    def check_answer(self, call: str, request_id: str, status: int, answer: bytes) -> None:
        """What a non-202 answer to a POST means: 410/4xx are logged, 5xx ends the runtime
        where answers are fatal; status 0 (not delivered) was said already."""
        if not status:
            return
        detail = protocol.error_message_from_body(answer)
        if status == 410:
            say("%s for %s answered 410 (the invoke timed out already): %s" % (call, request_id, detail))
        elif 400 <= status < 500 or not self.answers_fatal:
            say("%s for %s answered %d: %s" % (call, request_id, status, detail))
        else:
            say("%s for %s answered %d: %s; exiting" % (call, request_id, status, detail))
            raise RuntimeExit(1)

    # ------------------------------------------------------------------ posting

    def respond(self, inv: protocol.Invocation, body: bytes, content_type: str) -> None:
        """Post a buffered result (its size checked first), after the invoke's output."""
        if len(body) > protocol.MAX_PAYLOAD:
            self.too_large(inv, len(body))
            return
        flush_std_streams()  # the invoke's output reaches the log before its result
        status, answer = self.call(
            "POST /response", self.transport.respond, inv.request_id, body, content_type, inv.invocation_id
        )
        if status == 413:
            self.too_large(inv, len(body))
        elif status != 202:
            self.check_answer("POST /response", inv.request_id, status, answer)

    def fail(self, inv: protocol.Invocation, report: ErrorReport) -> None:
        """Log the error as uncaught, then post it to ``/error`` with its X-Ray cause."""
        logsink.log_uncaught(self.sink, report.error)
        cause = marshal.dumps_ascii(report.xray_cause())
        xray = cause if len(cause) < protocol.MAX_XRAY_CAUSE else None
        status, answer = self.call(
            "POST /error", self.transport.fail, inv.request_id, report.body(), report.error_type, xray, inv.invocation_id
        )
        if status != 202:
            self.check_answer("POST /error", inv.request_id, status, answer)

    def too_large(self, inv: protocol.Invocation, size: int) -> None:
        message = "Response payload size (%d bytes) exceeded maximum allowed payload size (%d bytes)." % (
            size,
            protocol.MAX_PAYLOAD,
        )
        self.fail(inv, report_fault(RESPONSE_TOO_LARGE, message, inv.request_id))

    def exited(self, inv: protocol.Invocation, exc: SystemExit) -> None:
        """The function called ``sys.exit()``: ``Runtime.ExitError`` for its invoke."""
        self.fail(inv, exit_error("exit status %d" % exit_code(exc), inv.request_id))

    # ------------------------------------------------------------------ init and ends

    def init_failed(self, report: ErrorReport) -> "NoReturn":
        """The init error: logged with Lambda's warning, posted once (``init_token``), exit 1."""
        logsink.log_init_warning(self.sink, INIT_WARNING)
        if self.init_token is None or self.init_token():
            self.init_reported = True
            self.report_and_exit(report, "POST /init/error", self.transport.init_error, report.error_type, 1)
        logsink.log_uncaught(self.sink, report.error)  # another poller reports it: log ours only
        raise RuntimeExit(1)

    def report_and_exit(self, report: ErrorReport, call: str, post: "Callable[..., Any]", error_type: str,
                        code: int) -> "NoReturn":
        """Log the error as uncaught, post it with ``error_type`` in the header, exit ``code``
        (also when it cannot be delivered: Lambda reads the exit code too)."""
        logsink.log_uncaught(self.sink, report.error)
        try:
            status, answer = self.call(call, post, report.body(), error_type, retry=CLASSIC)
        except RuntimeExit:
            raise RuntimeExit(code) from None
        if status not in (202, 403):
            say("%s answered %d: %s" % (call, status, protocol.error_message_from_body(answer)))
        raise RuntimeExit(code)
