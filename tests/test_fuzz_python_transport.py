"""Property tests (hypothesis) of how the transports read a Runtime API answer (issue 9: fuzzing).

Pure logic first: the head parser, the chunked decoder and ``invocation_from_headers`` refuse
anything with :class:`ProtocolError` only (never an IndexError, UnicodeDecodeError or a ValueError
of ``int()``), and a chunked body decodes the same however it is cut. Then the real transports:
each answer's bytes are sent by a one-shot server on 127.0.0.1, in pieces with a pause between
them (so the reads are cut where hypothesis says), to ``transport.next()``; it returns an
invocation, or raises ProtocolError (refused) or TransportError (the connection broke), nothing
else; a valid answer gives the same invocation whole or cut anywhere; and the native transport
(where it is built) reaches the same outcome, with the same words and values, as the pure-Python
one on every input (a differential property).

Each property runs a bounded number of examples here (the file takes a few seconds); the
``*_many`` variants, marked slow, run many more (CI's ``-m slow`` run).
"""
from __future__ import annotations

import socket
import threading
import time
from typing import Any, List, Optional, Sequence, Tuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faulty_api import send
from lambdaric import answers as answer_reader
from lambdaric import protocol
from lambdaric.answers import ChunkedDecoder, parse_response_head
from lambdaric.protocol import ProtocolError, invocation_from_headers
from lambdaric.transport import TransportError, create
from runtime_api import Event

FAST = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
FAST_WIRE = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=6000, deadline=None, suppress_health_check=list(HealthCheck))
SLOW_WIRE = settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))


def _native_problem() -> Optional[str]:
    try:
        import lambdaric.transport.native  # noqa: F401
    except (ImportError, OSError) as exc:
        return "the native module is not built here (%s: %s)" % (type(exc).__name__, exc)
    return None


NATIVE_PROBLEM = _native_problem()
needs_native = pytest.mark.skipif(NATIVE_PROBLEM is not None, reason=NATIVE_PROBLEM or "")

# --------------------------------------------------------------------------- strategies

KNOWN = [
    protocol.H_REQUEST_ID, protocol.H_DEADLINE, protocol.H_FUNCTION_ARN, protocol.H_TRACE_ID,
    protocol.H_CLIENT_CONTEXT, protocol.H_COGNITO_IDENTITY, protocol.H_TENANT_ID, protocol.H_INVOCATION_ID,
    protocol.H_CONTENT_TYPE,
]
CANONICAL = {
    protocol.H_REQUEST_ID: "Lambda-Runtime-Aws-Request-Id", protocol.H_DEADLINE: "Lambda-Runtime-Deadline-Ms",
    protocol.H_FUNCTION_ARN: "Lambda-Runtime-Invoked-Function-Arn", protocol.H_TRACE_ID: "Lambda-Runtime-Trace-Id",
    protocol.H_CLIENT_CONTEXT: "Lambda-Runtime-Client-Context",
    protocol.H_COGNITO_IDENTITY: "Lambda-Runtime-Cognito-Identity", protocol.H_TENANT_ID: "Lambda-Runtime-Aws-Tenant-Id",
    protocol.H_INVOCATION_ID: "Lambda-Runtime-Invocation-Id", protocol.H_CONTENT_TYPE: "Content-Type",
}
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
request_ids = st.builds(lambda a, b: a + b, st.sampled_from(ALNUM), st.text(ALNUM + "._:+=@-", max_size=60))
#: header values as a server may send them: printable ASCII, no surrounding whitespace
values = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=80)
header_names = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=20).filter(
    lambda n: n.lower() not in answer_reader._SINGLE)
bodies = st.binary(max_size=3000)


@st.composite
def chunked_bodies(draw, body: bytes) -> bytes:
    """``body`` in chunked encoding: random chunk sizes, hex case, extensions and trailers."""
    out = b""
    pos = 0
    while pos < len(body):
        n = draw(st.integers(1, max(1, len(body) - pos)))
        size = b"%x" % n if draw(st.booleans()) else b"%X" % n
        ext = draw(st.sampled_from([b"", b";ext=1", b" ;a=b", b";q=\"x\""]))
        out += size + ext + b"\r\n" + body[pos : pos + n] + b"\r\n"
        pos += n
    out += b"0\r\n"
    for _ in range(draw(st.integers(0, 2))):
        out += b"X-Trailer-%d: %s\r\n" % (draw(st.integers(0, 9)), draw(values).encode())
    return out + b"\r\n"


@st.composite
def valid_answers(draw) -> Tuple[bytes, dict]:
    """A valid /next answer and the invocation it must give (the fields the runtime reads)."""
    fields = {protocol.H_REQUEST_ID: draw(request_ids)}
    for name in KNOWN[1:]:
        if draw(st.booleans()):
            fields[name] = draw(st.text("0123456789", min_size=1, max_size=15) if name == protocol.H_DEADLINE else values)
    body = draw(bodies)
    eol = b"\r\n" if draw(st.integers(0, 4)) else b"\n"
    lines = [b"HTTP/1.1 200 " + draw(st.sampled_from([b"OK", b"Fine by me", b""]))]
    headers = [(CANONICAL[n].encode(), v.encode()) for n, v in fields.items()]
    headers += [(n.encode(), v.encode()) for n, v in draw(st.lists(st.tuples(header_names, values), max_size=4))]
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    if framing == "length":
        headers.append((b"Content-Length", b"%d" % len(body)))
        tail = body
    elif framing == "chunked":
        headers.append((b"Transfer-Encoding", b"chunked"))
        tail = draw(chunked_bodies(body))
    else:
        headers.append((b"Connection", b"close"))
        tail = body
    headers = draw(st.permutations(headers))
    ows = draw(st.sampled_from([b" ", b"", b"\t", b"  "]))
    # (a name in swapped case is the same header: HTTP names are case-insensitive)
    lines += [(name.swapcase() if draw(st.integers(0, 5)) == 0 else name) + b":" + ows + value for name, value in headers]
    data = eol.join(lines) + eol + eol + tail
    expect = {
        "request_id": fields[protocol.H_REQUEST_ID], "body": body,
        "deadline_ms": int(fields.get(protocol.H_DEADLINE, "0")),
    }
    for name, attr in [(protocol.H_FUNCTION_ARN, "function_arn"), (protocol.H_TRACE_ID, "trace_id"),
                       (protocol.H_CLIENT_CONTEXT, "client_context"), (protocol.H_COGNITO_IDENTITY, "cognito_identity"),
                       (protocol.H_TENANT_ID, "tenant_id"), (protocol.H_INVOCATION_ID, "invocation_id"),
                       (protocol.H_CONTENT_TYPE, "content_type")]:
        expect[attr] = fields.get(name)
    return data, expect


def cuts(data: bytes) -> st.SearchStrategy:
    """``data`` as a list of pieces, cut at up to 6 places."""
    return st.lists(st.integers(0, len(data)), max_size=6).map(
        lambda points: [data[a:b] for a, b in zip([0] + sorted(points), sorted(points) + [len(data)]) if b > a] or [b""])


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """``data`` with up to 4 edits: bytes inserted, deleted, replaced or a line doubled."""
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(data)))
        how = draw(st.integers(0, 4))
        if how == 0:
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        elif how == 1:
            data = data[:at] + data[at + draw(st.integers(1, 20)) :]
        elif how == 2 and at < len(data):
            data = data[:at] + bytes([draw(st.sampled_from(b"\x00\r\n:; \t0-9aZ\xff\x80"))]) + data[at + 1 :]
        elif how == 3:
            start = data.rfind(b"\n", 0, at) + 1
            end = data.find(b"\n", at)
            if end > start:
                data = data[:end + 1] + data[start : end + 1] + data[end + 1 :]
        else:
            data = data[:at] + draw(st.sampled_from([
                b"Content-Length: 99999999999999999999\r\n", b"Content-Length: -1\r\n", b"Content-Length: 1\r\n",
                b"Transfer-Encoding: chunked\r\n", b"Connection: close\r\n", b"Lambda-Runtime-Aws-Request-Id: ../x\r\n",
                b"\r\n", b"\n\n", b"HTTP/1.1 200 OK\r\n", b"fffffffffffffffff\r\n", b"0\r\n\r\n",
            ])) + data[at:]
    return data


answers = valid_answers().map(lambda t: t[0])
garbage = st.one_of(
    st.binary(max_size=400),
    answers.flatmap(mutated),
    st.builds(lambda t, b: b"HTTP/1.1 200 OK\r\n" + t + b"\r\n\r\n" + b, st.binary(max_size=200), st.binary(max_size=50)),
)

# --------------------------------------------------------------------------- pure logic


def check_head(data: bytes) -> None:
    try:
        head = parse_response_head(data)
    except ProtocolError:
        return
    assert 100 <= head.status <= 999 and head.content_length >= -2
    invocation_outcome(head.headers, b"")


def invocation_outcome(headers: dict, body: bytes) -> Any:
    try:
        inv = invocation_from_headers(headers, body)
    except ProtocolError:
        return "refused"
    assert protocol._is_safe_request_id(inv.request_id) and isinstance(inv.deadline_ms, int)
    return inv


heads = st.one_of(st.binary(max_size=500), answers.map(lambda a: a.split(b"\r\n\r\n")[0]),
                  answers.flatmap(mutated).map(lambda a: a.split(b"\r\n\r\n")[0]))


@FAST
@given(heads)
def test_head_parser_refuses_only_with_protocol_error(data):
    check_head(data)


@pytest.mark.slow
@SLOW
@given(heads)
def test_head_parser_refuses_only_with_protocol_error_many(data):
    check_head(data)


def test_a_content_length_of_5000_digits_is_a_protocol_error():
    """Found by this file: ``int()`` of more than 4300 digits raises ValueError (Python 3.11+),
    which went past both transports' handlers as a traceback. Over 15 digits is refused as the
    native parser refuses it."""
    assert answer_reader.head_end(b"HTTP/1.1 200 OK\r\n\r\r\n\r\nbody") == (19, 22)  # "\r\r" is no blank line
    with pytest.raises(ProtocolError, match="bare CR"):  # (as lr_http.c refuses it; found by the slow run)
        parse_response_head(b"HTTP/1.1 200 OK\r\n\r\r")
    for digits in (16, 5000):
        with pytest.raises(ProtocolError, match="invalid Content-Length"):
            parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * digits)
    assert parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: " + b"9" * 15).content_length == 10**15 - 1


header_dicts = st.dictionaries(st.sampled_from(KNOWN) | st.text(max_size=10), st.text(max_size=300), max_size=12)


@FAST
@given(header_dicts, st.binary(max_size=20))
def test_invocation_from_headers_refuses_only_with_protocol_error(headers, body):
    invocation_outcome(headers, body)


def decode(pieces: Sequence[bytes], limit: int) -> Any:
    """Feed ``pieces`` to a ChunkedDecoder: ('done', body, what followed), 'more' or ('refused', why)."""
    decoder = ChunkedDecoder(limit)
    try:
        for i, piece in enumerate(pieces):
            leftover = decoder.feed(piece)
            if leftover is not None:
                return "done", decoder.body(), leftover + b"".join(pieces[i + 1 :])
    except ProtocolError as exc:
        return "refused", str(exc)
    return "more"


chunk_streams = st.one_of(
    st.binary(max_size=300),
    bodies.flatmap(chunked_bodies).map(lambda b: b + b"HTTP/1.1 202"),
    bodies.flatmap(chunked_bodies).flatmap(mutated),
    st.builds(lambda n, tail: n + b"\r\n" + tail, st.binary(min_size=8000, max_size=8300).map(lambda b: b.replace(b"\n", b"")),
              st.binary(max_size=10)),
)


def check_chunks(data: bytes, pieces: List[bytes], limit: int) -> None:
    whole = decode([data], limit)
    assert decode(pieces, limit) == whole
    if whole != "more" and whole[0] == "done":
        assert len(whole[1]) <= limit


@FAST
@given(chunk_streams.flatmap(lambda d: st.tuples(st.just(d), cuts(d))), st.sampled_from([protocol.MAX_PAYLOAD, 1000, 10]))
def test_chunked_decoder_is_the_same_however_cut(case, limit):
    """Any bytes, cut anywhere: the same body and leftover, or the same refusal with the same words."""
    check_chunks(case[0], case[1], limit)


@pytest.mark.slow
@SLOW
@given(chunk_streams.flatmap(lambda d: st.tuples(st.just(d), cuts(d))), st.sampled_from([protocol.MAX_PAYLOAD, 1000, 10]))
def test_chunked_decoder_is_the_same_however_cut_many(case, limit):
    check_chunks(case[0], case[1], limit)


# --------------------------------------------------------------------------- through a socket


def serve(pieces: Sequence[bytes]) -> Tuple[str, threading.Thread]:
    """A one-shot server on 127.0.0.1: takes one connection, reads the request head, sends the
    pieces (a pause after each, so the reader takes them apart), then closes. Bounded: 5 s."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(5)

    def run() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        finally:
            listener.close()
        with conn:
            conn.settimeout(5)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            try:
                got = b""
                while b"\r\n\r\n" not in got:
                    more = conn.recv(4096)
                    if not more:
                        return
                    got += more
                for piece in pieces:
                    conn.sendall(piece)
                    time.sleep(0.0005)
                conn.shutdown(socket.SHUT_WR)
                while conn.recv(65536):  # until the transport closes (a refused answer: at once)
                    pass
            except OSError:
                pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return "127.0.0.1:%d" % listener.getsockname()[1], thread


def read_next(kind: str, pieces: Sequence[bytes]) -> Any:
    """What ``transport.next()`` makes of an answer sent in ``pieces``: ('ok', fields),
    ('refused', message) or ('broken', OS error class); anything else raised fails the test."""
    address, thread = serve(pieces)
    transport = create(address, "lambdaric-fuzz", kind)
    try:
        inv = transport.next()
        result: Any = ("ok", {name: getattr(inv, name) for name in (
            "request_id", "body", "deadline_ms", "function_arn", "trace_id", "client_context", "cognito_identity",
            "tenant_id", "invocation_id", "content_type")})
        result[1]["body"] = bytes(result[1]["body"])
    except ProtocolError as exc:
        result = ("refused", str(exc))
    except TransportError as exc:
        result = ("broken", type(exc.cause).__name__)
    finally:
        transport.close()
        thread.join(10)
    assert not thread.is_alive()
    return result


def check_valid(case: Tuple[Tuple[bytes, dict], List[bytes]]) -> None:
    (data, expect), pieces = case
    whole = read_next("python", [data])
    assert whole == ("ok", expect)
    assert read_next("python", pieces) == whole
    if NATIVE_PROBLEM is None:
        assert read_next("native", pieces) == whole


valid_cases = valid_answers().flatmap(lambda a: st.tuples(st.just(a), cuts(a[0])))


@FAST_WIRE
@given(valid_cases)
def test_valid_answers_read_the_same_whole_or_cut(case):
    """Both transports (the native one where built) take every valid answer, cut anywhere, with
    exactly the fields it carries."""
    check_valid(case)


@pytest.mark.slow
@SLOW_WIRE
@given(valid_cases)
def test_valid_answers_read_the_same_whole_or_cut_many(case):
    check_valid(case)


def check_garbage(data: bytes, pieces: List[bytes]) -> None:
    python = read_next("python", pieces)
    if python[0] == "ok":
        assert protocol._is_safe_request_id(python[1]["request_id"])
    if NATIVE_PROBLEM is None:
        assert read_next("native", pieces) == python


garbage_cases = garbage.flatmap(lambda d: st.tuples(st.just(d), cuts(d)))


@FAST_WIRE
@given(garbage_cases)
def test_malformed_answers_are_refused_and_both_transports_agree(case):
    """Arbitrary and mutated answers: an invocation, ProtocolError or TransportError, never another
    exception; and the native transport gives the same outcome, words and values."""
    check_garbage(*case)


@pytest.mark.slow
@SLOW_WIRE
@given(garbage_cases)
def test_malformed_answers_are_refused_and_both_transports_agree_many(case):
    check_garbage(*case)


# --------------------------------------------------------------------------- the finding, through the wire

APP = {"app.py": "def handler(event, context):\n    return event\n"}


@pytest.mark.parametrize("digits", [16, 5000])
def test_a_huge_content_length_is_one_clear_line_not_a_traceback(run_runtime, digits):
    """A /next answer with a Content-Length of 5000 digits killed the runtime with a ValueError
    traceback on both transports (int() refuses more than 4300 digits); 16 digits was refused by
    the native parser and taken as a too-large body by the Python one (other words). Now: the same
    line on both, exit 1, nothing posted."""
    value = b"9" * digits
    data = b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r1\r\nContent-Length: " + value + b"\r\n\r\n"
    result = run_runtime(APP, "app.handler", [Event(raw=send(data, "hold"))], expect_posts=10**6, timeout=20)
    why = result.describe()
    assert result.exited and result.returncode == 1, why
    assert [r.kind for r in result.requests] == ["next"], why
    assert b"Traceback" not in result.stderr, why
    line = "lambdaric: invalid answer from the Runtime API at %s (GET /next): invalid Content-Length %r from " \
           "the Runtime API\n" % (result.api.address, value[:50].decode())
    assert result.stderr.decode() == line, why
