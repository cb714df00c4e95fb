"""The HTTP front with ``--invoke-mode RESPONSE_STREAM`` (a function URL's streaming mode): the
status, headers and cookies come from the handler's prelude, the body reaches the HTTP client
as the handler writes it (chunked), measured on a raw socket."""
import http.client
import json
import socket
import time

import pytest

from test_web_front import WebEmulator, header

APP = {
    "app.py": r"""
        import json, time
        import lambdaric

        def mode_of(event):
            return (event.get("queryStringParameters") or {}).get("mode")

        @lambdaric.streaming_handler
        def handler(event, context, stream):
            mode = mode_of(event)
            if mode == "early":
                raise ValueError("failed before the stream")
            if mode == "plain":
                stream.content_type = "text/plain"
                stream.write("first;")
                time.sleep(0.6)
                stream.write("second;")
                return
            if mode == "late":
                stream.write(lambdaric.HttpResponse(200, headers={"Content-Type": "text/plain"}))
                stream.write("partial;")
                raise ValueError("failed mid-stream")
            if mode == "big":
                stream.write(lambdaric.HttpResponse(200, headers={"Content-Type": "application/octet-stream"}))
                for i in range(16):
                    stream.write(bytes([i]) * (1024 * 1024))
                return
            if mode == "badprelude":
                stream.content_type = "application/vnd.awslambda.http-integration-response"
                stream.write(b"this is no prelude" + b"\0" * 8 + b"body")
                return
            stream.write(lambdaric.HttpResponse(201, headers={"Content-Type": "text/event-stream", "X-Stream": "yes"},
                                                cookies=["s=1; Path=/", "t=2"]))
            for i in range(4):
                stream.write("data: tick %d\n\n" % i)
                time.sleep(0.4)
    """,
    "buffered.py": r"""
        def handler(event, context):
            return {"statusCode": 202, "headers": {"Content-Type": "text/plain"}, "body": "buffered answer"}
    """,
}


@pytest.fixture(scope="module")
def emu():
    with WebEmulator(APP, args=["--invoke-mode", "RESPONSE_STREAM"]) as running:
        yield running


def timed_exchange(port, path):
    """(head bytes, [(seconds since the request, body bytes of one read)], total seconds)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        started = time.monotonic()
        s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
        buf = b""
        arrivals = []
        while True:
            piece = s.recv(65536)
            if not piece:
                break
            arrivals.append((time.monotonic() - started, piece))
            buf += piece
        return buf, arrivals, time.monotonic() - started


def dechunk(data):
    out = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out, data = out + data[:size], data[size + 2:]


def test_prelude_head_then_body_as_it_is_written(emu):
    buf, arrivals, total = timed_exchange(emu.port, "/events")
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 201 Created"
    assert "Content-Type: text/event-stream" in lines and "X-Stream: yes" in lines
    assert [l for l in lines if l.startswith("Set-Cookie:")] == ["Set-Cookie: s=1; Path=/", "Set-Cookie: t=2"]
    assert "Transfer-Encoding: chunked" in lines
    assert dechunk(body) == b"".join(b"data: tick %d\n\n" % i for i in range(4))
    # the first tick left the front long before the last: streamed, not buffered
    first = next(t for t, piece in arrivals if b"tick 0" in piece)
    last = next(t for t, piece in arrivals if b"tick 3" in piece)
    assert last - first > 0.9 and first < total - 1.0, (first, last, total)


def test_a_stream_without_prelude_is_sent_as_it_is(emu):
    buf, arrivals, _ = timed_exchange(emu.port, "/?mode=plain")
    head, _, body = buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nContent-Type: text/plain\r\n" in head
    assert dechunk(body) == b"first;second;"
    first = next(t for t, piece in arrivals if b"first;" in piece)
    second = next(t for t, piece in arrivals if b"second;" in piece)
    assert second - first > 0.4


def test_errors_before_and_during_the_stream(emu):
    status, _, _, data = emu.request("GET", "/?mode=early")
    assert (status, data) == (502, b"Internal Server Error")
    status, _, _, data = emu.request("GET", "/?mode=badprelude")
    assert (status, data) == (502, b"Internal Server Error")
    # after the head: the body is cut short (no last chunk), the connection closed
    buf, _, _ = timed_exchange(emu.port, "/?mode=late")
    assert buf.startswith(b"HTTP/1.1 200 OK\r\n") and b"partial;" in buf and not buf.endswith(b"0\r\n\r\n")
    time.sleep(0.05)
    lines = [l for l in emu.log_lines() if "mode=late" in l]
    assert lines and "stream ended by an error: ValueError: failed mid-stream" in lines[-1]
    assert "ValueError: failed before the stream" in [l for l in emu.log_lines() if "mode=early" in l][-1]
    # and it keeps serving
    status, _, headers, _ = emu.request("GET", "/again")
    assert status == 201 and header(headers, "X-Stream") == "yes"


def test_http_client_reads_the_stream(emu):
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=30)
    conn.request("GET", "/a")
    resp = conn.getresponse()
    assert resp.status == 201 and resp.read().count(b"data: tick") == 4
    conn.request("HEAD", "/a")  # same connection: the stream ended cleanly
    resp = conn.getresponse()
    assert resp.status == 201 and resp.read() == b""
    conn.close()


def test_a_buffered_handler_in_stream_mode_is_sent_raw():
    with WebEmulator(APP, args=["--invoke-mode", "RESPONSE_STREAM"], handler="buffered.handler") as emu:
        status, _, headers, data = emu.request("GET", "/")
        assert status == 200 and header(headers, "Content-Type") == "application/json"
        assert json.loads(data) == {"statusCode": 202, "headers": {"Content-Type": "text/plain"}, "body": "buffered answer"}


def test_a_streaming_handler_behind_a_buffered_url_still_answers():
    with WebEmulator(APP) as emu:
        status, _, headers, data = emu.request("GET", "/")
        assert status == 201 and header(headers, "X-Stream") == "yes" and data.count(b"data: tick") == 4


def test_a_client_that_leaves_mid_stream_frees_the_runtime(emu):
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as s:
        s.sendall(b"GET /leaving HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 201 Created")
    # the handler writes on into a stream nobody reads; the rest is dropped and the runtime is free
    started = time.monotonic()
    for _ in range(4):  # more requests than one runtime would take if one were stuck
        status, _, _, data = emu.request("GET", "/?mode=plain")
        assert (status, data) == (200, b"first;second;")
    assert time.monotonic() - started < 10
    time.sleep(2)
    line = [l for l in emu.log_lines() if '"GET /leaving"' in l][-1]
    assert " 201 " in line, line


def test_a_large_stream_arrives_whole_and_in_order(emu):
    status, _, headers, data = emu.request("GET", "/?mode=big", timeout=60)
    assert status == 200 and len(data) == 16 * 1024 * 1024
    assert all(data[i * 1024 * 1024:(i + 1) * 1024 * 1024] == bytes([i]) * (1024 * 1024) for i in range(16))
