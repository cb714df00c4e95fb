"""The native transport: the Runtime API exchange in C (``native/``, built as ``lambdaric._native``).

Same interface and the same protocol decisions as :mod:`.python`; only the bytes move
differently. Each call is one cffi call in the common case: C sends the request with one
gathered ``sendmsg`` (request line, id, content type and body never copied together),
receives the answer into a buffer owned here, parses the head in place and returns the
``Lambda-Runtime-*`` values as one NUL-joined block. Python makes one string and one
split of it, then builds the :class:`~lambdaric.protocol.Invocation` with the same
function the pure-Python transport uses.

Blocking: cffi releases the GIL around each call, and C returns ``LR_WAIT`` when a
signal interrupts it or every ``_POLL_MS``; the loops below call again, and in between
the interpreter runs pending signal handlers (a user's SIGTERM handler runs while the
runtime waits on ``/next``). An exception from such a handler closes the connection,
which is then mid-exchange, before it propagates.

Error messages are those of the pure-Python transport: on a malformed head the head is
parsed again by :func:`~lambdaric.answers.parse_response_head` for the exact message. What only
streams, chunked answers and errors need (:mod:`lambdaric.streamwire`, :mod:`lambdaric.answers`)
is imported when first needed: a runtime that answers plainly never loads it.
"""
from __future__ import annotations

import os

# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, List, Optional, Union

    from ..streamwire import ResponseStream
    from .base import Answer

from .. import protocol
from .._native import ffi, lib  # ImportError when the module was not built: see transport.create
from ..protocol import MAX_HEAD, MAX_PAYLOAD, Invocation, ProtocolError, invocation_from_values
from .base import (ANSWER_TIMEOUT, STREAM_CHUNK, STREAM_END, STREAM_HEAD, AnswerStalled, ConnectionClosed,
                   TransportError, connect, no_stream_open, split_address, stream_open)

#: Receive buffer: a whole head plus bodies up to ~190 KiB are read into it; larger
#: bodies go straight from the socket into their own bytearray.
_BUF = 256 * 1024
_PULL = 65536
_POLL_MS = 250
_MAX_ANSWER = 1024 * 1024
#: Above the largest payload (6 MiB) and the strings made from it.
_MMAP_THRESHOLD = 32 * 1024 * 1024
# The NUL-joined values C hands back come in protocol.NEXT_VALUES' order (lr_http.h,
# LR_H_REQUEST_ID..CONTENT_TYPE).
#: A kept-alive connection the server had closed: reconnect once and send again (the errno
#: module is not imported for ECONNRESET and EPIPE: OSError maps them to these classes).
_RETRYABLE = (ConnectionResetError, BrokenPipeError)
# (looked up once: the per-invoke calls go straight to them)
lr_next, lr_post = lib.lr_next, lib.lr_post
LR_DONE, LR_WAIT, LR_POST_RESPONSE = lib.LR_DONE, lib.LR_WAIT, lib.LR_POST_RESPONSE


_malloc_tuned = False


def tune_malloc() -> None:
    """Once per process, unless ``LAMBDARIC_MALLOC_TUNE=0``: keep freed payload-sized blocks in
    the heap between invokes (see ``lr_tune_malloc``); the first ``GET /next`` does it, after
    init: set before, it would also keep what the function's import freed (boto3 and FastAPI's
    import left ~3 MB more per Managed Instances worker than the official client's)."""
    global _malloc_tuned
    if not _malloc_tuned and os.environ.get("LAMBDARIC_MALLOC_TUNE", "1") != "0":
        lib.lr_tune_malloc(_MMAP_THRESHOLD, 2 * _MMAP_THRESHOLD)
    _malloc_tuned = True


class NativeTransport:
    """The C transport (see module docstring)."""

    name = "native"

    def __init__(self, address: str, user_agent: str, answer_timeout: float = ANSWER_TIMEOUT) -> None:
        self.address = address
        self._hostport = split_address(address)
        #: seconds an answer may take once its first byte came (0: no bound); see AnswerStalled
        self.answer_timeout = answer_timeout
        self._common = (" HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n" % (address, user_agent)).encode("latin-1")
        self._next_request = protocol.build_request("GET", protocol.NEXT_PATH, address, user_agent)
        self._user_agent = user_agent
        self._conn = ffi.new("lr_conn *")
        self._buf = ffi.new("char[]", _BUF)
        self._view = ffi.buffer(self._buf)
        self._pull = ffi.new("char[]", _PULL)
        #: the connection's file descriptor (connected by C; see _connect), None when closed
        self._sock: Optional[int] = None
        #: the open streamed response, if any (see stream_begin)
        self._stream: Optional[ResponseStream] = None

    # ------------------------------------------------------------------ calls

    def next(self) -> Invocation:
        conn = self._conn
        request = self._next_request
        rc = None
        if self._sock is not None and self._stream is None:
            # The common case, kept lean (it runs once per invoke): one call on the kept-alive
            # connection brings the whole answer; anything else goes on in _exchange.
            try:
                rc = lr_next(conn, request, len(request), MAX_PAYLOAD)
            except BaseException:  # (a signal handler's exception: as _run does)
                self.close()
                raise
        elif not _malloc_tuned:
            tune_malloc()
        if rc == LR_DONE and conn.keep_alive:
            start = conn.body_off
            body: Union[bytes, bytearray] = self._view[start : start + conn.body_len]
        else:
            call = "GET /next"
            rc = self._exchange(call, lr_next, request, len(request), MAX_PAYLOAD, first=rc)
            body = self._body(call, rc, MAX_PAYLOAD)
        if conn.status != 200:
            raise ProtocolError(
                "GET /next answered %d: %s" % (conn.status, protocol.error_message_from_body(bytes(body)))
            )
        values = ffi.buffer(conn.values, conn.values_len)[:].decode("latin-1").split("\0")
        return invocation_from_values(values, body)

    def respond(self, request_id: str, body: bytes, content_type: str, invocation_id: Optional[str]) -> Answer:
        extra = b"Lambda-Runtime-Invocation-Id: %s\r\n" % invocation_id.encode("latin-1") if invocation_id else b""
        return self._post("POST /response", LR_POST_RESPONSE, request_id, content_type, extra, body)

    def fail(
        self,
        request_id: str,
        body: bytes,
        error_type: str,
        xray_cause: Optional[str],
        invocation_id: Optional[str],
    ) -> Answer:
        extra = protocol.header_lines(protocol.error_headers(error_type, xray_cause, invocation_id))
        return self._post("POST /error", lib.LR_POST_ERROR, request_id, protocol.CT_JSON, extra, body)

    def init_error(self, body: bytes, error_type: str) -> Answer:
        extra = protocol.header_lines(protocol.error_headers(error_type))
        return self._post("POST /init/error", lib.LR_POST_INIT_ERROR, "", protocol.CT_JSON, extra, body)

    def restore_next(self) -> Answer:
        call = "GET /restore/next"
        request = protocol.build_request("GET", protocol.RESTORE_NEXT_PATH, self.address, self._user_agent)
        rc = self._exchange(call, lib.lr_next, request, len(request), _MAX_ANSWER)
        body = self._body(call, rc, _MAX_ANSWER)
        return self._conn.status, bytes(body)

    def restore_error(self, body: bytes, error_type: str) -> Answer:
        extra = protocol.header_lines(protocol.error_headers(error_type))
        return self._post("POST /restore/error", lib.LR_POST_RESTORE_ERROR, "", protocol.CT_JSON, extra, body)

    # ------------------------------------------------------------------ streamed responses
    # (the interface and its rules: transport.Transport; the bytes: protocol). C sends the
    # head with lr_post(LR_POST_STREAM), each chunk with one gathered sendmsg
    # (lr_send_chunk), the last chunk and trailers (lr_send_last_chunk), then reads the
    # answer (lr_answer). None of it goes through _exchange: nothing here is retried.

    def stream_begin(self, request_id: str, content_type: str, invocation_id: Optional[str] = None) -> None:
        if self._stream is not None:
            raise stream_open("stream_begin")
        from .. import streamwire

        streamwire.check_stream_begin(request_id, content_type, invocation_id)
        rid = request_id.encode("ascii")
        ctype = content_type.encode("ascii")
        extra = protocol.header_lines(streamwire.stream_headers(invocation_id))
        conn = self._conn
        if self._sock is not None and conn.end == conn.start and lib.lr_peer_closed(self._sock):
            self.close()  # closed while kept alive: replace it now, before anything is sent
        if self._sock is None:
            self._connect(STREAM_HEAD)
        self._stream = streamwire.ResponseStream(request_id)
        rc = self._run(
            lib.lr_post,
            (lib.LR_POST_STREAM, rid, len(rid), ctype, len(ctype), extra, len(extra), ffi.NULL, 0, _MAX_ANSWER),
        )
        if rc != lib.LR_DONE:
            raise self._stream_error(STREAM_HEAD, rc)

    def stream_write(self, data: bytes) -> None:
        stream = self._stream
        if stream is None:
            raise no_stream_open("stream_write")
        buf, n = stream.take(data)
        if not n:
            return  # (lr_send_chunk sends nothing for 0 bytes either)
        rc = self._run(lib.lr_send_chunk, (buf if type(buf) is bytes else ffi.from_buffer(buf), n))
        if rc != lib.LR_DONE:
            raise self._stream_error(STREAM_CHUNK, rc)

    def stream_end(self, error_type: Optional[str] = None, error_body: Optional[bytes] = None) -> Answer:
        if self._stream is None:
            raise no_stream_open("stream_end")
        from ..streamwire import stream_trailers

        trailers = stream_trailers(error_type, error_body)
        rc = self._run(lib.lr_send_last_chunk, (trailers, len(trailers)))
        if rc != lib.LR_DONE:
            raise self._stream_error(STREAM_END, rc)
        self._stream = None
        rc = self._run(lib.lr_answer, (_MAX_ANSWER,))
        if rc < 0:
            raise self._stream_error(STREAM_END, rc)
        answer = self._body(STREAM_END, rc, _MAX_ANSWER)
        return self._conn.status, bytes(answer)

    def close(self) -> None:
        self._stream = None
        if self._sock is not None:
            try:
                lib.lr_close(self._sock)
            finally:
                self._sock = None
                lib.lr_reset(self._conn)

    # ------------------------------------------------------------------ plumbing

    def _post(self, call: str, kind: int, request_id: str, content_type: str, extra: bytes, body: bytes) -> Answer:
        rid = request_id.encode("latin-1")
        ctype = content_type.encode("latin-1")
        data: Any = body if type(body) is bytes else ffi.from_buffer(body)
        conn = self._conn
        args = (kind, rid, len(rid), ctype, len(ctype), extra, len(extra), data, len(body), _MAX_ANSWER)
        rc = None
        if self._sock is not None and self._stream is None:  # (the common case first, as in next)
            try:
                rc = lr_post(conn, *args)
            except BaseException:
                self.close()
                raise
            if rc == LR_DONE and conn.keep_alive:
                start = conn.body_off
                return conn.status, self._view[start : start + conn.body_len]
        try:
            rc = self._exchange(call, lr_post, *args, first=rc)
        except ProtocolError:
            if conn.perr == lib.LR_E_UNSAFE:  # C refused a value: the same ValueError as Python
                if kind != lib.LR_POST_INIT_ERROR and kind != lib.LR_POST_RESTORE_ERROR:
                    protocol.check_request_id(request_id)
                protocol.check_content_type(content_type)
            raise
        answer = self._body(call, rc, _MAX_ANSWER)
        return conn.status, bytes(answer)

    def _stream_error(self, call: str, rc: int) -> BaseException:
        """The error for a failed step of a stream (the connection is closed: the stream is over).

        An OS error while sending is the OS error itself, as the pure-Python transport's
        sendmsg raises it (C reports EPIPE/ECONNRESET while sending as LR_CLOSED, the
        "closed before an answer" that _exchange retries: a stream must not be)."""
        conn = self._conn
        if rc == lib.LR_BAD:
            error: BaseException = self._protocol_error()
            self.close()
            return error
        if rc in (lib.LR_CLOSED, lib.LR_OS) and conn.err:
            error = TransportError(self.address, call, OSError(conn.err, os.strerror(conn.err)))
            self.close()
            return error
        return self._transport_error(call, rc, "before an answer")

    def _connect(self, call: str) -> None:
        """Connect in C (a numeric address, as Lambda gives: no socket module imported), or
        through :func:`.base.connect` for a host name, keeping only the descriptor."""
        host, port = self._hostport
        fd = lib.lr_connect(host.encode("ascii") if host.isascii() else b"", port)
        if fd == lib.LR_NOT_NUMERIC:
            try:
                fd = connect(self._hostport).detach()
            except OSError as exc:
                raise TransportError(self.address, call, exc) from None
        elif fd >= 0:
            try:
                rc = lib.lr_connect_wait(fd, _POLL_MS)
                while rc == LR_WAIT:  # signal handlers run here, between attempts
                    rc = lib.lr_connect_wait(fd, _POLL_MS)
            except BaseException:
                lib.lr_close(fd)
                raise
            if rc < 0:
                lib.lr_close(fd)
                fd = rc
        if fd < 0:
            raise TransportError(self.address, call, OSError(-fd, os.strerror(-fd)))
        rc = lib.lr_init(self._conn, fd, self._buf, _BUF, self._common, len(self._common), _POLL_MS)
        if rc != 0:
            lib.lr_close(fd)
            raise TransportError(self.address, call, OSError(-rc, os.strerror(-rc)))
        self._conn.answer_ms = max(1, int(self.answer_timeout * 1000)) if self.answer_timeout else 0
        self._sock = fd

    def _run(self, fn: Callable[..., int], args: tuple) -> int:
        conn = self._conn
        try:
            rc = fn(conn, *args)
            while rc == -1:  # LR_WAIT: signal handlers run here, between attempts
                rc = fn(conn, *args)
        except BaseException:
            self.close()
            raise
        return rc

    def _exchange(self, call: str, fn: Callable[..., int], *args: Any, first: Optional[int] = None) -> int:
        """Send one request and read (at least) the head of its answer, reconnecting once
        if a kept-alive connection turns out to have been closed before answering. ``first``:
        what a first call already made on a kept-alive connection returned (next and _post
        make it themselves, for speed); the exchange goes on from there."""
        if first is None:
            if self._stream is not None:
                raise stream_open(call)
            reused = self._sock is not None
            if not reused:
                self._connect(call)
            rc = self._run(fn, args)
        else:
            reused = True
            rc = first if first != LR_WAIT else self._run(fn, args)
        if reused and self._closed_early(rc):
            self.close()
            self._connect(call)
            rc = self._run(fn, args)
        if rc >= 0:
            return rc
        if rc == lib.LR_BAD:
            error = self._protocol_error()
            self.close()
            raise error
        raise self._transport_error(call, rc, "before an answer")

    def _closed_early(self, rc: int) -> bool:
        conn = self._conn
        if rc == lib.LR_CLOSED or (rc == lib.LR_OS and isinstance(OSError(conn.err, ""), _RETRYABLE)):
            return not conn.partial
        return False

    def _transport_error(self, call: str, rc: int, where: str) -> TransportError:
        conn = self._conn
        if rc == lib.LR_STALLED:
            cause: OSError = AnswerStalled(self.answer_timeout)
        elif rc == lib.LR_OS:
            cause = OSError(conn.err, os.strerror(conn.err))
        else:
            cause = ConnectionClosed("connection closed by the Runtime API %s" % where, bool(conn.partial))
        self.close()
        return TransportError(self.address, call, cause)

    def _body(self, call: str, rc: int, limit: int) -> Union[bytes, bytearray]:
        conn = self._conn
        if rc == lib.LR_DONE:
            start = conn.body_off
            body: Union[bytes, bytearray] = self._view[start : start + conn.body_len]
        elif rc == lib.LR_BODY_LARGE:
            body = bytearray(conn.body_len)
            rc = self._run(lib.lr_read_body, (ffi.from_buffer(body), len(body)))
            if rc != lib.LR_DONE:
                raise self._transport_error(call, rc, "after %d of %d body bytes" % (conn.got, len(body)))
        elif rc == lib.LR_BODY_CHUNKED:
            body = self._read_chunked(call, limit)
        else:
            body = self._read_to_close(call, limit)
        if not conn.keep_alive:
            self.close()
        return body

    def _pull_some(self, call: str, where: str) -> bytes:
        n = self._run(lib.lr_pull, (self._pull, _PULL))
        if n < 0:
            raise self._transport_error(call, n, where)
        return ffi.buffer(self._pull, n)[:]

    def _read_chunked(self, call: str, limit: int) -> bytes:
        from ..answers import ChunkedDecoder

        decoder = ChunkedDecoder(limit)
        try:
            while True:
                leftover = decoder.feed(self._pull_some(call, "inside a chunked body"))
                if leftover is not None:
                    if leftover and lib.lr_unread(self._conn, leftover, len(leftover)) != lib.LR_DONE:
                        raise ProtocolError("%d bytes after a chunked body do not fit the receive buffer" % len(leftover))
                    return decoder.body()
        except ProtocolError:
            self.close()
            raise

    def _read_to_close(self, call: str, limit: int) -> bytes:
        parts: "List[bytes]" = []
        size = 0
        while True:
            n = self._run(lib.lr_pull, (self._pull, _PULL))
            if n == lib.LR_CLOSED:
                self.close()
                return b"".join(parts)
            if n < 0:
                raise self._transport_error(call, n, "inside a body")
            size += n
            if size > limit:
                self.close()
                raise ProtocolError("Runtime API body exceeds the %d-byte limit" % limit)
            parts.append(ffi.buffer(self._pull, n)[:])

    def _protocol_error(self) -> ProtocolError:
        """The error for an answer C refused, worded as the pure-Python transport words it."""
        conn = self._conn
        why = conn.perr
        if why == lib.LR_E_BODY_LIMIT:
            return ProtocolError(
                "Runtime API body of %d bytes exceeds the %d-byte limit" % (conn.body_len, conn.limit)
            )
        if why == lib.LR_E_TOO_LARGE:
            return ProtocolError("response head from the Runtime API exceeds %d bytes" % MAX_HEAD)
        if why == lib.LR_E_UNSAFE:
            return ProtocolError("refusing to send an unsafe request id or content type")
        from ..answers import head_end, parse_response_head

        data = self._view[conn.start : conn.end]
        end = head_end(data)[0]
        if end < 0:  # refused before the head ended: the complete lines name the fault
            end = data.rfind(b"\n")
        if end >= 0:
            try:
                parse_response_head(data[:end])
            except ProtocolError as exc:
                return exc
        names = {lib.LR_E_STATUS: "malformed status line", lib.LR_E_HEADER: "malformed header line",
                 lib.LR_E_NUL: "NUL byte in a header", lib.LR_E_REPEATED: "repeated header",
                 lib.LR_E_LENGTH: "invalid Content-Length"}
        return ProtocolError("%s from the Runtime API (at byte %d of the head)" % (names.get(why, "malformed head"), conn.error_at))
