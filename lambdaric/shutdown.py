"""Graceful shutdown: ``on_shutdown`` callbacks and the no-op extension that makes Lambda send SIGTERM.

Lambda ends an execution environment with SIGKILL, and sends SIGTERM first only when at
least one extension is registered. Lambda then gives the runtime about 500 ms (300 ms
when external extensions share the shutdown phase) before the SIGKILL. So graceful
shutdown needs two things, both here:

- callbacks (:func:`on_shutdown`) run once each, newest first like ``atexit``, either
  from the runtime's SIGTERM handler (:func:`lambdaric.logsink.flush_on_sigterm`) or
  when the runtime process exits normally (``bootstrap.run`` and ``atexit``);
- an internal extension with no events (:func:`start_extension`), registered during
  init, before the first ``/next``: its only effect is that Lambda sends SIGTERM. It
  is registered when ``LAMBDARIC_SIGTERM_EXTENSION=1``, or when callbacks were
  registered during init (unless ``LAMBDARIC_SIGTERM_EXTENSION=0``). The Go runtime
  does the same (``lambda.WithEnableSIGTERM``).

Imported only when a function uses it: ``lambdaric.on_shutdown`` imports it on call.
The extension's HTTP calls are a few lines on a raw socket, like the transports, so
the feature costs no import of ``http.client`` or ``threading``.
"""
from __future__ import annotations

import time

from .console import os_error_text, say

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, List, Optional, Tuple, TypeVar

    F = TypeVar("F", bound=Callable[[], Any])

#: Extensions API paths (same host:port as the Runtime API).
EXTENSION_API = "/2020-01-01/extension"
REGISTER_PATH = EXTENSION_API + "/register"
EVENT_NEXT_PATH = EXTENSION_API + "/event/next"
#: Registered name of the no-op internal extension.
EXTENSION_NAME = "lambdaric-sigterm"
NAME_HEADER = "Lambda-Extension-Name"
IDENTIFIER_HEADER = "Lambda-Extension-Identifier"
REGISTER_BODY = b'{"events": []}'
#: The environment variable that turns the extension on (1) or off (0); unset: on when
#: on_shutdown callbacks were registered during init.
ENV_VAR = "LAMBDARIC_SIGTERM_EXTENSION"
#: Seconds the register call may take before init goes on without it.
REGISTER_TIMEOUT = 2.0
#: Lambda's time for the runtime between SIGTERM and SIGKILL when external extensions
#: also shut down (500 ms with internal extensions only); slower callbacks are reported.
SIGTERM_BUDGET = 0.3


class Callbacks:
    """Shutdown callbacks: each runs at most once, the last registered first; one that
    raises is reported on stderr and the others still run."""

    def __init__(self) -> None:
        self._pending: "List[Callable[[], Any]]" = []

    def add(self, fn: "F") -> "F":
        if not callable(fn):
            raise TypeError("on_shutdown() takes a callable with no arguments, not %r" % (fn,))
        self._pending.append(fn)
        return fn

    def __len__(self) -> int:
        return len(self._pending)

    def run(self) -> int:
        """Run (and forget) every pending callback; returns how many ran. Callbacks
        registered while this runs are run too."""
        ran = 0
        pending = self._pending
        while pending:
            fn = pending.pop()
            ran += 1
            try:
                fn()
            except BaseException as exc:  # SystemExit in a callback must not skip the others
                _report_failure(fn, exc)
        return ran


def _name(fn: "Any") -> str:
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    return "%s.%s" % (module, name) if module else name


def _report_failure(fn: "Any", exc: BaseException) -> None:
    try:
        import traceback  # only when a callback failed

        tb = exc.__traceback__
        tb = tb.tb_next if tb is not None and tb.tb_next is not None else tb  # drop Callbacks.run's frame
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except Exception:  # pragma: no cover
        text = "%s: %s\n" % (type(exc).__name__, exc)
    say("on_shutdown callback %s failed:\n%s" % (_name(fn), text.rstrip("\n")))


_callbacks = Callbacks()
_atexit_hooked = False


def on_shutdown(fn: "F") -> "F":
    """Register ``fn()`` to run once when the runtime shuts down: on SIGTERM (Lambda's
    shutdown, ``docker stop``) or when the process exits normally. Usable as a decorator;
    returns ``fn``. Callbacks run newest first; keep them short: Lambda sends SIGKILL
    about 300-500 ms after SIGTERM. Registered during init (module import), they also
    make lambdaric register the no-op extension that has Lambda send SIGTERM at all."""
    global _atexit_hooked
    _callbacks.add(fn)
    if not _atexit_hooked:
        import atexit  # built in: nothing to load

        atexit.register(run_callbacks)  # also when lambdaric is not the runtime loop
        _atexit_hooked = True
    return fn


def run_callbacks() -> int:
    """Run the pending callbacks now (each once); returns how many ran."""
    return _callbacks.run()


def run_on_sigterm() -> None:
    """The SIGTERM path: run the callbacks and say so when they took longer than Lambda
    would have waited."""
    if not len(_callbacks):
        return
    start = time.monotonic()
    ran = _callbacks.run()
    took = time.monotonic() - start
    if took > SIGTERM_BUDGET:
        say(
            "on_shutdown callbacks (%d) took %d ms after SIGTERM; Lambda sends SIGKILL after "
            "300-500 ms, so part of this would not have run there" % (ran, took * 1000)
        )


# ---------------------------------------------------------------------- the no-op extension


def wanted(environ: "Any") -> bool:
    """Whether to register the extension: ``LAMBDARIC_SIGTERM_EXTENSION`` 1 or 0, else
    whether on_shutdown callbacks are waiting (registered during init)."""
    choice = environ.get(ENV_VAR, "")
    if choice == "1":
        return True
    if choice not in ("", "0"):
        say("%s must be 1 or 0, not %r; treating it as unset" % (ENV_VAR, choice[:50]))
    return choice != "0" and len(_callbacks) > 0


def register_request(host: str, user_agent: str) -> bytes:
    from .protocol import build_request

    return build_request(
        "POST", REGISTER_PATH, host, user_agent, [(NAME_HEADER, EXTENSION_NAME)], REGISTER_BODY, "application/json"
    )


def event_next_request(host: str, user_agent: str, identifier: str) -> bytes:
    from .protocol import build_request

    return build_request("GET", EVENT_NEXT_PATH, host, user_agent, [(IDENTIFIER_HEADER, identifier)])


class ExtensionError(Exception):
    """The register call failed; the message says how."""


def start_extension(address: str, user_agent: str) -> "Optional[str]":
    """Register the no-op extension, send its first ``event/next`` (so Lambda counts it
    as initialised) and leave a daemon thread waiting for the answer, which never comes
    for an extension with no events. Returns the extension identifier, or None after
    saying once on stderr why it failed: a function must never fail to start over it."""
    try:
        sock, identifier = _register(address, user_agent)
    except ExtensionError as exc:
        say("could not register the SIGTERM extension at %s (%s): %s; without it Lambda "
             "sends no SIGTERM (on_shutdown callbacks then run only on a normal exit)" % (address, REGISTER_PATH, exc))
        return None
    import _thread

    try:
        request = event_next_request(address, user_agent, identifier)
        sock.sendall(request)
    except (OSError, ValueError) as exc:
        sock.close()
        say("the SIGTERM extension could not call %s: %s" % (EVENT_NEXT_PATH, exc))
        return None
    _thread.start_new_thread(_wait_events, (sock, request))
    return identifier


def _register(address: str, user_agent: str) -> "Tuple[Any, str]":
    import _socket

    from .protocol import ProtocolError, safe_header_value
    from .transport.base import connect, split_address

    try:
        sock = connect(split_address(address))
    except (OSError, ValueError) as exc:
        raise ExtensionError(os_error_text(exc)) from None
    try:
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        sock.settimeout(REGISTER_TIMEOUT)
        sock.sendall(register_request(address, user_agent))
        head, body = _read_answer(sock)
        if head.status != 200:
            from .protocol import error_message_from_body

            raise ExtensionError("answered %d: %s" % (head.status, error_message_from_body(body)))
        identifier = head.headers.get(IDENTIFIER_HEADER.lower(), "")
        if not identifier or safe_header_value(identifier) is None:
            raise ExtensionError("answered 200 without a usable %s header" % IDENTIFIER_HEADER)
        if head.content_length < 0 or not head.keep_alive:  # body to close: use a new connection
            sock.close()
            sock = connect(split_address(address))
        sock.settimeout(None)
        return sock, identifier
    except (OSError, ProtocolError) as exc:
        sock.close()
        raise ExtensionError(os_error_text(exc)) from None
    except ExtensionError:
        sock.close()
        raise


def _read_answer(sock: "Any") -> "Tuple[Any, bytes]":
    """One small HTTP answer: head, and a Content-Length body (a chunked or to-close
    body is not needed and not read)."""
    from .answers import head_end, parse_response_head
    from .protocol import MAX_HEAD, ProtocolError

    buf = b""
    end, start = head_end(buf)
    while end < 0:
        if len(buf) > MAX_HEAD:
            raise ProtocolError("answer head over %d bytes" % MAX_HEAD)
        data = sock.recv(65536)
        if not data:
            raise ProtocolError("connection closed before an answer")
        buf += data
        end, start = head_end(buf)
    head = parse_response_head(buf[:end])
    body = buf[start:]
    if head.content_length > MAX_HEAD:
        raise ProtocolError("answer body of %d bytes" % head.content_length)
    while 0 <= head.content_length and len(body) < head.content_length:
        data = sock.recv(65536)
        if not data:
            raise ProtocolError("connection closed inside the answer")
        body += data
    return head, body


def _wait_events(sock: "Any", request: bytes) -> None:
    """The extension's thread: wait on ``event/next``; should an event come anyway,
    ask again. Signals are blocked here, so SIGTERM always reaches the main thread
    (whose wait on ``/next`` it interrupts to run the handler)."""
    import _signal

    try:
        _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
    except (AttributeError, OSError, ValueError):  # pragma: no cover - not on Linux
        pass
    try:
        while True:
            head, _ = _read_answer(sock)
            if head.status != 200:
                say("the SIGTERM extension's %s answered %d; it stops waiting" % (EVENT_NEXT_PATH, head.status))
                return
            sock.sendall(request)
    except Exception:
        return  # the sandbox is going away (connection closed): nothing to report
    finally:
        try:
            sock.close()
        except OSError:  # pragma: no cover
            pass


__all__ = ["on_shutdown", "run_callbacks", "start_extension", "wanted", "Callbacks"]
