"""A scripted, recording AWS Lambda Runtime API for tests.

``RuntimeAPI`` is a small HTTP/1.1 server on 127.0.0.1 (ephemeral port) that plays the Lambda
Runtime API (base path ``/2018-06-01``) for a runtime process under test, and records every request it
receives byte-exact. It is written on raw sockets (no ``http.server``) so that tests control and see every
byte: header order and case, chunked framing, trailers, keep-alive.

Everything is bounded: each blocking call polls with a short timeout, and the server shuts itself down when
closed or after ``lifetime`` seconds (60 by default), whichever comes first.

Typical use::

    from runtime_api import Event, Reply, RuntimeAPI, run_runtime

    with RuntimeAPI(events=[Event(b'{"x": 1}', request_id="r1")]) as api:
        ...  # start a runtime with AWS_LAMBDA_RUNTIME_API=api.address
        (post,) = api.wait_for_posts(1, timeout=10)
        assert post.path == "/2018-06-01/runtime/invocation/r1/response"

    result = run_runtime({"app.py": "def handler(e, c):\\n    return e\\n"}, "app.handler",
                         [Event(b'{"x": 1}')], expect_posts=1)
    assert result.posts[0].body == b'{"x": 1}'
"""
from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

BASE = "/2018-06-01"
NEXT_PATH = BASE + "/runtime/invocation/next"
RESTORE_NEXT_PATH = BASE + "/runtime/restore/next"
INIT_ERROR_PATH = BASE + "/runtime/init/error"
RESTORE_ERROR_PATH = BASE + "/runtime/restore/error"
# The Extensions API, on the same address (lambdaric registers a no-op extension for SIGTERM).
EXTENSION_REGISTER_PATH = "/2020-01-01/extension/register"
EXTENSION_NEXT_PATH = "/2020-01-01/extension/event/next"
#: The ``Lambda-Extension-Identifier`` the register route answers with.
EXTENSION_ID = "8f2b6c1e-4d3a-4b5c-9e7f-0a1b2c3d4e5f"

DEFAULT_ARN = "arn:aws:lambda:us-east-1:123456789012:function:test-function"

#: Environment given to a runtime started by :func:`run_runtime` (on top of PATH, HOME, PYTHONPATH).
TEST_ENV: Dict[str, str] = {
    "AWS_LAMBDA_FUNCTION_NAME": "test-function",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/test-function",
    "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "LANG": "C.UTF-8",
}

_POLL = 0.1  # seconds: how often blocked loops look at the stop flag
_SEND_TIMEOUT = 10.0  # seconds: a single sendall may take at most this long
_MAX_HEAD = 1 << 20  # bytes of request head before the server gives up on a connection
_MAX_BODY = 256 << 20  # bytes of request body (streamed responses may be up to 200 MB)

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------------------------------
# values


@dataclass
class Event:
    """One invocation served on ``GET /runtime/invocation/next``.

    ``headers`` adds or overrides response headers (matched case-insensitively); a value of ``None``
    removes a default header. ``raw`` replaces the whole answer: bytes are sent as they are and the
    connection is then closed; a callable gets the connected socket and may write anything, returning
    True to keep the connection open for further requests (anything else closes it).
    """

    body: bytes = b"{}"
    request_id: str = "req-1"
    headers: Optional[Dict[str, Optional[str]]] = None
    content_type: Optional[str] = "application/json"
    deadline_ms: Optional[int] = None  # None: now + 300000 at the time it is served
    function_arn: Optional[str] = DEFAULT_ARN
    raw: Union[bytes, Callable[[socket.socket], Any], None] = None

    def response_headers(self) -> List[Tuple[str, str]]:
        deadline = self.deadline_ms if self.deadline_ms is not None else int(time.time() * 1000) + 300000
        base: List[Tuple[str, Optional[str]]] = [
            ("Content-Type", self.content_type),
            ("Lambda-Runtime-Aws-Request-Id", self.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(deadline)),
            ("Lambda-Runtime-Invoked-Function-Arn", self.function_arn),
        ]
        extra = dict(self.headers or {})
        out: List[Tuple[str, str]] = []
        for name, value in base:
            for k in list(extra):
                if k.lower() == name.lower():
                    value = extra.pop(k)
            if value is not None:
                out.append((name, value))
        out.extend((k, v) for k, v in extra.items() if v is not None)
        return out


@dataclass
class Reply:
    """A scripted answer. ``body``: bytes, str (UTF-8) or any JSON value (encoded compactly).

    ``raw`` replaces the whole answer like :attr:`Event.raw`. ``close`` closes the connection after
    answering. ``delay`` waits (bounded by the server's lifetime) before answering.
    """

    status: int = 202
    body: Any = None
    headers: Optional[Dict[str, str]] = None
    raw: Union[bytes, Callable[[socket.socket], Any], None] = None
    close: bool = False
    delay: float = 0.0

    def encode_body(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return json.dumps(self.body, separators=(",", ":")).encode("utf-8")


OK_202 = Reply(202, {"status": "OK"})
INVOKE_TIMEOUT_410 = Reply(410, {"errorMessage": "Invoke timeout", "errorType": "InvokeTimeout"})
TOO_LARGE_413 = Reply(
    413,
    {"errorMessage": "Exceeded maximum allowed payload size (6291556 bytes).", "errorType": "RequestEntityTooLarge"},
)
STATE_403 = Reply(
    403, {"errorMessage": "Invalid state transition", "errorType": "InvalidStateTransition"}
)
SERVER_500 = Reply(500, {"errorMessage": "Internal error", "errorType": "ServiceException"})


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Status"


@dataclass
class Request:
    """One request exactly as received. Header names keep their case and order; values are latin-1."""

    method: str
    path: str
    version: str
    headers: List[Tuple[str, str]]
    body: bytes  # chunked transfer-encoding decoded
    raw: bytes  # head + body exactly as received (for chunked: the chunked framing, trailers included)
    raw_head: bytes = b""
    raw_body: bytes = b""  # body bytes as on the wire (chunked framing kept)
    chunked: bool = False
    chunks: List[bytes] = field(default_factory=list)
    chunk_times: List[float] = field(default_factory=list)  # time.monotonic() at each chunk's arrival
    trailers: List[Tuple[str, str]] = field(default_factory=list)
    conn_id: int = 0  # which connection (0, 1, ...) carried it
    index: int = 0  # position in the server's record
    started: float = 0.0  # time.monotonic() when the head was complete
    received_at: float = 0.0  # time.monotonic() when the body was complete
    complete: bool = True  # False when the peer closed mid-body

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        lname = name.lower()
        for k, v in self.headers:
            if k.lower() == lname:
                return v
        return default

    def header_all(self, name: str) -> List[str]:
        lname = name.lower()
        return [v for k, v in self.headers if k.lower() == lname]

    def header_names(self) -> List[str]:
        return [k for k, _ in self.headers]

    def trailer(self, name: str, default: Optional[str] = None) -> Optional[str]:
        lname = name.lower()
        for k, v in self.trailers:
            if k.lower() == lname:
                return v
        return default

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def route(self) -> str:
        """The path without query string and base: e.g. ``/runtime/invocation/r1/response``."""
        p = self.path.split("?", 1)[0]
        return p[len(BASE):] if p.startswith(BASE) else p

    @property
    def kind(self) -> str:
        """next | response | error | init_error | restore_next | restore_error | extension_register |
        extension_next | other."""
        r = self.route
        if r == EXTENSION_REGISTER_PATH:
            return "extension_register"
        if r == EXTENSION_NEXT_PATH:
            return "extension_next"
        if r == "/runtime/invocation/next":
            return "next"
        if r == "/runtime/init/error":
            return "init_error"
        if r == "/runtime/restore/next":
            return "restore_next"
        if r == "/runtime/restore/error":
            return "restore_error"
        m = re.fullmatch(r"/runtime/invocation/([^/]+)/(response|error)", r)
        if m:
            return m.group(2)
        return "other"

    @property
    def request_id(self) -> Optional[str]:
        m = re.fullmatch(r"/runtime/invocation/([^/]+)/(?:response|error)", self.route)
        return m.group(1) if m else None

    def describe(self, limit: int = 2000) -> str:
        raw = self.raw if len(self.raw) <= limit else self.raw[:limit] + b"...(%d bytes)" % len(self.raw)
        return "#%d conn %d%s: %r" % (self.index, self.conn_id, "" if self.complete else " INCOMPLETE", raw)


class _Closed(Exception):
    """The peer closed the connection, or the server is stopping."""


# --------------------------------------------------------------------------------------------------
# the server


class RuntimeAPI:
    """The scripted Runtime API. See the module docstring.

    ``events``: served in order on ``/next`` (``Event``, or bytes / a JSON value as the body of a default
    event with request ids ``req-1``, ``req-2``...). ``after_events``: what ``/next`` does once they ran out:
    ``"hold"`` (default; stay unanswered until the server closes, like a frozen sandbox), ``"close"`` (close
    the connection) or ``"500"`` (answer 500). ``replies``: ``(method, path_regex, Reply)`` scripts, see
    :meth:`script`. ``lifetime``: seconds after which the server stops by itself.
    """

    def __init__(
        self,
        events: Iterable[Any] = (),
        *,
        after_events: str = "hold",
        replies: Iterable[Tuple[str, str, Reply]] = (),
        lifetime: float = 60.0,
        start: bool = True,
    ) -> None:
        if after_events not in ("hold", "close", "500"):
            raise ValueError("after_events must be 'hold', 'close' or '500'")
        self.after_events = after_events
        self.lifetime = lifetime
        self._cond = threading.Condition()
        self._events: List[Event] = []
        self._scripts: List[List[Any]] = []  # [method, compiled regex, reply, times_left]
        self.requests: List[Request] = []
        self.served: List[Tuple[Event, Request]] = []
        self.unparsed: List[Tuple[int, bytes]] = []  # (conn_id, bytes) left when a connection ended
        self.errors: List[str] = []  # server-side problems (for diagnosis)
        self.connections = 0
        self.waiting = 0  # /next requests currently held open
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self._socks: List[socket.socket] = []
        self._listener: Optional[socket.socket] = None
        self._deadline = 0.0
        self._port = 0
        for ev in events:
            self._events.append(self._as_event(ev, len(self._events) + 1))
        for method, pattern, reply in replies:
            self.script(pattern, reply, method=method)
        if start:
            self.start()

    # ---- control

    @property
    def address(self) -> str:
        assert self._port, "server not started"
        return "127.0.0.1:%d" % self._port

    @property
    def port(self) -> int:
        return self._port

    @property
    def closed(self) -> bool:
        return self._stop.is_set()

    def start(self) -> "RuntimeAPI":
        if self._listener is not None:
            return self
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", 0))
        ls.listen(64)
        ls.settimeout(_POLL)
        self._listener = ls
        self._port = ls.getsockname()[1]
        self._deadline = time.monotonic() + self.lifetime
        t = threading.Thread(target=self._accept_loop, name="runtime-api-accept", daemon=True)
        self._threads.append(t)
        t.start()
        return self

    def close(self) -> None:
        """Stop: held ``/next`` requests are released by closing their connections (no answer)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
            socks = list(self._socks)
        for s in socks:
            _shut(s)
        if self._listener is not None:
            try:
                self._listener.close()
            except OSError:
                pass
        me = threading.current_thread()
        end = time.monotonic() + 5.0
        for t in list(self._threads):
            if t is not me:
                t.join(max(0.0, end - time.monotonic()))

    def __enter__(self) -> "RuntimeAPI":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def push(self, *events: Any) -> None:
        """Queue more events (wakes a held ``/next``)."""
        with self._cond:
            for ev in events:
                self._events.append(self._as_event(ev, len(self.served) + len(self._events) + 1))
            self._cond.notify_all()

    @property
    def pending_events(self) -> int:
        with self._cond:
            return len(self._events)

    def script(self, pattern: str, reply: Union[Reply, Callable[[Request], Reply]], *, method: str = "POST",
               times: Optional[int] = None) -> None:
        """Answer requests whose path (query stripped) matches ``pattern`` (``re.search``) with ``reply``.

        ``reply`` may be a callable taking the :class:`Request`. ``method`` ``"*"`` matches any method.
        Scripts are tried in the order given; one with ``times`` is used that many times, then ignored.
        Scripts take precedence over the built-in behaviour, ``/next`` included.
        """
        with self._cond:
            self._scripts.append([method.upper(), re.compile(pattern), reply, times])

    # ---- looking at what was received

    @property
    def posts(self) -> List[Request]:
        with self._cond:
            return [r for r in self.requests if r.method == "POST"]

    def describe(self) -> str:
        with self._cond:
            reqs = list(self.requests)
            lines = ["%d request(s) recorded by %s:" % (len(reqs), self._listener and self.address)]
            lines += ["  " + r.describe() for r in reqs]
            if self.unparsed:
                lines.append("  unparsed: %r" % (self.unparsed,))
            if self.errors:
                lines.append("  server errors: %r" % (self.errors,))
        return "\n".join(lines)

    def wait_for(self, predicate: Callable[[List[Request]], Any], timeout: float = 10.0,
                 what: str = "condition") -> List[Request]:
        """Wait until ``predicate(requests)`` is truthy; return the requests. AssertionError on timeout."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                reqs = list(self.requests)
                if predicate(reqs):
                    return reqs
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, _POLL))
        raise AssertionError("timed out after %.1fs waiting for %s\n%s" % (timeout, what, self.describe()))

    def wait_for_posts(self, n: int, timeout: float = 10.0) -> List[Request]:
        """Wait until at least ``n`` POSTs were recorded; return all POSTs."""
        self.wait_for(lambda reqs: sum(r.method == "POST" for r in reqs) >= n, timeout, "%d POST(s)" % n)
        return self.posts

    def wait_idle(self, n: int = 1, timeout: float = 10.0) -> List[Request]:
        """Wait until ``n`` ``/next`` requests are being held (the runtime sits idle)."""
        self.wait_for(lambda reqs: self.waiting >= n, timeout, "%d held /next request(s)" % n)
        return list(self.requests)

    # ---- internals

    def _as_event(self, ev: Any, n: int) -> Event:
        if isinstance(ev, Event):
            return ev
        if isinstance(ev, (bytes, bytearray)):
            return Event(body=bytes(ev), request_id="req-%d" % n)
        return Event(body=json.dumps(ev).encode("utf-8"), request_id="req-%d" % n)

    def _stopping(self) -> bool:
        if self._stop.is_set():
            return True
        if time.monotonic() > self._deadline:
            self._stop.set()
            with self._cond:
                self._cond.notify_all()
            return True
        return False

    def _accept_loop(self) -> None:
        assert self._listener is not None
        try:
            while not self._stopping():
                try:
                    conn, _ = self._listener.accept()
                except socket.timeout:
                    continue
                except OSError:
                    break
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn.settimeout(_SEND_TIMEOUT)
                with self._cond:
                    conn_id = self.connections
                    self.connections += 1
                    self._socks.append(conn)
                t = threading.Thread(target=self._serve_conn, args=(conn, conn_id),
                                     name="runtime-api-conn-%d" % conn_id, daemon=True)
                self._threads.append(t)
                t.start()
        finally:
            if self._stop.is_set():
                try:
                    self._listener.close()
                except OSError:
                    pass
                with self._cond:
                    socks = list(self._socks)
                for s in socks:
                    _shut(s)

    def _recv(self, sock: socket.socket) -> bytes:
        while True:
            if self._stopping():
                raise _Closed()
            try:
                r, _, _ = select.select([sock], [], [], _POLL)
            except (OSError, ValueError):
                raise _Closed()
            if r:
                try:
                    data = sock.recv(65536)
                except OSError:
                    raise _Closed()
                if not data:
                    raise _Closed()
                return data

    def _serve_conn(self, sock: socket.socket, conn_id: int) -> None:
        buf = bytearray()
        try:
            while not self._stopping():
                req = self._read_request(sock, buf, conn_id)
                if req is None:
                    break
                if not self._dispatch(sock, req):
                    break
        except _Closed:
            pass
        except Exception as exc:  # a bug here must not hang a test: record it and drop the connection
            self.errors.append("conn %d: %r" % (conn_id, exc))
        finally:
            if buf:
                with self._cond:
                    self.unparsed.append((conn_id, bytes(buf)))
            _shut(sock)
            with self._cond:
                if sock in self._socks:
                    self._socks.remove(sock)
                self._cond.notify_all()

    def _record(self, req: Request) -> None:
        with self._cond:
            req.index = len(self.requests)
            self.requests.append(req)
            self._cond.notify_all()

    def _read_request(self, sock: socket.socket, buf: bytearray, conn_id: int) -> Optional[Request]:
        # head
        while True:
            end = buf.find(b"\r\n\r\n")
            sep = 4
            if end < 0:
                end = buf.find(b"\n\n")
                sep = 2
            if end >= 0:
                break
            if len(buf) > _MAX_HEAD:
                self.errors.append("conn %d: request head too large" % conn_id)
                return None
            try:
                buf += self._recv(sock)
            except _Closed:
                return None
        raw_head = bytes(buf[: end + sep])
        del buf[: end + sep]
        started = time.monotonic()
        lines = raw_head.decode("latin-1").replace("\r\n", "\n").rstrip("\n").split("\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            self.errors.append("conn %d: bad request line %r" % (conn_id, lines[0]))
            self._record(Request("", lines[0], "", [], b"", raw_head, raw_head=raw_head, conn_id=conn_id,
                                 started=started, received_at=started, complete=False))
            self._send(sock, 400, b"", [])
            return None
        method, path, version = parts
        headers: List[Tuple[str, str]] = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name, value.strip(" \t")))
        req = Request(method, path, version, headers, b"", raw_head, raw_head=raw_head, conn_id=conn_id,
                      started=started)

        if (req.header("Expect") or "").lower() == "100-continue":
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

        te = (req.header("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            req.chunked = True
            ok = self._read_chunked(sock, buf, req)
        else:
            length = int(req.header("Content-Length") or 0)
            if length > _MAX_BODY:
                raise _Closed()
            ok = True
            while len(buf) < length:
                try:
                    buf += self._recv(sock)
                except _Closed:
                    ok = False
                    break
            take = min(length, len(buf))
            req.body = req.raw_body = bytes(buf[:take])
            del buf[:take]
        req.raw = raw_head + req.raw_body
        req.received_at = time.monotonic()
        req.complete = ok
        self._record(req)
        return req if ok else None

    def _read_chunked(self, sock: socket.socket, buf: bytearray, req: Request) -> bool:
        raw = bytearray()
        body = bytearray()

        def line() -> bytes:
            while True:
                i = buf.find(b"\n")
                if i >= 0:
                    out = bytes(buf[: i + 1])
                    del buf[: i + 1]
                    raw.extend(out)
                    return out
                if len(buf) > _MAX_HEAD:
                    raise ValueError("chunk line too long")
                buf.extend(self._recv(sock))

        try:
            while True:
                size_line = line()
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while True:
                        t = line()
                        if t in (b"\r\n", b"\n"):
                            break
                        name, _, value = t.decode("latin-1").rstrip("\r\n").partition(":")
                        req.trailers.append((name, value.strip(" \t")))
                    return True
                if len(body) + size > _MAX_BODY:
                    raise ValueError("chunked body too large")
                while len(buf) < size + 2:
                    buf.extend(self._recv(sock))
                chunk = bytes(buf[:size])
                raw.extend(buf[: size + 2])
                del buf[: size + 2]
                body.extend(chunk)
                req.chunks.append(chunk)
                req.chunk_times.append(time.monotonic())
        except _Closed:
            return False
        except ValueError as exc:
            self.errors.append("conn %d: bad chunked body: %s" % (req.conn_id, exc))
            return False
        finally:
            req.raw_body = bytes(raw)
            req.body = bytes(body)

    def _send(self, sock: socket.socket, status: int, body: bytes, headers: Sequence[Tuple[str, str]]) -> None:
        head = "HTTP/1.1 %d %s\r\n" % (status, _phrase(status))
        for k, v in headers:
            head += "%s: %s\r\n" % (k, v)
        head += "Content-Length: %d\r\n\r\n" % len(body)
        sock.sendall(head.encode("latin-1") + body)

    def _send_reply(self, sock: socket.socket, reply: Reply) -> bool:
        if reply.delay:
            self._stop.wait(reply.delay)
        if reply.raw is not None:
            return _send_raw(sock, reply.raw)
        body = reply.encode_body()
        headers = list((reply.headers or {}).items())
        if body and not any(k.lower() == "content-type" for k, _ in headers):
            headers.insert(0, ("Content-Type", "application/json"))
        self._send(sock, reply.status, body, headers)
        return not reply.close

    def _scripted(self, req: Request) -> Optional[Reply]:
        route = req.path.split("?", 1)[0]
        with self._cond:
            for s in self._scripts:
                method, rx, reply, times = s
                if method not in ("*", req.method) or not rx.search(route):
                    continue
                if times is not None:
                    if times <= 0:
                        continue
                    s[3] = times - 1
                break
            else:
                return None
        return reply(req) if callable(reply) else reply

    def _dispatch(self, sock: socket.socket, req: Request) -> bool:
        """Answer one request; return whether to keep the connection."""
        keep = (req.header("Connection") or "").lower() != "close" and req.version != "HTTP/1.0"
        reply = self._scripted(req)
        if reply is not None:
            return self._send_reply(sock, reply) and keep
        kind = req.kind
        if req.method == "GET" and kind == "next":
            return self._serve_next(sock, req) and keep
        if req.method == "POST" and kind in ("response", "error", "init_error", "restore_error"):
            return self._send_reply(sock, OK_202) and keep
        if req.method == "POST" and kind == "extension_register":
            body = {"functionName": TEST_ENV["AWS_LAMBDA_FUNCTION_NAME"],
                    "functionVersion": TEST_ENV["AWS_LAMBDA_FUNCTION_VERSION"], "handler": ""}
            return self._send_reply(sock, Reply(200, body, {"Lambda-Extension-Identifier": EXTENSION_ID})) and keep
        if req.method == "GET" and kind == "extension_next":
            return self._hold(sock)  # an extension with no events: never answered
        if req.method == "GET" and kind == "restore_next":
            return self._send_reply(sock, Reply(404, {"errorMessage": "SnapStart is not enabled",
                                                      "errorType": "NotFound"})) and keep
        return self._send_reply(sock, Reply(404, {"errorMessage": "Unknown path %s %s" % (req.method, req.path),
                                                  "errorType": "NotFound"})) and keep

    def _hold(self, sock: socket.socket) -> bool:
        """Leave a request unanswered until the server stops or the client closes; then close."""
        while not self._stopping():
            try:
                readable, _, _ = select.select([sock], [], [], _POLL)
            except (OSError, ValueError):
                return False
            if readable:
                return False  # closed (or sent more, which an extension waiting on event/next never does)
        return False

    def _serve_next(self, sock: socket.socket, req: Request) -> bool:
        with self._cond:
            if not self._events and self.after_events == "hold":
                self.waiting += 1
                self._cond.notify_all()
                try:
                    while not self._events and not self._stopping():
                        self._cond.wait(_POLL)
                finally:
                    self.waiting -= 1
                if not self._events:
                    return False  # stopping: release by closing, no answer
            if not self._events:
                if self.after_events == "close":
                    return False
                ev = None
            else:
                ev = self._events.pop(0)
                self.served.append((ev, req))
        if ev is None:
            return self._send_reply(sock, SERVER_500)
        if ev.raw is not None:
            return _send_raw(sock, ev.raw)
        self._send(sock, 200, ev.body, ev.response_headers())
        return True


def _send_raw(sock: socket.socket, raw: Union[bytes, Callable[[socket.socket], Any]]) -> bool:
    if callable(raw):
        return raw(sock) is True
    sock.sendall(raw)
    return False


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


# --------------------------------------------------------------------------------------------------
# running a runtime process against it


@dataclass
class RunResult:
    requests: List[Request]
    stdout: bytes
    stderr: bytes
    returncode: Optional[int]  # None only if the process could not be reaped (should not happen)
    exited: bool  # True when the process ended on its own (not terminated by us)
    timed_out: bool  # True when the overall timeout ran out before the expected POSTs arrived
    elapsed: float
    cwd: str
    api: RuntimeAPI
    cmd: List[str] = field(default_factory=list)
    env: Dict[str, str] = field(default_factory=dict)

    @property
    def posts(self) -> List[Request]:
        return [r for r in self.requests if r.method == "POST"]

    def post(self, kind: str) -> Request:
        """The single POST of a kind (response | error | init_error | restore_error)."""
        found = [r for r in self.posts if r.kind == kind]
        assert len(found) == 1, "expected one %s POST\n%s" % (kind, self.describe())
        return found[0]

    def describe(self) -> str:
        return "cmd %r exit %r%s%s after %.2fs\n%s\nstdout: %r\nstderr: %r" % (
            self.cmd, self.returncode, " (exited by itself)" if self.exited else " (terminated)",
            " TIMED OUT" if self.timed_out else "", self.elapsed, self.api.describe(),
            self.stdout[-4000:], self.stderr[-4000:])

    __str__ = describe


def write_files(root: str, files: Dict[str, Union[str, bytes]]) -> None:
    for rel, content in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path) or root, exist_ok=True)
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(path, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            f.write(content)


def runtime_env(address: str, cwd: str, env: Optional[Dict[str, Optional[str]]] = None,
                lambdaric_on_path: bool = True) -> Dict[str, str]:
    """A clean environment: PATH, HOME, PYTHONPATH kept, test values set, then ``env`` (None removes)."""
    out = {k: os.environ[k] for k in ("PATH", "HOME", "PYTHONPATH") if k in os.environ}
    if lambdaric_on_path:
        out["PYTHONPATH"] = os.pathsep.join(p for p in (_REPO_ROOT, out.get("PYTHONPATH")) if p)
    out.update(TEST_ENV)
    out["LAMBDA_TASK_ROOT"] = cwd
    out["AWS_LAMBDA_RUNTIME_API"] = address
    for k, v in (env or {}).items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = v
    return out


def run_runtime(
    handler_files: Dict[str, Union[str, bytes]],
    handler: Optional[str],
    events: Iterable[Any] = (),
    *,
    env: Optional[Dict[str, Optional[str]]] = None,
    cmd: Optional[List[str]] = None,
    expect_posts: Optional[int] = None,
    timeout: float = 30.0,
    settle: float = 1.0,
    api: Optional[RuntimeAPI] = None,
    api_kwargs: Optional[Dict[str, Any]] = None,
    cwd: Optional[str] = None,
    pass_fds: Sequence[int] = (),
) -> RunResult:
    """Run a runtime process against a scripted Runtime API and collect what it did.

    Writes ``handler_files`` (relative path -> text or bytes) into ``cwd`` (a fresh temporary folder by
    default; it is the child's cwd and ``LAMBDA_TASK_ROOT``) and starts ``cmd`` (default
    ``[python, -m, lambdaric]``) plus ``handler`` (omitted when None). Waits until ``expect_posts`` POSTs
    (default: one per event, at least 1) were recorded or the process exits, then up to ``settle``
    seconds for the runtime to get back to ``/next`` or exit (so its logs are complete), then stops it
    (SIGTERM, SIGKILL 2 s later). ``env`` values override the test environment; None removes a variable.
    Pass ``api`` to use a server you scripted (it is not closed here); otherwise one is made from
    ``events`` and ``api_kwargs`` and closed at the end. ``pass_fds`` are inherited by the child (e.g. the
    write end of a pipe named by ``_LAMBDA_TELEMETRY_LOG_FD``). Never takes much more than ``timeout`` seconds.
    """
    events = list(events)
    own_api = api is None
    if api is None:
        api = RuntimeAPI(events=events, **(api_kwargs or {}))
    elif events:
        api.push(*events)
    if expect_posts is None:
        expect_posts = max(1, len(events))
    tmp = None
    if cwd is None:
        tmp = tempfile.TemporaryDirectory(prefix="lambdaric-test-")
        cwd = tmp.name
    start = time.monotonic()
    try:
        write_files(cwd, handler_files)
        argv = list(cmd) if cmd is not None else [sys.executable, "-m", "lambdaric"]
        if handler is not None:
            argv.append(handler)
        child_env = runtime_env(api.address, cwd, env, lambdaric_on_path=cmd is None)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(argv, cwd=cwd, env=child_env, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err, start_new_session=True, pass_fds=tuple(pass_fds))
            exited = timed_out = False
            try:
                end = start + timeout

                def enough(reqs: List[Request]) -> bool:
                    return sum(r.method == "POST" for r in reqs) >= expect_posts or proc.poll() is not None

                try:
                    api.wait_for(enough, max(0.0, end - time.monotonic()))
                except AssertionError:
                    timed_out = True
                if proc.poll() is None and not timed_out:
                    # let it finish the invoke: back on /next (after the last POST) or exited
                    def settled(reqs: List[Request]) -> bool:
                        if proc.poll() is not None:
                            return True
                        last_post = max((r.index for r in reqs if r.method == "POST"), default=-1)
                        return any(r.index > last_post and r.kind == "next" for r in reqs)

                    try:
                        api.wait_for(settled, min(settle, max(0.0, end - time.monotonic())))
                    except AssertionError:
                        pass
                exited = proc.poll() is not None
            finally:
                _stop_process(proc)
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        with api._cond:
            reqs = list(api.requests)
        return RunResult(reqs, stdout, stderr, proc.returncode, exited, timed_out, time.monotonic() - start,
                         cwd, api, argv, child_env)
    finally:
        if own_api:
            api.close()
        if tmp is not None:
            tmp.cleanup()


def _stop_process(proc: "subprocess.Popen[bytes]") -> None:
    if proc.poll() is not None:
        try:  # the leader is gone; reap anything it left in its process group (e.g. forked workers)
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                proc.send_signal(sig)
            except ProcessLookupError:
                pass
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
