"""The Runtime API as plain values: names, limits, request bytes and response parsing.

No sockets here. Transports feed bytes in and take bytes out; every decision about
what a status code means lives in this module or in the bootstrap, so the pure-Python
and native transports cannot disagree about the protocol.
"""
from __future__ import annotations

# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Dict, List, Optional, Tuple, Union

API_VERSION = "2018-06-01"
PREFIX = "/" + API_VERSION + "/runtime"
NEXT_PATH = PREFIX + "/invocation/next"
INIT_ERROR_PATH = PREFIX + "/init/error"
RESTORE_NEXT_PATH = PREFIX + "/restore/next"
RESTORE_ERROR_PATH = PREFIX + "/restore/error"

#: Largest buffered event or response body Lambda accepts (6 MiB + 100 bytes).
MAX_PAYLOAD = 6291556
#: Largest response head we accept from the Runtime API; real heads are < 2 KiB.
MAX_HEAD = 64 * 1024
#: The X-Ray cause header is dropped at or above this size, as the official client does.
MAX_XRAY_CAUSE = 1024 * 1024
#: Largest streamed response body (Lambda: "up to 200 MB"; the built-in emulator's limit too).
MAX_STREAMED = 200 * 1024 * 1024
#: Largest block of error trailers a streamed response may end with (the emulator refuses
#: more with 431, which would lose the error report altogether).
MAX_STREAM_TRAILERS = MAX_HEAD

# Response headers of GET /next (lower-cased for lookup).
H_REQUEST_ID = "lambda-runtime-aws-request-id"
H_DEADLINE = "lambda-runtime-deadline-ms"
H_FUNCTION_ARN = "lambda-runtime-invoked-function-arn"
H_TRACE_ID = "lambda-runtime-trace-id"
H_CLIENT_CONTEXT = "lambda-runtime-client-context"
H_COGNITO_IDENTITY = "lambda-runtime-cognito-identity"
H_TENANT_ID = "lambda-runtime-aws-tenant-id"
H_INVOCATION_ID = "lambda-runtime-invocation-id"
H_CONTENT_TYPE = "content-type"

# Request headers the runtime sends.
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
XRAY_CAUSE_HEADER = "Lambda-Runtime-Function-XRay-Error-Cause"
INVOCATION_ID_HEADER = "Lambda-Runtime-Invocation-Id"
# Response streaming (see "streamed responses" below).
RESPONSE_MODE_HEADER = "Lambda-Runtime-Function-Response-Mode"
RESPONSE_MODE_STREAMING = "streaming"
ERROR_BODY_HEADER = "Lambda-Runtime-Function-Error-Body"

CT_JSON = "application/json"
CT_BYTES = "application/unknown"


def user_agent() -> str:
    """The runtime's ``User-Agent``: ``lambdaric-python/<python version>-<lambdaric version>``."""
    import sys

    from . import __version__

    v = sys.version_info
    return "lambdaric-python/%d.%d.%d-%s" % (v[0], v[1], v[2], __version__)

# A request id ends up in a URL path: accept only what cannot change the path's meaning.
# (Plain str checks, not regexes: compiling them costs cold-start time.)
_ALNUM = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_REQUEST_ID_CHARS = _ALNUM | frozenset("._:+=@-")


def _is_safe_request_id(value: str) -> bool:
    return 0 < len(value) <= 256 and value[0] in _ALNUM and _REQUEST_ID_CHARS.issuperset(value)


def _is_safe_header_value(value: str) -> bool:
    """Printable ASCII and tabs only: no CR/LF/NUL or other control bytes to smuggle."""
    return len(value) <= 8192 and value.isascii() and (value.isprintable() or value.replace("\t", " ").isprintable())


class ProtocolError(Exception):
    """The Runtime API sent something this runtime cannot act on.

    The message names what was wrong; it is meant for one clear log line.
    """


class Invocation:
    """One event as delivered by ``GET /next``: the parsed headers plus the raw body.

    Only fields are parsed here; JSON in client context / cognito identity is parsed
    lazily by the context module so a bad value becomes a function error, not a crash.
    """

    __slots__ = (
        "request_id",
        "deadline_ms",
        "function_arn",
        "trace_id",
        "client_context",
        "cognito_identity",
        "tenant_id",
        "invocation_id",
        "content_type",
        "body",
        "deadline_problem",
    )

    def __init__(
        self,
        request_id: str,
        body: Union[bytes, bytearray],
        *,
        deadline_ms: int = 0,
        function_arn: Optional[str] = None,
        trace_id: Optional[str] = None,
        client_context: Optional[str] = None,
        cognito_identity: Optional[str] = None,
        tenant_id: Optional[str] = None,
        invocation_id: Optional[str] = None,
        content_type: Optional[str] = None,
        deadline_problem: Optional[str] = None,
    ) -> None:
        self.request_id = request_id
        self.body = body
        self.deadline_ms = deadline_ms
        self.function_arn = function_arn
        self.trace_id = trace_id
        self.client_context = client_context
        self.cognito_identity = cognito_identity
        self.tenant_id = tenant_id
        self.invocation_id = invocation_id
        self.content_type = content_type
        self.deadline_problem = deadline_problem

    def __repr__(self) -> str:
        return "Invocation(request_id=%r, %d bytes)" % (self.request_id, len(self.body))


def validate_request_id(value: Optional[str]) -> str:
    """Refuse a request id that is absent or unsafe to put in a URL path."""
    if not value:
        raise ProtocolError("the /next response has no Lambda-Runtime-Aws-Request-Id header")
    if not _is_safe_request_id(value):
        raise ProtocolError("refusing unsafe Lambda-Runtime-Aws-Request-Id %r" % value[:300])
    return value


def invocation_from_headers(headers: Dict[str, str], body: Union[bytes, bytearray]) -> Invocation:
    """Build an :class:`Invocation` from lower-cased ``/next`` headers.

    A non-numeric deadline is not fatal (the official client aborts on it): the
    deadline becomes 0 and the problem is recorded for the bootstrap to log.
    """
    request_id = validate_request_id(headers.get(H_REQUEST_ID))
    deadline_problem = None
    raw_deadline = headers.get(H_DEADLINE)
    deadline = 0
    if raw_deadline:
        try:
            deadline = int(raw_deadline)
        except ValueError:
            deadline_problem = "ignoring non-numeric Lambda-Runtime-Deadline-Ms %r" % raw_deadline[:100]
    invocation_id = headers.get(H_INVOCATION_ID) or None
    if invocation_id is not None and not _is_safe_header_value(invocation_id):
        raise ProtocolError("refusing unsafe Lambda-Runtime-Invocation-Id %r" % invocation_id[:300])
    return Invocation(
        request_id,
        body,
        deadline_ms=deadline,
        function_arn=headers.get(H_FUNCTION_ARN) or None,
        trace_id=headers.get(H_TRACE_ID) or None,
        client_context=headers.get(H_CLIENT_CONTEXT) or None,
        cognito_identity=headers.get(H_COGNITO_IDENTITY) or None,
        tenant_id=headers.get(H_TENANT_ID) or None,
        invocation_id=invocation_id,
        content_type=headers.get(H_CONTENT_TYPE) or None,
        deadline_problem=deadline_problem,
    )


#: The ``/next`` headers whose values :func:`invocation_from_values` takes, in its order.
NEXT_VALUES = (
    H_REQUEST_ID,
    H_DEADLINE,
    H_FUNCTION_ARN,
    H_TRACE_ID,
    H_CLIENT_CONTEXT,
    H_COGNITO_IDENTITY,
    H_TENANT_ID,
    H_INVOCATION_ID,
    H_CONTENT_TYPE,
)


def invocation_from_values(values: List[str], body: Union[bytes, bytearray]) -> Invocation:
    """:func:`invocation_from_headers` for the values of :data:`NEXT_VALUES` in order ("" for
    an absent header), as the native transport hands them over: the common case (a safe
    request id, a numeric deadline, no invocation id) without a dict; anything else, and
    every error message, from :func:`invocation_from_headers`."""
    request_id, deadline, arn, trace_id, client_context, cognito, tenant_id, invocation_id, content_type = values
    if invocation_id or not (_is_safe_request_id(request_id) and deadline.isascii() and deadline.isdigit()):
        return invocation_from_headers(dict(zip(NEXT_VALUES, values)), body)
    return Invocation(
        request_id,
        body,
        deadline_ms=int(deadline),
        function_arn=arn or None,
        trace_id=trace_id or None,
        client_context=client_context or None,
        cognito_identity=cognito or None,
        tenant_id=tenant_id or None,
        content_type=content_type or None,
    )


def is_json_content_type(content_type: Optional[str]) -> bool:
    """True for ``application/json`` with or without parameters (``; charset=utf-8``)."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() == CT_JSON


# --------------------------------------------------------------------------- requests


def response_path(request_id: str) -> str:
    return PREFIX + "/invocation/" + request_id + "/response"


def error_path(request_id: str) -> str:
    return PREFIX + "/invocation/" + request_id + "/error"


def safe_header_value(value: str) -> Optional[str]:
    """Return ``value`` if it can go into a header line as is, else None."""
    return value if _is_safe_header_value(value) else None


def build_request(
    method: str,
    path: str,
    host: str,
    user_agent: str,
    headers: List[Tuple[str, str]] = (),  # type: ignore[assignment]
    body: Optional[bytes] = None,
    content_type: Optional[str] = None,
) -> bytes:
    """Serialize one HTTP/1.1 request head (plus a small body) to bytes.

    Large bodies are not concatenated here: the transport sends them after the head
    to avoid copying megabytes; call with ``body=None`` and add Content-Length yourself
    via ``headers`` in that case.
    """
    lines = [method, " ", path, " HTTP/1.1\r\nHost: ", host, "\r\nUser-Agent: ", user_agent, "\r\n"]
    if content_type is not None:
        lines += ["Content-Type: ", content_type, "\r\n"]
    for name, value in headers:
        lines += [name, ": ", value, "\r\n"]
    if body is not None:
        lines += ["Content-Length: ", str(len(body)), "\r\n\r\n"]
        return "".join(lines).encode("latin-1") + body
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


# --------------------------------------------------------------------------- streamed responses
#
# A streamed response is one POST .../{id}/response with a chunked body:
#
#   POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\n
#   Host: ...\r\nUser-Agent: ...\r\n
#   Content-Type: {content type}\r\n
#   Lambda-Runtime-Invocation-Id: {id}\r\n              (only when /next carried one)
#   Lambda-Runtime-Function-Response-Mode: streaming\r\n
#   Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n
#   Transfer-Encoding: chunked\r\n
#   \r\n
#   {size in lower-case hex}\r\n{data}\r\n              (one chunk per stream_write; never empty)
#   ...
#   0\r\n
#   Lambda-Runtime-Function-Error-Type: {type}\r\n      (only when the stream ends with an error)
#   Lambda-Runtime-Function-Error-Body: {base64}\r\n    (only when that error has a body)
#   \r\n
#
# and then the Runtime API's answer, read like any other. Both transports send exactly these
# bytes (the header order is the native module's: Content-Type first, Transfer-Encoding last).
# Values a caller passes are checked here, before anything is sent: a bad value raises
# TypeError/ValueError and leaves the connection and an open stream as they were.

#: The value of the Trailer header: the trailers a streamed response may end with.
TRAILER_VALUE = ERROR_TYPE_HEADER + ", " + ERROR_BODY_HEADER
#: The chunk that ends a chunked body (trailers, then an empty line, follow it).
LAST_CHUNK = b"0\r\n"
CRLF = b"\r\n"


class StreamTooLarge(ValueError):
    """A write would take a streamed response past :data:`MAX_STREAMED`; nothing of it was
    sent and the stream is still open (end it with an error)."""


def _check_value(what: str, value: object) -> str:
    """A caller's header value: a str of printable ASCII (tabs allowed inside), at most
    8192 characters, no CR/LF/NUL or other control bytes, no leading or trailing
    whitespace (a peer would strip it). Messages are ASCII (``ascii()`` of the value)."""
    if type(value) is not str:
        raise TypeError("%s must be a str, not %s" % (what, type(value).__name__))
    if not value:
        raise ValueError("%s must not be empty" % what)
    if not _is_safe_header_value(value) or value.strip(" \t") != value:
        raise ValueError(
            "refusing %s %s: a header value must be printable ASCII of at most 8192 characters, "
            "without CR, LF or other control characters or surrounding whitespace" % (what, ascii(value[:100]))
        )
    return value


def check_content_type(content_type: object) -> str:
    """A content type a caller wants to send (see ``_check_value``): refused with ValueError
    rather than written into the head, where CR/LF would inject headers."""
    return _check_value("content_type", content_type)


def check_request_id(request_id: object) -> str:
    """A request id a caller wants to answer: it goes into a URL path (see ``_is_safe_request_id``)."""
    if type(request_id) is not str:
        raise TypeError("request_id must be a str, not %s" % type(request_id).__name__)
    if not _is_safe_request_id(request_id):
        raise ValueError("refusing unsafe request id %s" % ascii(request_id[:300]))
    return request_id


def stream_headers(invocation_id: Optional[str]) -> List[Tuple[str, str]]:
    """The headers of a streamed response between Content-Type and Transfer-Encoding, in order."""
    headers = [(RESPONSE_MODE_HEADER, RESPONSE_MODE_STREAMING), ("Trailer", TRAILER_VALUE)]
    if invocation_id:
        headers.insert(0, (INVOCATION_ID_HEADER, invocation_id))
    return headers


def error_headers(
    error_type: str, xray_cause: Optional[str] = None, invocation_id: Optional[str] = None
) -> List[Tuple[str, str]]:
    """The headers of an error POST (/error, /init/error, /restore/error), in the order both
    transports send them: error type, X-Ray cause when there is one, invocation id when given.

    The error type is an exception's class name, which may be any text (``type()`` takes
    CR/LF or non-Latin-1 names): an unsafe one is sent ``unicode_escape``-d (``Bad\\r\\n``,
    ``\\u041e``), never as raw bytes that would add headers; the body has it as it is."""
    if not _is_safe_header_value(error_type):
        error_type = error_type.encode("unicode_escape").decode("ascii")[:8192]
    headers = [(ERROR_TYPE_HEADER, error_type)]
    if xray_cause is not None:
        headers.append((XRAY_CAUSE_HEADER, xray_cause))
    if invocation_id:
        headers.append((INVOCATION_ID_HEADER, invocation_id))
    return headers


def header_lines(headers: List[Tuple[str, str]]) -> bytes:
    """``Name: value\\r\\n`` lines (the transports' ``extra`` header block)."""
    return "".join("%s: %s\r\n" % pair for pair in headers).encode("latin-1")


def check_stream_begin(request_id: object, content_type: object, invocation_id: object) -> None:
    """Refuse (TypeError/ValueError) what cannot go into the head of a streamed response."""
    check_request_id(request_id)
    _check_value("content_type", content_type)
    if invocation_id is not None and invocation_id != "":
        _check_value("invocation_id", invocation_id)


def build_stream_head(
    request_id: str, host: str, user_agent: str, content_type: str, invocation_id: Optional[str]
) -> bytes:
    """The checked head of a streamed response (see the layout above)."""
    check_stream_begin(request_id, content_type, invocation_id)
    headers = stream_headers(invocation_id) + [("Transfer-Encoding", "chunked")]
    return build_request("POST", response_path(request_id), host, user_agent, headers, None, content_type)


def chunk_size_line(size: int) -> bytes:
    """``{size:x}\\r\\n``: the line before a chunk's data (lower-case hex, no extensions)."""
    return b"%x\r\n" % size


def stream_trailers(error_type: Optional[str] = None, error_body: Optional[bytes] = None) -> bytes:
    """The trailer lines that end a streamed response (between ``0\\r\\n`` and the final ``\\r\\n``).

    No error: no trailers. An error: ``Lambda-Runtime-Function-Error-Type``, and
    ``Lambda-Runtime-Function-Error-Body`` with the body (the error JSON) base64-encoded when
    there is one. A body without a type, a bad type or trailers over
    :data:`MAX_STREAM_TRAILERS` bytes raise TypeError/ValueError.
    """
    if error_type is None:
        if error_body is not None:
            raise ValueError("error_body needs an error_type (the trailers report an error by its type)")
        return b""
    _check_value("error_type", error_type)
    lines = "%s: %s\r\n" % (ERROR_TYPE_HEADER, error_type)
    if error_body is not None:
        if isinstance(error_body, str):
            raise TypeError("error_body must be bytes (the error JSON, UTF-8), not str")
        import binascii

        try:
            encoded = binascii.b2a_base64(error_body, newline=False)
        except TypeError:
            raise TypeError("error_body must be bytes, not %s" % type(error_body).__name__) from None
        if encoded:
            lines += "%s: %s\r\n" % (ERROR_BODY_HEADER, encoded.decode("ascii"))
    if len(lines) > MAX_STREAM_TRAILERS:
        raise ValueError(
            "the error trailers would be %d bytes, over the %d-byte limit: shorten the error body"
            % (len(lines), MAX_STREAM_TRAILERS)
        )
    return lines.encode("ascii")


class ResponseStream:
    """Bookkeeping of one open streamed response: checks each write, counts the bytes.

    ``size`` counts the data bytes written so far (framing excluded).
    """

    __slots__ = ("request_id", "size")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.size = 0

    def take(self, data: object) -> "Tuple[object, int]":
        """``(buffer, byte count)`` to send as one chunk; the count is 0 for empty data
        (send nothing: an empty chunk would end the body). Counts the bytes as sent.

        bytes, bytearray and any C-contiguous buffer are accepted (a memoryview of wider
        items is sent as its bytes); str and non-buffers raise TypeError; a write past
        :data:`MAX_STREAMED` raises :class:`StreamTooLarge`.
        """
        if type(data) is bytes:
            buf: object = data
            n = len(data)
        else:
            if isinstance(data, str):
                raise TypeError("stream_write takes bytes, not str (encode it first)")
            try:
                view = memoryview(data)  # type: ignore[arg-type]
            except TypeError:
                raise TypeError("stream_write takes bytes or another buffer, not %s" % type(data).__name__) from None
            if not view.c_contiguous:
                raise ValueError("stream_write needs a C-contiguous buffer")
            if view.ndim != 1 or view.itemsize != 1:
                view = view.cast("B")
            buf, n = view, view.nbytes
        if n and self.size + n > MAX_STREAMED:
            raise StreamTooLarge(
                "a write of %d bytes would take the streamed response past %d bytes (%d sent): "
                "end the stream with an error" % (n, MAX_STREAMED, self.size)
            )
        self.size += n
        return buf, n


# --------------------------------------------------------------------------- responses


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


def error_message_from_body(body: bytes) -> str:
    """Best-effort ``errorType: errorMessage`` from a Runtime API error body, for logs."""
    import simplejson as json

    try:
        obj = json.loads(body)
        return "%s: %s" % (obj.get("errorType", "?"), obj.get("errorMessage", ""))
    except Exception:
        return body[:200].decode("utf-8", "replace")
