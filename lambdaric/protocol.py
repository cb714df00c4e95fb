"""The Runtime API as plain values: names, limits, request bytes and response parsing.

No sockets here. Transports feed bytes in and take bytes out; every decision about
what a status code means lives in this module or in the bootstrap, so the pure-Python
and native transports cannot disagree about the protocol.
"""
from __future__ import annotations

# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Dict, List, Optional, Tuple

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

CT_JSON = "application/json"
CT_BYTES = "application/unknown"

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
        body: bytes,
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


def invocation_from_headers(headers: Dict[str, str], body: bytes) -> Invocation:
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
            if not (cl.isascii() and cl.isdigit()):  # isdigit alone accepts "²"
                raise ProtocolError("invalid Content-Length %r from the Runtime API" % cl[:50])
            self.content_length = int(cl)
        self.keep_alive = headers.get("connection", "").lower() != "close"


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
    status_line = lines[0].rstrip("\r")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not (parts[1].isascii() and parts[1].isdigit()) or len(parts[1]) != 3:
        raise ProtocolError("malformed status line %r from the Runtime API" % status_line[:100])
    headers: Dict[str, str] = {}
    for line in lines[1:]:
        if line.endswith("\r"):
            line = line[:-1]
        if not line:
            continue
        if "\r" in line:
            raise ProtocolError("bare CR in header line %r from the Runtime API" % line[:100])
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if not sep or not name or " " in name or "\t" in name:
            raise ProtocolError("malformed header line %r from the Runtime API" % line[:100])
        if "\x00" in value:
            raise ProtocolError("NUL byte in header %r from the Runtime API" % name)
        value = value.strip(" \t")  # HTTP optional whitespace is SP and HTAB only
        if name in headers:
            if name in _SINGLE:
                raise ProtocolError("repeated header %r from the Runtime API" % name)
            headers[name] = headers[name] + "," + value
        else:
            headers[name] = value
    return ResponseHead(int(parts[1]), parts[2] if len(parts) > 2 else "", headers)


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
            line = data[pos:eol].rstrip(b"\r")
            pos = eol + 1
            if self._state == self._TRAILER:
                if not line:
                    self.done = True
                    self._buf = b""
                    return data[pos:]
                self.trailers.append(line)
                continue
            size_text = line.split(b";", 1)[0].strip()
            if not size_text or size_text.strip(b"0123456789abcdefABCDEF") or len(size_text) > 15:
                raise ProtocolError("malformed chunk size %r" % size_text[:20])
            size = int(size_text, 16)
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
