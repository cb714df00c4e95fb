"""Pure-Python HTTP/1.1 keep-alive client for the Runtime API, on one socket.

Why not ``http.client`` or ``requests``: they cost import time and ~1 ms per call. This
loop sends each request with one ``sendmsg`` (head and body gathered, never copied
together), reads the head with one ``recv`` in the common case, and reads a large body
straight into one preallocated buffer.

A blocking ``recv`` on the main thread is interrupted by signals, and Python runs the
user's signal handlers before retrying it (PEP 475): a SIGTERM handler runs while the
runtime waits on ``/next``.
"""
from __future__ import annotations

import _socket
from time import monotonic as _monotonic
# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import List, Optional, Tuple, Union

    from ..streamwire import ResponseStream
    from .base import Answer

from .. import answers, protocol
from ..answers import ChunkedDecoder, head_end, parse_response_head
from ..protocol import INVOCATION_ID_HEADER, MAX_HEAD, MAX_PAYLOAD, Invocation, ProtocolError, invocation_from_headers
from .base import (ANSWER_TIMEOUT, STREAM_CHUNK, STREAM_END, STREAM_HEAD, AnswerStalled, ConnectionClosed,
                   TransportError, connect, no_stream_open, peer_closed, split_address, stream_open)

_RECV = 65536
# Bodies up to this size are joined to the head (cheap copy, one packet); larger ones
# are handed to sendmsg as a second buffer.
_JOIN_LIMIT = 16384
# An answer to a POST is small; this bounds what we read of a hostile one.
_MAX_ANSWER = 1024 * 1024


class _Bounded:
    """The socket while the rest of an answer comes in: every receive waits at most until
    the answer's deadline (``bound`` seconds from its first byte), then raises AnswerStalled.
    Used only after the first receive: an answer that comes whole in one costs nothing."""

    __slots__ = ("sock", "bound", "deadline")

    def __init__(self, sock: _socket.socket, bound: float) -> None:
        self.sock = sock
        self.bound = bound
        self.deadline = _monotonic() + bound

    def _arm(self) -> None:
        left = self.deadline - _monotonic()
        if left <= 0:
            raise AnswerStalled(self.bound)
        self.sock.settimeout(left)

    def recv(self, size: int) -> bytes:
        self._arm()
        try:
            return self.sock.recv(size)
        except _socket.timeout:
            raise AnswerStalled(self.bound) from None

    def recv_into(self, view: memoryview, size: int) -> int:
        self._arm()
        try:
            return self.sock.recv_into(view, size)
        except _socket.timeout:
            raise AnswerStalled(self.bound) from None


class PythonTransport:
    """The always-available transport (see module docstring)."""

    name = "python"
    #: why the native transport was not used, when it was wanted (see transport.create)
    fallback_reason: Optional[str] = None

    def __init__(self, address: str, user_agent: str, answer_timeout: float = ANSWER_TIMEOUT) -> None:
        self.address = address
        self._hostport = split_address(address)
        #: seconds an answer may take once its first byte came (0: no bound); see AnswerStalled
        self.answer_timeout = answer_timeout
        self._user_agent = user_agent
        self._sock: Optional[_socket.socket] = None
        self._buf = b""
        #: the open streamed response, if any (see stream_begin)
        self._stream: Optional[ResponseStream] = None
        self._next_request = protocol.build_request("GET", protocol.NEXT_PATH, address, user_agent)

    # ------------------------------------------------------------------ calls

    def next(self) -> Invocation:
        head, body = self._exchange("GET /next", (self._next_request,), MAX_PAYLOAD)
        if head.status != 200:
            raise ProtocolError(  # (the reason phrase is the server's text: left out, as in C)
                "GET /next answered %d: %s" % (head.status, protocol.error_message_from_body(bytes(body)))
            )
        return invocation_from_headers(head.headers, body)

    def respond(self, request_id: str, body: bytes, content_type: str, invocation_id: Optional[str]) -> Answer:
        if content_type is not protocol.CT_JSON and content_type is not protocol.CT_BYTES:
            protocol.check_content_type(content_type)  # the native transport refuses it in C
        headers = [(INVOCATION_ID_HEADER, invocation_id)] if invocation_id else []
        return self._post("POST /response", protocol.response_path(request_id), body, content_type, headers)

    def fail(
        self,
        request_id: str,
        body: bytes,
        error_type: str,
        xray_cause: Optional[str],
        invocation_id: Optional[str],
    ) -> Answer:
        headers = protocol.error_headers(error_type, xray_cause, invocation_id)
        return self._post("POST /error", protocol.error_path(request_id), body, protocol.CT_JSON, headers)

    def init_error(self, body: bytes, error_type: str) -> Answer:
        headers = protocol.error_headers(error_type)
        return self._post("POST /init/error", protocol.INIT_ERROR_PATH, body, protocol.CT_JSON, headers)

    def restore_next(self) -> Answer:
        request = protocol.build_request("GET", protocol.RESTORE_NEXT_PATH, self.address, self._user_agent)
        head, body = self._exchange("GET /restore/next", (request,), _MAX_ANSWER)
        return head.status, bytes(body)

    def restore_error(self, body: bytes, error_type: str) -> Answer:
        headers = protocol.error_headers(error_type)
        return self._post("POST /restore/error", protocol.RESTORE_ERROR_PATH, body, protocol.CT_JSON, headers)

    # ------------------------------------------------------------------ streamed responses
    # (the interface and its rules: transport.Transport; the bytes: lambdaric.streamwire, imported
    # by the calls: a runtime that never streams never loads it)

    def stream_begin(self, request_id: str, content_type: str, invocation_id: Optional[str] = None) -> None:
        if self._stream is not None:
            raise stream_open("stream_begin")
        from .. import streamwire

        head = streamwire.build_stream_head(request_id, self.address, self._user_agent, content_type, invocation_id)
        if self._sock is not None and not self._buf and peer_closed(self._sock):
            self.close()  # closed while kept alive: replace it now, before anything is sent
        if self._sock is None:
            self._connect(STREAM_HEAD)
        self._stream = streamwire.ResponseStream(request_id)
        self._stream_send(STREAM_HEAD, (head,))

    def stream_write(self, data: bytes) -> None:
        stream = self._stream
        if stream is None:
            raise no_stream_open("stream_write")
        buf, n = stream.take(data)
        if not n:
            return
        from .. import streamwire

        if n <= _JOIN_LIMIT:
            self._stream_send(STREAM_CHUNK, (streamwire.chunk_size_line(n) + buf + streamwire.CRLF,))  # type: ignore[operator]
        else:  # gathered: the data is never copied
            self._stream_send(STREAM_CHUNK, (streamwire.chunk_size_line(n), buf, streamwire.CRLF))  # type: ignore[arg-type]

    def stream_end(self, error_type: Optional[str] = None, error_body: Optional[bytes] = None) -> Answer:
        if self._stream is None:
            raise no_stream_open("stream_end")
        from .. import streamwire

        trailers = streamwire.stream_trailers(error_type, error_body)
        self._stream_send(STREAM_END, (streamwire.LAST_CHUNK + trailers + streamwire.CRLF,))
        self._stream = None
        sock = self._sock
        assert sock is not None
        try:
            head, answer = self._read_answer(sock, _MAX_ANSWER)
        except ProtocolError:
            self.close()
            raise
        except OSError as exc:  # ConnectionClosed too: never retried, the stream is gone
            self.close()
            raise TransportError(self.address, STREAM_END, exc) from None
        except BaseException:
            self.close()
            raise
        return head.status, bytes(answer)

    def close(self) -> None:
        self._stream = None
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None
                self._buf = b""

    # ------------------------------------------------------------------ plumbing

    def _stream_send(self, call: str, buffers: Tuple[bytes, ...]) -> None:
        """Send part of a stream; any failure closes the connection (the stream is over)."""
        try:
            _send_all(self._sock, buffers)  # type: ignore[arg-type]
        except OSError as exc:
            self.close()
            raise TransportError(self.address, call, exc) from None
        except BaseException:  # e.g. a signal handler's exception, perhaps mid-chunk
            self.close()
            raise

    def _post(self, call: str, path: str, body: bytes, content_type: str, headers: List[Tuple[str, str]]) -> Answer:
        headers = headers + [("Content-Length", str(len(body)))]
        head = protocol.build_request("POST", path, self.address, self._user_agent, headers, None, content_type)
        if len(body) <= _JOIN_LIMIT:
            buffers: Tuple[bytes, ...] = (head + body,)
        else:
            buffers = (head, body)
        answer_head, answer = self._exchange(call, buffers, _MAX_ANSWER)
        return answer_head.status, bytes(answer)

    def _connect(self, call: str) -> "_socket.socket":
        try:
            sock = connect(self._hostport)
        except OSError as exc:
            raise TransportError(self.address, call, exc) from None
        sock.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        self._sock = sock
        self._buf = b""
        return sock

    def _exchange(
        self, call: str, buffers: Tuple[bytes, ...], limit: int
    ) -> Tuple[answers.ResponseHead, Union[bytes, bytearray]]:
        """Send one request and read its answer, reconnecting once if a kept-alive
        connection turns out to have been closed by the server before answering."""
        if self._stream is not None:
            raise stream_open(call)
        sock = self._sock
        reused = sock is not None
        if sock is None:
            sock = self._connect(call)
        try:
            try:
                _send_all(sock, buffers)
                return self._read_answer(sock, limit)
            except (ConnectionClosed, ConnectionResetError, BrokenPipeError) as exc:
                if not reused or getattr(exc, "partial", False):
                    raise
                self.close()
                sock = self._connect(call)
                _send_all(sock, buffers)
                return self._read_answer(sock, limit)
        except ProtocolError:
            self.close()
            raise
        except OSError as exc:
            self.close()
            raise TransportError(self.address, call, exc) from None

    def _read_answer(
        self, sock: _socket.socket, limit: int
    ) -> Tuple[answers.ResponseHead, Union[bytes, bytearray]]:
        buf = self._buf
        self._buf = b""
        bound = self.answer_timeout
        # the first receive may wait forever (a /next before its event); the rest are bounded
        src: Union[_socket.socket, _Bounded] = _Bounded(sock, bound) if buf and bound else sock
        try:
            return self._read_rest(sock, src, buf, limit)
        finally:
            if bound and sock.fileno() != -1 and sock.gettimeout() is not None:
                sock.settimeout(None)  # blocking again, for the next /next

    def _read_rest(
        self, sock: _socket.socket, src: "Union[_socket.socket, _Bounded]", buf: bytes, limit: int
    ) -> Tuple[answers.ResponseHead, Union[bytes, bytearray]]:
        while True:
            end, body_at = head_end(buf)
            if end >= 0:
                if body_at > MAX_HEAD:  # (as lr_http.c: the head with its blank line fits in MAX_HEAD)
                    raise ProtocolError("response head from the Runtime API exceeds %d bytes" % MAX_HEAD)
                head_bytes, rest = buf[:end], buf[body_at:]
                break
            if len(buf) > MAX_HEAD:
                answers.check_partial_head(buf)  # a bad line in it is the fault to name (as in C)
                raise ProtocolError("response head from the Runtime API exceeds %d bytes" % MAX_HEAD)
            if buf:  # a head still incomplete: its status line, once in, is checked at once, as in C
                answers.check_status_line(buf)
            try:
                chunk = src.recv(_RECV)
            except OSError:  # (a stall too) after a bad line: that line is the fault
                answers.check_partial_head(buf)
                raise
            if not chunk:
                answers.check_partial_head(buf)
                raise ConnectionClosed("connection closed by the Runtime API before an answer", bool(buf))
            buf += chunk
            if src is sock and self.answer_timeout:  # the answer's first byte: the bound starts
                src = _Bounded(sock, self.answer_timeout)
        head = parse_response_head(head_bytes)
        length = head.content_length
        if length >= 0:
            if length > limit:
                raise ProtocolError("Runtime API body of %d bytes exceeds the %d-byte limit" % (length, limit))
            if len(rest) >= length:
                body: Union[bytes, bytearray] = rest[:length]
                self._buf = rest[length:]
            else:
                body = _read_exact(src, rest, length)  # type: ignore[arg-type]
        elif length == -1:
            body, self._buf = _read_chunked(src, rest, limit)  # type: ignore[arg-type]
        else:
            body = _read_to_close(src, rest, limit)  # type: ignore[arg-type]
            head.keep_alive = False
        if not head.keep_alive:
            self.close()
        return head, body


#: A send to a closed connection is an EPIPE error, never a SIGPIPE, even when the program
#: restored SIGPIPE's default action (which kills): as the native transport sends.
_NOSIGNAL = getattr(_socket, "MSG_NOSIGNAL", 0)


def _send_all(sock: _socket.socket, buffers: Tuple[bytes, ...]) -> None:
    """Gathered send of all buffers; loops on partial writes without joining them."""
    if len(buffers) == 1:
        sock.sendall(buffers[0], _NOSIGNAL)
        return
    views = [memoryview(b) for b in buffers]
    while views:
        sent = sock.sendmsg(views, (), _NOSIGNAL)
        while views and sent >= len(views[0]):
            sent -= len(views[0])
            views.pop(0)
        if views and sent:
            views[0] = views[0][sent:]


def _read_exact(sock: _socket.socket, rest: bytes, length: int) -> bytearray:
    """Read a ``length``-byte body into one buffer (no per-chunk copies)."""
    body = bytearray(length)
    got = len(rest)
    body[:got] = rest
    view = memoryview(body)
    while got < length:
        n = sock.recv_into(view[got:], length - got)
        if n == 0:
            raise ConnectionClosed(
                "connection closed by the Runtime API after %d of %d body bytes" % (got, length), True
            )
        got += n
    return body


def _read_chunked(sock: _socket.socket, rest: bytes, limit: int) -> Tuple[bytes, bytes]:
    decoder = ChunkedDecoder(limit)
    data = rest
    while True:
        leftover = decoder.feed(data)
        if leftover is not None:
            return decoder.body(), leftover
        data = sock.recv(_RECV)
        if not data:
            raise ConnectionClosed("connection closed by the Runtime API inside a chunked body", True)


def _read_to_close(sock: _socket.socket, rest: bytes, limit: int) -> bytes:
    parts = [rest]
    size = len(rest)
    while True:
        data = sock.recv(_RECV)
        if not data:
            return b"".join(parts)
        size += len(data)
        if size > limit:
            raise ProtocolError("Runtime API body exceeds the %d-byte limit" % limit)
        parts.append(data)
