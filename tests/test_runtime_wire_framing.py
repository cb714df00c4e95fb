"""How the runtime reads what the Runtime API sends: every HTTP framing it may meet, cut at
awkward places, and malformed answers. These are the paths where the pure-Python and the
native transport are different code; each test runs once per transport (``lambdaric_env``)
and expects the same outcome and the same words from both."""
import time

import pytest

from runtime_api import Event

UNTIL_EXIT = {"expect_posts": 10**6, "timeout": 20}
ECHO = {"app.py": "def handler(e, c):\n    return e\n"}


def one(result, suffix):
    found = [p for p in result.posts if p.path.endswith(suffix)]
    assert len(found) == 1, result.describe()
    return found[0]


def head(request_id: str, *lines: str) -> bytes:
    """A /next answer head (without the blank line) carrying a request id and JSON content type."""
    base = ["HTTP/1.1 200 OK", "Lambda-Runtime-Aws-Request-Id: " + request_id, "Content-Type: application/json"]
    return "\r\n".join(base + list(lines)).encode("latin-1") + b"\r\n\r\n"


def sender(data: bytes, keep_open: bool = True, piece: int = 0, pause: float = 0.0):
    """An Event.raw callable: send ``data`` (in ``piece``-byte writes with pauses, to cut
    reads anywhere) and keep the connection open for the next request unless told not to."""

    def send(sock):
        if piece:
            for i in range(0, len(data), piece):
                sock.sendall(data[i : i + piece])
                if pause:
                    time.sleep(pause)
        else:
            sock.sendall(data)
        return keep_open

    return send


def test_chunked_event_with_extensions_and_trailers(run_runtime):
    body = head("r1", "Transfer-Encoding: chunked") + b"3;ext=1\r\n[1,\r\n4\r\n 2, \r\n2\r\n3]\r\n0\r\nX-Trailer: t\r\n\r\n"
    events = [Event(raw=sender(body)), Event(request_id="r2", body=b'"next"')]
    result = run_runtime(ECHO, "app.handler", events, expect_posts=2)
    assert one(result, "/invocation/r1/response").body == b"[1, 2, 3]"
    assert one(result, "/invocation/r2/response").body == b'"next"'
    assert len({r.conn_id for r in result.requests}) == 1  # the connection stayed in use


def test_body_to_connection_close(run_runtime):
    body = head("r1", "Connection: close") + b'{"until": "close"}'
    events = [Event(raw=sender(body, keep_open=False)), Event(request_id="r2", body=b"2")]
    result = run_runtime(ECHO, "app.handler", events, expect_posts=2)
    assert one(result, "/invocation/r1/response").body == b'{"until": "close"}'
    assert one(result, "/invocation/r2/response").body == b"2"


def test_answer_cut_into_single_bytes_and_lf_only_lines(run_runtime):
    event = b'{"slow": "' + b"x" * 300 + b'"}'
    lf = b"HTTP/1.1 200 OK\nLambda-Runtime-Aws-Request-Id: r1\nContent-Type: application/json\nContent-Length: %d\n\n" % len(event)
    events = [Event(raw=sender(lf + event, piece=1, pause=0.0005)), Event(request_id="r2", body=b"2")]
    result = run_runtime(ECHO, "app.handler", events, expect_posts=2)
    assert one(result, "/invocation/r1/response").body == event.replace(b'":"', b'": "')
    assert one(result, "/invocation/r2/response").body == b"2"


@pytest.mark.parametrize("size", [200_000, 300_000, 3_000_000])
def test_bodies_around_the_receive_buffer_in_pieces(run_runtime, size):
    """Bodies just under, just over and far over the native transport's 256 KiB buffer,
    arriving in 64 KiB writes, with a big head in front (the body must move in the buffer)."""
    event = b'"' + b"y" * (size - 2) + b'"'
    data = head("r1", "X-Padding: " + "p" * 60000, "Content-Length: %d" % len(event)) + event
    events = [Event(raw=sender(data, piece=65536)), Event(request_id="r2", body=b"2")]
    result = run_runtime(ECHO, "app.handler", events, expect_posts=2, timeout=60)
    assert one(result, "/invocation/r1/response").body == event
    assert one(result, "/invocation/r2/response").body == b"2"


@pytest.mark.parametrize(
    "answer, words",
    [
        (b"garbage\r\n\r\n", b"malformed status line 'garbage'"),
        (head("r1", "X-Bad: a\x00b", "Content-Length: 2") + b"{}", b"NUL byte in header 'x-bad'"),
        (head("r1", "Lambda-Runtime-Aws-Request-Id: r2", "Content-Length: 2") + b"{}",
         b"repeated header 'lambda-runtime-aws-request-id'"),
        (head("r1", "Content-Length: 12x") + b"{}", b"invalid Content-Length '12x'"),
        (head("r1", "no colon here", "Content-Length: 2") + b"{}", b"malformed header line 'no colon here'"),
        (head("r1", "Content-Length: 6291557"), b"Runtime API body of 6291557 bytes exceeds the 6291556-byte limit"),
        (b"HTTP/1.1 200 OK\r\nX-Huge: " + b"h" * 70000, b"response head from the Runtime API exceeds 65536 bytes"),
        (head("r1", "Transfer-Encoding: chunked") + b"zz\r\n", b"malformed chunk size"),
    ],
    ids=["status", "nul", "repeated-id", "length", "header", "body-limit", "head-limit", "chunk-size"],
)
def test_malformed_answers_end_the_runtime_with_one_clear_line(run_runtime, answer, words):
    result = run_runtime(ECHO, "app.handler", [Event(raw=sender(answer))], **UNTIL_EXIT)
    assert result.returncode == 1, result.describe()
    assert not result.posts
    assert b"invalid answer from the Runtime API at " in result.stderr and words in result.stderr, result.stderr
    assert b"Traceback" not in result.stderr
