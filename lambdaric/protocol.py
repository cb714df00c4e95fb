"""The Runtime API as plain values: names, limits, the invocation, request bytes, header checks.

No sockets here. Transports feed bytes in and take bytes out; every decision about
what a status code means lives in this module or in the bootstrap, so the pure-Python
and native transports cannot disagree about the protocol. What a plain invoke does not need
has its own modules: the bytes of a streamed response (:mod:`lambdaric.streamwire`) and the
parsing of answers (:mod:`lambdaric.answers`, which the native transport does in C).
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


# --------------------------------------------------------------------------- header values


def check_header_value(what: str, value: object) -> str:
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
    """A content type a caller wants to send (see ``check_header_value``): refused with ValueError
    rather than written into the head, where CR/LF would inject headers."""
    return check_header_value("content_type", content_type)


def check_request_id(request_id: object) -> str:
    """A request id a caller wants to answer: it goes into a URL path (see ``_is_safe_request_id``)."""
    if type(request_id) is not str:
        raise TypeError("request_id must be a str, not %s" % type(request_id).__name__)
    if not _is_safe_request_id(request_id):
        raise ValueError("refusing unsafe request id %s" % ascii(request_id[:300]))
    return request_id


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


def error_message_from_body(body: bytes) -> str:
    """Best-effort ``errorType: errorMessage`` from a Runtime API error body, for logs."""
    import simplejson as json

    try:
        obj = json.loads(body)
        return "%s: %s" % (obj.get("errorType", "?"), obj.get("errorMessage", ""))
    except Exception:
        return body[:200].decode("utf-8", "replace")
