"""The HTTP front: a plain HTTP server on its own loopback port in front of the emulator.

``python -m lambdaric app.handler --http 127.0.0.1:8000`` and ``curl
http://127.0.0.1:8000/hello``: each request becomes the event of the chosen integration (a
function URL by default, an API Gateway HTTP or REST API, an ALB), is invoked through
:meth:`.server.Emulator.invoke` like any other invoke (same runtimes, same console, same
``--watch``), and the function's result becomes the HTTP answer that integration would give.
With ``--invoke-mode RESPONSE_STREAM`` a streaming handler's body goes to the client as it
is written. The mapping is :mod:`.web_events` (pure); this module is the IO around it.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from http import HTTPStatus
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Set, Tuple

from .. import protocol
from . import http, web_events
from .invocation import Invocation, Outcome, new_trace_id
from .invoke_api import Refused
from .web_events import BadResult, Integration, Route, WebRequest, WebResponse

if TYPE_CHECKING:  # pragma: no cover
    from .server import Emulator

#: Seconds a connection may sit without a complete request head (idle keep-alive included),
#: and a body may take to arrive; then 408 and the connection is closed.
HEAD_TIMEOUT = float(os.environ.get("LAMBDARIC_HTTP_TIMEOUT", "60") or 60)
#: A declared body this far over the limit is refused at once (413, connection closed)
#: instead of being read and dropped.
DRAIN_LIMIT = 64 * 1024 * 1024
URL_PREFIX = "/lambda-url/"
INVOKE_MODES = ("BUFFERED", "RESPONSE_STREAM")


class FrontError(Exception):
    """The front cannot start: the message says why (one line)."""


# --------------------------------------------------------------------------- CLI


def _address(value: str) -> Tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "", value
    if not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise argparse.ArgumentTypeError("--http must be HOST:PORT (port 0: any free port), not %r" % value)
    return host.strip("[]") or "127.0.0.1", int(port)


def _route(value: str) -> Route:
    try:
        return web_events.parse_route(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _media_types(value: str) -> List[str]:
    try:
        return web_events.parse_media_types(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The HTTP front's options (see docs/http-front.md)."""
    group = parser.add_argument_group("HTTP front", "serve the function as a web app on a port of its own")
    group.add_argument(
        "--http", metavar="HOST:PORT", type=_address, default=os.environ.get("LAMBDARIC_HTTP") or None,
        help="turn plain HTTP requests on HOST:PORT into events of --integration (env LAMBDARIC_HTTP; "
        "port 0: any free port; use 0.0.0.0 only if you mean to expose it)",
    )
    group.add_argument(
        "--integration", choices=sorted(web_events.INTEGRATIONS), default=os.environ.get("LAMBDARIC_INTEGRATION") or "url",
        help="what the requests look like to the function: url (function URL, payload 2.0), http-api (API Gateway "
        "HTTP API, payload 2.0), rest (API Gateway REST API, payload 1.0), alb / alb-multi (ALB, multi-value "
        "headers off / on); default %(default)s",
    )
    group.add_argument(
        "--invoke-mode", choices=INVOKE_MODES, default=os.environ.get("LAMBDARIC_INVOKE_MODE") or "BUFFERED",
        help="a function URL's invoke mode: RESPONSE_STREAM sends a streaming handler's body as it is written",
    )
    group.add_argument(
        "--route", metavar="'METHOD /path/{param}/{proxy+}[=FUNCTION]'", type=_route, action="append", default=[],
        help="a route (repeatable; METHOD may be ANY; '$default' catches the rest): gives pathParameters and "
        "routeKey/resource; requests no route matches get 404. Without routes every request goes to the function",
    )
    group.add_argument(
        "--binary-media-types", metavar="TYPES", type=_media_types, default=[],
        help="REST API binary media types, comma-separated (e.g. 'image/*,application/octet-stream'): "
        "request bodies of these types are base64-encoded, and base64 answers decoded",
    )
    group.add_argument("--stage", default=None, help="stage name (default: $default; 'local' for --integration rest)")


# --------------------------------------------------------------------------- the server


def _reason(status: int, reason: Optional[str]) -> str:
    if reason:
        return reason
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def response_head(
    status: int, reason: Optional[str], headers: Sequence[Tuple[str, str]], length: Optional[int], chunked: bool = False
) -> bytes:
    """Status line and headers (UTF-8 values: a function may send any text; ``Date`` added);
    then ``Content-Length: length``, or chunked framing, or neither (``length`` None: a 204 or
    304, which have no body)."""
    lines = ["HTTP/1.1 %d %s\r\n" % (status, _reason(status, reason))]
    if not any(k.lower() == "date" for k, _ in headers):
        lines.append("Date: %s\r\n" % http.http_date())
    lines += ["%s: %s\r\n" % (name, value) for name, value in headers]
    if chunked:
        lines.append("Transfer-Encoding: chunked\r\n")
    elif length is not None:
        lines.append("Content-Length: %d\r\n" % length)
    lines.append("\r\n")
    return "".join(lines).encode("utf-8", "replace")


def _printable(text: str, limit: int = 200) -> str:
    """``text`` for a console line: control characters escaped (no terminal escapes or fake
    lines from a request target), cut at ``limit``."""
    out = "".join(c if " " <= c < "\x7f" or c > "\x9f" else "\\x%02x" % ord(c) for c in text[:limit])
    return out + ("..." if len(text) > limit else "")


class Exchange:
    """One request's facts for its access-log line."""

    __slots__ = ("started", "source", "method", "target", "status", "size", "function", "request_id", "note")

    def __init__(self, source: str, method: str, target: str) -> None:
        self.started = time.monotonic()
        self.source = source
        self.method = method
        self.target = target
        self.status = 0
        self.size = 0
        self.function = ""
        self.request_id = ""
        self.note = ""

    def line(self) -> bytes:
        ms = (time.monotonic() - self.started) * 1000.0
        who = ""
        if self.function:
            who = " (function: %s" % self.function + (", RequestId: %s)" % self.request_id if self.request_id else ")")
        note = ": %s" % _printable(self.note, 300) if self.note else ""
        return ("lambdaric: %s \"%s %s\" %d %d B %.1f ms%s%s\n" % (
            self.source, _printable(self.method, 20), _printable(self.target), self.status, self.size, ms, who, note)).encode("utf-8", "replace")


class Front:
    """The HTTP server (see the module docstring)."""

    def __init__(
        self,
        emulator: "Emulator",
        say: Callable[[bytes], None],
        integration: Integration,
        routes: Sequence[Route] = (),
        invoke_mode: str = "BUFFERED",
        binary_media_types: Sequence[str] = (),
        stage: Optional[str] = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.emulator = emulator
        self.say = say
        self.integration = integration
        self.routes = list(routes)
        self.streaming = invoke_mode == "RESPONSE_STREAM"
        self.binary_media_types = list(binary_media_types)
        self.stage = stage or ("local" if integration.name == "rest" else "$default")
        self.host = host
        self.port = port
        self.server: Optional[asyncio.base_events.Server] = None
        self.tasks: Set["asyncio.Task[Outcome]"] = set()
        self.limit = web_events.request_limit(integration, protocol.MAX_PAYLOAD)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._on_connection, self.host, self.port, limit=protocol.MAX_HEAD)

    @property
    def address(self) -> Tuple[str, int]:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[:2]

    def describe(self) -> str:
        parts = [self.integration.description]
        if self.integration.name == "url":
            parts.append("RESPONSE_STREAM" if self.streaming else "BUFFERED")
        parts.append("%d route%s" % (len(self.routes), "" if len(self.routes) == 1 else "s") if self.routes else "every path")
        parts.append("function %s" % self.default_function)
        return ", ".join(parts)

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.tasks):
            task.cancel()

    # ------------------------------------------------------------------ functions

    @property
    def default_function(self) -> str:
        return self.functions()[0]

    def functions(self) -> List[str]:
        """The emulator's function names, the default (first) first."""
        names = getattr(self.emulator, "function_names", None)  # (several functions: the emulator lists them)
        if callable(names):
            listed = [str(n) for n in names()]
            if listed:
                return listed
        return [str(getattr(self.emulator.settings, "function_name", "function"))]

    def arn(self, name: str) -> str:
        arn = getattr(self.emulator, "arn", None)
        if callable(arn):
            return str(arn(name))
        return str(getattr(self.emulator.settings, "arn")(name, None))

    def timeout(self) -> float:
        """The invoke's timeout (the emulator applies the function's own when it knows it)."""
        return float(getattr(self.emulator.settings, "timeout", 300.0))

    # ------------------------------------------------------------------ connections

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        source = str(peer[0]) if isinstance(peer, tuple) and peer else "127.0.0.1"
        try:
            while True:
                try:
                    req = await asyncio.wait_for(http.read_request(reader, self.limit), HEAD_TIMEOUT)
                except asyncio.TimeoutError:
                    if not getattr(reader, "_buffer", b"x"):  # an idle keep-alive connection: closed quietly
                        return
                    ex = Exchange(source, "-", "-")
                    ex.status, ex.note = 408, "no complete request head within %g s" % HEAD_TIMEOUT
                    ex.size = await self._plain(writer, 408, ex.note, close=True)
                    self.say(ex.line())
                    return
                except http.BadRequest as exc:
                    ex = Exchange(source, "-", "-")
                    ex.status, ex.note = exc.status, str(exc)
                    ex.size = await self._plain(writer, exc.status, str(exc), close=True)
                    self.say(ex.line())
                    return
                if req is None:
                    return
                if not await self._exchange(req, writer, source):
                    return
                if not req.body_reader.done:
                    await asyncio.wait_for(req.body_reader.drain(), HEAD_TIMEOUT)
        except (ConnectionError, asyncio.IncompleteReadError, http.BadRequest, asyncio.TimeoutError):
            pass
        except asyncio.CancelledError:  # the front is closing
            pass
        finally:
            try:
                writer.close()
            except Exception:  # pragma: no cover
                pass

    async def _plain(self, writer: asyncio.StreamWriter, status: int, message: str, close: bool = False) -> int:
        """The front's own answer to a request it could not take (not the function's)."""
        body = json.dumps({"message": _reason(status, None), "detail": message}).encode()
        headers = [("Content-Type", "application/json")] + ([("Connection", "close")] if close else [])
        writer.write(response_head(status, None, headers, len(body)) + body)
        await writer.drain()
        return len(body)

    async def _send(self, writer: asyncio.StreamWriter, res: WebResponse, head_only: bool, close: bool) -> int:
        headers = list(res.headers) + ([("Connection", "close")] if close else [])
        bodiless = res.status in (204, 304) or res.status < 200
        body = b"" if head_only or bodiless else res.body
        writer.write(response_head(res.status, res.reason, headers, None if bodiless else len(res.body)) + body)
        await writer.drain()
        return len(body)

    def _keep_alive(self, req: http.Request) -> bool:
        connection = (req.header("connection") or "").lower()
        if req.version == "HTTP/1.0":
            return "keep-alive" in connection
        return "close" not in connection

    # ------------------------------------------------------------------ one request

    def _pick(self, path: str) -> Tuple[Optional[str], str]:
        """(function named by a ``/lambda-url/NAME`` prefix, the path without it)."""
        if path.startswith(URL_PREFIX):
            name, _, rest = path[len(URL_PREFIX):].partition("/")
            return name, "/" + rest
        if path == URL_PREFIX.rstrip("/"):
            return "", "/"
        return None, path

    async def _exchange(self, req: http.Request, writer: asyncio.StreamWriter, source: str) -> bool:
        """Answer one request; False when the connection must close."""
        ex = Exchange(source, req.method, req.target)
        keep = self._keep_alive(req)
        head_only = req.method == "HEAD"
        try:
            res, keep = await self._answer(req, writer, ex, keep)
            if res is not None:
                ex.status = res.status
                if req.version == "HTTP/1.0" and keep:
                    res = res._replace(headers=list(res.headers) + [("Connection", "keep-alive")])
                ex.size = await self._send(writer, res, head_only, not keep)
        except ConnectionError:
            ex.note = (ex.note + "; " if ex.note else "") + "the client closed the connection"
            ex.status = ex.status or 499
            raise
        finally:
            if ex.status:
                self.say(ex.line())
        return keep

    async def _answer(self, req: http.Request, writer: asyncio.StreamWriter, ex: Exchange, keep: bool) -> Tuple[Optional[WebResponse], bool]:
        """The answer to send (None: sent already, streamed) and whether to keep the connection."""
        integration = self.integration
        if not req.path.startswith("/"):
            scheme, sep, rest = req.path.partition("://")
            if not sep or scheme.lower() not in ("http", "https"):
                ex.note = "the request target is not a path"
                return WebResponse(400, [("Content-Type", "application/json")], b'{"message":"Bad Request"}'), False
            req.path = "/" + rest.partition("/")[2]  # absolute form (a proxy's request): its path
        named, path = self._pick(req.path)
        functions = self.functions()
        if named is not None and named not in functions:
            ex.note = "no function %r (functions: %s)" % (named, ", ".join(functions))
            return web_events.not_found(integration), keep
        match = web_events.match_route(self.routes, req.method, path)
        if match is None:
            ex.note = "no route matches"
            return web_events.not_found(integration), keep
        function = named or (match.route.function if match.route is not None else None) or self.default_function
        ex.function = function
        if function not in functions:
            ex.note = "the route names function %r, which the emulator does not serve (functions: %s)" % (function, ", ".join(functions))
            return web_events.failed(integration), keep
        declared = req.header("content-length")
        if declared is not None and declared.isdigit() and int(declared) > DRAIN_LIMIT:
            ex.note = "request body of %s bytes" % declared
            return web_events.too_large(integration), False
        if (req.header("expect") or "").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            body = await asyncio.wait_for(req.body_reader.read(), HEAD_TIMEOUT)
        except http.BadRequest as exc:
            ex.note = str(exc)
            return WebResponse(exc.status, [("Content-Type", "application/json")], json.dumps({"message": str(exc)}).encode()), False
        except asyncio.TimeoutError:
            ex.note = "the body did not arrive within %g s" % HEAD_TIMEOUT
            return WebResponse(408, [("Content-Type", "application/json")], b'{"message":"Request Timeout"}'), False
        if req.body_reader.too_large:
            ex.note = "request body of %d bytes, over the %d-byte limit" % (req.body_reader.size, self.limit)
            return web_events.too_large(integration), keep
        query = req.query
        port = self.address[1]
        web_req = WebRequest(req.method, path, query, req.fields, body, ex.source, req.version, port)
        trace = req.header("x-amzn-trace-id") or new_trace_id()
        ctx = web_events.new_context(function, trace, self.stage, self.binary_media_types)
        event = web_events.build_event(integration, web_req, match, ctx)
        payload = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
        if len(payload) > protocol.MAX_PAYLOAD:
            ex.note = "the event is %d bytes, over Lambda's %d-byte payload limit" % (len(payload), protocol.MAX_PAYLOAD)
            return web_events.too_large(integration), keep
        inv = Invocation(payload, function_arn=self.arn(function), timeout=self.timeout(), trace_id=trace,
                         streaming=self.streaming)
        # a header the front made (the caller sent none): under --xray-sampled the emulator samples it
        inv.trace_made = not req.header("x-amzn-trace-id")
        ex.request_id = inv.request_id
        if self.streaming:
            return await self._stream(inv, function, req, writer, ex, keep)
        try:
            outcome = await self.emulator.invoke(function, inv)
        except Refused as exc:
            ex.note = "%s: %s" % (exc.error_type, exc.message)
            return web_events.refused(integration, exc.status), keep
        return self._result(outcome, req, ex), keep

    def _result(self, outcome: Outcome, req: http.Request, ex: Exchange) -> WebResponse:
        integration = self.integration
        if outcome.failed:
            ex.note = web_events.error_detail(outcome.body)
            return web_events.failed(integration)
        try:
            res = web_events.parse_result(integration, outcome.body, outcome.content_type, req.header("accept"), self.binary_media_types)
        except BadResult as exc:
            ex.note = "%s answers %d: %s" % (integration.description.split(",")[0], integration.error_status, exc)
            return web_events.failed(integration)
        return self._with_ids(res, ex)

    def _with_ids(self, res: WebResponse, ex: Exchange) -> WebResponse:
        """The request id header the service adds (unless the function set it)."""
        name = {"url": "X-Amzn-RequestId", "rest": "X-Amzn-RequestId", "http-api": "Apigw-Requestid"}.get(self.integration.name)
        if name is None or any(k.lower() == name.lower() for k, _ in res.headers):
            return res
        return res._replace(headers=list(res.headers) + [(name, ex.request_id)])

    # ------------------------------------------------------------------ streaming

    async def _stream(
        self, inv: Invocation, function: str, req: http.Request, writer: asyncio.StreamWriter, ex: Exchange, keep: bool
    ) -> Tuple[Optional[WebResponse], bool]:
        """A function URL in RESPONSE_STREAM mode: the status and headers from the prelude,
        then the body as it arrives (chunked)."""
        task = asyncio.ensure_future(self.emulator.invoke(function, inv))
        self.tasks.add(task)
        task.add_done_callback(self._forget)
        try:
            first = asyncio.ensure_future(inv.chunks.get())
            await asyncio.wait({task, first}, return_when=asyncio.FIRST_COMPLETED)
            if task.done() and isinstance(task.exception(), Refused):
                first.cancel()
                exc = task.exception()
                assert isinstance(exc, Refused)
                ex.note = "%s: %s" % (exc.error_type, exc.message)
                return web_events.refused(self.integration, exc.status), keep
            data = await first
            if data is None:  # nothing streamed: a failure, or a buffered handler's result
                outcome = await task
                if outcome.failed or web_events.media_type(outcome.content_type) == web_events.HTTP_INTEGRATION_RESPONSE:
                    return self._result(outcome, req, ex), keep
                # a response-stream URL forwards a buffered result as it is: no statusCode
                # interpretation (docs/http-front.md)
                return self._with_ids(WebResponse(200, [("Content-Type", outcome.content_type)], outcome.body), ex), keep
            status, headers = 200, [("Content-Type", inv.stream_content_type)]
            if web_events.media_type(inv.stream_content_type) == web_events.HTTP_INTEGRATION_RESPONSE:
                prelude = data
                while web_events.PRELUDE_DELIMITER not in prelude and len(prelude) <= web_events.MAX_PRELUDE:
                    more = await inv.chunks.get()
                    if more is None:
                        break
                    prelude += more
                head, sep, data = prelude.partition(web_events.PRELUDE_DELIMITER)
                try:
                    if not sep:
                        raise BadResult("no 8-NUL delimiter within the first %d bytes of the stream" % web_events.MAX_PRELUDE)
                    status, headers = web_events.parse_prelude(head)
                except BadResult as exc:
                    outcome = await task
                    if outcome.failed:
                        ex.note = web_events.error_detail(outcome.body)
                    else:
                        ex.note = "function URL answers 502: %s" % exc
                    return web_events.failed(self.integration), keep
            res = self._with_ids(WebResponse(status, headers, b""), ex)
            ex.status = status
            bodiless = req.method == "HEAD" or status in (204, 304) or status < 200
            lines = list(res.headers) + ([] if keep else [("Connection", "close")])
            writer.write(response_head(status, None, lines, None, chunked=not bodiless))
            while data is not None:
                if data and not bodiless:
                    writer.write(http.chunk(data))
                    ex.size += len(data)
                await writer.drain()  # (the next piece is taken when the client has this one)
                data = await inv.chunks.get()
            outcome = await task
            if outcome.failed:  # after the head was sent: the body is cut short, as on Lambda
                ex.note = "stream ended by an error: %s" % web_events.error_detail(outcome.body)
                return None, False
            if not bodiless:
                writer.write(b"0\r\n\r\n")
            await writer.drain()
            return None, keep
        finally:
            inv.chunks.abandon()

    def _forget(self, task: "asyncio.Task[Outcome]") -> None:
        self.tasks.discard(task)
        if not task.cancelled():
            task.exception()  # (taken: a refusal is answered, never a "never retrieved" traceback)


async def start_front(args: argparse.Namespace, emulator: "Emulator", say: Callable[[bytes], None]) -> Optional[Front]:
    """Start the front ``args`` asks for (None without ``--http``) and say where it is in one
    line; FrontError when it cannot."""
    if not getattr(args, "http", None):
        return None
    host, port = args.http
    integration = web_events.INTEGRATIONS[args.integration]
    if args.invoke_mode == "RESPONSE_STREAM" and integration.name != "url":
        raise FrontError("--invoke-mode RESPONSE_STREAM is for --integration url (function URLs), not %s" % integration.name)
    if args.binary_media_types and integration.name != "rest":
        raise FrontError("--binary-media-types is for --integration rest (the other integrations base64 every non-text body)")
    front = Front(emulator, say, integration, args.route, args.invoke_mode, args.binary_media_types, args.stage, host, port)
    unknown = sorted({r.function for r in front.routes if r.function and r.function not in front.functions()})
    if unknown:
        raise FrontError("--route names %s, not a function the emulator serves (%s)" % (", ".join(unknown), ", ".join(front.functions())))
    try:
        await front.start()
    except OSError as exc:
        raise FrontError("cannot listen on %s:%d for --http: %s" % (host, port, exc.strerror or exc)) from None
    bound_host, bound_port = front.address
    shown = "[%s]" % bound_host if ":" in bound_host else bound_host
    say(("lambdaric: HTTP front on http://%s:%d/ (%s)\n" % (shown, bound_port, front.describe())).encode())
    return front
