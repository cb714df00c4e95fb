"""The HTTP front under hostile input: malformed requests, oversized heads and bodies, cut-off
bodies, slow clients, clients that go away, handlers returning garbage, concurrent requests.
Every case gets a clear answer (or a clean close), nothing is lost, and the emulator keeps
serving."""
import http.client
import json
import socket
import threading
import time

import pytest

from test_web_front import APP, WebEmulator, header, raw


@pytest.fixture(scope="module")
def emu():
    with WebEmulator(APP, args=["--timeout", "2"], env={"LAMBDARIC_HTTP_TIMEOUT": "3", "SLEEP": "5"}) as running:
        yield running


def still_serving(emu):
    assert emu.echo("GET", "/alive")["event"]["rawPath"] == "/alive"


@pytest.mark.parametrize("name, data, status", [
    ("garbage", b"GARBAGE\r\n\r\n", 400),
    ("http2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
    ("no colon", b"GET / HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400),
    ("space in name", b"GET / HTTP/1.1\r\nBad Name: v\r\n\r\n", 400),
    ("NUL in value", b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400),
    ("bare LF in value", b"GET / HTTP/1.1\r\nX: a\nInjected: 1\r\n\r\n", 400),
    ("bad length", b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 400),
    ("huge length digits", b"POST / HTTP/1.1\r\nContent-Length: " + b"9" * 40 + b"\r\n\r\n", 400),
    ("bad chunk size", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    ("head over 64 KB", b"GET / HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n", 431),
    ("cut-off body", b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly this", 400),
    ("cut-off chunked body", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc", 400),
    ("cut-off head", b"GET / HTTP/1.1\r\nHost: x\r\n", 400),
])
def test_malformed_requests_get_a_clear_answer(emu, name, data, status):
    answer = raw(emu.port, data)
    assert answer.startswith(b"HTTP/1.1 %d " % status), (name, answer[:200])
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"\r\nConnection: close\r\n" in head + b"\r\n" and json.loads(body)["message"], (name, answer[:300])
    still_serving(emu)


def test_a_body_declared_far_over_the_limit_is_refused_at_once(emu):
    answer = raw(emu.port, b"POST / HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n", shut=False, timeout=5)
    assert answer.startswith(b"HTTP/1.1 413 ") and answer.endswith(b"Request Entity Too Large")
    still_serving(emu)


def test_expect_100_continue(emu):
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"hello")
        data = b""
        while b'"body": "hello"' not in data:
            piece = s.recv(65536)
            assert piece, data
            data += piece


def test_slow_clients_time_out_and_do_not_hold_up_others(emu):
    slow = socket.create_connection(("127.0.0.1", emu.port), timeout=10)
    slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # a head never finished
    slow_body = socket.create_connection(("127.0.0.1", emu.port), timeout=10)
    slow_body.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")  # a body never finished
    try:
        started = time.monotonic()
        still_serving(emu)
        assert time.monotonic() - started < 2.5  # (the slow ones time out after 3 s)
        for s in (slow, slow_body):
            answer = s.recv(65536)
            assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    finally:
        slow.close()
        slow_body.close()
    still_serving(emu)


def test_a_client_that_goes_away_mid_invoke(emu):
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as s:
        s.sendall(b"GET /gone?mode=sleep HTTP/1.1\r\nHost: x\r\n\r\n")
    still_serving(emu)
    time.sleep(2.5)  # the sleeping invoke times out (--timeout 2) and its line is written
    assert any('"GET /gone?mode=sleep"' in line for line in emu.log_lines())
    still_serving(emu)


def test_a_function_timeout_is_an_integration_error(emu):
    status, _, _, data = emu.request("GET", "/slow?mode=sleep")
    assert (status, data) == (502, b"Internal Server Error")
    time.sleep(0.05)
    line = [l for l in emu.log_lines() if "/slow?mode=sleep" in l][-1]
    assert "Sandbox.Timedout" in line, line
    still_serving(emu)


def test_concurrent_requests_each_get_their_own_answer(emu):
    results = {}

    def one(i):
        conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=60)
        try:
            conn.request("POST", "/c/%d?i=%d" % (i, i), body=("body-%d" % i).encode(), headers={"Content-Type": "text/plain"})
            resp = conn.getresponse()
            results[i] = (resp.status, json.loads(resp.read()))
        finally:
            conn.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == list(range(24))
    for i, (status, got) in results.items():
        event = got["event"]
        assert status == 200 and event["rawPath"] == "/c/%d" % i and event["body"] == "body-%d" % i
        assert event["queryStringParameters"] == {"i": str(i)}
    assert len({got["request_id"] for _, got in results.values()}) == 24


def test_pipelined_requests_are_answered_in_order(emu):
    data = b"".join(b"GET /p%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(3)) + b"GET /p3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = raw(emu.port, data, shut=False)
    assert answer.count(b"HTTP/1.1 200 OK") == 4
    assert [answer.index(b'"rawPath": "/p%d"' % i) for i in range(4)] == sorted(answer.index(b'"rawPath": "/p%d"' % i) for i in range(4))


def test_http_1_0_closes_after_the_answer(emu):
    answer = raw(emu.port, b"GET /old HTTP/1.0\r\n\r\n", shut=False)
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"\r\nConnection: close\r\n" in answer


def test_control_characters_in_the_target_do_not_reach_the_console_raw(emu):
    answer = raw(emu.port, b"GET /esc\x1b[31mred HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", shut=False)
    assert answer.startswith(b"HTTP/1.1 200 ")
    time.sleep(0.05)
    assert b"\x1b" not in emu.stderr() and any("/esc\\x1b[31mred" in line for line in emu.log_lines())


@pytest.mark.parametrize("integration, status, body", [
    ("http-api", 500, b'{"message":"Internal Server Error"}'),
    ("alb", 502, None),
    ("alb-multi", 502, None),
])
def test_garbage_results_per_integration(integration, status, body):
    with WebEmulator(APP, args=["--integration", integration]) as emu:
        for mode in ("bytes", "strstatus", "badb64", "inject", "raise"):
            got_status, _, headers, data = emu.request("GET", "/?mode=" + mode)
            assert got_status == status, (mode, data)
            if body is not None:
                assert data == body
            assert header(headers, "X-Evil") is None
        if integration.startswith("alb"):
            for mode in ("list", "string", "nostatus"):  # ALB needs an object with statusCode
                assert emu.request("GET", "/?mode=" + mode)[0] == 502
        else:
            assert emu.request("GET", "/?mode=list")[3] == b"[1, 2]"
        assert emu.echo("GET", "/fine")["event"]


def test_http_1_0_keep_alive_is_honoured(emu):
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as s:
        for i in range(2):
            s.sendall(b"GET /old%d HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" % i)
            data = b""
            while b'"rawPath": "/old%d"' % i not in data:
                piece = s.recv(65536)
                assert piece, data
                data += piece
            assert b"\r\nConnection: keep-alive\r\n" in data


@pytest.mark.parametrize("target, status, path", [
    (b"http://example.com/abs?q=1", 200, "/abs"),
    (b"*", 400, None),
    (b"nopath", 400, None),
])
def test_request_target_forms(emu, target, status, path):
    answer = raw(emu.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", shut=False)
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:100]
    if path:
        assert b'"rawPath": "%s"' % path.encode() in answer and b'"rawQueryString": "q=1"' in answer


def test_an_idle_keep_alive_connection_is_closed_quietly(emu):
    with socket.create_connection(("127.0.0.1", emu.port), timeout=10) as s:
        s.sendall(b"GET /idle HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while b'"rawPath": "/idle"' not in data:
            data += s.recv(65536)
        s.settimeout(10)
        assert s.recv(65536) == b""  # after LAMBDARIC_HTTP_TIMEOUT: closed, no unasked-for 408


def test_a_burst_of_connections_each_gets_an_answer(emu):
    """More requests at once than the runtimes (4) and the queue (64) hold: each one is answered,
    with the function's result or the function URL's 429, none dropped."""
    answers = {}

    def one(i):
        try:
            answers[i] = emu.request("GET", "/burst/%d" % i, timeout=60)
        except Exception as exc:  # (counted as lost)
            answers[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(120)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert len(answers) == 120
    ok = 0
    for i, answer in answers.items():
        assert not isinstance(answer, Exception), (i, answer)
        status, _, headers, data = answer
        if status == 200:
            ok += 1
            assert json.loads(data)["event"]["rawPath"] == "/burst/%d" % i
        else:
            assert (status, data, header(headers, "Retry-After")) == (429, b'{"message":"Too Many Requests"}', "1")
    assert ok >= 68
    still_serving(emu)


def test_a_result_over_the_payload_limit_is_an_integration_error(emu):
    status, _, _, data = emu.request("GET", "/huge?mode=huge")
    assert (status, data) == (502, b"Internal Server Error")
    time.sleep(0.05)
    assert "ResponseSizeTooLarge" in [l for l in emu.log_lines() if "/huge?mode=huge" in l][-1]
    still_serving(emu)
