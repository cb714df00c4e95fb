"""The event-stream codec (``lambdaric.emulator.eventstream``) against its real peer, boto3.

Three layers: the binary format (public known-answer vectors, exact header encodings,
round trips through our decoder and botocore's ``EventStreamBuffer`` with the stream cut
anywhere); the Lambda model (the event and member names botocore's service model has);
and the whole operation: ``invoke_with_response_stream`` of a real boto3 client, pointed
at a loopback HTTP server that answers with our bytes, so botocore's own HTTP layer,
event-stream parser and rest-json event parser decode them. The server
(``tests/scripted_http.py``) binds 127.0.0.1, serves one scripted answer per connection,
and every socket has a timeout.
"""
from __future__ import annotations

import json
import struct
import zlib
from typing import List, Sequence

import pytest

from peers import peer_module
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdaric.emulator.eventstream import EventStreamError, decode_messages, encode_message, invoke_complete, payload_chunk
from scripted_http import LoopbackServer, http_answer

boto3 = peer_module("boto3", "pip install boto3")
botocore_eventstream = peer_module("botocore.eventstream", "pip install boto3")
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError, EventStreamError as BotocoreEventStreamError  # noqa: E402
from botocore.session import get_session  # noqa: E402

OPERATION_PATH = "/2021-11-15/functions/function/response-streaming-invocations"


# --------------------------------------------------------------------------- the format

# Public test vectors of the format (aws-c-event-stream's, also used by other SDKs): the
# empty message, and one ``content-type: application/json`` header with a small payload.
EMPTY_MESSAGE = bytes.fromhex("00000010" "00000000" "05c248eb" "7d98c8ff")
JSON_MESSAGE = bytes.fromhex(
    "0000003d0000002007fd83960c636f6e74656e742d747970650700106170706c69636174696f6e2f6a736f6e"
    "7b27666f6f273a27626172277d8d9c08b1"
)


def test_known_answer_vectors():
    assert encode_message([], b"") == EMPTY_MESSAGE
    assert encode_message([("content-type", "application/json")], b"{'foo':'bar'}") == JSON_MESSAGE
    (message,), rest = decode_messages(JSON_MESSAGE + EMPTY_MESSAGE[:5])
    assert message.headers == [("content-type", "application/json")] and message.payload == b"{'foo':'bar'}"
    assert rest == EMPTY_MESSAGE[:5]


def _headers_section(message: bytes) -> bytes:
    total, head_len = struct.unpack_from(">II", message)
    assert total == len(message)
    assert struct.unpack_from(">I", message, 8)[0] == zlib.crc32(message[:8])
    assert struct.unpack_from(">I", message, total - 4)[0] == zlib.crc32(message[:-4])
    return message[12 : 12 + head_len]


@pytest.mark.parametrize(
    "value, wire",
    [
        (True, b"\x00"),  # bool true: type 0, no value bytes
        (False, b"\x01"),  # bool false: type 1
        (-2, b"\x04\xff\xff\xff\xfe"),  # int: int32 (type 4), big-endian
        (b"\x00\xff", b"\x06\x00\x02\x00\xff"),  # bytes: type 6, 2-byte length
        ("é", b"\x07\x00\x02\xc3\xa9"),  # str: type 7, 2-byte length of the UTF-8
    ],
)
def test_typed_header_values_on_the_wire(value, wire):
    message = encode_message([("k", value)], b"p")
    assert _headers_section(message) == b"\x01k" + wire
    buffer = botocore_eventstream.EventStreamBuffer()
    buffer.add_data(message)
    (parsed,) = list(buffer)
    assert parsed.headers == {"k": value} and parsed.payload == b"p"


header_values = st.one_of(st.text(max_size=40), st.binary(max_size=40), st.booleans(), st.integers(-(2**31), 2**31 - 1))
header_names = st.text(min_size=1, max_size=30).filter(lambda n: len(n.encode("utf-8")) < 256)
# botocore refuses a message that repeats a header name, so the peer tests use unique ones
unique_headers = st.dictionaries(header_names, header_values, max_size=6).map(lambda d: list(d.items()))
messages = st.lists(st.tuples(unique_headers, st.binary(max_size=400)), min_size=1, max_size=5)


def _cut(wire: bytes, cuts: Sequence[int]) -> List[bytes]:
    points = sorted({c % (len(wire) + 1) for c in cuts} | {0, len(wire)})
    return [wire[a:b] for a, b in zip(points, points[1:])]


@settings(max_examples=200, deadline=None)
@given(messages, st.lists(st.integers(0, 10**6), max_size=12))
def test_stream_cut_anywhere_decodes_the_same_in_ours_and_botocores(msgs, cuts):
    wire = b"".join(encode_message(h, p) for h, p in msgs)
    ours, buf = [], b""
    theirs = []
    buffer = botocore_eventstream.EventStreamBuffer()
    for piece in _cut(wire, cuts):
        got, buf = decode_messages(buf + piece)
        ours += [(m.headers, m.payload) for m in got]
        buffer.add_data(piece)
        theirs += [(list(m.headers.items()), m.payload) for m in buffer]
    assert buf == b""
    assert ours == theirs == [(h, p) for h, p in msgs]


def test_byte_by_byte_feeding_yields_each_message_once_complete():
    wire = payload_chunk(b"one") + payload_chunk(b"") + invoke_complete()
    buf, seen = b"", []
    for i in range(len(wire)):
        got, buf = decode_messages(buf + wire[i : i + 1])
        seen += [(i, m.payload) for m in got]
    ends = [len(payload_chunk(b"one")) - 1, len(payload_chunk(b"one") + payload_chunk(b"")) - 1, len(wire) - 1]
    assert [i for i, _ in seen] == ends
    assert [p for _, p in seen] == [b"one", b"", b"{}"]


def _refix_crcs(message: bytes) -> bytes:
    """Recompute both CRCs so a mutation reaches the lengths and the headers."""
    m = bytearray(message)
    m[8:12] = struct.pack(">I", zlib.crc32(bytes(m[:8])))
    m[-4:] = struct.pack(">I", zlib.crc32(bytes(m[:-4])))
    return bytes(m)


@pytest.mark.parametrize(
    "wire, reason",
    [
        (EMPTY_MESSAGE[:8] + b"\x00\x00\x00\x00" + EMPTY_MESSAGE[12:], "prelude CRC"),
        (EMPTY_MESSAGE[:-1] + b"\x00", "message CRC"),
        (_refix_crcs(struct.pack(">II", 15, 0) + b"\x00" * 8), "invalid message lengths"),
        (_refix_crcs(struct.pack(">II", 20, 5) + b"\x00" * 12), "invalid message lengths"),
        (_refix_crcs(encode_message([("k", "v")], b"")[:14] + b"\x0a" + encode_message([("k", "v")], b"")[15:]), "unknown value type 10"),
        (_refix_crcs(encode_message([("k", "value")], b"")[:15] + b"\x00\x09" + encode_message([("k", "value")], b"")[17:]), "truncated"),
    ],
)
def test_malformed_input_is_a_clear_error(wire, reason):
    with pytest.raises(EventStreamError, match=reason):
        decode_messages(wire)


def test_malformed_prelude_fails_before_the_rest_arrives():
    # a client must not wait for 4 GiB that a corrupt length announces
    with pytest.raises(EventStreamError, match="invalid message lengths"):
        decode_messages(_refix_crcs(struct.pack(">II", 0xFFFFFFF0, 0) + b"\x00" * 8)[:12])


def test_invalid_utf8_header_is_an_event_stream_error():
    wire = encode_message([("k", "v")], b"")
    with pytest.raises(EventStreamError, match="not valid UTF-8"):
        decode_messages(_refix_crcs(wire[:13] + b"\xff" + wire[14:]))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([payload_chunk(b"abc"), invoke_complete("E", "d", "bG9n"), encode_message([("a", True), ("b", b"\x00"), ("c", 7)], b"xy")]),
       st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=3), st.booleans())
def test_mutated_messages_never_crash_the_decoder_and_agree_with_botocore(message, edits, refix):
    m = bytearray(message)
    for pos, byte in edits:
        m[pos % len(m)] = byte
    wire = _refix_crcs(bytes(m)) if refix else bytes(m)
    try:
        got, rest = decode_messages(wire)
    except EventStreamError:  # the only error the decoder raises on bad input
        return
    if rest:
        return  # a (mutated) length announces more bytes: nothing was decoded, nothing invented
    buffer = botocore_eventstream.EventStreamBuffer()
    buffer.add_data(wire)
    try:
        theirs = [(list(x.headers.items()), x.payload) for x in buffer]
    except botocore_eventstream.DuplicateHeader:
        return  # our decoder keeps repeated names; botocore refuses them
    assert [(x.headers, x.payload) for x in got] == theirs


# --------------------------------------------------------------------------- the Lambda model

def _lambda_model():
    return get_session().get_service_model("lambda")


def test_model_events_and_members_are_the_ones_we_emit():
    op = _lambda_model().operation_model("InvokeWithResponseStream")
    assert op.http["requestUri"] == "/2021-11-15/functions/{FunctionName}/response-streaming-invocations"
    output = op.output_shape
    assert output.serialization["payload"] == "EventStream"
    located = {name: (m.serialization.get("location"), m.serialization.get("name")) for name, m in output.members.items()}
    assert located["ExecutedVersion"] == ("header", "X-Amz-Executed-Version")
    assert located["ResponseStreamContentType"] == ("header", "Content-Type")
    assert located["StatusCode"] == ("statusCode", None)
    union = output.members["EventStream"]
    assert union.serialization.get("eventstream")
    assert set(union.members) == {"PayloadChunk", "InvokeComplete"}
    # no member is an exception event: a modelled ":message-type exception" cannot exist here
    assert not [n for n, m in union.members.items() if m.metadata.get("exception")]
    chunk = union.members["PayloadChunk"]
    assert [(n, m.type_name, bool(m.serialization.get("eventpayload"))) for n, m in chunk.members.items()] == [("Payload", "blob", True)]
    complete = union.members["InvokeComplete"]
    assert {n: m.type_name for n, m in complete.members.items()} == {"ErrorCode": "string", "ErrorDetails": "string", "LogResult": "string"}
    assert json.loads(decode_messages(invoke_complete("E", "D", "L"))[0][0].payload).keys() == complete.members.keys()


def test_the_header_set_of_each_lambda_event():
    (chunk,), _ = decode_messages(payload_chunk(b"\x00bytes\xff"))
    assert chunk.headers == [(":event-type", "PayloadChunk"), (":content-type", "application/octet-stream"), (":message-type", "event")]
    assert chunk.payload == b"\x00bytes\xff"
    (done,), _ = decode_messages(invoke_complete("Err", "details", "bG9n"))
    assert done.headers == [(":event-type", "InvokeComplete"), (":content-type", "application/json"), (":message-type", "event")]
    assert json.loads(done.payload) == {"ErrorCode": "Err", "ErrorDetails": "details", "LogResult": "bG9n"}
    assert json.loads(decode_messages(invoke_complete())[0][0].payload) == {}
    assert json.loads(decode_messages(invoke_complete(log_result="bG9n"))[0][0].payload) == {"LogResult": "bG9n"}


# --------------------------------------------------------------------------- boto3 over loopback

@pytest.fixture(scope="module")
def server():
    srv = LoopbackServer()
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def client(server):
    return boto3.client(
        "lambda",
        region_name="us-east-1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
        endpoint_url="http://127.0.0.1:%d" % server.port,
        config=Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=10),
    )


_opened: List["botocore_eventstream.EventStream"] = []


@pytest.fixture(autouse=True)
def _close_event_streams():
    yield
    while _opened:
        _opened.pop().close()


def invoke(server, client, answer: List[bytes], **kwargs):
    server.answers.put(answer)
    response = client.invoke_with_response_stream(FunctionName="function", Payload=b"{}", **kwargs)
    _opened.append(response["EventStream"])
    return response, response["EventStream"]


def _split_each_message(stream: List[bytes]) -> List[bytes]:
    return stream


def _one_piece(stream: List[bytes]) -> List[bytes]:
    return [b"".join(stream)]


def _small_pieces(stream: List[bytes]) -> List[bytes]:
    wire = b"".join(stream)
    return [wire[i : i + 7] for i in range(0, len(wire), 7)]


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
@pytest.mark.parametrize("split", [_split_each_message, _one_piece, _small_pieces])
def test_boto3_parses_our_stream(server, client, framing, split):
    data = [b"first chunk\n", bytes(range(256)), b"", b"\xff" * 70000]
    stream = [payload_chunk(d) for d in data] + [invoke_complete(log_result="bG9nIHRhaWw=")]
    response, events = invoke(server, client, http_answer(split(stream), framing=framing), LogType="Tail")
    assert response["StatusCode"] == 200
    assert response["ExecutedVersion"] == "$LATEST"
    assert response["ResponseStreamContentType"] == "application/vnd.amazon.eventstream"
    got = list(events)
    assert got == [{"PayloadChunk": {"Payload": d}} for d in data] + [{"InvokeComplete": {"LogResult": "bG9nIHRhaWw="}}]
    request_line, headers, body = server.requests[-1]
    assert request_line == "POST %s HTTP/1.1" % OPERATION_PATH
    assert headers["x-amz-log-type"] == "Tail" and body == b"{}"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=300), max_size=4), st.lists(st.integers(0, 10**6), max_size=10))
def test_boto3_parses_our_stream_cut_anywhere(server, client, data, cuts):
    wire = b"".join(payload_chunk(d) for d in data) + invoke_complete("Code", "détails ✓", "bG9n")
    _, events = invoke(server, client, http_answer(_cut(wire, cuts)))
    assert list(events) == [{"PayloadChunk": {"Payload": d}} for d in data] + [
        {"InvokeComplete": {"ErrorCode": "Code", "ErrorDetails": "détails ✓", "LogResult": "bG9n"}}
    ]


def test_mid_stream_function_error_is_an_event_not_an_exception(server, client):
    # As Lambda reports a function that fails after streaming: the chunks already sent, then
    # InvokeComplete with ErrorCode/ErrorDetails. boto3 raises nothing and the status stays 200:
    # the caller has to look at InvokeComplete.
    stream = [payload_chunk(b"partial "), payload_chunk(b"output"), invoke_complete("Runtime.Boom", "it broke", "bG9n")]
    response, events = invoke(server, client, http_answer(stream))
    got = list(events)
    assert response["StatusCode"] == 200 and "FunctionError" not in response
    assert got[:2] == [{"PayloadChunk": {"Payload": b"partial "}}, {"PayloadChunk": {"Payload": b"output"}}]
    assert got[2] == {"InvokeComplete": {"ErrorCode": "Runtime.Boom", "ErrorDetails": "it broke", "LogResult": "bG9n"}}


def test_protocol_error_message_raises_in_the_iteration(server, client):
    # ":message-type error" (protocol level, not in the model) is what botocore raises for:
    # EventStreamError, a ClientError, with Code/Message from ":error-code"/":error-message".
    error = encode_message([(":message-type", "error"), (":error-code", "ServiceException"), (":error-message", "went wrong")], b"")
    _, events = invoke(server, client, http_answer([payload_chunk(b"a"), error, payload_chunk(b"never")]))
    got = []
    with pytest.raises(BotocoreEventStreamError) as raised:
        for event in events:
            got.append(event)
    assert got == [{"PayloadChunk": {"Payload": b"a"}}]
    assert isinstance(raised.value, ClientError)
    assert raised.value.response["Error"] == {"Code": "ServiceException", "Message": "went wrong"}


def test_unmodelled_exception_message_loses_its_type(server, client):
    # ":message-type exception" is only meaningful for exception members of the event union;
    # Lambda's union has none, so botocore raises with an empty code and message.
    exc = encode_message(
        [(":message-type", "exception"), (":exception-type", "ServiceException"), (":content-type", "application/json")],
        b'{"message": "went wrong"}',
    )
    _, events = invoke(server, client, http_answer([exc]))
    with pytest.raises(BotocoreEventStreamError) as raised:
        list(events)
    assert raised.value.response["Error"] == {"Code": "", "Message": ""}


def test_content_type_is_reported_not_needed(server, client):
    # botocore picks the event-stream parser from the model, not from Content-Type; the
    # header only becomes ResponseStreamContentType, and X-Amz-Executed-Version only ExecutedVersion.
    response, events = invoke(server, client, http_answer([payload_chunk(b"x"), invoke_complete()], headers=[("Content-Type", "text/plain")]))
    assert response["ResponseStreamContentType"] == "text/plain" and "ExecutedVersion" not in response
    assert list(events) == [{"PayloadChunk": {"Payload": b"x"}}, {"InvokeComplete": {}}]


def test_unknown_event_types_are_skipped(server, client):
    other = encode_message([(":event-type", "SomethingNew"), (":content-type", "application/json"), (":message-type", "event")], b"{}")
    _, events = invoke(server, client, http_answer([other, payload_chunk(b"x"), invoke_complete()]))
    assert list(events) == [{"PayloadChunk": {"Payload": b"x"}}, {"InvokeComplete": {}}]


def test_truncated_stream_is_silent_in_boto3_but_visible_in_our_decoder(server, client):
    # A body that ends cleanly inside a message: botocore drops the partial message without
    # an error, so "no InvokeComplete" is the only sign; our decoder returns it as ``rest``.
    wire = payload_chunk(b"whole") + invoke_complete()[:20]
    _, events = invoke(server, client, http_answer([wire]))
    assert list(events) == [{"PayloadChunk": {"Payload": b"whole"}}]
    got, rest = decode_messages(wire)
    assert [m.payload for m in got] == [b"whole"] and rest == invoke_complete()[:20]


def test_corrupt_message_raises_checksum_mismatch(server, client):
    bad = payload_chunk(b"abc")
    bad = bad[:-1] + bytes([bad[-1] ^ 0xFF])
    _, events = invoke(server, client, http_answer([bad]))
    with pytest.raises(botocore_eventstream.ChecksumMismatch):
        list(events)


def test_error_before_the_stream_is_a_plain_client_error(server, client):
    body = b'{"Type":"User","message":"Rate Exceeded."}'
    answer = http_answer(
        [body],
        headers=[("Content-Type", "application/json"), ("X-Amzn-ErrorType", "TooManyRequestsException")],
        framing="content-length",
        status="429 Too Many Requests",
    )
    server.answers.put(answer)
    with pytest.raises(client.exceptions.TooManyRequestsException) as raised:
        client.invoke_with_response_stream(FunctionName="function", Payload=b"{}")
    assert raised.value.response["Error"]["Message"] == "Rate Exceeded."
