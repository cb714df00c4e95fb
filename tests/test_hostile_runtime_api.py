"""A hostile or broken Runtime API (issue 9): every fault is one row of a table, run against a
real ``python -m lambdaric`` on both transports (``lambdaric_env``), with its expected outcome:
the POSTs that must reach the server (in order), whether the runtime keeps serving or exits and
with which code, the one line it must say, no traceback, and no result lost (every invoke whose
handler ran has its answer recorded by the server).

Faults already covered elsewhere are not repeated here: a body cut short by a close
(test_runtime_wire), 410 and 500 on ``/response`` (test_runtime_wire), a header without a colon,
NUL in a header, a bad chunk size, a 70 KB header and a garbage status line
(test_runtime_wire_framing), and the request ids ``../../init/error``, ``a b``, ``x/y``.

A stalled answer needs a bound: the rows set ``LAMBDARIC_ANSWER_TIMEOUT=1`` so that a stall
costs one second; ``test_default_answer_bound`` (slow) checks the default.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import pytest

from faulty_api import answer, drip, flood, send
from runtime_api import SERVER_500, STATE_403, TOO_LARGE_413, INVOKE_TIMEOUT_410, Event, Reply

#: The handler: says which invoke ran (to count lost results), echoes the event, fails on "fail".
APP = {
    "app.py": (
        "def handler(event, context):\n"
        "    print('ran:' + context.aws_request_id)\n"
        "    if event == 'fail':\n"
        "        raise ValueError('asked to fail')\n"
        "    return event\n"
    )
}
#: A stall costs this many seconds in these tests.
BOUND = {"LAMBDARIC_ANSWER_TIMEOUT": "1"}
RESPONSE, ERROR = "response", "error"


def ok(request_id: str, body: bytes = b'"ok"') -> Event:
    return Event(body=body, request_id=request_id)


def raw(fault) -> Event:
    return Event(raw=fault)


def chunked(request_id: str, body: bytes) -> bytes:
    return answer(request_id, None, "Transfer-Encoding: chunked", length=None) + body


@dataclass
class Fault:
    name: str
    #: the /next answers in order (made fresh for each run: a fault callable may keep state)
    events: Callable[[], List[Event]]
    #: (kind, request id) of every complete POST the server must record, in order
    posts: Sequence[Tuple[str, str]]
    #: None: the runtime goes on serving (it is back on /next); else its exit code
    exit: Optional[int] = None
    #: its whole stderr ("": it must say nothing), ADDR standing for the Runtime API's address
    says: str = ""
    #: a line its stdout (the function's log) must hold
    logs: str = ""
    #: scripted answers: (path regex, Reply, times)
    scripts: Sequence[Tuple[str, Reply, Optional[int]]] = ()
    env: Dict[str, str] = field(default_factory=lambda: dict(BOUND))
    #: what the Runtime API does once the events ran out
    after_events: str = "hold"


HEAD_ONLY = b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r1\r\nContent-Type: application/json\r\n"
BIG = b'{"k": "' + b"x" * 4000 + b'"}'
POST_202 = b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"status\":\"OK\"}"


def retried(cause: str, call: str = "GET /next") -> str:
    """The line of a broken exchange that is retried (ADDR: the Runtime API's address)."""
    return "lambdaric: %s to ADDR failed: %s; retrying\n" % (call, cause)


def invalid(what: str, call: str = "GET /next") -> str:
    """The line of an answer the runtime cannot act on; it exits 1 after it."""
    return "lambdaric: invalid answer from the Runtime API at ADDR (%s): %s\n" % (call, what)


RESET = "[Errno 104] Connection reset by peer"
STALL = retried("the answer from the Runtime API stalled: not complete 1 s after its first byte (LAMBDARIC_ANSWER_TIMEOUT)")

FAULTS = [
    # ---- the connection breaks before, during and after the /next answer
    Fault("reset before the answer (new connection)",
          lambda: [raw(send(b"", "reset")), ok("r2")], [(RESPONSE, "r2")], says=retried(RESET)),
    # (a kept-alive connection the server dropped is replaced at once and the request sent again, silently:
    # HTTP servers close idle connections; nothing of an answer had come)
    Fault("reset before the answer (kept-alive connection)",
          lambda: [ok("r1"), raw(send(b"", "reset")), ok("r3")], [(RESPONSE, "r1"), (RESPONSE, "r3")]),
    Fault("reset inside the head",
          lambda: [raw(send(HEAD_ONLY[:40], "reset")), ok("r2")], [(RESPONSE, "r2")], says=retried(RESET)),
    Fault("reset inside the body",
          lambda: [raw(send(answer("r1", BIG)[:-100], "reset")), ok("r2")], [(RESPONSE, "r2")], says=retried(RESET)),
    Fault("reset after the answer, as the POST arrives",
          lambda: [raw(send(answer("r1", b'"a"'), "reset", after_request=True)), ok("r2")],
          [(RESPONSE, "r1"), (RESPONSE, "r2")]),
    Fault("close after the answer, as the POST arrives",
          lambda: [raw(send(answer("r1", b'"a"'), "close", after_request=True)), ok("r2")],
          [(RESPONSE, "r1"), (RESPONSE, "r2")]),
    Fault("close inside the head",
          lambda: [raw(send(HEAD_ONLY, "close")), ok("r2")], [(RESPONSE, "r2")],
          says=retried("connection closed by the Runtime API before an answer")),
    # ---- framing that lies
    Fault("Content-Length larger than the body, connection held",
          lambda: [raw(send(answer("r1", b"{}", length=100), "hold")), ok("r2")], [(RESPONSE, "r2")], says=STALL),
    Fault("Content-Length smaller than the body",
          lambda: [raw(send(answer("r1", b'{"a": 1}xyz', length=8), "keep"))], [(RESPONSE, "r1")], exit=1,
          says=invalid("malformed status line 'xyzHTTP/1.1 202 Accepted' from the Runtime API", "POST /response")),
    Fault("head with no end, connection held",
          lambda: [raw(send(HEAD_ONLY, "hold")), ok("r2")], [(RESPONSE, "r2")], says=STALL),
    Fault("1 MB of headers",
          lambda: [raw(flood(HEAD_ONLY, 1 << 20))], [], exit=1,
          says=invalid("response head from the Runtime API exceeds 65536 bytes")),
    Fault("status line: a TLS handshake",
          lambda: [raw(send(b"\x16\x03\x01\x02\x00\x01\x00\x01\x03\x03\r\n\r\n", "hold"))], [], exit=1,
          says=invalid("malformed status line '\\x16\\x03\\x01\\x02\\x00\\x01\\x00\\x01\\x03\\x03' from the Runtime API")),
    Fault("status line: two-digit status",
          lambda: [raw(send(b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n", "hold"))], [], exit=1,
          says=invalid("malformed status line 'HTTP/1.1 20 OK' from the Runtime API")),
    Fault("status line: garbage on the /response answer",
          lambda: [ok("r1")], [(RESPONSE, "r1")], exit=1,
          says=invalid("malformed status line 'OK THEN' from the Runtime API", "POST /response"),
          scripts=[("/invocation/r1/response$", Reply(raw=send(b"OK THEN\r\n\r\n", "hold")), None)]),
    # ---- header values that would smuggle something
    Fault("bare CR in a header value",
          lambda: [raw(send(answer("r1", b"{}", "X-Bad: a\rInjected: b"), "hold"))], [], exit=1,
          says=invalid("bare CR in header line 'X-Bad: a\\rInjected: b' from the Runtime API")),
    Fault("bare LF in a header value",
          lambda: [raw(send(answer("r1", b"{}", "X-Bad: a\nb"), "hold"))], [], exit=1,
          says=invalid("malformed header line 'b' from the Runtime API")),
    Fault("obsolete line folding",
          lambda: [raw(send(answer("r1", b"{}", "X-Fold: a", " folded"), "hold"))], [], exit=1,
          says=invalid("malformed header line ' folded' from the Runtime API")),
    Fault("NUL in the request id",
          lambda: [raw(send(answer("r\x001", b"{}"), "hold"))], [], exit=1,
          says=invalid("NUL byte in header 'lambda-runtime-aws-request-id' from the Runtime API")),
    Fault("CR in the request id",
          lambda: [raw(send(answer("r1\r", b"{}"), "hold"))], [], exit=1,
          says=invalid("bare CR in header line 'Lambda-Runtime-Aws-Request-Id: r1\\r' from the Runtime API")),
    # ---- chunked encoding errors
    Fault("chunk without its CRLF",
          lambda: [raw(send(chunked("r1", b"3\r\nabcX\r\n0\r\n\r\n"), "hold"))], [], exit=1,
          says=invalid("missing CRLF after chunk data")),
    Fault("chunk size of 16 hex digits",
          lambda: [raw(send(chunked("r1", b"ffffffffffffffff\r\n"), "hold"))], [], exit=1,
          says=invalid("malformed chunk size b'ffffffffffffffff'")),
    Fault("chunk size over the payload limit",
          lambda: [raw(send(chunked("r1", b"7fffffff\r\n"), "hold"))], [], exit=1,
          says=invalid("chunked body exceeds 6291556 bytes")),
    Fault("negative chunk size",
          lambda: [raw(send(chunked("r1", b"-1\r\nx\r\n0\r\n\r\n"), "hold"))], [], exit=1,
          says=invalid("malformed chunk size b'-1'")),
    # (refused whole as when cut: it was taken when it came in one piece, refused when in two)
    Fault("chunk extension of 10 KB",
          lambda: [raw(send(chunked("r1", b"1;" + b"e" * 10000 + b"\r\nx\r\n0\r\n\r\n"), "hold"))], [], exit=1,
          says=invalid("chunk size or trailer line too long")),
    Fault("chunked body cut by a close",
          lambda: [raw(send(chunked("r1", b"5\r\nab"), "close")), ok("r2")], [(RESPONSE, "r2")],
          says=retried("connection closed by the Runtime API inside a chunked body")),
    Fault("chunked body stalled, connection held",
          lambda: [raw(send(chunked("r1", b"5\r\nab"), "hold")), ok("r2")], [(RESPONSE, "r2")], says=STALL),
    Fault("Transfer-Encoding and Content-Length both: chunked wins",
          lambda: [raw(send(chunked("r1", b"2\r\n[]\r\n0\r\n\r\n").replace(b"\r\n\r\n", b"\r\nContent-Length: 1\r\n\r\n", 1), "keep"))],
          [(RESPONSE, "r1")]),
    # ---- a Runtime API that drips one byte a second
    Fault("/next answer dripped one byte a second",
          lambda: [raw(drip(answer("r1", b"{}"))), ok("r2")], [(RESPONSE, "r2")], says=STALL),
    Fault("/next body dripped one byte a second",
          lambda: [raw(lambda s: send(answer("r1", BIG)[:-len(BIG)], "keep")(s) and drip(BIG)(s)), ok("r2")],
          [(RESPONSE, "r2")], says=STALL),
    # (the POST is sent again: the server got it twice; Lambda answers the second with 403)
    Fault("/response answer dripped one byte a second",
          lambda: [ok("r1")], [(RESPONSE, "r1"), (RESPONSE, "r1")], says=STALL.replace("GET /next", "POST /response"),
          scripts=[("/invocation/r1/response$", Reply(raw=drip(POST_202)), 1)]),
    # ---- error answers
    Fault("500 on /next", lambda: [], [], exit=1, after_events="500",
          says=invalid("GET /next answered 500: ServiceException: Internal error")),
    Fault("403 on /next", lambda: [], [], exit=1,
          says=invalid("GET /next answered 403: InvalidStateTransition: Invalid state transition"),
          scripts=[("/invocation/next$", STATE_403, None)]),
    Fault("403 on /response", lambda: [ok("r1"), ok("r2")], [(RESPONSE, "r1"), (RESPONSE, "r2")],
          says="lambdaric: POST /response for r1 answered 403: InvalidStateTransition: Invalid state transition\n",
          scripts=[("/invocation/r1/response$", STATE_403, None)]),
    Fault("413 on /response: reported as a function error",
          lambda: [ok("r1"), ok("r2")], [(RESPONSE, "r1"), (ERROR, "r1"), (RESPONSE, "r2")],
          logs="[ERROR] Function.ResponseSizeTooLarge: Response payload size (4 bytes) exceeded maximum allowed "
               "payload size (6291556 bytes).",
          scripts=[("/invocation/r1/response$", TOO_LARGE_413, None)]),
    Fault("500 on /error", lambda: [ok("r1", b'"fail"')], [(ERROR, "r1")], exit=1,
          says="lambdaric: POST /error for r1 answered 500: ServiceException: Internal error; exiting\n",
          scripts=[("/invocation/r1/error$", SERVER_500, None)]),
    Fault("403 on /error", lambda: [ok("r1", b'"fail"'), ok("r2")], [(ERROR, "r1"), (RESPONSE, "r2")],
          says="lambdaric: POST /error for r1 answered 403: InvalidStateTransition: Invalid state transition\n",
          scripts=[("/invocation/r1/error$", STATE_403, None)]),
    Fault("410 on /error", lambda: [ok("r1", b'"fail"'), ok("r2")], [(ERROR, "r1"), (RESPONSE, "r2")],
          says="lambdaric: POST /error for r1 answered 410 (the invoke timed out already): InvokeTimeout: Invoke timeout\n",
          scripts=[("/invocation/r1/error$", INVOKE_TIMEOUT_410, None)]),
]


def check(result, fault: Fault) -> None:
    """The outcome every fault must have, plus the row's own."""
    why = result.describe()
    posts = [(p.kind, p.request_id) for p in result.posts if p.complete]
    assert posts == list(fault.posts), why
    assert all(r.kind in ("next", "response", "error") for r in result.requests), why
    assert b"Traceback" not in result.stderr, why
    assert result.stderr.decode("utf-8", "replace") == fault.says.replace("ADDR", result.api.address), why
    assert fault.logs.encode() in result.stdout, why
    ran = re.findall(rb"^ran:(\S+)$", result.stdout, re.M)
    answered = {rid.encode() for _, rid in posts}
    assert set(ran) <= answered, "lost results: %r\n%s" % (set(ran) - answered, why)
    if fault.exit is None:
        assert not result.exited, why
        assert result.requests[-1].kind == "next", why  # back on /next, waiting
    else:
        assert result.exited and result.returncode == fault.exit, why


def run_fault(run_runtime, make_runtime_api, fault: Fault):
    api = make_runtime_api(fault.events(), after_events=fault.after_events)
    for pattern, reply, times in fault.scripts:
        api.script(pattern, reply, method="*", times=times)
    if fault.exit is None:
        return run_runtime(APP, "app.handler", api=api, env=fault.env, expect_posts=len(fault.posts), timeout=20)
    return run_runtime(APP, "app.handler", api=api, env=fault.env, expect_posts=10**6, timeout=20)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault(run_runtime, make_runtime_api, fault):
    started = time.monotonic()
    result = run_fault(run_runtime, make_runtime_api, fault)
    check(result, fault)
    assert time.monotonic() - started < 12, result.describe()  # a stall costs 1 s; nothing hangs


#: Request ids that must never reach a URL path (those of test_runtime_wire are not repeated).
UNSAFE_IDS = ["..", "../x", "a/../../init/error", "a%2F..%2Finit", "r1?x=1", "-r1", "r\t1", "r\xe91", "r" * 257]


@pytest.mark.parametrize("request_id", UNSAFE_IDS, ids=[ascii(i)[:30] for i in UNSAFE_IDS])
def test_unsafe_request_id_is_refused_never_put_in_a_path(run_runtime, request_id):
    """The id is checked before anything uses it: the handler never runs, nothing is posted (there
    is no safe id to post an error to), the runtime says why and exits 1 (Lambda then fails the
    invoke as a runtime exit instead of waiting for its timeout)."""
    result = run_runtime(APP, "app.handler", [Event(request_id=request_id)], expect_posts=10**6, timeout=20)
    why = result.describe()
    assert result.exited and result.returncode == 1, why
    assert [r.kind for r in result.requests] == ["next"], why
    assert all(request_id not in r.path for r in result.requests[1:]), why
    assert b"ran:" not in result.stdout, why
    line = "lambdaric: invalid answer from the Runtime API at %s (GET /next): refusing unsafe " \
           "Lambda-Runtime-Aws-Request-Id %r\n" % (result.api.address, request_id[:300])
    assert result.stderr.decode("utf-8").endswith(line), why


# ---- the answer bound (LAMBDARIC_ANSWER_TIMEOUT) itself


def test_a_next_with_no_answer_yet_waits_past_the_bound(run_runtime, make_runtime_api):
    """The bound starts at an answer's first byte: a /next still waiting for its event is never cut
    (the sandbox may be frozen for hours between events)."""
    import threading

    api = make_runtime_api()

    def later():
        api.wait_idle(1, timeout=15)
        time.sleep(2.5)  # 2.5 times the bound
        api.push(ok("r1"))

    threading.Thread(target=later, daemon=True).start()
    result = run_runtime(APP, "app.handler", api=api, env=BOUND, expect_posts=1, timeout=20)
    assert [(p.kind, p.request_id) for p in result.posts] == [(RESPONSE, "r1")], result.describe()
    assert result.api.connections == 1 and result.stderr == b"", result.describe()


def test_a_slow_answer_inside_the_bound_is_taken(run_runtime):
    """About 1.5 s of dripping (a byte every 15 ms) is slow, but inside the default 10 s bound."""
    events = [raw(drip(answer("r1", b'"slow"'), every=0.015, then="keep"))]
    result = run_runtime(APP, "app.handler", events, expect_posts=1, timeout=20)
    assert [(p.kind, p.request_id, p.body) for p in result.posts] == [(RESPONSE, "r1", b'"slow"')], result.describe()
    assert result.stderr == b"", result.describe()


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "1e9"])
def test_a_bad_bound_is_refused_at_start(run_runtime, value):
    result = run_runtime(APP, "app.handler", [ok("r1")], env={"LAMBDARIC_ANSWER_TIMEOUT": value}, expect_posts=10**6,
                         timeout=20)
    assert result.exited and result.returncode == 2 and not result.requests, result.describe()
    assert result.stderr == ("lambdaric: LAMBDARIC_ANSWER_TIMEOUT must be a number of seconds, 0 for no bound, "
                             "not %r\n" % value).encode(), result.describe()


@pytest.mark.slow
def test_default_bound_is_ten_seconds(run_runtime):
    """Without LAMBDARIC_ANSWER_TIMEOUT a lying Content-Length costs 10 s, then the call is retried."""
    events = [raw(send(answer("r1", b"{}", length=100), "hold")), ok("r2")]
    started = time.monotonic()
    result = run_runtime(APP, "app.handler", events, expect_posts=1, timeout=30)
    elapsed = time.monotonic() - started
    assert [(p.kind, p.request_id) for p in result.posts] == [(RESPONSE, "r2")], result.describe()
    assert b"stalled: not complete 10 s after its first byte (LAMBDARIC_ANSWER_TIMEOUT); retrying" in result.stderr
    assert 9.5 < elapsed < 15, result.describe()
