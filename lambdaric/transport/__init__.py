"""Transports: how bytes reach the Runtime API.

Every transport offers the same small interface (:class:`Transport`) and knows nothing
about handlers, logging or what a status code means; those decisions live in the
bootstrap. Two implementations exist or will: :mod:`.python` (pure-Python sockets,
always available) and the native cffi module (when it could be built).
"""
from __future__ import annotations

# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Optional, Tuple

from ..protocol import Invocation

if TYPE_CHECKING:  # pragma: no cover
    from typing import Protocol
else:
    Protocol = object


class TransportError(Exception):
    """The Runtime API could not be reached or the connection broke.

    ``endpoint`` is ``host:port`` and ``call`` what was being done, so the bootstrap can
    print one clear line naming both with the OS error.
    """

    def __init__(self, endpoint: str, call: str, cause: BaseException) -> None:
        super().__init__("%s %s: %s" % (endpoint, call, cause))
        self.endpoint = endpoint
        self.call = call
        self.cause = cause


if TYPE_CHECKING:  # pragma: no cover
    #: A Runtime API answer to a POST: (status code, body bytes).
    Answer = Tuple[int, bytes]

#: The ``call`` of a TransportError raised by each step of a streamed response.
STREAM_HEAD = "POST /response (stream head)"
STREAM_CHUNK = "POST /response (stream chunk)"
STREAM_END = "POST /response (stream end)"


def no_stream_open(method: str) -> RuntimeError:
    return RuntimeError("%s: no response stream is open (call stream_begin first)" % method)


def stream_open(method: str) -> RuntimeError:
    return RuntimeError("%s: a response stream is open on this transport; end it with stream_end first" % method)


class Transport(Protocol):
    """The calls the runtime makes; all block; none retries on its own except
    one immediate reconnect when a kept-alive connection turned out to be closed."""

    name: str

    def next(self) -> Invocation: ...

    def respond(self, request_id: str, body: bytes, content_type: str, invocation_id: Optional[str]) -> Answer: ...

    def fail(
        self,
        request_id: str,
        body: bytes,
        error_type: str,
        xray_cause: Optional[str],
        invocation_id: Optional[str],
    ) -> Answer: ...

    def init_error(self, body: bytes, error_type: str) -> Answer: ...

    # SnapStart (lambdaric.snapstart): the status is the caller's to judge, as for the POSTs.

    def restore_next(self) -> Answer:
        """``GET /restore/next``: answered (200, empty body) once the snapshot taken while
        it waited has been restored; 404 where SnapStart is off."""

    def restore_error(self, body: bytes, error_type: str) -> Answer:
        """``POST /restore/error`` with the error-type header and the error JSON."""

    # Streamed responses: ``stream_begin``, any number of ``stream_write``, ``stream_end``.
    # The bytes are fixed by lambdaric.protocol (see "streamed responses" there) and both
    # transports send exactly them. Every value is checked before anything is sent: a bad
    # one raises TypeError/ValueError (StreamTooLarge past MAX_STREAMED) and changes nothing,
    # so an open stream stays open. Calling them out of order raises RuntimeError, as does
    # any other call while a stream is open. Nothing of a stream is ever retried: once its
    # head may have gone out, a broken connection raises TransportError, and the stream is
    # then over (the connection is closed; the next call opens a new one).

    def stream_begin(self, request_id: str, content_type: str, invocation_id: Optional[str] = None) -> None:
        """Send the head of ``POST .../{request_id}/response`` in streaming mode.

        The one reconnect: a kept-alive connection the server has already closed is
        replaced before the head is sent (nothing of the stream had gone out)."""

    def stream_write(self, data: bytes) -> None:
        """Send ``data`` (bytes or any contiguous buffer) as one chunk, now. Empty data
        sends nothing (an empty chunk would end the body)."""

    def stream_end(self, error_type: Optional[str] = None, error_body: Optional[bytes] = None) -> Answer:
        """Send the last chunk, with the error trailers when ``error_type`` is given
        (``error_body``, the error JSON, base64-encoded), then read the answer."""

    def close(self) -> None: ...


def create(address: str, user_agent: str, choice: Optional[str] = None) -> "Transport":
    """The transport for ``address``; ``choice`` is ``LAMBDARIC_TRANSPORT``.

    ``native`` or ``python`` forces one (``native`` fails clearly when the module is not
    built); unset or ``auto`` takes the native one when it imports, else the pure-Python
    one, whose ``fallback_reason`` then says why (the bootstrap logs it at DEBUG level).
    """
    from .python import PythonTransport

    if choice not in (None, "", "python", "auto", "native"):
        raise ValueError("LAMBDARIC_TRANSPORT must be 'python', 'native' or 'auto', not %r" % choice)
    bound = answer_timeout()
    if choice == "python":
        return PythonTransport(address, user_agent, bound)
    exc = _native_import_error()
    if exc is not None:
        if choice == "native":
            raise RuntimeError("LAMBDARIC_TRANSPORT=native, but the native module cannot be loaded: %s" % exc)
        transport = PythonTransport(address, user_agent, bound)
        transport.fallback_reason = _reason(exc)
        return transport
    from .native import NativeTransport

    return NativeTransport(address, user_agent, bound)


def _native_import_error() -> Optional[Exception]:
    """Why the native transport cannot be loaded here (the module not built, cffi's backend or a
    shared library missing), or None when it can."""
    try:
        from . import native  # noqa: F401
    except (ImportError, OSError) as exc:
        return exc
    return None


def _reason(exc: Exception) -> str:
    return "%s: %s" % (type(exc).__name__, exc)


def answer_timeout() -> float:
    """``LAMBDARIC_ANSWER_TIMEOUT``: seconds an answer may take once its first byte came
    (default :data:`.python.ANSWER_TIMEOUT`; 0: no bound). See :class:`.python.AnswerStalled`."""
    import os

    from .python import ANSWER_TIMEOUT

    text = os.environ.get("LAMBDARIC_ANSWER_TIMEOUT", "")
    if not text:
        return ANSWER_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 86400:  # (NaN fails too)
        raise ValueError("LAMBDARIC_ANSWER_TIMEOUT must be a number of seconds, 0 for no bound, not %r" % text[:50])
    return value


def describe(choice: Optional[str] = None) -> str:
    """Which transport ``LAMBDARIC_TRANSPORT=choice`` gives here, in the words of the
    ``[DEBUG] transport:`` line: ``native``, or ``python (why)``.

    For ``python -m lambdaric --version``: one ``RUN`` line in a Dockerfile shows whether the
    image got the native module, without a Runtime API to talk to.
    """
    if choice == "python":
        return "python (LAMBDARIC_TRANSPORT=python)"
    exc = _native_import_error()
    return "native" if exc is None else "python (native module unavailable: %s)" % _reason(exc)
