"""The emulator's Invoke API under malformed requests (issue 9: fuzzing), over raw sockets to a real
``python -m lambdaric`` emulator process.

Every request gets a clear answer or a closed connection: a 4xx with Lambda's error shape
(``{"Type": "User", "message": ...}`` and ``X-Amzn-ErrorType``), or the function's own answer when
the request was valid after all; never a 5xx, never a hang (each exchange is bounded), never a
traceback on the emulator's stderr; and the emulator serves a valid invoke afterwards. A table of
hand-made faults first, then a hypothesis batch of mutated requests (more of them in the slow run).
"""
from __future__ import annotations

import base64
import json
import socket
import threading
import time
from typing import Dict, Optional, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator_harness import RunningEmulator

APP = {
    "app.py": """
        def handler(event, context):
            cc = context.client_context
            return {"event": event, "client": cc.custom if cc else None, "arn": context.invoked_function_arn}
    """
}
PATH = "/2015-03-31/functions/function/invocations"
#: each exchange must end within this (an answer, or the emulator closing the connection)
BOUND = 10.0

Answer = Tuple[Optional[int], Dict[str, str], bytes]


@pytest.fixture(scope="module")
def emulator():
    with RunningEmulator(APP) as emu:
        emu.host, emu.port = "127.0.0.1", int(emu.base.rsplit(":", 1)[1])
        yield emu


def exchange(emu, data: bytes, *, half_close: bool = True, drip: float = 0.0) -> Answer:
    """Send ``data`` (a byte every ``drip`` seconds if set), optionally end our side, and read the
    first answer: (status, lower-cased headers, body), status None when the emulator closed without
    one. Fails when nothing ends within BOUND."""
    started = time.monotonic()
    with socket.create_connection((emu.host, emu.port), timeout=BOUND) as sock:
        try:
            if drip:
                for i in range(len(data)):
                    sock.sendall(data[i : i + 1])
                    time.sleep(drip)
            else:
                sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused while we sent: what it answered is still readable
        got = b""
        while True:
            assert time.monotonic() - started < BOUND, "no answer and no close within %s s: %r" % (BOUND, got[:200])
            try:
                more = sock.recv(65536)
            except ConnectionResetError:
                break
            except socket.timeout:
                raise AssertionError("the emulator neither answered nor closed within %s s" % BOUND) from None
            if not more:
                break
            got += more
            status, headers, body = parse_answer(got)
            if status is not None and "content-length" in headers and len(body) >= int(headers["content-length"]):
                break
    return parse_answer(got)


def parse_answer(data: bytes) -> Answer:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None, {}, b""
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), lines[0]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:  # (a second answer may follow on the connection)
        body = body[: int(headers["content-length"])]
    return int(lines[0].split(" ")[1]), headers, body


def request(body: bytes = b'{"k": 1}', path: str = PATH, method: str = "POST", headers: str = "", *,
            length: Optional[str] = None) -> bytes:
    """A request; ``headers`` are extra header lines (each ended by CRLF)."""
    cl = "Content-Length: %s\r\n" % (len(body) if length is None else length) if length != "" else ""
    return ("%s %s HTTP/1.1\r\nHost: x\r\n%s%s\r\n" % (method, path, headers, cl)).encode("latin-1") + body


def check_answer(answer: Answer, expect: Optional[int] = None, error_type: Optional[str] = None) -> None:
    """A 4xx in Lambda's error shape or a closed connection (or ``expect`` exactly); never a 5xx."""
    status, headers, body = answer
    if expect is not None:
        assert status == expect, answer
    if status is None:
        return
    assert status < 500, answer
    if status >= 400:
        error = json.loads(body)
        assert error["Type"] == "User" and isinstance(error["message"], str) and error["message"], answer
        assert headers.get("x-amzn-errortype", "").endswith("Exception"), answer
        assert headers.get("content-type") == "application/json", answer
        if error_type:
            assert headers["x-amzn-errortype"] == error_type, answer


def check_healthy(emu) -> None:
    """A valid invoke is served, and nothing the emulator said is a traceback."""
    status, headers, body = exchange(emu, request(b'{"after": true}'))
    assert status == 200 and json.loads(body)["event"] == {"after": True}, (status, headers, body)
    assert "x-amz-function-error" not in headers
    assert b"Traceback" not in emu.stderr(), emu.stderr()[-3000:]


CC_GOOD = base64.b64encode(b'{"custom": {"k": "v"}}').decode()
CASES = [
    # (name, request bytes, expected status or None for "closed or 4xx", X-Amzn-ErrorType)
    ("garbage request line", b"GARBAGE\r\n\r\n", 400, "InvalidRequestContentException"),
    ("TLS handshake", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)), None, None),
    ("binary NULs", b"\x00" * 100 + b"\r\n\r\n", 400, None),
    ("request line with 4 parts", b"POST / x HTTP/1.1\r\n\r\n", 400, None),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", None, None),
    ("header without colon", b"POST " + PATH.encode() + b" HTTP/1.1\r\nno colon\r\n\r\n", 400, None),
    ("header name with a space", b"POST " + PATH.encode() + b" HTTP/1.1\r\nBad Name: x\r\n\r\n", 400, None),
    ("70 KB head", request(headers="X-Big: %s\r\n" % ("a" * 70000)), 431, "RequestTooLargeException"),
    ("70 KB request line", b"POST /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 431, None),
    ("Content-Length: abc", request(length="abc"), 400, None),
    ("Content-Length: -1", request(length="-1"), 400, None),
    ("Content-Length: 1e3", request(length="1e3"), 400, None),
    ("Content-Length of 5000 digits", request(length="9" * 5000), 400, None),
    ("Content-Length: unicode digits", request(length="\xb2"), 400, None),
    ("Content-Length larger than the body", request(length="100"), None, None),
    ("Content-Length over 6 MB, no body", request(b"", length="7000000"), None, None),
    ("two Content-Lengths", request(headers="Content-Length: 3\r\n"), None, None),
    ("chunked: bad size", request(b"zz\r\nabc\r\n0\r\n\r\n", headers="Transfer-Encoding: chunked\r\n", length=""), 400, None),
    ("chunked: 16 hex digits", request(b"1" * 16 + b"\r\n", headers="Transfer-Encoding: chunked\r\n", length=""), 400, None),
    ("chunked: no CRLF after data", request(b"3\r\nabcXX0\r\n\r\n", headers="Transfer-Encoding: chunked\r\n", length=""), 400, None),
    ("chunked: cut inside a chunk", request(b"10\r\nabc", headers="Transfer-Encoding: chunked\r\n", length=""), None, None),
    ("chunked: 70 KB of trailers", request(b"0\r\n" + b"X-T: " + b"t" * 70000 + b"\r\n\r\n",
                                            headers="Transfer-Encoding: chunked\r\n", length=""), 431, None),
    ("GET", request(method="GET"), 405, "InvalidRequestContentException"),
    ("DELETE", request(method="DELETE"), 405, None),
    ("lower-case post", request(method="post"), 405, None),
    ("unknown path", request(path="/nope"), 404, "ResourceNotFoundException"),
    ("path with ..", request(path="/2015-03-31/functions/../invocations"), 400, "InvalidParameterValueException"),
    ("empty function name", request(path="/2015-03-31/functions//invocations"), 404, None),
    ("function name with %00", request(path="/2015-03-31/functions/a%00b/invocations"), 400, "InvalidParameterValueException"),
    ("function name %FF", request(path="/2015-03-31/functions/%FF/invocations"), 400, None),
    ("function name in UTF-8", request(path="/2015-03-31/functions/f\xc3\xa9/invocations"), 400, None),
    ("function name of 141 chars", request(path="/2015-03-31/functions/%s/invocations" % ("f" * 141)), 400, None),
    ("ARN of another service", request(path="/2015-03-31/functions/arn:aws:s3:::bucket/invocations"), 400, None),
    ("qualifier with CR LF", request(path=PATH + "?Qualifier=%0d%0aX-Evil:%201"), 400, None),
    ("qualifier with a space", request(path=PATH + "?Qualifier=a%20b"), 400, None),
    ("qualifier in UTF-8", request(path=PATH + "?Qualifier=%C3%A9"), 400, None),
    ("qualifier of 129 chars", request(path=PATH + "?Qualifier=" + "q" * 129), 400, None),
    ("invocation type Bogus", request(headers="X-Amz-Invocation-Type: Bogus\r\n"), 400, "InvalidParameterValueException"),
    ("invocation type lower-case", request(headers="X-Amz-Invocation-Type: event\r\n"), 400, None),
    ("invocation type in Latin-1", request(headers="X-Amz-Invocation-Type: \xe9v\xe9nement\r\n"), 400, None),
    ("client context not base64", request(headers="X-Amz-Client-Context: !!!\r\n"), 400, "InvalidRequestContentException"),
    ("client context base64 of garbage", request(headers="X-Amz-Client-Context: %s\r\n" % base64.b64encode(b"\xff\xfe").decode()), 400, None),
    ("client context a JSON list", request(headers="X-Amz-Client-Context: %s\r\n" % base64.b64encode(b"[1]").decode()), 400, None),
    ("client context in Latin-1", request(headers="X-Amz-Client-Context: \xe9\xe9\xe9\xe9\r\n"), 400, None),
    ("header value with a bare LF",
     request(headers="X-Amzn-Trace-Id: Root=1\nLambda-Runtime-Aws-Request-Id: evil\r\n"), 400, None),
    ("header value with a bare CR", request(headers="X-Amz-Tenant-Id: a\rb\r\n"), 400, None),
    ("header value with NUL", request(headers="X-Amz-Cognito-Identity: a\x00b\r\n"), 400, None),
    ("only a request line, then close", b"POST " + PATH.encode() + b" HTTP/1.1\r\n", None, None),
    ("nothing at all", b"", None, None),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_malformed_request(emulator, case):
    _, data, expect, error_type = case
    check_answer(exchange(emulator, data), expect, error_type)
    assert b"Traceback" not in emulator.stderr(), emulator.stderr()[-3000:]


NOT_JSON = [b"{not json", b'{"cut": ', b"NaN", b"\xff\xfe{}", b"{} trailing", b"[" * 100000, b'"' + b"x" * 6000000]


def test_payloads_that_are_not_json_are_refused_concurrently(emulator):
    """As Lambda: 400 InvalidRequestContentException before anything runs (not a function error,
    as the official emulator gives), each of them while valid invokes go on at the same time
    (malformed, cut off, deep, 6 MB), and nothing reached the function."""
    answers: dict = {}

    def send(i: int, data: bytes) -> None:
        answers[i] = exchange(emulator, data)

    requests = [request(bad) for bad in NOT_JSON] + [request(b'{"ok": %d}' % i) for i in range(4)]
    threads = [threading.Thread(target=send, args=(i, data), daemon=True) for i, data in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for i in range(len(NOT_JSON)):
        check_answer(answers[i], 400, "InvalidRequestContentException")
        assert json.loads(answers[i][2])["message"].startswith("Could not parse request body into json: "), answers[i]
    for i in range(4):
        status, headers, body = answers[len(NOT_JSON) + i]
        assert status == 200 and json.loads(body)["event"] == {"ok": i}, answers[len(NOT_JSON) + i]
    check_healthy(emulator)


def test_client_context_with_non_latin1_and_newlines_reaches_the_handler(emulator):
    """A valid client context whose JSON holds a newline between tokens and non-Latin-1 text: the
    runtime gets it as one safe header value, and the handler sees the same object."""
    raw = '{\n  "custom": {"k": "\u20ac \u0416 \U0001F600"}\n}'.encode("utf-8")
    data = request(headers="X-Amz-Client-Context: %s\r\n" % base64.b64encode(raw).decode())
    status, headers, body = exchange(emulator, data)
    assert status == 200 and "x-amz-function-error" not in headers, (status, headers, body)
    assert json.loads(body)["client"] == {"k": "\u20ac \u0416 \U0001F600"}
    check_healthy(emulator)


def test_slow_client_does_not_hold_up_others(emulator):
    """A client dripping its request (a byte every 20 ms) while another invokes: the other is served
    at once; the slow one gets its answer when its request is complete."""
    slow = request(b'{"slow": 1}')
    result = {}
    thread = threading.Thread(target=lambda: result.update(answer=exchange(emulator, slow, drip=0.02)), daemon=True)
    thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    status, _, body = exchange(emulator, request(b'{"fast": 1}'))
    assert status == 200 and json.loads(body)["event"] == {"fast": 1}
    assert time.monotonic() - started < 2.0  # generous: the slow client takes about 3 s in all
    thread.join(BOUND + 5)
    status, _, body = result["answer"]
    assert status == 200 and json.loads(body)["event"] == {"slow": 1}


def test_pipelined_requests_after_an_error_are_not_served(emulator):
    """A bad request closes the connection after its 400: what followed it is never taken as a
    request (no smuggling)."""
    data = request(length="abc") + request(b'{"smuggled": 1}')
    with socket.create_connection((emulator.host, emulator.port), timeout=BOUND) as sock:
        sock.sendall(data)
        got = b""
        while True:
            more = sock.recv(65536)
            if not more:
                break
            got += more
    assert got.count(b"HTTP/1.1 ") == 1 and got.startswith(b"HTTP/1.1 400 "), got
    assert b"smuggled" not in emulator.stdout()


# --------------------------------------------------------------------------- hypothesis batch

METHODS = st.sampled_from(["POST", "GET", "PUT", "post", "", "P\x00ST", "POST POST"])
PATHS = st.one_of(
    st.sampled_from([PATH, "/2021-11-15/functions/function/response-streaming-invocations", "/", "*", "",
                     PATH + "?Qualifier=$LATEST", PATH + "?Qualifier=", PATH + "?" + "&" * 50]),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF), max_size=60).map(lambda t: "/2015-03-31/functions/" + t + "/invocations"),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0xFF), max_size=60).map(lambda t: PATH + "?Qualifier=" + t),
)
HEADER_NAMES = st.sampled_from(["X-Amz-Invocation-Type", "X-Amz-Client-Context", "X-Amz-Log-Type", "X-Amz-Tenant-Id",
                                "X-Amzn-Trace-Id", "X-Amz-Cognito-Identity", "Transfer-Encoding", "Connection", "X"])
HEADER_VALUES = st.one_of(
    st.sampled_from(["RequestResponse", "Event", "DryRun", "Tail", "chunked", "close", "", CC_GOOD, "Root=1-2-3"]),
    st.text(st.characters(min_codepoint=0, max_codepoint=0xFF, blacklist_characters="\r\n"), max_size=40),
    st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()),
)


@st.composite
def requests(draw) -> bytes:
    body = draw(st.one_of(st.just(b'{"k": 1}'), st.binary(max_size=200)))
    extra = "".join("%s: %s\r\n" % h for h in draw(st.lists(st.tuples(HEADER_NAMES, HEADER_VALUES), max_size=4)))
    data = request(body, draw(PATHS), draw(METHODS), extra,
                   length=draw(st.one_of(st.none(), st.sampled_from(["", "0", "-5", "abc", "99999999999"]))))
    # and a few raw edits on top
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=6)) + data[at + draw(st.integers(0, 6)) :]
    return data


def check_any(emu, data: bytes) -> None:
    status, headers, body = answer = exchange(emu, data)
    check_answer(answer)
    if status is not None and status < 400:
        assert status in (200, 202, 204), answer


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=requests())
def test_generated_requests(emulator, data):
    check_any(emulator, data)


@pytest.mark.slow
@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=requests())
def test_generated_requests_many(emulator, data):
    check_any(emulator, data)


def test_still_serving_after_all_of_it(emulator):
    """Last in this file: the emulator that took every request above still serves, said no
    traceback, and is still running."""
    check_healthy(emulator)
    assert emulator.proc.poll() is None
