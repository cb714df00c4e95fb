"""The scripted Runtime API fixture itself, driven by a plain socket client."""
from __future__ import annotations

import json
import socket
import sys
import textwrap
import time

import pytest

from runtime_api import (
    INVOKE_TIMEOUT_410,
    Event,
    Reply,
    RuntimeAPI,
    run_runtime,
)


class Client:
    """A minimal HTTP/1.1 client on one socket (keep-alive), strict enough to check the server."""

    def __init__(self, api: RuntimeAPI, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", api.port), timeout=timeout)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def read_response(self):
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError("closed before a response head; got %r" % self.buf)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines[1:]]
        length = int(dict((k.lower(), v) for k, v in headers)["content-length"])
        while len(self.buf) < length:
            if not self._fill():
                raise ConnectionError("closed mid-body")
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body

    def request(self, method: str, path: str, body: bytes = b"", headers=()) -> tuple:
        head = "%s %s HTTP/1.1\r\nHost: x\r\n" % (method, path)
        for k, v in headers:
            head += "%s: %s\r\n" % (k, v)
        if method == "POST":
            head += "Content-Length: %d\r\n" % len(body)
        self.send(head.encode() + b"\r\n" + body)
        return self.read_response()

    def at_eof(self, timeout: float = 3.0) -> bool:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


NEXT = "/2018-06-01/runtime/invocation/next"


def test_address_and_two_requests_on_one_connection():
    with RuntimeAPI(events=[Event(b'{"n": 1}', "r1"), Event(b'{"n": 2}', "r2")]) as api:
        host, port = api.address.split(":")
        assert host == "127.0.0.1" and int(port) > 0
        c = Client(api)
        s1, h1, b1 = c.request("GET", NEXT)
        s2, h2, b2 = c.request("POST", "/2018-06-01/runtime/invocation/r1/response", b'"ok"')
        s3, h3, b3 = c.request("GET", NEXT)
        c.close()
        assert (s1, b1) == (200, b'{"n": 1}') and (s3, b3) == (200, b'{"n": 2}')
        assert (s2, b2) == (202, b'{"status":"OK"}')
        assert [k for k, _ in h1] == [
            "Content-Type",
            "Lambda-Runtime-Aws-Request-Id",
            "Lambda-Runtime-Deadline-Ms",
            "Lambda-Runtime-Invoked-Function-Arn",
            "Content-Length",
        ]
        d1 = dict(h1)
        assert d1["Lambda-Runtime-Aws-Request-Id"] == "r1"
        assert d1["Content-Type"] == "application/json"
        assert abs(int(d1["Lambda-Runtime-Deadline-Ms"]) - (time.time() * 1000 + 300000)) < 10000
        assert dict(h3)["Lambda-Runtime-Aws-Request-Id"] == "r2"
        reqs = api.wait_for(lambda r: len(r) == 3)
        assert [r.conn_id for r in reqs] == [0, 0, 0] and api.connections == 1
        assert [r.kind for r in reqs] == ["next", "response", "next"]
        assert reqs[1].request_id == "r1"
        assert [ev.request_id for ev, _ in api.served] == ["r1", "r2"]


def test_request_recorded_byte_exact_with_header_case_and_order():
    with RuntimeAPI() as api:
        c = Client(api)
        raw = (b"POST /2018-06-01/runtime/invocation/abc/error HTTP/1.1\r\n"
               b"host: 127.0.0.1\r\nUser-Agent: test/1.0\r\nX-Dup: a\r\nx-dup: b\r\n"
               b"Content-Length: 5\r\n\r\nhello")
        c.send(raw)
        assert c.read_response()[0] == 202
        (post,) = api.wait_for_posts(1)
        assert post.raw == raw
        assert post.method == "POST" and post.version == "HTTP/1.1"
        assert post.path == "/2018-06-01/runtime/invocation/abc/error"
        assert post.kind == "error" and post.request_id == "abc"
        assert post.headers == [("host", "127.0.0.1"), ("User-Agent", "test/1.0"), ("X-Dup", "a"),
                                ("x-dup", "b"), ("Content-Length", "5")]
        assert post.header("user-agent") == "test/1.0" and post.header("HOST") == "127.0.0.1"
        assert post.header_all("X-DUP") == ["a", "b"] and post.header("missing") is None
        assert post.body == b"hello" and not post.chunked and post.complete
        c.close()


def test_event_headers_extra_removed_and_no_content_type():
    ev = Event(b"raw", "r9", content_type=None, deadline_ms=12345, function_arn="arn:x",
               headers={"Lambda-Runtime-Trace-Id": "Root=1", "lambda-runtime-invoked-function-arn": None})
    with RuntimeAPI(events=[ev]) as api:
        c = Client(api)
        status, headers, body = c.request("GET", NEXT)
        c.close()
    assert status == 200 and body == b"raw"
    assert headers == [("Lambda-Runtime-Aws-Request-Id", "r9"), ("Lambda-Runtime-Deadline-Ms", "12345"),
                       ("Lambda-Runtime-Trace-Id", "Root=1"), ("Content-Length", "3")]


def test_shorthand_events_get_numbered_ids():
    with RuntimeAPI(events=[{"a": 1}, b"x"]) as api:
        c = Client(api)
        h1, b1 = c.request("GET", NEXT)[1:]
        h2, b2 = c.request("GET", NEXT)[1:]
        c.close()
    assert (dict(h1)["Lambda-Runtime-Aws-Request-Id"], b1) == ("req-1", b'{"a": 1}')
    assert (dict(h2)["Lambda-Runtime-Aws-Request-Id"], b2) == ("req-2", b"x")


def test_chunked_body_with_trailers_is_decoded():
    with RuntimeAPI() as api:
        c = Client(api)
        head = (b"POST /2018-06-01/runtime/invocation/r1/response HTTP/1.1\r\nHost: x\r\n"
                b"Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n"
                b"Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n")
        chunked = (b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n"
                   b"Lambda-Runtime-Function-Error-Type: Boom\r\n"
                   b"Lambda-Runtime-Function-Error-Body: eyJ9\r\n\r\n")
        c.send(head + chunked[:9])  # split mid-chunk to exercise buffering
        time.sleep(0.05)
        c.send(chunked[9:])
        assert c.read_response()[0] == 202
        (post,) = api.wait_for_posts(1)
        c.close()
    assert post.chunked and post.complete
    assert post.body == b"hello, world" and post.chunks == [b"hello", b", world"]
    assert len(post.chunk_times) == 2
    assert post.raw_body == chunked and post.raw == head + chunked
    assert post.trailers == [("Lambda-Runtime-Function-Error-Type", "Boom"),
                             ("Lambda-Runtime-Function-Error-Body", "eyJ9")]
    assert post.trailer("lambda-runtime-function-error-type") == "Boom"


def test_scripted_410_and_times():
    with RuntimeAPI() as api:
        api.script(r"/invocation/[^/]+/response$", INVOKE_TIMEOUT_410, times=1)
        c = Client(api)
        s1, h1, b1 = c.request("POST", "/2018-06-01/runtime/invocation/r1/response", b"{}")
        s2, _, b2 = c.request("POST", "/2018-06-01/runtime/invocation/r2/response", b"{}")
        c.close()
    assert s1 == 410 and json.loads(b1) == {"errorMessage": "Invoke timeout", "errorType": "InvokeTimeout"}
    assert ("Content-Type", "application/json") in h1
    assert (s2, b2) == (202, b'{"status":"OK"}')


def test_scripted_callable_status_codes_and_next_override():
    with RuntimeAPI(events=[Event(b"{}", "r1")], replies=[("POST", "/init/error", Reply(403, {"x": 1}))]) as api:
        api.script("/error$", lambda req: Reply(500 if req.request_id == "bad" else 413, b"no"))
        api.script("/invocation/next", Reply(500, b"down"), method="GET", times=1)
        c = Client(api)
        assert c.request("POST", "/2018-06-01/runtime/init/error", b"{}")[0] == 403
        assert c.request("POST", "/2018-06-01/runtime/invocation/bad/error", b"{}")[0] == 500
        assert c.request("POST", "/2018-06-01/runtime/invocation/ok/error", b"{}")[0] == 413
        assert c.request("GET", NEXT)[::2] == (500, b"down")
        assert c.request("GET", NEXT)[::2] == (200, b"{}")  # the event was not consumed by the script
        c.close()


def test_restore_next_404_and_unknown_path_404():
    with RuntimeAPI() as api:
        c = Client(api)
        assert c.request("GET", "/2018-06-01/runtime/restore/next")[0] == 404
        assert c.request("GET", "/nope")[0] == 404
        assert c.request("POST", "/2018-06-01/runtime/restore/error", b"{}")[0] == 202
        c.close()


def test_held_next_released_on_close():
    api = RuntimeAPI()
    try:
        c = Client(api)
        c.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % NEXT.encode())
        api.wait_idle(1, timeout=5)
        assert api.waiting == 1
        c.sock.settimeout(0.3)
        with pytest.raises(socket.timeout):
            c.sock.recv(1)  # held: no answer
        t0 = time.monotonic()
        api.close()
        assert c.at_eof(3.0)
        assert time.monotonic() - t0 < 3.0
        assert api.requests[0].kind == "next" and api.waiting == 0
        c.close()
    finally:
        api.close()


def test_push_wakes_held_next():
    with RuntimeAPI() as api:
        c = Client(api)
        c.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % NEXT.encode())
        api.wait_idle(1)
        api.push(Event(b'"late"', "late-1"))
        status, headers, body = c.read_response()
        c.close()
    assert (status, body) == (200, b'"late"')
    assert dict(headers)["Lambda-Runtime-Aws-Request-Id"] == "late-1"


def test_after_events_close_and_500():
    with RuntimeAPI(after_events="close") as api:
        c = Client(api)
        c.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % NEXT.encode())
        assert c.at_eof()
        c.close()
    with RuntimeAPI(after_events="500") as api:
        c = Client(api)
        assert c.request("GET", NEXT)[0] == 500
        assert c.request("GET", NEXT)[0] == 500  # still keep-alive
        c.close()


def test_raw_event_short_body_then_close():
    raw = (b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r1\r\nContent-Length: 100\r\n\r\n{\"trunc")
    with RuntimeAPI(events=[Event(raw=raw)]) as api:
        c = Client(api)
        c.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % NEXT.encode())
        got = b""
        c.sock.settimeout(3)
        while True:
            data = c.sock.recv(4096)
            if not data:
                break
            got += data
        c.close()
    assert got == raw


def test_expect_100_continue():
    with RuntimeAPI() as api:
        c = Client(api)
        c.send(b"POST /2018-06-01/runtime/invocation/r1/response HTTP/1.1\r\nHost: x\r\n"
               b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        while b"\r\n\r\n" not in c.buf:
            c._fill()
        assert c.buf.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        c.buf = c.buf[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
        c.send(b"{}")
        status = c.read_response()[0]
        c.close()
        assert status == 202 and api.posts[0].body == b"{}"


def test_wait_for_posts_timeout_reports_what_was_recorded():
    with RuntimeAPI(events=[Event(b"{}", "r1")]) as api:
        c = Client(api)
        c.request("GET", NEXT)
        with pytest.raises(AssertionError) as info:
            api.wait_for_posts(1, timeout=0.3)
        c.close()
    msg = str(info.value)
    assert "1 POST(s)" in msg and "GET /2018-06-01/runtime/invocation/next" in msg


def test_server_stops_by_itself_after_lifetime():
    api = RuntimeAPI(lifetime=0.5)
    try:
        c = Client(api)
        c.send(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % NEXT.encode())
        assert c.at_eof(5.0)
        assert api.closed
        c.close()
        with pytest.raises(OSError):
            Client(api, timeout=1).request("GET", NEXT)
    finally:
        api.close()


# ---- the process helper, with a tiny runtime written on http.client

FAKE_RUNTIME = textwrap.dedent('''
    import http.client, json, os, sys
    host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    print("fake runtime for", sys.argv[1], os.environ["AWS_LAMBDA_FUNCTION_NAME"],
          os.environ.get("EXTRA"), "GONE" in os.environ, flush=True)
    while True:
        conn.request("GET", "/2018-06-01/runtime/invocation/next")
        r = conn.getresponse()
        body = r.read()
        rid = r.getheader("Lambda-Runtime-Aws-Request-Id")
        conn.request("POST", "/2018-06-01/runtime/invocation/%s/response" % rid, body=body[::-1])
        r = conn.getresponse()
        r.read()
        sys.stderr.write("posted %s %d\\n" % (rid, r.status))
        sys.stderr.flush()
''')


def test_run_runtime_collects_posts_and_output_then_stops_the_process():
    res = run_runtime({"fake.py": FAKE_RUNTIME}, "app.handler", [Event(b"abc", "r1"), Event(b"xyz", "r2")],
                      cmd=[sys.executable, "fake.py"], env={"EXTRA": "e", "GONE": None, "HOME": None},
                      timeout=20)
    assert not res.timed_out and not res.exited, res
    assert [p.body for p in res.posts] == [b"cba", b"zyx"]
    assert [p.request_id for p in res.posts] == ["r1", "r2"]
    assert res.stdout == b"fake runtime for app.handler test-function e False\n"
    assert res.stderr == b"posted r1 202\nposted r2 202\n"  # settle waited for the runtime's last write
    assert res.requests[-1].kind == "next"  # back on /next, held, then terminated
    assert res.returncode == -15
    assert res.env["AWS_LAMBDA_RUNTIME_API"] == res.api.address and "HOME" not in res.env
    assert res.env["LAMBDA_TASK_ROOT"] == res.cwd


def test_run_runtime_returns_when_the_process_exits_and_on_timeout():
    t0 = time.monotonic()
    res = run_runtime({"x.py": "import sys; print('bye'); sys.exit(7)"}, None, [Event()],
                      cmd=[sys.executable, "x.py"], timeout=20)
    assert res.exited and res.returncode == 7 and res.stdout == b"bye\n" and not res.posts
    hang = "import time\nwhile True: time.sleep(1)\n"
    res = run_runtime({"h.py": hang}, None, [Event()], cmd=[sys.executable, "h.py"], timeout=1)
    assert res.timed_out and not res.exited and res.returncode == -15
    assert time.monotonic() - t0 < 10


def test_run_runtime_fixture_with_awslambdaric(run_runtime, awslambdaric_cmd):
    app = "def handler(event, context):\n    return {'got': event, 'id': context.aws_request_id}\n"
    res = run_runtime({"app.py": app}, "app.handler", [Event(b'{"k": "v"}', "rid-1")], cmd=awslambdaric_cmd)
    post = res.post("response")
    assert post.path == "/2018-06-01/runtime/invocation/rid-1/response", res
    assert json.loads(post.body) == {"got": {"k": "v"}, "id": "rid-1"}
    assert res.requests[0].kind == "next" and res.requests[0].header("User-Agent").startswith("aws-lambda-python/")
