"""Faults for the scripted Runtime API (``runtime_api.RuntimeAPI``): what a broken or hostile
Runtime API may do to a runtime, as ``Event.raw`` / ``Reply.raw`` callables.

Each helper returns a callable that gets the connected socket (see ``Event.raw``). They write
what they are told, then end the connection the way they are told: ``"reset"`` (an RST:
SO_LINGER 0, then close), ``"close"`` (a FIN), ``"hold"`` (send nothing more and keep the
connection open until the peer closes it) or ``"keep"`` (go on serving requests on it).

Everything is bounded: a held or dripping connection gives up after ``limit`` seconds (30 by
default, under the server's 60-second lifetime) or as soon as the peer closes it, and a
peer that went away mid-write ends the callable quietly (that is the runtime's right).
"""
from __future__ import annotations

import select
import socket
import struct
import time
from typing import Any, Callable, Union

Raw = Callable[[socket.socket], Any]

#: How long a held or dripping connection may last at most (seconds).
LIMIT = 30.0


def rst(sock: socket.socket) -> None:
    """Abort the connection: the peer's next recv or send fails with ECONNRESET."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def wait_readable(sock: socket.socket, limit: float) -> bool:
    """Wait until the peer sends something or closes (True), or ``limit`` seconds (False)."""
    try:
        readable, _, _ = select.select([sock], [], [], limit)
    except (OSError, ValueError):
        return True
    return bool(readable)


def hold(sock: socket.socket, limit: float = LIMIT) -> None:
    """Keep the connection open, sending nothing, until the peer closes it (or ``limit``)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if wait_readable(sock, min(0.1, max(0.0, end - time.monotonic()))):
            try:
                if not sock.recv(65536):
                    return
            except OSError:
                return


def _finish(sock: socket.socket, then: str, limit: float) -> bool:
    if then == "reset":
        rst(sock)
    elif then == "hold":
        hold(sock, limit)
    elif then == "keep":
        return True
    elif then != "close":
        raise ValueError("then must be reset, close, hold or keep, not %r" % then)
    return False


def send(data: bytes = b"", then: str = "close", *, after_request: bool = False, limit: float = LIMIT) -> Raw:
    """Send ``data`` at once, then end as ``then`` says. ``after_request``: before ending, wait
    until the runtime sends its next request (it has read everything), so a reset hits that
    request, unread, rather than racing the runtime's read of ``data``."""

    def fault(sock: socket.socket) -> bool:
        try:
            if data:
                sock.sendall(data)
            if after_request:
                wait_readable(sock, limit)
        except OSError:
            return False
        return _finish(sock, then, limit)

    return fault


def drip(data: bytes, every: float = 1.0, then: str = "close", limit: float = LIMIT) -> Raw:
    """Send ``data`` one byte every ``every`` seconds (a slowloris Runtime API); stops when the
    peer closes or after ``limit`` seconds, else ends as ``then`` says once all is sent."""

    def fault(sock: socket.socket) -> bool:
        end = time.monotonic() + limit
        for i in range(len(data)):
            if time.monotonic() >= end:
                return False
            try:
                sock.sendall(data[i : i + 1])
            except OSError:
                return False
            if wait_readable(sock, every):  # the runtime gave up (closed) or sent something
                try:
                    if not sock.recv(65536, socket.MSG_PEEK):
                        return False
                except OSError:
                    return False
        return _finish(sock, then, max(0.0, end - time.monotonic()))

    return fault


def flood(head: bytes, size: int, line: bytes = b"X-Flood: " + b"f" * 100 + b"\r\n") -> Raw:
    """Send ``head`` followed by ``size`` bytes of header lines (never the blank line that would
    end the head), then close; a runtime that stopped reading makes the writes fail: fine."""

    def fault(sock: socket.socket) -> bool:
        try:
            sock.sendall(head)
            sent = 0
            block = line * max(1, 65536 // len(line))
            while sent < size:
                piece = block[: size - sent]
                sock.sendall(piece)
                sent += len(piece)
            hold(sock, 5.0)
        except OSError:
            pass
        return False

    return fault


def answer(request_id: str, body: Union[bytes, None] = b"{}", *lines: str, length: Union[int, None, str] = "auto") -> bytes:
    """The bytes of a ``/next`` answer: status line, the request id, JSON content type, ``lines``,
    Content-Length (``"auto"``: the body's length; None: no Content-Length), blank line, body."""
    head = ["HTTP/1.1 200 OK", "Lambda-Runtime-Aws-Request-Id: " + request_id, "Content-Type: application/json"]
    head += list(lines)
    if length == "auto":
        length = len(body or b"")
    if length is not None:
        head.append("Content-Length: %d" % length)
    return "\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + (body or b"")
