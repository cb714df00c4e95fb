"""``python -m lambdaric.local HANDLER [EVENT]``: invoke a handler once, locally, for real.

Starts a one-event Runtime API on a loopback port, runs ``python -m lambdaric HANDLER``
as a child process against it (the same code path as on Lambda), prints the result
payload on stdout and the function's log on stderr, and exits 0 on success or 1 when
the function failed. It is the small, honest stand-in for the full emulator: no
Invoke API, one event, nothing bound beyond 127.0.0.1.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from typing import List, Optional, Tuple

from . import protocol

USAGE = "usage: python -m lambdaric.local HANDLER [EVENT_JSON | @file | -]\n"


def _read_request(conn: socket.socket, buf: bytes) -> Tuple[str, str, bytes, bytes]:
    """Read one request (method, path, body) with a Content-Length body; returns leftover."""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            raise ConnectionError("runtime closed the connection")
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    while len(rest) < length:
        data = conn.recv(65536)
        if not data:
            raise ConnectionError("runtime closed the connection mid-body")
        rest += data
    return method, path, rest[:length], rest[length:]


def _reply(conn: socket.socket, status: str, body: bytes, headers: List[Tuple[str, str]] = ()) -> None:  # type: ignore[assignment]
    head = "HTTP/1.1 %s\r\nContent-Length: %d\r\n" % (status, len(body))
    head += "".join("%s: %s\r\n" % h for h in headers)
    conn.sendall(head.encode("latin-1") + b"\r\n" + body)


def invoke_once(handler: str, event: bytes, timeout: float = 30.0) -> Tuple[bool, bytes]:
    """Run ``handler`` on ``event`` in a child runtime; returns (succeeded, payload)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(timeout)
    address = "127.0.0.1:%d" % server.getsockname()[1]
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=address)
    env.setdefault("AWS_LAMBDA_FUNCTION_NAME", "function")
    env.setdefault("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
    env.setdefault("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3008")
    child = subprocess.Popen([sys.executable, "-m", "lambdaric", handler], env=env, stdout=sys.stderr)
    request_id = str(uuid.uuid4())
    deadline = int((time.time() + timeout) * 1000)
    try:
        conn, _ = server.accept()
        conn.settimeout(timeout)
        buf = b""
        while True:
            method, path, body, buf = _read_request(conn, buf)
            if method == "GET" and path == protocol.NEXT_PATH:
                _reply(
                    conn,
                    "200 OK",
                    event,
                    [
                        ("Lambda-Runtime-Aws-Request-Id", request_id),
                        ("Lambda-Runtime-Deadline-Ms", str(deadline)),
                        ("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:012345678912:function:function"),
                        ("Content-Type", "application/json"),
                    ],
                )
                continue
            _reply(conn, "202 Accepted", b'{"status":"OK"}')
            if path == protocol.response_path(request_id):
                return True, body
            if path in (protocol.error_path(request_id), protocol.INIT_ERROR_PATH):
                return False, body
    except (OSError, ValueError) as exc:
        code = child.poll()
        return False, ("local invoke failed: %s (runtime exit status %s)" % (exc, code)).encode()
    finally:
        server.close()
        if child.poll() is None:
            child.terminate()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:  # pragma: no cover
            child.kill()


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0 if args else 2
    raw = args[1] if len(args) > 1 else "{}"
    if raw == "-":
        event = sys.stdin.buffer.read()
    elif raw.startswith("@"):
        with open(raw[1:], "rb") as f:
            event = f.read()
    else:
        event = raw.encode("utf-8")
    try:
        json.loads(event)
    except ValueError as exc:
        sys.stderr.write("lambdaric.local: the event is not valid JSON: %s\n" % exc)
        return 2
    ok, payload = invoke_once(args[0], event)
    sys.stdout.buffer.write(payload + b"\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
