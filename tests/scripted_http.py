"""A scripted HTTP peer on loopback, for clients that must be seen handling exact bytes
(an event stream cut short, a corrupt message, a connection dropped mid-body) that a real
server would not produce on demand. Used by the boto3 event-stream tests and by the
``lambdaric invoke --stream`` tests."""
from __future__ import annotations

import queue
import socket
import threading
from typing import Dict, Iterable, List, Sequence, Tuple

STREAM_HEADERS = [("Content-Type", "application/vnd.amazon.eventstream"), ("X-Amz-Executed-Version", "$LATEST")]


class LoopbackServer:
    """One thread on 127.0.0.1: each connection reads one request and gets the next queued
    answer (a list of byte pieces, sent as they are), then is closed. Bounded by timeouts."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.answers: "queue.Queue[List[bytes]]" = queue.Queue()
        self.requests: List[Tuple[str, Dict[str, str], bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scripted-http", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    self.requests.append(self._read_request(conn))
                    pieces = self.answers.get(timeout=5)
                    for piece in pieces:
                        conn.sendall(piece)
                except (OSError, queue.Empty, ValueError):
                    continue

    @staticmethod
    def _read_request(conn: socket.socket) -> Tuple[str, Dict[str, str], bytes]:
        data = b""
        while b"\r\n\r\n" not in data:
            more = conn.recv(65536)
            if not more or len(data) > 1 << 20:
                raise ValueError("no request head")
            data += more
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            more = conn.recv(65536)
            if not more:
                break
            body += more
        return lines[0], headers, body

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._sock.close()


def http_answer(body_pieces: Iterable[bytes], headers: Sequence[Tuple[str, str]] = STREAM_HEADERS, framing: str = "chunked", status: str = "200 OK") -> List[bytes]:
    pieces = list(body_pieces)
    head = "HTTP/1.1 %s\r\n" % status + "".join("%s: %s\r\n" % kv for kv in headers) + "Connection: close\r\n"
    if framing == "chunked":
        out = [(head + "Transfer-Encoding: chunked\r\n\r\n").encode()]
        out += [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p]
        return out + [b"0\r\n\r\n"]
    return [(head + "Content-Length: %d\r\n\r\n" % sum(map(len, pieces))).encode()] + pieces
