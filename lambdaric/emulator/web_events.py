"""The HTTP front's mapping: an HTTP request as the event of an integration, and the
function's result as the HTTP answer that integration would give.

Integrations (``INTEGRATIONS``): a Lambda function URL and an API Gateway HTTP API (payload
format 2.0), an API Gateway REST API (payload 1.0, Lambda proxy integration) and an
Application Load Balancer target group, with or without multi-value headers. Pure functions
and values, no IO: :mod:`.web` reads the requests and writes the answers. The rules, with
the AWS documents they come from, are in ``docs/http-front.md``.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
import uuid
from typing import Any, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple
from urllib.parse import parse_qsl, unquote

#: The account id in every ``requestContext`` (the one AWS's own examples use).
ACCOUNT_ID = "123456789012"
REGION = "us-east-1"
#: Content type of a streamed response that begins with the JSON prelude (status, headers,
#: cookies) and 8 NUL bytes: Lambda's HTTP integration response.
HTTP_INTEGRATION_RESPONSE = "application/vnd.awslambda.http-integration-response"
PRELUDE_DELIMITER = b"\0" * 8
#: The longest prelude we wait for before the delimiter (Lambda's limit is not documented).
MAX_PRELUDE = 64 * 1024
#: Request and response body limits of an ALB target group's Lambda function.
ALB_LIMIT = 1024 * 1024

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
#: headers whose framing the front decides itself: never copied from a function's result
_FRAMING = frozenset(("content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "trailer"))
_TEXT_TYPES = re.compile(
    r"(text/[^;]*|[^;/]+/([^;]+\+)?json|[^;/]+/([^;]+\+)?xml|application/javascript|application/ecmascript)\s*(;.*)?\Z",
    re.IGNORECASE,
)


class Integration(NamedTuple):
    """What an integration sends and accepts."""

    name: str
    description: str
    payload: str  # "2.0", "1.0" or "alb"
    multi_value: bool  # REST always; ALB when its target group enables it
    error_status: int  # a function error or a result it cannot use
    error_body: bytes
    error_type: str  # Content-Type of the error answers


_ALB_PAGE = (
    "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n<center><h1>%d %s</h1></center>\r\n</body>\r\n</html>\r\n"
)

INTEGRATIONS: Dict[str, Integration] = {
    "url": Integration("url", "function URL, payload 2.0", "2.0", False, 502, b"Internal Server Error", "text/plain; charset=utf-8"),
    "http-api": Integration(
        "http-api", "API Gateway HTTP API, payload 2.0", "2.0", False, 500, b'{"message":"Internal Server Error"}', "application/json"
    ),
    "rest": Integration(
        "rest", "API Gateway REST API, payload 1.0", "1.0", True, 502, b'{"message": "Internal server error"}', "application/json"
    ),
    "alb": Integration(
        "alb", "Application Load Balancer", "alb", False, 502, (_ALB_PAGE % (502, "Bad Gateway", 502, "Bad Gateway")).encode(), "text/html"
    ),
    "alb-multi": Integration(
        "alb-multi",
        "Application Load Balancer, multi-value headers",
        "alb",
        True,
        502,
        (_ALB_PAGE % (502, "Bad Gateway", 502, "Bad Gateway")).encode(),
        "text/html",
    ),
}


class WebRequest(NamedTuple):
    """An HTTP request as the front received it."""

    method: str
    path: str  # as on the request line, without the query (and without a /lambda-url/NAME prefix)
    query: str  # raw, without the "?"
    fields: Sequence[Tuple[str, str]]  # header lines as received: name as written, value
    body: bytes
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"
    port: int = 80  # the front's port, for X-Forwarded-Port


class WebResponse(NamedTuple):
    """An HTTP answer: status, reason phrase (None: the usual one), headers, body."""

    status: int
    headers: List[Tuple[str, str]]
    body: bytes
    reason: Optional[str] = None


class BadResult(ValueError):
    """The function's result is not something the integration can answer with; the message
    says why (for the console), the client gets the integration's error answer."""


# --------------------------------------------------------------------------- routes


class Route(NamedTuple):
    """``METHOD /path/{param}/{proxy+}`` (or ``$default``), optionally ``=FUNCTION``."""

    method: str  # upper case; "ANY" matches every method
    template: str  # "/items/{id}", or "$default"
    segments: Tuple[str, ...]
    function: Optional[str]

    @property
    def key(self) -> str:
        """The HTTP API route key: ``GET /items/{id}`` or ``$default``."""
        return self.template if self.template == "$default" else "%s %s" % (self.method, self.template)

    def rank(self) -> Tuple[int, int, int]:
        """Higher is more specific: literal segments, then no greedy variable, then a method."""
        literal = sum(1 for s in self.segments if not s.startswith("{"))
        greedy = 1 if self.segments and self.segments[-1].endswith("+}") else 0
        return (0 if self.template == "$default" else 1, literal * 2 - greedy, 0 if self.method == "ANY" else 1)


_PARAM = re.compile(r"\{([A-Za-z0-9._-]+)(\+?)\}\Z")
_METHODS = ("ANY", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def parse_route(spec: str) -> Route:
    """A ``--route`` value; ValueError saying what is wrong."""
    text, _, named = spec.strip().partition("=")
    function = named.strip() or None
    if function is not None and not re.match(r"[A-Za-z0-9_-]{1,140}\Z", function):
        raise ValueError("invalid function name %r in route %r" % (function, spec))
    text = text.strip()
    if text in ("$default", "ANY $default"):
        return Route("ANY", "$default", (), function)
    method, _, template = text.partition(" ")
    method, template = method.upper(), template.strip()
    if method not in _METHODS:
        raise ValueError("route %r: the method must be one of %s" % (spec, ", ".join(_METHODS)))
    if not template.startswith("/"):
        raise ValueError("route %r: the path must start with /" % spec)
    segments = tuple(s for s in template.split("/")[1:] if s != "") if template != "/" else ()
    names = set()
    for i, segment in enumerate(segments):
        if "{" in segment or "}" in segment:
            match = _PARAM.match(segment)
            if match is None:
                raise ValueError("route %r: a path variable is a whole segment, {name} or {name+}" % spec)
            if match.group(2) and i != len(segments) - 1:
                raise ValueError("route %r: a greedy variable {%s+} must be the last segment" % (spec, match.group(1)))
            if match.group(1) in names:
                raise ValueError("route %r: variable %r twice" % (spec, match.group(1)))
            names.add(match.group(1))
    return Route(method, "/" + "/".join(segments), segments, function)


class Match(NamedTuple):
    route: Optional[Route]  # None: no --route given, the implicit catch-all
    params: Dict[str, str]


def _match_one(route: Route, parts: List[str]) -> Optional[Dict[str, str]]:
    if route.template == "$default":
        return {}
    params: Dict[str, str] = {}
    for i, segment in enumerate(route.segments):
        if segment.endswith("+}"):
            rest = parts[i:]
            if not rest:
                return None
            params[segment[1:-2]] = unquote("/".join(rest))
            return params
        if i >= len(parts):
            return None
        if segment.startswith("{"):
            if parts[i] == "":
                return None
            params[segment[1:-1]] = unquote(parts[i])
        elif segment != parts[i]:
            return None
    return params if len(parts) == len(route.segments) else None


def match_route(routes: Sequence[Route], method: str, path: str) -> Optional[Match]:
    """The most specific route for ``method`` and ``path`` (API Gateway's choice: literal
    segments over variables, a greedy variable last, a method over ANY, ``$default`` when
    nothing else matches), or None (404). With no routes everything matches."""
    if not routes:
        return Match(None, {})
    parts = path.split("/")[1:]
    if parts == [""]:
        parts = []
    best: Optional[Tuple[Tuple[int, int, int], int, Route, Dict[str, str]]] = None
    for index, route in enumerate(routes):
        if route.method not in ("ANY", method):
            continue
        params = _match_one(route, parts)
        if params is None:
            continue
        candidate = (route.rank(), -index, route, params)
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    return Match(best[2], best[3]) if best is not None else None


# --------------------------------------------------------------------------- requests


def media_type(content_type: Optional[str]) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_text(content_type: Optional[str]) -> bool:
    """Whether payload 2.0 / ALB send a body of this type as text (else base64)."""
    return content_type is not None and _TEXT_TYPES.match(content_type.strip()) is not None


def parse_media_types(value: str) -> List[str]:
    """``--binary-media-types``: comma-separated ``type/subtype`` patterns (``*`` allowed)."""
    types = [t.strip().lower() for t in value.split(",") if t.strip()]
    for t in types:
        if not re.match(r"(\*|[a-z0-9!#$&^_.+-]+)/(\*|[a-z0-9!#$&^_.+-]+)\Z", t):
            raise ValueError("not a media type pattern: %r" % t)
    return types


def matches_media_type(content_type: Optional[str], patterns: Sequence[str]) -> bool:
    kind = media_type(content_type)
    if not kind:
        return False
    major, _, minor = kind.partition("/")
    for pattern in patterns:
        p_major, _, p_minor = pattern.partition("/")
        if p_major in ("*", major) and p_minor in ("*", minor):
            return True
    return False


def _last(fields: Sequence[Tuple[str, str]], name: str) -> Optional[str]:
    found = None
    for key, value in fields:
        if key.lower() == name:
            found = value
    return found


def request_time(now: float) -> str:
    """``12/Mar/2020:19:03:58 +0000``: the ``time`` / ``requestTime`` of a request context."""
    t = time.gmtime(now)
    return "%02d/%s/%d:%02d:%02d:%02d +0000" % (t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)


def api_id(function: str, length: int = 10) -> str:
    """A stable, made-up API (or URL) id for a function: the same on every run."""
    return hashlib.sha256(function.encode("utf-8")).hexdigest()[:length]


class Context(NamedTuple):
    """What the front decides about a request besides the request itself."""

    function: str
    request_id: str
    trace_id: str  # the ``Root=...`` part goes into X-Amzn-Trace-Id
    now: float
    stage: str
    binary_media_types: Sequence[str] = ()


def short_id(request_id: str) -> str:
    """API Gateway's short request id (``JKJaXmPLvHcESHA=``): 11 bytes of ``request_id`` in base64."""
    return base64.b64encode(bytes.fromhex(request_id.replace("-", "")[:22])).decode("ascii")


def new_context(function: str, trace_id: str, stage: str, binary_media_types: Sequence[str] = (), now: Optional[float] = None) -> Context:
    return Context(function, str(uuid.uuid4()), trace_id, time.time() if now is None else now, stage, binary_media_types)


def _forwarded(req: WebRequest, ctx: Context) -> List[Tuple[str, str]]:
    """The header lines the integration adds: X-Forwarded-For (appended to the client's),
    -Port, -Proto, and the X-Ray trace header when the client sent none."""
    fields = [(k, v) for k, v in req.fields if k.lower() not in ("x-forwarded-for", "x-forwarded-port", "x-forwarded-proto")]
    sent_for = _last(req.fields, "x-forwarded-for")
    fields.append(("X-Forwarded-For", "%s, %s" % (sent_for, req.source_ip) if sent_for else req.source_ip))
    fields.append(("X-Forwarded-Port", str(req.port)))
    fields.append(("X-Forwarded-Proto", "http"))
    if _last(req.fields, "x-amzn-trace-id") is None:
        fields.append(("X-Amzn-Trace-Id", ctx.trace_id.split(";", 1)[0]))
    return fields


def _body_field(body: bytes, base64_it: bool) -> Tuple[str, bool]:
    if base64_it:
        return base64.b64encode(body).decode("ascii"), True
    return body.decode("utf-8", "replace"), False


def build_event(integration: Integration, req: WebRequest, match: Match, ctx: Context) -> Dict[str, Any]:
    """The event ``integration`` sends the function for ``req``."""
    if integration.payload == "2.0":
        return _event_v2(integration, req, match, ctx)
    if integration.payload == "1.0":
        return _event_rest(req, match, ctx)
    return _event_alb(integration, req, ctx)


def _event_v2(integration: Integration, req: WebRequest, match: Match, ctx: Context) -> Dict[str, Any]:
    url = integration.name == "url"
    headers: Dict[str, str] = {}
    cookies: List[str] = []
    for name, value in _forwarded(req, ctx):
        key = name.lower()
        if key == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
            if not url:  # an HTTP API takes the header out; a function URL keeps it as well
                continue
        headers[key] = headers[key] + "," + value if key in headers else value
    query: Dict[str, str] = {}
    for key, value in parse_qsl(req.query, keep_blank_values=True):
        query[key] = query[key] + "," + value if key in query else value
    route_key = "$default" if url or match.route is None else match.route.key
    host = headers.get("host", "localhost")
    identifier = api_id(ctx.function, 32 if url else 10)
    event: Dict[str, Any] = {"version": "2.0", "routeKey": route_key, "rawPath": req.path, "rawQueryString": req.query}
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    if query:
        event["queryStringParameters"] = query
    event["requestContext"] = {
        "accountId": ACCOUNT_ID,
        "apiId": identifier,
        "domainName": host,
        "domainPrefix": host.split(":", 1)[0].split(".", 1)[0],
        "http": {
            "method": req.method,
            "path": req.path,
            "protocol": req.protocol,
            "sourceIp": req.source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": ctx.request_id if url else short_id(ctx.request_id),
        "routeKey": route_key,
        "stage": ctx.stage,
        "time": request_time(ctx.now),
        "timeEpoch": int(ctx.now * 1000),
    }
    if req.body:
        event["body"], event["isBase64Encoded"] = _body_field(req.body, not is_text(headers.get("content-type")))
    else:
        event["isBase64Encoded"] = False
    if url:
        event["pathParameters"] = match.params or None
        event["stageVariables"] = None
    elif match.params:
        event["pathParameters"] = match.params
    return event


def _multi(pairs: Sequence[Tuple[str, str]]) -> Dict[str, List[str]]:
    out: Dict[str, List[str]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


def _event_rest(req: WebRequest, match: Match, ctx: Context) -> Dict[str, Any]:
    fields = _forwarded(req, ctx)
    multi_headers = _multi(fields)
    query_pairs = parse_qsl(req.query, keep_blank_values=True)
    multi_query = _multi(query_pairs)
    if match.route is None:  # no --route: one greedy resource, as a catch-all proxy
        resource = "/{proxy+}" if req.path.strip("/") else "/"
        params: Optional[Dict[str, str]] = {"proxy": unquote(req.path.lstrip("/"))} if req.path.strip("/") else None
    else:
        resource = match.route.template if match.route.template != "$default" else "/{proxy+}"
        params = match.params or None
    content_type = _last(fields, "content-type")
    body: Optional[str] = None
    encoded = False
    if req.body:
        body, encoded = _body_field(req.body, matches_media_type(content_type, ctx.binary_media_types))
    user_agent = _last(fields, "user-agent")
    return {
        "resource": resource,
        "path": req.path,
        "httpMethod": req.method,
        "headers": {k: v[-1] for k, v in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": params,
        "stageVariables": None,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": api_id(ctx.function),
            "domainName": _last(fields, "host") or "localhost",
            "domainPrefix": (_last(fields, "host") or "localhost").split(":", 1)[0].split(".", 1)[0],
            "extendedRequestId": short_id(ctx.request_id),
            "httpMethod": req.method,
            "identity": {
                "accessKey": None,
                "accountId": None,
                "caller": None,
                "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None,
                "cognitoIdentityId": None,
                "cognitoIdentityPoolId": None,
                "principalOrgId": None,
                "sourceIp": req.source_ip,
                "user": None,
                "userAgent": user_agent,
                "userArn": None,
            },
            "path": "/" + ctx.stage + req.path,
            "protocol": req.protocol,
            "requestId": ctx.request_id,
            "requestTime": request_time(ctx.now),
            "requestTimeEpoch": int(ctx.now * 1000),
            "resourceId": api_id(resource, 6),
            "resourcePath": resource,
            "stage": ctx.stage,
        },
        "body": body,
        "isBase64Encoded": encoded,
    }


def _raw_query(query: str) -> List[Tuple[str, str]]:
    """ALB passes query parameters as sent: not percent-decoded."""
    pairs = []
    for part in query.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((key, value))
    return pairs


def _event_alb(integration: Integration, req: WebRequest, ctx: Context) -> Dict[str, Any]:
    fields = [(k.lower(), v) for k, v in _forwarded(req, ctx)]
    event: Dict[str, Any] = {
        "requestContext": {
            "elb": {
                "targetGroupArn": "arn:aws:elasticloadbalancing:%s:%s:targetgroup/%s/%s"
                % (REGION, ACCOUNT_ID, ctx.function[:32], api_id(ctx.function, 16))
            }
        },
        "httpMethod": req.method,
        "path": req.path,
    }
    pairs = _raw_query(req.query)
    if integration.multi_value:
        event["multiValueQueryStringParameters"] = _multi(pairs)
        event["multiValueHeaders"] = _multi(fields)
    else:
        event["queryStringParameters"] = dict(pairs)  # (a repeated key: the last value)
        event["headers"] = dict(fields)
    event["body"], event["isBase64Encoded"] = _body_field(req.body, bool(req.body) and not is_text(_last(fields, "content-type")))
    return event


def request_limit(integration: Integration, max_payload: int) -> int:
    """The largest request body the integration takes (the event, base64 and all, must also
    fit in one Lambda payload)."""
    return ALB_LIMIT if integration.payload == "alb" else max_payload


def too_large(integration: Integration) -> WebResponse:
    """The integration's answer to a request over its size limit."""
    if integration.payload == "alb":
        return WebResponse(413, [("Content-Type", "text/html")], (_ALB_PAGE % (413, "Request Entity Too Large", 413, "Request Entity Too Large")).encode())
    if integration.name == "url":
        return WebResponse(413, [("Content-Type", "text/plain; charset=utf-8")], b"Request Entity Too Large")
    return WebResponse(413, [("Content-Type", "application/json")], b'{"message":"Request Entity Too Large"}')


def not_found(integration: Integration) -> WebResponse:
    """No route matched (API Gateway's answer; the ALB's default 404 page)."""
    if integration.payload == "alb":
        return WebResponse(404, [("Content-Type", "text/html")], (_ALB_PAGE % (404, "Not Found", 404, "Not Found")).encode())
    return WebResponse(404, [("Content-Type", "application/json")], b'{"message":"Not Found"}')


def failed(integration: Integration) -> WebResponse:
    """A function error, a timeout, or a result the integration cannot use."""
    return WebResponse(integration.error_status, [("Content-Type", integration.error_type)], integration.error_body)


def refused(integration: Integration, status: int) -> WebResponse:
    """Lambda refused the invoke (``status``: 429 throttled, 5xx failed)."""
    if status == 429 and integration.name in ("url", "http-api"):
        return WebResponse(429, [("Content-Type", "application/json"), ("Retry-After", "1")], b'{"message":"Too Many Requests"}')
    if integration.name == "rest":
        return WebResponse(500, [("Content-Type", "application/json")], b'{"message": "Internal server error"}')
    if integration.payload == "alb" and status == 429:
        return WebResponse(503, [("Content-Type", "text/html")], (_ALB_PAGE % (503, "Service Temporarily Unavailable", 503, "Service Temporarily Unavailable")).encode())
    return failed(integration)


# --------------------------------------------------------------------------- results


def _header_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = json.dumps(value)
    elif isinstance(value, str):
        text = value
    else:
        raise BadResult("header %s has a %s value, not a string" % (ascii(name), type(value).__name__))
    if "\r" in text or "\n" in text or "\0" in text:
        raise BadResult("header %s contains CR, LF or NUL: %s" % (ascii(name), ascii(text[:80])))
    return text


def _header_name(name: Any) -> str:
    if not isinstance(name, str) or not _TOKEN.match(name):
        raise BadResult("invalid header name %s" % ascii(name)[:80])
    return name


def _headers_of(obj: Mapping[str, Any], single: bool, multi: bool) -> List[Tuple[str, str]]:
    """``headers`` and/or ``multiValueHeaders`` as header lines; a name in both takes the
    multi-value ones (API Gateway's merge rule). Framing headers are dropped."""
    lines: List[Tuple[str, str]] = []
    multi_names = set()
    raw_multi = obj.get("multiValueHeaders") if multi else None
    if raw_multi is not None:
        if not isinstance(raw_multi, dict):
            raise BadResult("multiValueHeaders is a %s, not an object" % type(raw_multi).__name__)
        for name, values in raw_multi.items():
            name = _header_name(name)
            if not isinstance(values, list):
                raise BadResult("multiValueHeaders[%s] is a %s, not a list" % (ascii(name), type(values).__name__))
            multi_names.add(name.lower())
            lines += [(name, _header_value(name, v)) for v in values]
    raw = obj.get("headers") if single else None
    if raw is not None:
        if not isinstance(raw, dict):
            raise BadResult("headers is a %s, not an object" % type(raw).__name__)
        for name, value in raw.items():
            name = _header_name(name)
            if name.lower() not in multi_names:
                lines.append((name, _header_value(name, value)))
    return [(k, v) for k, v in lines if k.lower() not in _FRAMING]


def _status(obj: Mapping[str, Any]) -> int:
    status = obj.get("statusCode")
    if type(status) is not int:
        raise BadResult("statusCode is %s (a %s), not an integer" % (ascii(status)[:40], type(status).__name__))
    if not 200 <= status <= 599:
        raise BadResult("statusCode %d is not a final HTTP status (200-599)" % status)
    return status


def _body_of(obj: Mapping[str, Any]) -> Tuple[bytes, bool]:
    body = obj.get("body")
    encoded = obj.get("isBase64Encoded", False)
    if not isinstance(encoded, bool):
        raise BadResult("isBase64Encoded is %s, not true or false" % ascii(encoded)[:40])
    if body is None:
        return b"", encoded
    if not isinstance(body, str):
        raise BadResult("body is a %s, not a string (json.dumps it)" % type(body).__name__)
    if encoded:
        try:
            return base64.b64decode(body, validate=True), True
        except (binascii.Error, ValueError):
            raise BadResult("isBase64Encoded is true but body is not valid base64") from None
    return body.encode("utf-8", "surrogatepass"), False


def _cookies(obj: Mapping[str, Any]) -> List[Tuple[str, str]]:
    cookies = obj.get("cookies")
    if cookies is None:
        return []
    if not isinstance(cookies, list):
        raise BadResult("cookies is a %s, not a list of strings" % type(cookies).__name__)
    lines = []
    for cookie in cookies:
        if not isinstance(cookie, str):
            raise BadResult("a cookie is a %s, not a string" % type(cookie).__name__)
        lines.append(("Set-Cookie", _header_value("Set-Cookie", cookie)))
    return lines


def parse_result(
    integration: Integration, payload: bytes, content_type: str = "application/json", accept: Optional[str] = None,
    binary_media_types: Sequence[str] = (),
) -> WebResponse:
    """The HTTP answer for a function's (successful) result; BadResult when the integration
    would refuse it (the caller answers :func:`failed`)."""
    if media_type(content_type) == HTTP_INTEGRATION_RESPONSE:  # a streaming handler, invoked buffered
        head, sep, rest = payload.partition(PRELUDE_DELIMITER)
        if not sep:
            raise BadResult("an HTTP integration response without the 8-NUL delimiter after its prelude")
        status, headers = parse_prelude(head)
        return WebResponse(status, headers, rest)
    if integration.payload == "alb" and len(payload) > ALB_LIMIT:
        raise BadResult("the result is %d bytes, over the ALB's 1 MB limit" % len(payload))
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError):
        raise BadResult("the result is not JSON (%d bytes, %s)" % (len(payload), ascii(payload[:40]))) from None
    if integration.payload == "2.0":
        if not isinstance(obj, dict) or "statusCode" not in obj:
            # payload 2.0's inferred response: 200, JSON, the result as the body (a string
            # result is the body itself)
            text = obj if isinstance(obj, str) else payload.decode("utf-8", "replace")
            return WebResponse(200, [("Content-Type", "application/json")], text.encode("utf-8", "surrogatepass"))
        status = _status(obj)
        headers = _headers_of(obj, True, False)
        body, _ = _body_of(obj)
        return WebResponse(status, headers + _cookies(obj), body)
    if not isinstance(obj, dict):
        raise BadResult("the result is a JSON %s, not an object with statusCode" % type(obj).__name__)
    if "statusCode" not in obj:
        raise BadResult("the result has no statusCode")
    status = _status(obj)
    if integration.payload == "1.0":
        headers = _headers_of(obj, True, True)
        body, encoded = _body_of(obj)
        if encoded and not _binary_answer(headers, accept, binary_media_types):
            # API Gateway REST turns base64 back into bytes only for its binary media types
            body = obj["body"].encode("ascii")
        return WebResponse(status, headers, body)
    reason = obj.get("statusDescription")
    if reason is not None:
        if not isinstance(reason, str) or "\r" in reason or "\n" in reason or "\0" in reason:
            raise BadResult("statusDescription %s is not a one-line string" % ascii(reason)[:60])
        code, _, phrase = reason.partition(" ")
        reason = phrase if code == str(status) else reason
    multi = integration.multi_value and obj.get("multiValueHeaders") is not None
    headers = _headers_of(obj, not multi, multi)
    body, _ = _body_of(obj)
    return WebResponse(status, headers, body, reason or None)


def _binary_answer(headers: Sequence[Tuple[str, str]], accept: Optional[str], patterns: Sequence[str]) -> bool:
    """REST, Lambda proxy: a base64 body is decoded only when the request's Accept (its FIRST
    type) is one of the API's binary media types, whatever the answer's Content-Type: API
    Gateway's documented rule (a browser page load, ``Accept: text/html,...``, gets the base64
    text unless the types include ``*/*``, which AWS advises for browsers)."""
    first_accept = (accept or "*/*").split(",", 1)[0]  # (no Accept: anything, which only */* covers)
    return matches_media_type(first_accept, patterns)


def parse_prelude(data: bytes) -> Tuple[int, List[Tuple[str, str]]]:
    """Status and header lines from a streamed HTTP integration response's JSON prelude
    (``statusCode`` default 200, ``headers``, ``cookies``); BadResult when unusable."""
    try:
        obj = json.loads(data) if data.strip() else {}
    except (ValueError, RecursionError):
        raise BadResult("the stream's prelude is not JSON (%s)" % ascii(data[:40])) from None
    if not isinstance(obj, dict):
        raise BadResult("the stream's prelude is a JSON %s, not an object" % type(obj).__name__)
    status = _status(obj) if "statusCode" in obj else 200
    return status, _headers_of(obj, True, False) + _cookies(obj)


def error_detail(outcome_body: bytes) -> str:
    """``errorType: errorMessage`` of a function error, for the console."""
    try:
        obj = json.loads(outcome_body)
        return "%s: %s" % (obj.get("errorType", "Unhandled"), str(obj.get("errorMessage", ""))[:200])
    except Exception:
        return outcome_body[:200].decode("utf-8", "replace")
