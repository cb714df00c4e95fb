"""What an Invoke API request asks for, decided without sockets.

:func:`route` and :func:`parse_invoke` turn a request head into an :class:`InvokeRequest` or
the :class:`Refused` answer Lambda gives (404, 405, 413, 400), in Lambda's order of checks: the
route and method first (before the body is read), then the body's size, the function name, the
qualifier, the invocation type and the client context; once the function is known,
:func:`check_payload` refuses a payload that is not JSON. Pure functions: unit-testable alone.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Mapping, NamedTuple, Optional, Sequence, Tuple, Union
from urllib.parse import unquote

from ..protocol import MAX_PAYLOAD

_INVOKE = re.compile(r"/2015-03-31/functions/([^/]+)/invocations\Z")
_STREAM = re.compile(r"/2021-11-15/functions/([^/]+)/response-streaming-invocations\Z")
_NAME = re.compile(r"[A-Za-z0-9_-]{1,140}\Z")
_REGION = re.compile(r"[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d{1,2}\Z")
_ACCOUNT = re.compile(r"\d{12}\Z")
_QUALIFIER = re.compile(r"(\$LATEST|[A-Za-z0-9_-]{1,128})\Z")
INVOCATION_TYPES = ("RequestResponse", "Event", "DryRun")


class Refused(Exception):
    """The invoke was not run: the caller gets Lambda's API error (``status``,
    ``X-Amzn-ErrorType``), not a function error. Returned by the parsers, raised by the
    pool (:class:`.server.TooManyRequests`)."""

    def __init__(self, status: int, error_type: str, message: str, headers: Sequence[Tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message
        self.headers = list(headers)


class Route(NamedTuple):
    """An invoke path: the function as written in it, and whether it is the streaming API."""

    function: str
    streaming: bool


class FunctionRef(NamedTuple):
    """A function as an invoke path names it: its name, and what an ARN adds."""

    name: str
    qualifier: Optional[str] = None
    region: Optional[str] = None  # from a full ARN
    account: Optional[str] = None  # from a full or partial ARN


class InvokeRequest(NamedTuple):
    """A valid invoke: everything of the request but its payload."""

    name: str
    qualifier: Optional[str]
    invocation_type: str
    streaming: bool
    tail: bool
    client_context: Optional[str]
    cognito_identity: Optional[str]
    tenant_id: Optional[str]
    trace_id: Optional[str]
    region: Optional[str] = None
    account: Optional[str] = None

    @property
    def function(self) -> FunctionRef:
        return FunctionRef(self.name, self.qualifier, self.region, self.account)

    @property
    def executed_version(self) -> str:
        """``X-Amz-Executed-Version``: the version invoked (a number), else ``$LATEST``."""
        return self.qualifier if self.qualifier and self.qualifier.isdigit() else "$LATEST"


def route(method: str, path: str) -> Union[Route, Refused]:
    """The invoke API ``path`` names, or 404 (no such path) / 405 (not a POST)."""
    match = _INVOKE.match(path)
    streaming = False
    if match is None:
        match = _STREAM.match(path)
        streaming = match is not None
    if match is None:
        return Refused(404, "ResourceNotFoundException", "No route for %s %s" % (method, path[:200]))
    if method != "POST":
        return Refused(405, "InvalidRequestContentException", "Use POST to invoke a function")
    return Route(match.group(1), streaming)


def parse_invoke(where: Route, query: Mapping[str, str], headers: Mapping[str, str], too_large: bool) -> Union[InvokeRequest, Refused]:
    """The invoke a request asks for (``headers`` lower-cased; ``too_large``: its body is over
    the limit), or Lambda's refusal of it."""
    if too_large:
        return Refused(413, "RequestTooLargeException", "Request must be smaller than %d bytes for the InvokeFunction operation" % MAX_PAYLOAD)
    ref = parse_function(where.function)
    if ref is None:
        return Refused(400, "InvalidParameterValueException", "Invalid function name %r" % where.function[:200])
    qualifier = query.get("Qualifier") or ref.qualifier
    if qualifier is not None and not _QUALIFIER.match(qualifier):
        # it is echoed in X-Amz-Executed-Version: never let CR/LF or the like through
        return Refused(400, "InvalidParameterValueException", "Invalid qualifier %r" % qualifier[:200])
    invocation_type = headers.get("x-amz-invocation-type") or "RequestResponse"
    if invocation_type not in INVOCATION_TYPES or (where.streaming and invocation_type == "Event"):
        return Refused(400, "InvalidParameterValueException", "Unsupported invocation type %r" % invocation_type[:50])
    client_context = None
    raw_context = headers.get("x-amz-client-context")
    if raw_context:
        client_context = decode_client_context(raw_context)
        if client_context is None:
            return Refused(400, "InvalidRequestContentException", "Client context must be a valid Base64-encoded JSON object.")
    return InvokeRequest(
        ref.name,
        qualifier,
        invocation_type,
        where.streaming,
        (headers.get("x-amz-log-type") or "").lower() == "tail",
        client_context,
        headers.get("x-amz-cognito-identity"),
        headers.get("x-amz-tenant-id"),
        headers.get("x-amzn-trace-id"),
        ref.region,
        ref.account,
    )


#: Lambda's words for a payload it cannot parse; its JSON parser's own reason follows them (ours is
#: Python's: the position differs in form, not in meaning).
PAYLOAD_NOT_JSON = "Could not parse request body into json: Could not parse payload into json: "


def _no_constant(name: str) -> None:
    raise ValueError("%s is not a JSON value" % name)


def check_payload(payload: bytes) -> Optional[Refused]:
    """Lambda's 400 ``InvalidRequestContentException`` for a payload that is not one JSON value in
    UTF-8 (a leading byte-order mark allowed; ``NaN`` and ``Infinity`` refused, as Lambda's parser
    refuses them), else None. Lambda checks before the function runs, so a caller never reaches a runtime's
    ``Runtime.UnmarshalError`` through Invoke (the official emulator hands such a payload on:
    docs/emulator.md). An empty payload is the event ``{}`` and is not checked here."""
    if not payload:
        return None
    bom = 3 if payload.startswith(b"\xef\xbb\xbf") else 0  # a byte-order mark: runtimes take it too
    try:
        # (plain "utf-8": the first use of another codec imports its module, which needs a file
        # descriptor, and a request must be answered even when the emulator has none left)
        json.loads(payload[bom:].decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        return Refused(400, "InvalidRequestContentException", PAYLOAD_NOT_JSON + "invalid UTF-8 at byte %d" % (bom + exc.start))
    except (ValueError, RecursionError) as exc:
        return Refused(400, "InvalidRequestContentException", PAYLOAD_NOT_JSON + str(exc)[:300])
    return None


def function_name(raw: str) -> Tuple[Optional[str], Optional[str]]:
    """The function name (and qualifier) from the path, or (None, None) (see :func:`parse_function`)."""
    ref = parse_function(raw)
    return (ref.name, ref.qualifier) if ref is not None else (None, None)


def parse_function(raw: str) -> Optional[FunctionRef]:
    """The function the path names: a name, a partial or a full ARN, URL-encoded or not,
    with or without a qualifier. None when it is not a valid Lambda function name."""
    text = unquote(raw)
    parts = text.split(":")
    region = account = None
    if text.startswith("arn:") and len(parts) in (7, 8) and parts[5] == "function":
        region, account = parts[3], parts[4]
        parts = parts[6:]
    elif len(parts) in (3, 4) and parts[1] == "function":  # 123456789012:function:name[:qualifier]
        account = parts[0]
        parts = parts[2:]
    if len(parts) > 2 or not _NAME.match(parts[0]) or (len(parts) == 2 and not _QUALIFIER.match(parts[1])):
        return None
    if (region is not None and not _REGION.match(region)) or (account is not None and not _ACCOUNT.match(account)):
        return None
    return FunctionRef(parts[0], parts[1] if len(parts) == 2 else None, region, account)


def decode_client_context(value: str) -> Optional[str]:
    """The client context to hand the runtime, or None when it is not base64 of a JSON object."""
    try:
        text = base64.b64decode(value, validate=True).decode("utf-8")
        obj = json.loads(text)
        if not isinstance(obj, dict):
            return None
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        return None
    # It goes to the runtime as a header value: JSON with newlines between tokens or non-Latin-1
    # text is sent re-encoded (ASCII, one line), the same object for the handler.
    return text if text.isascii() and text.isprintable() else json.dumps(obj)

