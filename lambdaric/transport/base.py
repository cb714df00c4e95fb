"""What every transport shares: the interface, its errors, and the socket helpers.

A leaf of the transport package: :mod:`.python` and :mod:`.native` import it, the package's
factory (``lambdaric.transport``) re-exports it, and :mod:`lambdaric.shutdown` uses its
``connect`` for the Extensions API. It imports nothing of lambdaric but ``protocol``.
"""
from __future__ import annotations

# typing is imported only by type checkers: it costs ~3 ms of every cold start. ``_socket`` is
# imported by the two functions that use it: the native transport needs no other part of it.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    import _socket
    from typing import Optional, Protocol, Tuple

    #: A Runtime API answer to a POST: (status code, body bytes).
    Answer = Tuple[int, bytes]
else:
    Protocol = object

from ..protocol import Invocation

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
    # The bytes are fixed by lambdaric.streamwire and both
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



def split_address(address: str) -> Tuple[str, int]:
    """``host:port`` or ``[v6]:port`` to a (host, port) pair, with a clear error."""
    host, sep, port = address.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not host:
        raise ValueError("AWS_LAMBDA_RUNTIME_API must be host:port, not %r" % address)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


#: Seconds an answer from the Runtime API may take once its first byte came
#: (LAMBDARIC_ANSWER_TIMEOUT; see transport.create and AnswerStalled).
ANSWER_TIMEOUT = 10.0


class AnswerStalled(TimeoutError):
    """An answer began and was not complete ``bound`` seconds later.

    ``GET /next`` has no timeout: it waits until an event comes, however long (the sandbox
    is frozen in between). But once the first byte of an answer is in, the rest is a local
    copy of at most a few MB that takes milliseconds; an answer still incomplete after the
    bound (a lying Content-Length, a stalled or dripping server) is a broken Runtime API,
    and the call fails like a broken connection (the bootstrap retries it, then exits)."""

    def __init__(self, bound: float) -> None:
        super().__init__(
            "the answer from the Runtime API stalled: not complete %g s after its first byte "
            "(LAMBDARIC_ANSWER_TIMEOUT)" % bound
        )


class ConnectionClosed(OSError):
    """The peer closed the connection; ``partial`` tells if part of an answer had come."""

    def __init__(self, message: str, partial: bool) -> None:
        super().__init__(message)
        self.partial = partial


def connect(hostport: Tuple[str, int]) -> "_socket.socket":
    """``socket.create_connection`` on the C-level ``_socket`` module: the ``socket``
    package's Python layer (and the ``selectors`` it imports) is not needed here and
    costs about 2 ms of every cold start. An ASCII host goes to getaddrinfo as bytes: given
    a str, it encodes it with the ``idna`` codec, whose import loads ``re``, ``stringprep``
    and ``unicodedata`` (about 6 ms of a cold start)."""
    import _socket

    error: Optional[OSError] = None
    host = hostport[0]
    name = host.encode("ascii") if host.isascii() else host
    for family, kind, proto, _, address in _socket.getaddrinfo(name, hostport[1], 0, _socket.SOCK_STREAM):
        sock = _socket.socket(family, kind, proto)
        try:
            sock.connect(address)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
    raise error or OSError("getaddrinfo returned nothing for %s:%d" % hostport)


def peer_closed(sock: _socket.socket) -> bool:
    """Whether the peer has closed (or reset) a kept-alive connection, without blocking:
    a zero-byte peek is its FIN. Unread bytes from the peer mean it is still there."""
    import _socket

    try:
        return sock.recv(1, _socket.MSG_PEEK | _socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


