"""A minimal pure-Python Lambda runtime loop: the reference contestants of the benchmark.

    python minimal_loop.py HANDLER json|orjson

GET /next, call the handler, POST /response (or /error) over one keep-alive socket, with the
stdlib's json or with orjson: about the least a Python runtime can do (a raw socket, the head
searched for Content-Length and the request id only, one send per request; no context object,
logging, error shapes, chunked bodies or validation). A reference for speed, not a runtime to use.
"""
import importlib
import os
import socket
import sys


def main() -> None:
    module, _, name = sys.argv[1].rpartition(".")
    handler = getattr(importlib.import_module(module), name)
    if sys.argv[2] == "orjson":
        import orjson

        loads, dumps = orjson.loads, orjson.dumps
    else:
        import json

        loads = json.loads

        def dumps(obj):  # type: ignore[no-untyped-def]
            return json.dumps(obj, ensure_ascii=False).encode()

    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    get = b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode()
    post = b"POST /2018-06-01/runtime/invocation/%s%s HTTP/1.1\r\nHost: " + host.encode() + (
        b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n")
    buf = b""

    def answer():  # type: ignore[no-untyped-def]
        """(head, body) of the next answer (Content-Length framing only)."""
        nonlocal buf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            chunk = sock.recv(65536)
            if not chunk:
                sys.exit(0)
            buf += chunk
        head = buf[:end + 2].lower()  # (with the last line's CRLF)
        at = head.find(b"\r\ncontent-length:")
        length = int(head[at + 17:head.find(b"\r\n", at + 2)]) if at >= 0 else 0
        start = end + 4
        while len(buf) < start + length:
            chunk = sock.recv(max(65536, start + length - len(buf)))
            if not chunk:
                sys.exit(0)
            buf += chunk
        head, body, buf = buf[:end + 2], buf[start:start + length], buf[start + length:]
        return head, body

    while True:
        sock.sendall(get)
        head, body = answer()
        at = head.lower().find(b"\r\nlambda-runtime-aws-request-id:")
        request_id = head[at + 32:head.find(b"\r\n", at + 2)].strip()
        try:
            out, kind = dumps(handler(loads(body), None)), b"/response"
        except Exception as exc:
            out, kind = dumps({"errorMessage": str(exc), "errorType": type(exc).__name__}), b"/error"
        sock.sendall(post % (request_id, kind, len(out)) + out)
        answer()


if __name__ == "__main__":
    main()
