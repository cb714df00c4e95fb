"""The Runtime API of one sandbox, strict like the real one.

It keeps the real one's rules: 400 ``InvalidRequestID`` for an id it never gave out,
403 ``InvalidStateTransition`` for a second answer or an init error after ``/next``,
410 for an answer after the timeout, 413 for a buffered response over 6291556 bytes.
Which answer an invocation may still give follows from its :class:`.invocation.State`.
The same address serves the Extensions API (:mod:`.extensions`).

It holds the invocations of its sandbox: offered (waiting for a ``/next``), in flight, and
the ids of recent ones (to tell a late answer, 403 or 410, from an unknown id, 400).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import re
import time
from typing import Callable, Dict, List, Optional, Tuple

from .. import faults, protocol
from . import extensions, http
from .invocation import Invocation, Outcome, State, error_json

PREFIX = "/2018-06-01/runtime/"
_REQUEST_ID = re.compile(r"[A-Za-z0-9-]{1,64}\Z")
_ERROR_TYPE = re.compile(r"[\x21-\x7e]{1,256}\Z")
#: Ids of ended invocations remembered (then the older half is forgotten).
REMEMBERED = 1000


class RuntimeAPI:
    """The Runtime API state and handlers of one sandbox (see module docstring).
    ``capacity`` is how many invocations the runtime takes at once (Managed Instances: N);
    ``on_init_error`` is called when the runtime reports its init failed."""

    def __init__(self, capacity: int, snapstart: bool, exts: extensions.ExtensionsAPI, on_init_error: Callable[[], None]) -> None:
        self.capacity = capacity
        self.snapstart = snapstart
        self.extensions = exts
        self.on_init_error = on_init_error
        self.inflight: Dict[str, Invocation] = {}
        self.saw_next = False
        self.restored = False
        self.spawned_at = 0.0
        self.init_ms: Optional[float] = None  # reported once, with the first invocation
        self._offers: "asyncio.Queue[Invocation]" = asyncio.Queue()
        self._ended: Dict[str, State] = {}
        self._init_log = bytearray()
        self._routes = {
            ("GET", "invocation/next"): self._next,
            ("POST", "init/error"): self._init_error,
            ("GET", "restore/next"): self._restore_next,
            ("POST", "restore/error"): self._restore_error,
        }

    # ------------------------------------------------------------------ the sandbox's side

    def offer(self, inv: Invocation) -> None:
        """Queue ``inv`` for the next ``/next``."""
        self.inflight[inv.request_id] = inv
        self._offers.put_nowait(inv)

    def end(self, inv: Invocation) -> None:
        """``inv`` has its outcome: take it back if never delivered, and remember how it ended."""
        if inv.state is State.QUEUED:
            kept = []
            while not self._offers.empty():
                offer = self._offers.get_nowait()
                if offer is not inv:
                    kept.append(offer)
            for offer in kept:
                self._offers.put_nowait(offer)
        inv.advance(State.ANSWERED)
        self._ended[inv.request_id] = State.TIMEDOUT if inv.state is State.TIMEDOUT else State.ANSWERED
        if len(self._ended) > REMEMBERED:
            for key in list(self._ended)[: REMEMBERED // 2]:
                del self._ended[key]
        self.inflight.pop(inv.request_id, None)

    def fail_all(self, outcome: Callable[[Invocation], Outcome]) -> None:
        """End every invocation in flight with ``outcome(inv)`` (the runtime is gone)."""
        for inv in list(self.inflight.values()):
            inv.finish(outcome(inv))

    def take_output(self, data: bytes) -> None:
        """Keep a piece of the runtime's output for the log tail of the invoke it belongs to,
        or, before any (init) or with several at once (Managed Instances: the owner is
        unknown), for the next invoke delivered."""
        delivered = [inv for inv in self.inflight.values() if inv.state is not State.QUEUED]
        if len(delivered) == 1:
            delivered[0].add_log(data)
        else:
            self._init_log += data
            del self._init_log[: max(len(self._init_log) - 4096, 0)]

    def take_init_ms(self) -> Optional[float]:
        value, self.init_ms = self.init_ms, None
        return value

    # ------------------------------------------------------------------ HTTP

    async def on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await http.serve_connection(reader, writer, self.handle, protocol.MAX_PAYLOAD, _error_answer)

    async def handle(self, req: http.Request, writer: asyncio.StreamWriter) -> None:
        if req.path.startswith(extensions.PREFIX):
            await self.extensions.handle(req, writer)
            return
        rest = req.path[len(PREFIX) :] if req.path.startswith(PREFIX) else None
        route = self._routes.get((req.method, rest or ""))
        if route is not None:
            await route(req, writer)
            return
        parts = (rest or "").split("/")
        if req.method == "POST" and len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            await self._answer_for(parts[1], parts[2], req, writer)
            return
        status = 404 if rest is None or req.method in ("GET", "POST") else 405
        await _answer(writer, status, "NotFound", "unknown path %s" % req.path[:200])

    async def _next(self, req: http.Request, writer: asyncio.StreamWriter) -> None:
        busy = [inv for inv in self.inflight.values() if inv.state is State.DELIVERED]
        if busy and self.capacity == 1:
            await _answer(writer, 403, "InvalidStateTransition", "/next called before the invocation %s was answered" % busy[0].request_id)
            return
        if not self.saw_next:
            self.saw_next = True
            self.extensions.close_registration()
            self.init_ms = (time.monotonic() - self.spawned_at) * 1000.0
        while True:
            inv = await self._offers.get()
            if not writer.is_closing():
                break
            self._offers.put_nowait(inv)  # this /next was abandoned: another one will take it
            return
        inv.advance(State.DELIVERED)
        inv.log[:0] = self._init_log
        self._init_log.clear()
        if inv.on_delivery is not None:
            inv.on_delivery(inv)
        inv.delivered_at = time.monotonic()
        inv.delivered.set()
        self.extensions.on_invoke(inv)
        writer.write(http.response_head(200, inv.next_headers(), len(inv.payload)) + inv.payload)
        await writer.drain()

    async def _restore_next(self, req: http.Request, writer: asyncio.StreamWriter) -> None:
        """SnapStart: the snapshot is 'restored' at once; 404 when SnapStart is off."""
        if not self.snapstart:
            await _answer(writer, 404, "InvalidStateTransition", "SnapStart is not enabled for this function")
        elif self.saw_next or self.restored:
            await _answer(writer, 403, "InvalidStateTransition", "/restore/next is only valid once, during init")
        else:
            self.restored = True
            await http.send(writer, 200, b"", [("Content-Type", "application/json")])

    async def _restore_error(self, req: http.Request, writer: asyncio.StreamWriter) -> None:
        await self._init_error(req, writer, restore=True)

    async def _init_error(self, req: http.Request, writer: asyncio.StreamWriter, restore: bool = False) -> None:
        body = await req.body_reader.read()
        if self.saw_next or (restore and not self.restored):
            what = "restore error reported outside restore" if restore else "init error reported after /next"
            await _answer(writer, 403, "InvalidStateTransition", what)
            return
        error_type = req.header(protocol.ERROR_TYPE_HEADER) or (faults.AFTER_RESTORE_ERROR if restore else faults.UNKNOWN)
        self.fail_all(lambda inv: Outcome("error", body or error_json(error_type, "init failed"), "application/json", error_type))
        self.on_init_error()
        await _answer(writer, 202)

    async def _answer_for(self, request_id: str, kind: str, req: http.Request, writer: asyncio.StreamWriter) -> None:
        if not _REQUEST_ID.match(request_id):
            await _answer(writer, 400, "InvalidRequestID", "invalid request id")
            return
        inv = self.inflight.get(request_id)
        if inv is None or inv.state is not State.DELIVERED:
            await _refuse_late(writer, request_id, inv.state if inv is not None else self._ended.get(request_id))
            return
        if kind == "error":
            await _error(inv, req, writer)
            return
        mode = req.header("lambda-runtime-function-response-mode")
        if mode is not None and mode.lower() != "streaming":
            await _answer(writer, 400, "InvalidFunctionResponseMode", "unsupported response mode %r" % mode[:50])
            return
        content_type = req.header("content-type") or "application/json"
        if mode is not None:
            await _streamed(inv, req, writer, content_type)
            return
        body = await req.body_reader.read()
        if req.body_reader.too_large:
            await _answer(writer, 413, "RequestEntityTooLarge", "Exceeded maximum allowed payload size (%d bytes)." % protocol.MAX_PAYLOAD)
            inv.finish(_too_large(req.body_reader.size))
            return
        inv.advance(State.ANSWERED)
        inv.finish(Outcome("response", body, content_type))
        await _answer(writer, 202)


async def _refuse_late(writer: asyncio.StreamWriter, request_id: str, state: Optional[State]) -> None:
    """An answer for an invocation that is not waiting for one: timed out (410), answered
    or not delivered (403), or never given out (400)."""
    if state is State.TIMEDOUT:
        await _answer(writer, 410, "InvokeTimeout", "the invocation %s timed out" % request_id)
    elif state is not None:
        await _answer(writer, 403, "InvalidStateTransition", "the invocation %s was answered already" % request_id)
    else:
        await _answer(writer, 400, "InvalidRequestID", "unknown request id %s" % request_id)


async def _error(inv: Invocation, req: http.Request, writer: asyncio.StreamWriter) -> None:
    body = await req.body_reader.read()
    error_type = req.header(protocol.ERROR_TYPE_HEADER)
    if error_type is not None and not _ERROR_TYPE.match(error_type):
        await _answer(writer, 400, "InvalidErrorType", "invalid %s header" % protocol.ERROR_TYPE_HEADER)
        return
    if req.body_reader.too_large:
        body = error_json(error_type or "Unhandled", "error body over %d bytes, truncated" % protocol.MAX_PAYLOAD)
    inv.advance(State.ANSWERED)
    inv.finish(Outcome("error", body, "application/json", error_type or "Unhandled"))
    await _answer(writer, 202)


async def _streamed(inv: Invocation, req: http.Request, writer: asyncio.StreamWriter, content_type: str) -> None:
    """A streamed response: forwarded piece by piece to a streaming caller (with backpressure),
    gathered for a buffered one; its error, if any, comes in the trailers."""
    inv.streamed = True
    inv.stream_content_type = content_type
    parts: List[bytes] = []
    size = 0
    limit = protocol.MAX_STREAMED if inv.streaming else protocol.MAX_PAYLOAD
    while True:
        data = await req.body_reader.next_chunk()
        if data is None:
            break
        size += len(data)
        if size > limit or inv.outcome.done():
            continue
        if inv.streaming:
            await inv.chunks.put(data)  # waits while the caller is behind: backpressure
        else:
            parts.append(data)
    inv.advance(State.ANSWERED)
    if size > limit:
        await _answer(writer, 413, "RequestEntityTooLarge", "Exceeded maximum allowed payload size (%d bytes)." % limit)
        inv.finish(_too_large(size))
        return
    error = _trailer_error(req.body_reader.trailers)
    inv.finish(Outcome("error", error[1], "application/json", error[0]) if error else Outcome("response", b"".join(parts), content_type))
    await _answer(writer, 202)


def _trailer_error(trailers: Dict[str, str]) -> Optional[Tuple[str, bytes]]:
    """(error type, error JSON) from a streamed response's trailers; None when it succeeded."""
    error_type = trailers.get(protocol.ERROR_TYPE_HEADER.lower())
    if not error_type:
        return None
    raw = trailers.get(protocol.ERROR_BODY_HEADER.lower(), "")
    try:
        body = base64.b64decode(raw, validate=True) if raw else b""
    except (binascii.Error, ValueError):
        body = b""
    return error_type, body or error_json(error_type, "")


def _too_large(size: int) -> Outcome:
    return Outcome.fault(
        faults.RESPONSE_TOO_LARGE,
        "Response payload size (%d bytes) exceeded maximum allowed payload size (%d bytes)." % (size, protocol.MAX_PAYLOAD),
    )


def _error_answer(status: int, message: str) -> Tuple[bytes, List[Tuple[str, str]]]:
    return error_json("InvalidRequest", message), [("Content-Type", "application/json")]


async def _answer(writer: asyncio.StreamWriter, status: int, error_type: Optional[str] = None, message: str = "") -> None:
    body = b'{"status":"OK"}\n' if error_type is None else error_json(error_type, message)
    await http.send(writer, status, body, [("Content-Type", "application/json")])
