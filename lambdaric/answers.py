"""The Runtime API's answers as values: a response head parsed and checked, a chunked body decoded.

The pure-Python transport reads every answer with these; the native transport parses heads in
C and comes here only for the words of an error (a refused head is parsed again for the exact
message, so both transports name a fault alike) and for the rare chunked answer; the
emulator's HTTP reader shares :func:`chunk_size`. Split from :mod:`lambdaric.protocol` so that
the native transport's runtime never loads it. Sans-IO.
"""
from __future__ import annotations

# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Dict, List, Optional, Tuple

from .protocol import (H_CLIENT_CONTEXT, H_COGNITO_IDENTITY, H_CONTENT_TYPE, H_DEADLINE, H_FUNCTION_ARN,
                       H_INVOCATION_ID, H_REQUEST_ID, H_TENANT_ID, H_TRACE_ID, ProtocolError)

#: Headers that must come once: the framing, and every Lambda-Runtime-* header the
#: runtime reads (a second request id is an attack or a bug, never something to join).
_SINGLE = frozenset(
    (H_REQUEST_ID, H_DEADLINE, H_FUNCTION_ARN, H_TRACE_ID, H_CLIENT_CONTEXT, H_COGNITO_IDENTITY, H_TENANT_ID,
     H_INVOCATION_ID, H_CONTENT_TYPE, "content-length", "transfer-encoding", "connection")
)


class ResponseHead:
    """Status and lower-cased headers of one HTTP response."""

    __slots__ = ("status", "reason", "headers", "content_length", "chunked", "keep_alive")

    def __init__(self, status: int, reason: str, headers: Dict[str, str]) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        te = headers.get("transfer-encoding", "")
        self.chunked = "chunked" in te.lower()
        cl = headers.get("content-length")
        if self.chunked:
            self.content_length = -1
        elif cl is None:
            self.content_length = -2 if status not in (204, 304) and status >= 200 else 0
        else:
            # isdigit alone accepts "²"; over 15 digits (999 TB) int() could take seconds or, past
            # 4300 digits, raise ValueError; the native parser refuses them the same way
            if not (cl.isascii() and cl.isdigit()) or len(cl) > 15:
                raise ProtocolError("invalid Content-Length %r from the Runtime API" % cl[:50])
            self.content_length = int(cl)
        self.keep_alive = headers.get("connection", "").lower() != "close"


def head_end(buf: bytes) -> Tuple[int, int]:
    """Where a response head ends in ``buf``: ``(end of the head, start of the body)``, or
    ``(-1, -1)`` while it is incomplete.

    The head ends at its first empty line, ended by CRLF or a bare LF (``\\n\\r\\n`` or
    ``\\n\\n``), as the native parser (lr_http.c) reads it: a head of bare-LF lines ends at
    its ``\\n\\n`` even when a ``\\r\\n\\r\\n`` follows in the body. The head excludes the last
    line's LF (``buf[:end]`` is what :func:`parse_response_head` takes; it drops one CR per line).
    """
    crlf = buf.find(b"\n\r\n")
    lf = buf.find(b"\n\n", 0, crlf + 1 if crlf >= 0 else len(buf))
    if lf >= 0:
        return lf, lf + 2
    if crlf >= 0:
        return crlf, crlf + 3
    return -1, -1


def parse_response_head(head: bytes) -> ResponseHead:
    """Parse ``HTTP/1.1 200 OK\\r\\nName: value\\r\\n...`` (without the final blank line).

    Tolerates LF-only line ends and repeated headers (joined with ``,``); rejects
    anything that is not a status line or a ``name: value`` line with a clear error.
    """
    try:
        text = head.decode("latin-1")
    except Exception:  # pragma: no cover - latin-1 decodes every byte
        raise ProtocolError("undecodable response head")
    lines = text.split("\n")
    status_line = _status_line(lines[0])
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        if line.endswith("\r"):
            line = line[:-1]
        if not line:
            continue
        if "\r" in line:
            raise ProtocolError("bare CR in header line %r from the Runtime API" % line[:100])
        name, sep, value = line.partition(":")
        # a name is visible ASCII (no spaces, controls or DEL around or inside), as lr_http.c takes it
        if not sep or not name or " " in name or not (name.isascii() and name.isprintable()):
            raise ProtocolError("malformed header line %r from the Runtime API" % line[:100])
        name = name.lower()
        if "\x00" in value:
            raise ProtocolError("NUL byte in header %r from the Runtime API" % name)
        value = value.strip(" \t")  # HTTP optional whitespace is SP and HTAB only
        if name in headers:
            if name in _SINGLE:
                raise ProtocolError("repeated header %r from the Runtime API" % name)
            headers[name] = headers[name] + "," + value
        else:
            headers[name] = value
    return ResponseHead(int(status_line[9:12]), status_line[13:], headers)


def _status_line(line: str) -> str:
    """``line`` without its CR when it is a status line (``HTTP/1.x SP 3DIGIT [SP reason]``, the
    rule of lr_http.c, so both transports take and refuse the same lines), else ProtocolError."""
    if line.endswith("\r"):
        line = line[:-1]
    code = line[9:12]
    if (
        len(line) < 12 or not line.startswith("HTTP/1.") or line[8] != " " or not (code.isascii() and code.isdigit())
        or (len(line) > 12 and line[12] != " ")
    ):
        raise ProtocolError("malformed status line %r from the Runtime API" % line[:100])
    return line


def check_partial_head(buf: bytes) -> None:
    """The complete lines of a head that is not complete yet (an answer cut short, stalled or over
    :data:`MAX_HEAD`): ProtocolError for the first bad one, as the native parser refuses it
    before the head ends, so both transports name the same fault."""
    end = buf.rfind(b"\n")
    if end >= 0:
        parse_response_head(buf[:end])


def check_status_line(buf: bytes) -> None:
    """ProtocolError when the first line of ``buf`` is complete and is no status line: refused as
    soon as it is in (a TLS handshake or an HTML page), as the native parser refuses it."""
    end = buf.find(b"\n")
    if end >= 0:
        _status_line(buf[:end].decode("latin-1"))


def chunk_size(line: bytes) -> int:
    """The size on a chunk size line (extensions ignored); ProtocolError when it is no hex number
    of at most 15 digits (more could take seconds to convert)."""
    size_text = line.split(b";", 1)[0].strip()
    if not size_text or size_text.strip(b"0123456789abcdefABCDEF") or len(size_text) > 15:
        raise ProtocolError("malformed chunk size %r" % size_text[:20])
    return int(size_text, 16)


class ChunkedDecoder:
    """Incremental decoder of a chunked body: feed bytes, get the body when done.

    Sans-IO: :meth:`feed` returns None while more input is needed, and the bytes that
    followed the body (a next pipelined message) once it is complete.
    """

    _SIZE, _DATA, _DATA_END, _TRAILER = range(4)

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: List[bytes] = []
        self.trailers: List[bytes] = []
        self.size = 0
        self.done = False
        self._state = self._SIZE
        self._left = 0
        self._buf = b""

    def feed(self, data: bytes) -> Optional[bytes]:
        data = self._buf + data if self._buf else data
        pos, n = 0, len(data)
        while True:
            if self._state == self._DATA:
                take = min(self._left, n - pos)
                if take:
                    self.parts.append(data[pos : pos + take])
                    self._left -= take
                    pos += take
                if self._left:
                    break
                self._state = self._DATA_END
                continue
            if self._state == self._DATA_END:
                if n - pos < 2:
                    break
                if data[pos : pos + 2] != b"\r\n":
                    raise ProtocolError("missing CRLF after chunk data")
                pos += 2
                self._state = self._SIZE
                continue
            eol = data.find(b"\n", pos)
            if eol < 0:
                if n - pos > 8192:
                    raise ProtocolError("chunk size or trailer line too long")
                break
            if eol - pos > 8192:  # as when it is incomplete: the answer must not depend on how it was cut
                raise ProtocolError("chunk size or trailer line too long")
            line = data[pos:eol].rstrip(b"\r")
            pos = eol + 1
            if self._state == self._TRAILER:
                if not line:
                    self.done = True
                    self._buf = b""
                    return data[pos:]
                self.trailers.append(line)
                continue
            size = chunk_size(line)
            if size == 0:
                self._state = self._TRAILER
                continue
            self.size += size
            if self.size > self.limit:
                raise ProtocolError("chunked body exceeds %d bytes" % self.limit)
            self._state, self._left = self._DATA, size
        self._buf = data[pos:]
        return None

    def body(self) -> bytes:
        return b"".join(self.parts)
