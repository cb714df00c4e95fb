"""Writes the seed corpus of fuzz_lr_conn.c into native/fuzz_corpus_conn/ (python3 native/fuzz_corpus_conn.py).

Each seed is a small header (see the top of fuzz_lr_conn.c) and the bytes a Runtime API
sends on one keep-alive connection: valid answers with a Content-Length, chunked (with
extensions and trailers), to the close, a body larger than the receive buffer, pipelined
answers, a body posted back through a small send buffer, a streamed response, the server closing
while a stream is sent, an error answer.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "fuzz_corpus_conn")

RUNTIME, CAP256, SMALL_SNDBUF = 0x40, 0x08, 0x80
LIMIT_1MIB = 0x10
KIND_ERROR, KIND_STREAM = 1, 3


def pull(w: int) -> int:
    """byte-1 bits for an lr_pull of 64 * w * w - 63 bytes (w 1..32); 0 means 65536."""
    return (w + 31) << 2


#: byte-1 bits: the server closes its end after the last byte (lr_pull of 65536)
SERVER_CLOSES = 16 << 2


def bound(ms: int) -> int:
    """byte-1 bits for an answer bound of `ms` (1-7) virtual ms, one tick per piece (lr_pull of 65536)."""
    return (ms & 7) << 3


def seed(flags: int, byte1: int, cuts, stream: bytes) -> bytes:
    assert len(cuts) == flags & 7
    return bytes([flags, byte1]) + b"".join(struct.pack(">H", c) for c in cuts) + stream


def next_head(request_id: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: " + request_id + b"\r\n"
        b"Lambda-Runtime-Deadline-Ms: 1542409706888\r\n"
        b"Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:f\r\n"
        b"Lambda-Runtime-Trace-Id: Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1\r\n"
        + extra
    )


ACCEPTED = (
    b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nDate: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
    b'Content-Length: 16\r\n\r\n{"status":"OK"}\n'
)
BODY = b'{"key1": "value1", "key2": [1, 2, 3]}'
CHUNKS = (
    b"10\r\n" + BODY[:16] + b"\r\n" + b"%x;ext=1\r\n" % (len(BODY) - 16) + BODY[16:] + b"\r\n0\r\nX-Trailer: t\r\n\r\n"
)
BIG = bytes(range(256)) * 600  # 153600 bytes: more than the 128 KiB buffer
ERROR = b'{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}'

SEEDS = {
    "content_length": seed(
        RUNTIME | CAP256 | 2, 0, [30, 200],
        next_head(b"8476a536-e9f4-11e8-9739-2dfe598c3fcd", b"Lambda-Runtime-Invocation-Id: inv-1\r\n")
        + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY + ACCEPTED
        + next_head(b"req-2") + b"Content-Length: 2\r\n\r\n{}" + ACCEPTED,
    ),
    "chunked": seed(
        RUNTIME | 3, pull(1), [60, 1, 300],
        next_head(b"req-chunked") + b"Transfer-Encoding: chunked\r\n\r\n" + CHUNKS + ACCEPTED,
    ),
    "to_close": seed(
        RUNTIME | CAP256 | 1, 0, [100], next_head(b"req-close") + b"Connection: close\r\n\r\n" + BODY * 50
    ),
    "large_body": seed(
        RUNTIME | SMALL_SNDBUF | 4, 0, [500, 4000, 60000, 60000],
        next_head(b"req-large") + b"Content-Length: %d\r\n\r\n" % len(BIG) + BIG + ACCEPTED,
    ),
    "pipelined": seed(
        CAP256, pull(3), [],
        next_head(b"req-a") + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY
        + next_head(b"req-b") + b"Transfer-Encoding: chunked\r\n\r\n" + CHUNKS
        + b"HTTP/1.1 204 No Content\r\n\r\n"
        + b"HTTP/1.1 500 Internal Server Error\nContent-Type: application/json\nConnection: close\n"
        + b"Content-Length: 2\n\n{}",
    ),
    "echo_small_sndbuf": seed(
        RUNTIME | SMALL_SNDBUF | CAP256 | 1, KIND_ERROR, [7],
        next_head(b"req-echo") + b"Content-Length: 20000\r\n\r\n" + b"x" * 20000 + ACCEPTED,
    ),
    "streamed_response": seed(
        RUNTIME | SMALL_SNDBUF | 1, KIND_STREAM, [40],
        next_head(b"req-stream", b"Lambda-Runtime-Invocation-Id: inv-2\r\n") + b"Content-Length: 9001\r\n\r\n"
        + b"s" * 9001 + ACCEPTED,
    ),
    "server_closes_mid_stream": seed(
        RUNTIME | SMALL_SNDBUF | 1, KIND_STREAM | SERVER_CLOSES, [40],
        next_head(b"req-stream-2") + b"Content-Length: 30000\r\n\r\n" + b"c" * 30000,
    ),
    "error_answer": seed(
        RUNTIME | LIMIT_1MIB | 2, 0, [5, 10],
        b"HTTP/1.1 200 OK\nLambda-Runtime-Aws-Request-Id: r\nContent-Length: 3\n\nabc"
        + b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(ERROR)
        + ERROR,
    ),
    # the answer bound: an answer in more pieces than the bound allows stalls (LR_STALLED) after
    # its first byte, in the head, a large body (lr_read_body), a chunked body (lr_pull), a posted
    # answer; one within the bound completes, and a /next with nothing sent yet is never cut
    "stall_in_head": seed(RUNTIME | 7, bound(2), [10, 10, 10, 10, 10, 10, 10], next_head(b"req-stall-head")),
    "stall_in_large_body": seed(
        RUNTIME | 4, bound(3), [500, 40000, 40000, 40000],
        next_head(b"req-stall-large") + b"Content-Length: %d\r\n\r\n" % len(BIG) + BIG + ACCEPTED,
    ),
    "stall_in_chunks": seed(
        RUNTIME | CAP256 | 5, bound(1), [60, 330, 10, 10, 10],
        next_head(b"req-stall-chunked") + b"Transfer-Encoding: chunked\r\n\r\n" + CHUNKS + ACCEPTED,
    ),
    "stall_in_post_answer": seed(
        RUNTIME | CAP256 | 3, KIND_STREAM | bound(1), [400, 20, 20],
        next_head(b"req-stall-post") + b"Content-Length: 2\r\n\r\n{}" + ACCEPTED,
    ),
    "within_bound": seed(
        RUNTIME | CAP256 | 2, bound(7), [200, 30],
        next_head(b"req-in-time") + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY + ACCEPTED
        + next_head(b"req-2") + b"Content-Length: 2\r\n\r\n{}" + ACCEPTED,
    ),
}

if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print("%-26s %7d bytes" % (name, len(data)))
