"""A small asyncio HTTP/1.1 server core shared by the emulator's two APIs.

Reads one request at a time from a connection (keep-alive), with Content-Length or
chunked bodies (trailers kept, for streamed function responses), enforcing head and body
limits with clear errors; writes responses with a Content-Length or chunked. Bodies can
be consumed incrementally (``BodyReader``) so a streamed function response is forwarded
chunk by chunk instead of buffered.
"""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Dict, List, Optional, Sequence, Tuple

from ..answers import chunk_size
from ..protocol import MAX_HEAD, ProtocolError

_REASONS = {
    200: "OK",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    410: "Gone",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class BadRequest(Exception):
    """The peer sent something that is not HTTP we accept; answered with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Request:
    """One request head plus a reader for its body."""

    __slots__ = ("method", "target", "path", "query", "headers", "body_reader", "version", "fields")

    def __init__(
        self,
        method: str,
        target: str,
        headers: Dict[str, str],
        body_reader: "BodyReader",
        version: str = "HTTP/1.1",
        fields: Optional[List[Tuple[str, str]]] = None,
    ) -> None:
        self.method = method
        self.target = target
        self.path, _, self.query = target.partition("?")
        self.headers = headers
        self.body_reader = body_reader
        #: the request line's protocol, e.g. ``HTTP/1.1``
        self.version = version
        #: every header line as received (name as written, value stripped), in order: the
        #: HTTP front's multi-value headers need what ``headers`` joins
        self.fields: List[Tuple[str, str]] = fields if fields is not None else list(headers.items())

    def header(self, name: str, default: Optional[str] = None) -> Optional[str]:
        return self.headers.get(name.lower(), default)

    def query_params(self) -> Dict[str, str]:
        from urllib.parse import parse_qsl

        return dict(parse_qsl(self.query))


_PIECE = 1 << 20  # largest piece of a body held at once


async def _readline(reader: asyncio.StreamReader, what: str, status: int) -> bytes:
    """``reader.readline()``, with a line over the reader's limit (MAX_HEAD) refused as a
    BadRequest (asyncio raises ValueError for it)."""
    try:
        return await reader.readline()
    except ValueError:
        raise BadRequest("%s too large" % what, status) from None


class BodyReader:
    """The body of one request, read whole (``read``) or chunk by chunk (``chunks``)."""

    def __init__(self, reader: asyncio.StreamReader, length: int, chunked: bool, limit: int) -> None:
        self._reader = reader
        self._left = length
        self._chunked = chunked
        self._limit = limit
        self.size = 0
        self.trailers: Dict[str, str] = {}
        self.too_large = False
        self.done = not chunked and length == 0
        self._chunk_left = 0  # bytes of the current chunk not read yet

    async def next_chunk(self) -> Optional[bytes]:
        """The next piece of the body, or None at its end. Over ``limit`` sets
        ``too_large`` and keeps draining so the connection stays usable."""
        if self.done:
            return None
        if not self._chunked:
            data = await self._reader.read(min(self._left, 1 << 20))
            if not data:
                raise BadRequest("connection closed inside the body")
            self._left -= len(data)
            self.done = self._left == 0
            return self._count(data)
        if self._chunk_left:
            return await self._chunk_piece()
        line = await _readline(self._reader, "chunk size line", 400)
        if not line.endswith(b"\n"):
            raise BadRequest("connection closed inside a chunked body")
        try:
            size = chunk_size(line)
        except ProtocolError as exc:
            raise BadRequest(str(exc)) from None
        if size == 0:
            await self._read_trailers()
            self.done = True
            return None
        self._chunk_left = size
        return await self._chunk_piece()

    async def _chunk_piece(self) -> bytes:
        """At most 1 MiB of the current chunk: a chunk may announce up to 15 hex digits of
        size, and holding it whole before the limit is checked would let a runtime exhaust
        the emulator's memory with one line."""
        try:
            data = await self._reader.readexactly(min(self._chunk_left, _PIECE))
            self._chunk_left -= len(data)
            if not self._chunk_left and await self._reader.readexactly(2) != b"\r\n":
                raise BadRequest("missing CRLF after chunk data")
        except asyncio.IncompleteReadError:
            raise BadRequest("connection closed inside a chunked body") from None
        return self._count(data)

    def _count(self, data: bytes) -> bytes:
        self.size += len(data)
        if self.size > self._limit:
            self.too_large = True
        return data

    async def _read_trailers(self) -> None:
        total = 0
        while True:
            line = await _readline(self._reader, "trailers", 431)
            total += len(line)
            if total > MAX_HEAD:
                raise BadRequest("trailers too large", 431)
            line = line.rstrip(b"\r\n")
            if not line:
                return
            name, sep, value = line.decode("latin-1").partition(":")
            if sep:
                self.trailers[name.strip().lower()] = value.strip()

    async def read(self) -> bytes:
        """The whole body; when it exceeds the limit the excess is drained and dropped."""
        parts: List[bytes] = []
        while True:
            data = await self.next_chunk()
            if data is None:
                return b"".join(parts)
            if not self.too_large:
                parts.append(data)

    async def drain(self) -> None:
        while await self.next_chunk() is not None:
            pass


async def read_request(reader: asyncio.StreamReader, body_limit: int) -> Optional[Request]:
    """Read the next request head on a connection; None when the peer closed cleanly."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadRequest("connection closed inside a request head")
        return None
    except asyncio.LimitOverrunError:
        raise BadRequest("request head exceeds %d bytes" % MAX_HEAD, 431)
    lines = head[:-4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("malformed request line %r" % lines[0][:100])
    headers: Dict[str, str] = {}
    fields: List[Tuple[str, str]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        fields.append((name.strip(), value.strip()))
        name = name.strip().lower()
        if not sep or not name or " " in name:
            raise BadRequest("malformed header line %r" % line[:100])
        if "\n" in line or "\r" in line or "\x00" in line:  # a bare LF would go on into /next as a header line
            raise BadRequest("CR, LF or NUL inside header line %r" % line[:100])
        value = value.strip()
        headers[name] = headers[name] + "," + value if name in headers else value
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    length = 0
    if not chunked:
        raw = headers.get("content-length", "0")
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 15:  # (int() of 4300+ digits: ValueError)
            raise BadRequest("invalid Content-Length %r" % raw[:30])
        length = int(raw)
    return Request(parts[0], parts[1], headers, BodyReader(reader, length, chunked, body_limit), parts[2], fields)


_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def http_date(now: Optional[float] = None) -> str:
    """An RFC 9110 ``Date`` value, independent of the locale."""
    t = time.gmtime(now)
    return "%s, %02d %s %d %02d:%02d:%02d GMT" % (_DAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon - 1], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)


def response_head(status: int, headers: List[Tuple[str, str]], length: Optional[int]) -> bytes:
    """Status line and headers (plus ``Date``); ``length`` None means a chunked body follows."""
    lines = ["HTTP/1.1 %d %s\r\nDate: %s\r\n" % (status, _REASONS.get(status, "Unknown"), http_date())]
    lines += ["%s: %s\r\n" % (name, value) for name, value in headers]
    lines.append("Content-Length: %d\r\n" % length if length is not None else "Transfer-Encoding: chunked\r\n")
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")


async def send(writer: asyncio.StreamWriter, status: int, body: bytes = b"", headers: Sequence[Tuple[str, str]] = ()) -> None:
    writer.write(response_head(status, list(headers), len(body)) + body)
    await writer.drain()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[None]]


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handler: Handler,
    body_limit: int,
    error_body: Callable[[int, str], Tuple[bytes, List[Tuple[str, str]]]],
) -> None:
    """Serve requests on one connection until it closes; bad requests get one clear answer."""
    try:
        while True:
            try:
                request = await read_request(reader, body_limit)
            except BadRequest as exc:
                body, headers = error_body(exc.status, str(exc))
                await send(writer, exc.status, body, headers + [("Connection", "close")])
                return
            if request is None:
                return
            await handler(request, writer)
            if not request.body_reader.done:
                await request.body_reader.drain()
    except (ConnectionError, asyncio.IncompleteReadError, BadRequest):
        pass
    except asyncio.CancelledError:  # the server is shutting down under a held request
        pass
    finally:
        try:
            writer.close()
        except Exception:  # pragma: no cover
            pass
