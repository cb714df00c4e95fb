"""Streamed responses (``stream_begin`` / ``stream_write`` / ``stream_end``), driven directly on
each transport against the scripted Runtime API, asserting on the exact bytes received.

Every test runs once per transport (the native one skips, saying why, where it is not built),
and one test runs the same calls through both and compares the bytes.
"""
import array
import base64
import inspect
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from runtime_api import Event, Reply, RuntimeAPI

from lambdaric import protocol, streamwire
from lambdaric.streamwire import StreamTooLarge
from lambdaric.transport import Transport, TransportError
from lambdaric.transport.base import ConnectionClosed
from lambdaric.transport.python import PythonTransport

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UA = "lambdaric-test/1.0"
MIB = 1024 * 1024
TRAILER = b"Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n"
OK = (202, b'{"status":"OK"}')


def _native_problem():
    try:
        import lambdaric.transport.native  # noqa: F401
    except (ImportError, OSError) as exc:
        return "the native transport cannot be imported here (%s: %s)" % (type(exc).__name__, exc)
    return None


def transport_class(name):
    if name == "python":
        return PythonTransport
    problem = _native_problem()
    if problem:
        pytest.skip(problem)
    from lambdaric.transport.native import NativeTransport

    return NativeTransport


@pytest.fixture(params=["python", "native"])
def make(request):
    """``make(address) -> transport`` of the parametrized kind; all closed after the test."""
    cls = transport_class(request.param)
    made = []

    def factory(address):
        t = cls(address, UA)
        made.append(t)
        return t

    yield factory
    for t in made:
        t.close()


@pytest.fixture
def api():
    with RuntimeAPI(lifetime=120) as server:
        yield server


# --------------------------------------------------------------------------- expected bytes
# Written out here by hand (not with lambdaric.protocol) so the test checks the wire itself.


def head(address, request_id, content_type, invocation_id=None):
    lines = [
        b"POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\n" % request_id.encode(),
        b"Host: %s\r\n" % address.encode(),
        b"User-Agent: %s\r\n" % UA.encode(),
        b"Content-Type: %s\r\n" % content_type.encode(),
    ]
    if invocation_id:
        lines.append(b"Lambda-Runtime-Invocation-Id: %s\r\n" % invocation_id.encode())
    lines += [b"Lambda-Runtime-Function-Response-Mode: streaming\r\n", TRAILER, b"Transfer-Encoding: chunked\r\n\r\n"]
    return b"".join(lines)


def chunk(data):
    return b"%x\r\n" % len(data) + data + b"\r\n"


def last_chunk(error_type=None, error_body=None):
    out = b"0\r\n"
    if error_type:
        out += b"Lambda-Runtime-Function-Error-Type: %s\r\n" % error_type.encode()
        if error_body:
            out += b"Lambda-Runtime-Function-Error-Body: %s\r\n" % base64.b64encode(error_body)
    return out + b"\r\n"


def only_post(api):
    (post,) = api.wait_for_posts(1)
    assert post.complete and post.chunked, api.describe()
    return post


# --------------------------------------------------------------------------- the interface


def test_both_transports_offer_the_documented_interface():
    classes = [PythonTransport]
    if _native_problem() is None:
        from lambdaric.transport.native import NativeTransport

        classes.append(NativeTransport)
    for name in ("stream_begin", "stream_write", "stream_end"):
        expected = inspect.signature(getattr(Transport, name))
        assert getattr(Transport, name).__doc__
        for cls in classes:
            assert inspect.signature(getattr(cls, name)) == expected, (cls, name)


# --------------------------------------------------------------------------- exact bytes


def test_head_chunks_and_answer_exact_bytes(make, api):
    t = make(api.address)
    t.stream_begin("req-1", "text/plain; charset=utf-8", "inv-42")
    t.stream_write(b"hello ")
    t.stream_write(b"streaming ")
    t.stream_write(b"world")
    assert t.stream_end() == OK
    post = only_post(api)
    assert post.raw == (
        head(api.address, "req-1", "text/plain; charset=utf-8", "inv-42")
        + chunk(b"hello ") + chunk(b"streaming ") + chunk(b"world") + b"0\r\n\r\n"
    )
    assert post.chunks == [b"hello ", b"streaming ", b"world"] and post.trailers == []
    assert not api.unparsed and not api.errors


def test_no_invocation_id_header_when_none_or_empty(make, api):
    t = make(api.address)
    for rid, inv in (("r1", None), ("r2", "")):
        t.stream_begin(rid, "application/octet-stream", inv)
        t.stream_write(b"x")
        assert t.stream_end() == OK
    posts = api.wait_for_posts(2)
    for post, rid in zip(posts, ("r1", "r2")):
        assert post.raw == head(api.address, rid, "application/octet-stream") + chunk(b"x") + last_chunk()
        assert post.header("Lambda-Runtime-Invocation-Id") is None
    assert len({p.conn_id for p in posts}) == 1  # the connection is kept alive across streams


def test_error_trailers_exact_bytes_base64_body(make, api):
    error = b'{"errorMessage": "boom \\u00e9", "errorType": "StreamBroke", "stackTrace": ["line 1\\n"]}'
    t = make(api.address)
    t.stream_begin("req-1", "text/plain")
    t.stream_write(b"partial ")
    assert t.stream_end("StreamBroke", error) == OK
    post = only_post(api)
    b64 = base64.b64encode(error)
    assert post.raw == (
        head(api.address, "req-1", "text/plain") + chunk(b"partial ") + b"0\r\n"
        b"Lambda-Runtime-Function-Error-Type: StreamBroke\r\n"
        b"Lambda-Runtime-Function-Error-Body: " + b64 + b"\r\n\r\n"
    )
    assert base64.b64decode(post.trailer("Lambda-Runtime-Function-Error-Body"), validate=True) == error


@pytest.mark.parametrize("body", [None, b""], ids=["no-body", "empty-body"])
def test_error_type_alone_sends_only_the_type_trailer(make, api, body):
    t = make(api.address)
    t.stream_begin("req-1", "text/plain")
    assert t.stream_end("Function.Oops", body) == OK  # no chunk at all: an empty stream
    post = only_post(api)
    assert post.raw == head(api.address, "req-1", "text/plain") + b"0\r\nLambda-Runtime-Function-Error-Type: Function.Oops\r\n\r\n"
    assert post.chunks == [] and post.trailers == [("Lambda-Runtime-Function-Error-Type", "Function.Oops")]


def test_empty_write_sends_nothing_and_never_ends_the_body(make, api):
    t = make(api.address)
    t.stream_begin("req-1", "text/plain")
    t.stream_write(b"")
    t.stream_write(b"a")
    t.stream_write(bytearray())
    t.stream_write(memoryview(b""))
    t.stream_write(b"b")
    assert t.stream_end() == OK
    post = only_post(api)
    assert post.raw_body == chunk(b"a") + chunk(b"b") + b"0\r\n\r\n"


@pytest.mark.parametrize(
    "reply, expected",
    [
        (Reply(202, {"status": "OK"}), OK),
        (Reply(403, {"errorMessage": "Invalid state transition", "errorType": "InvalidStateTransition"}),
         (403, b'{"errorMessage":"Invalid state transition","errorType":"InvalidStateTransition"}')),
        (Reply(410, {"errorMessage": "Invoke timeout", "errorType": "InvokeTimeout"}),
         (410, b'{"errorMessage":"Invoke timeout","errorType":"InvokeTimeout"}')),
        (Reply(413, b"too large"), (413, b"too large")),
        (Reply(500, b""), (500, b"")),
        (Reply(raw=b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"), (202, b"ok")),
    ],
    ids=["202", "403", "410", "413", "500", "chunked-answer"],
)
def test_stream_end_returns_the_answer(make, api, reply, expected):
    api.script(r"/invocation/req-1/response$", reply)
    t = make(api.address)
    t.stream_begin("req-1", "text/plain")
    t.stream_write(b"data")
    assert t.stream_end() == expected
    assert only_post(api).raw_body == chunk(b"data") + b"0\r\n\r\n"


def test_answer_with_connection_close_then_a_new_connection(make, api):
    api.script(r"/invocation/req-1/response$", Reply(202, {"status": "OK"}, headers={"Connection": "close"}), times=1)
    t = make(api.address)
    t.stream_begin("req-1", "text/plain")
    assert t.stream_end() == OK
    t.stream_begin("req-2", "text/plain")
    t.stream_write(b"z")
    assert t.stream_end() == OK
    first, second = api.wait_for_posts(2)
    assert (first.conn_id, second.conn_id) == (0, 1)
    assert second.raw == head(api.address, "req-2", "text/plain") + chunk(b"z") + last_chunk()


# --------------------------------------------------------------------------- sizes


def test_one_write_of_5_mib_is_one_chunk(make, api):
    payload = os.urandom(5 * MIB)
    t = make(api.address)
    t.stream_begin("req-1", "application/octet-stream")
    t.stream_write(payload)
    assert t.stream_end() == OK
    post = only_post(api)
    assert post.raw_body == b"500000\r\n" + payload + b"\r\n0\r\n\r\n"
    assert len(post.chunks) == 1 and post.chunks[0] == payload


@pytest.mark.parametrize("kind", ["bytearray", "memoryview", "memoryview-slice", "array-uint32"])
def test_large_buffers_other_than_bytes(make, api, kind):
    raw = os.urandom(3 * MIB + 5)
    data = {
        "bytearray": lambda: bytearray(raw),
        "memoryview": lambda: memoryview(raw),
        "memoryview-slice": lambda: memoryview(raw)[5:],
        "array-uint32": lambda: array.array("I", raw[5:]),
    }[kind]()
    expected = raw[5:] if kind in ("memoryview-slice", "array-uint32") else raw
    t = make(api.address)
    t.stream_begin("req-1", "application/octet-stream")
    t.stream_write(data)
    assert t.stream_end() == OK
    assert only_post(api).raw_body == chunk(expected) + b"0\r\n\r\n"


def test_many_small_chunks(make, api):
    pieces = [bytes([65 + i % 26]) * (1 + (i * 37) % 300) for i in range(3000)]
    t = make(api.address)
    t.stream_begin("req-1", "text/plain")
    for piece in pieces:
        t.stream_write(piece)
    assert t.stream_end() == OK
    post = only_post(api)
    assert post.chunks == pieces
    assert post.raw_body == b"".join(chunk(p) for p in pieces) + b"0\r\n\r\n"


def test_sizes_around_the_join_limit_and_mixed(make, api):
    sizes = [1, 15, 16, 255, 256, 16383, 16384, 16385, 65536, 65537, 1 * MIB + 1]
    pieces = [os.urandom(n) for n in sizes]
    t = make(api.address)
    t.stream_begin("req-1", "application/octet-stream")
    for piece in pieces:
        t.stream_write(piece)
    assert t.stream_end("Late.Error", b"{}") == OK
    post = only_post(api)
    assert post.chunks == pieces
    assert post.raw_body == b"".join(chunk(p) for p in pieces) + last_chunk("Late.Error", b"{}")


def test_write_past_the_streamed_limit_is_refused_and_the_stream_stays_open(make, api, monkeypatch):
    monkeypatch.setattr(streamwire, "MAX_STREAMED", 10)
    t = make(api.address)
    t.stream_begin("req-1", "text/plain")
    t.stream_write(b"12345678")
    with pytest.raises(StreamTooLarge, match=r"past 10 bytes \(8 sent\)") as info:
        t.stream_write(b"abc")
    assert isinstance(info.value, ValueError)
    t.stream_write(b"90")  # exactly the limit
    assert t.stream_end("Function.ResponseSizeTooLarge", b'{"errorType":"Function.ResponseSizeTooLarge"}') == OK
    post = only_post(api)
    assert post.chunks == [b"12345678", b"90"]
    assert post.trailer("Lambda-Runtime-Function-Error-Type") == "Function.ResponseSizeTooLarge"


def test_error_trailers_over_the_limit_are_refused_and_the_stream_stays_open(make, api):
    t = make(api.address)
    t.stream_begin("req-1", "text/plain")
    t.stream_write(b"x")
    with pytest.raises(ValueError, match="error trailers would be .* over the 65536-byte limit"):
        t.stream_end("Big", b"e" * 60000)
    time.sleep(0.2)
    assert api.posts == []  # nothing went out: the server still waits for the rest of the body
    assert t.stream_end("Big", b"e" * 40000) == OK
    post = only_post(api)
    assert post.raw_body == chunk(b"x") + last_chunk("Big", b"e" * 40000)


# --------------------------------------------------------------------------- validation

BAD_VALUES = [
    "text/plain\r\nX-Injected: 1",
    "text/plain\nX-Injected: 1",
    "text/plain\rX",
    "a\x00b",
    "a\x7fb",
    "caf\u00e9/x",
    "",
    " text/plain",
    "text/plain\t",
    "x" * 8193,
]


def _nothing_sent(api, connections=0):
    time.sleep(0.05)
    assert api.requests == [] and api.connections == connections and not api.unparsed, api.describe()


@pytest.mark.parametrize("value", BAD_VALUES, ids=range(len(BAD_VALUES)))
def test_bad_content_type_is_refused_before_anything_is_sent(make, api, value):
    t = make(api.address)
    with pytest.raises(ValueError, match="content_type") as info:
        t.stream_begin("req-1", value)
    assert str(info.value).isascii()
    _nothing_sent(api)
    t.stream_begin("req-1", "text/plain")  # the transport is usable, and no stream was left open
    assert t.stream_end() == OK


BAD_INVOCATION_IDS = [v for v in BAD_VALUES if v] + ["inv-1 ", 42]  # ("" means none: see above)


@pytest.mark.parametrize("value", BAD_INVOCATION_IDS, ids=range(len(BAD_INVOCATION_IDS)))
def test_bad_invocation_id_is_refused(make, api, value):
    t = make(api.address)
    with pytest.raises((ValueError, TypeError), match="invocation_id") as info:
        t.stream_begin("req-1", "text/plain", value)
    assert str(info.value).isascii()
    _nothing_sent(api)


@pytest.mark.parametrize("value", ["", "../next", "a/b", "r 1", "r\r\n1", "-r", "r?x=1", "r%2F", "caf\u00e9", "r" * 257])
def test_unsafe_request_id_is_refused(make, api, value):
    t = make(api.address)
    with pytest.raises(ValueError, match="unsafe request id") as info:
        t.stream_begin(value, "text/plain")
    assert str(info.value).isascii()
    _nothing_sent(api)


@pytest.mark.parametrize("value", BAD_VALUES, ids=range(len(BAD_VALUES)))
def test_bad_error_type_is_refused_and_the_stream_stays_open(make, api, value):
    t = make(api.address)
    t.stream_begin("req-1", "text/plain")
    t.stream_write(b"ok")
    with pytest.raises(ValueError, match="error_type") as info:
        t.stream_end(value, b"{}")
    assert str(info.value).isascii()
    time.sleep(0.05)
    assert api.posts == []  # the last chunk did not go out
    assert t.stream_end("Good.Type", b"{}") == OK
    post = only_post(api)
    assert post.raw_body == chunk(b"ok") + last_chunk("Good.Type", b"{}")


def test_wrong_types_are_refused(make, api):
    t = make(api.address)
    with pytest.raises(TypeError, match="request_id must be a str"):
        t.stream_begin(b"req-1", "text/plain")
    with pytest.raises(TypeError, match="content_type must be a str"):
        t.stream_begin("req-1", b"text/plain")
    _nothing_sent(api)
    t.stream_begin("req-1", "text/plain")
    with pytest.raises(TypeError, match="not str"):
        t.stream_write("text")
    with pytest.raises(TypeError, match="not int"):
        t.stream_write(12)
    with pytest.raises(ValueError, match="C-contiguous"):
        t.stream_write(memoryview(b"abcdef")[::2])
    with pytest.raises(TypeError, match="error_body must be bytes"):
        t.stream_end("E", "{}")
    with pytest.raises(ValueError, match="error_body needs an error_type"):
        t.stream_end(None, b"{}")
    with pytest.raises(TypeError, match="error_type must be a str"):
        t.stream_end(b"E")
    assert t.stream_end() == OK
    assert only_post(api).raw_body == b"0\r\n\r\n"


def test_calls_out_of_order_raise_and_change_nothing(make, api):
    api.push(Event(b"{}", request_id="req-1"))
    t = make(api.address)
    with pytest.raises(RuntimeError, match="no response stream is open"):
        t.stream_write(b"x")
    with pytest.raises(RuntimeError, match="no response stream is open"):
        t.stream_end()
    _nothing_sent(api)
    t.stream_begin("req-0", "text/plain")
    with pytest.raises(RuntimeError, match="a response stream is open"):
        t.stream_begin("req-0", "text/plain")
    with pytest.raises(RuntimeError, match="a response stream is open"):
        t.respond("req-0", b"{}", "application/json", None)
    with pytest.raises(RuntimeError, match="a response stream is open"):
        t.next()
    t.stream_write(b"still fine")
    assert t.stream_end() == OK
    assert t.next().request_id == "req-1"  # and the connection serves the next call
    post = only_post(api)
    assert post.raw == head(api.address, "req-0", "text/plain") + chunk(b"still fine") + last_chunk()
    assert len({r.conn_id for r in api.requests}) == 1


# --------------------------------------------------------------------------- broken connections


class MidStreamServer:
    """Accepts connections; on each, reads until ``cut`` bytes of a request came, then closes it
    (``rst``: with a reset); records what each connection received."""

    def __init__(self, cut, rst=False):
        self.cut, self.rst = cut, rst
        self.received = []
        self.closed = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.address = "127.0.0.1:%d" % self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            while True:
                conn, _ = self.listener.accept()
                conn.settimeout(10)
                data = bytearray()
                self.received.append(data)
                while len(data) < self.cut:
                    piece = conn.recv(self.cut - len(data))
                    if not piece:
                        break
                    data += piece
                if self.rst:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.close()
                self.closed.set()
        except OSError:
            pass

    def close(self):
        """Stop at once: close() alone does not wake an accept() blocked in another thread
        (the join waited its whole 5 s per test); shutdown() does, on Linux (EINVAL)."""
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self.thread.join(5)
        assert not self.thread.is_alive()


@pytest.mark.parametrize("rst", [False, True], ids=["fin", "rst"])
def test_server_closing_mid_stream_raises_transport_error_without_retry(make, rst):
    server = MidStreamServer(cut=0, rst=rst)
    try:
        stream_head = head(server.address, "req-1", "text/plain")
        server.cut = len(stream_head) + len(chunk(b"first"))  # (read once a client connects)
        t = make(server.address)
        t.stream_begin("req-1", "text/plain")
        t.stream_write(b"first")
        assert server.closed.wait(10)
        time.sleep(0.05)
        with pytest.raises(TransportError) as info:
            for _ in range(100):  # the first writes after a FIN may still succeed (they draw the RST)
                t.stream_write(b"more data " * 100)
                time.sleep(0.01)
            t.stream_end()
        error = info.value
        assert error.endpoint == server.address and error.call.startswith("POST /response (stream ")
        assert isinstance(error.cause, OSError)
        assert str(error).isascii()
        # no retry: one connection, and it carried exactly the head and the first chunk
        time.sleep(0.1)
        assert len(server.received) == 1
        assert bytes(server.received[0]) == stream_head + chunk(b"first")
        # the stream is over; the transport is usable again
        with pytest.raises(RuntimeError, match="no response stream is open"):
            t.stream_write(b"x")
    finally:
        server.close()


def test_server_closing_before_the_answer_raises_transport_error_without_retry(make, api):
    api.script(r"/invocation/req-1/response$", Reply(raw=b""))  # read it all, then close: no answer
    t = make(api.address)
    t.stream_begin("req-1", "text/plain")
    t.stream_write(b"all of it")
    with pytest.raises(TransportError) as info:
        t.stream_end("Some.Error", b"{}")
    assert info.value.call == "POST /response (stream end)"
    assert isinstance(info.value.cause, ConnectionClosed)
    assert str(info.value.cause) == "connection closed by the Runtime API before an answer"
    time.sleep(0.1)
    assert len(api.posts) == 1 and api.connections == 1  # not sent again
    assert api.posts[0].raw_body == chunk(b"all of it") + last_chunk("Some.Error", b"{}")
    # the next stream goes out on a new connection
    t.stream_begin("req-2", "text/plain")
    assert t.stream_end() == OK
    assert api.wait_for_posts(2)[1].conn_id == 1


def test_a_kept_alive_connection_the_server_closed_is_replaced_before_the_head(make, api):
    # /next answered without "Connection: close", then the server closes the connection
    api.push(Event(raw=b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: req-1\r\nContent-Length: 2\r\n\r\n{}"))
    t = make(api.address)
    assert t.next().request_id == "req-1"
    # (_socks: the server's open connections; empty once it has closed the one that served /next)
    api.wait_for(lambda reqs: api.connections == 1 and not api._socks, what="the server to close the connection")
    time.sleep(0.05)
    t.stream_begin("req-1", "text/plain")
    t.stream_write(b"fresh")
    assert t.stream_end() == OK
    post = only_post(api)
    assert post.conn_id == 1 and api.connections == 2
    assert post.raw == head(api.address, "req-1", "text/plain") + chunk(b"fresh") + last_chunk()


def test_an_exception_from_a_signal_handler_mid_chunk_ends_the_stream(make):
    """A handler raising while a large chunk is blocked in the kernel: the exception comes
    through, the connection (now mid-chunk) is closed and the stream is over."""

    class Alarm(Exception):
        pass

    def on_alarm(signum, frame):
        raise Alarm()

    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(10)
    address = "127.0.0.1:%d" % server.getsockname()[1]
    old = signal.signal(signal.SIGALRM, on_alarm)
    try:
        t = make(address)
        t.stream_begin("req-1", "application/octet-stream")
        conn, _ = server.accept()  # accepted, never read: the send blocks once the buffers are full
        watchdog = threading.Timer(20, conn.close)  # a transport that swallowed the signal fails, not hangs
        watchdog.start()
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        try:
            with pytest.raises(Alarm):
                t.stream_write(bytes(64 * MIB))
        finally:
            watchdog.cancel()
        with pytest.raises(RuntimeError, match="no response stream is open"):
            t.stream_write(b"x")
        conn.settimeout(5)
        got = bytearray()
        try:
            while True:  # what was in flight, then the end of the connection
                piece = conn.recv(1 << 20)
                if not piece:
                    break
                got += piece
        except socket.timeout:
            pytest.fail("the transport left the interrupted connection open")
        assert 0 < len(got) < 64 * MIB
        conn.close()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        server.close()


@pytest.mark.parametrize("name", ["python", "native"])
def test_a_broken_stream_is_an_error_not_a_sigpipe(name):
    """With SIGPIPE's default action restored (it kills), a broken stream still raises."""
    if name == "native" and _native_problem():
        pytest.skip(_native_problem())
    code = textwrap.dedent(
        """
        import signal, socket, sys, threading, time
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        from lambdaric.transport import TransportError
        if sys.argv[1] == "native":
            from lambdaric.transport.native import NativeTransport as T
        else:
            from lambdaric.transport.python import PythonTransport as T
        ls = socket.create_server(("127.0.0.1", 0))
        def serve():
            c, _ = ls.accept(); c.recv(65536); c.close()
        threading.Thread(target=serve, daemon=True).start()
        t = T("127.0.0.1:%d" % ls.getsockname()[1], "ua")
        t.stream_begin("r1", "text/plain")
        time.sleep(0.2)
        try:
            for i in range(200):
                t.stream_write(b"x" * 1000); time.sleep(0.005)
            t.stream_end()
        except TransportError as exc:
            print("TransportError", exc.call)
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    out = subprocess.run([sys.executable, "-c", code, name], capture_output=True, timeout=60, env=env)
    assert out.returncode == 0, (out.returncode, out.stderr)
    assert out.stdout.startswith(b"TransportError POST /response (stream "), out.stdout


# --------------------------------------------------------------------------- both transports


def _scenario(t):
    """The same calls for every transport; returns the answers."""
    answers = []
    t.stream_begin("req-1", "text/html; charset=utf-8", "inv-1")
    for data in (b"<html>", b"", bytearray(b"x" * 16384), b"y" * 16385, memoryview(b"z" * 70000)[1:],
                 array.array("H", b"ab" * 1000), os.urandom(0) + b"\x00\xff\r\n0\r\n\r\n", b"w" * (5 * MIB)):
        t.stream_write(data)
    answers.append(t.stream_end())
    t.stream_begin("req-2", "application/octet-stream")
    t.stream_write(b"partial")
    answers.append(t.stream_end("Runtime.StreamError", b'{"errorMessage":"x","errorType":"Runtime.StreamError"}'))
    t.stream_begin("req-3", "text/plain")
    answers.append(t.stream_end("Only.Type"))
    t.stream_begin("req-4", "text/plain", "inv-4")
    for i in range(200):
        t.stream_write(b"%d," % i)
    answers.append(t.stream_end())
    return answers


def test_both_transports_send_identical_bytes(api):
    transports = [PythonTransport(api.address, UA)]
    if _native_problem():
        pytest.skip(_native_problem())
    from lambdaric.transport.native import NativeTransport

    transports.append(NativeTransport(api.address, UA))
    api.script(r"/invocation/req-3/response$", Reply(403, {"errorType": "InvalidStateTransition"}))
    answers = []
    try:
        for t in transports:
            answers.append(_scenario(t))
    finally:
        for t in transports:
            t.close()
    assert answers[0] == answers[1]
    assert answers[0][2] == (403, b'{"errorType":"InvalidStateTransition"}')
    posts = api.wait_for_posts(8)
    assert all(p.complete for p in posts)
    python_posts, native_posts = posts[:4], posts[4:]
    assert {p.conn_id for p in python_posts} == {0} and {p.conn_id for p in native_posts} == {1}
    for a, b in zip(python_posts, native_posts):
        assert a.raw == b.raw, (a.describe(600), b.describe(600))
    # and those bytes are the documented ones
    assert python_posts[3].raw == (
        head(api.address, "req-4", "text/plain", "inv-4") + b"".join(chunk(b"%d," % i) for i in range(200)) + last_chunk()
    )
    assert python_posts[0].chunks[-1] == b"w" * (5 * MIB)
    assert python_posts[0].chunks[4] == b"ab" * 1000  # an array of uint16 goes out as its bytes


# --------------------------------------------------------------------------- the sans-IO core


def test_protocol_helpers():
    assert streamwire.chunk_size_line(0x500000) == b"500000\r\n"
    assert streamwire.chunk_size_line(255) == b"ff\r\n"
    assert streamwire.stream_trailers() == b""
    assert streamwire.stream_trailers("T", b"{}") == (
        b"Lambda-Runtime-Function-Error-Type: T\r\nLambda-Runtime-Function-Error-Body: e30=\r\n"
    )
    assert streamwire.TRAILER_VALUE == "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"
    head_bytes = streamwire.build_stream_head("r1", "h:1", "ua", "text/plain", "i1")
    assert head_bytes == (
        b"POST /2018-06-01/runtime/invocation/r1/response HTTP/1.1\r\nHost: h:1\r\nUser-Agent: ua\r\n"
        b"Content-Type: text/plain\r\nLambda-Runtime-Invocation-Id: i1\r\n"
        b"Lambda-Runtime-Function-Response-Mode: streaming\r\n" + TRAILER + b"Transfer-Encoding: chunked\r\n\r\n"
    )
    # the native transport's "extra" block is the same header lines
    assert protocol.header_lines(streamwire.stream_headers("i1")) in head_bytes
    stream = streamwire.ResponseStream("r1")
    assert stream.take(b"") == (b"", 0) and stream.take(b"abc") == (b"abc", 3) and stream.size == 3
