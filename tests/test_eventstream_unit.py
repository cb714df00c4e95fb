"""The event-stream codec (pure logic), checked against botocore's own decoder."""
import struct
import zlib

import pytest

from peers import peer_module
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdaric.emulator.eventstream import (
    MAX_CHUNK,
    MAX_HEADERS,
    EventStreamError,
    decode_messages,
    encode_message,
    invoke_complete,
    payload_chunk,
    payload_chunks,
)

botocore_eventstream = peer_module("botocore.eventstream", "pip install boto3")

header_values = st.one_of(st.text(max_size=30), st.binary(max_size=30), st.booleans(), st.integers(-(2**31), 2**31 - 1))
headers = st.lists(st.tuples(st.text(min_size=1, max_size=20).filter(lambda n: len(n.encode()) < 256), header_values), max_size=5)
unique_headers = headers.map(lambda hs: list(dict(hs).items()))  # the encoder (and botocore) refuse repeated names


@settings(max_examples=200, deadline=None)
@given(unique_headers, st.binary(max_size=300), st.integers(1, 50))
def test_round_trip_split_anywhere(hs, payload, step):
    wire = encode_message(hs, payload) * 2
    got, buf = [], b""
    for i in range(0, len(wire), step):
        messages, buf = decode_messages(buf + wire[i : i + step])
        got += messages
    assert buf == b"" and len(got) == 2
    assert all(m.payload == payload and m.headers == hs for m in got)


@settings(max_examples=100, deadline=None)
@given(unique_headers, st.binary(max_size=300))
def test_botocore_decodes_ours(hs, payload):
    buffer = botocore_eventstream.EventStreamBuffer()
    buffer.add_data(encode_message(hs, payload))
    (message,) = list(buffer)
    assert message.payload == payload
    assert list(message.headers.items()) == hs


def test_lambda_events():
    (chunk,), _ = decode_messages(payload_chunk(b"abc"))
    assert chunk.header(":event-type") == "PayloadChunk" and chunk.payload == b"abc"
    (done,), _ = decode_messages(invoke_complete("Err", "details", "bG9n"))
    assert done.header(":event-type") == "InvokeComplete"
    assert done.payload == b'{"ErrorCode": "Err", "ErrorDetails": "details", "LogResult": "bG9n"}'


@pytest.mark.parametrize("mutate", [lambda w: w[:8] + b"\x00\x00\x00\x00" + w[12:], lambda w: w[:-1] + bytes([w[-1] ^ 1])])
def test_corruption_is_a_clear_error(mutate):
    with pytest.raises(EventStreamError, match="CRC"):
        decode_messages(mutate(payload_chunk(b"abc")))


# --------------------------------------------------------------------------- what the encoder refuses

@pytest.mark.parametrize("value", [2**31 - 1, -(2**31)])
def test_int32_bounds_are_encoded(value):
    (message,), _ = decode_messages(encode_message([("n", value)], b""))
    assert message.headers == [("n", value)]


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 2**63])
def test_int_outside_int32_is_refused(value):
    # was: struct.error, which is not even a ValueError
    with pytest.raises(EventStreamError, match="int32"):
        encode_message([("n", value)], b"")


@pytest.mark.parametrize("value, kind", [(None, "NoneType"), (1.5, "float"), (["a"], "list")])
def test_values_the_format_cannot_carry_are_refused(value, kind):
    with pytest.raises(EventStreamError, match="header 'k': a value must be str, bytes, bool or int, not %s" % kind):
        encode_message([("k", value)], b"")


def test_bytes_like_values_are_bytes_headers():
    (message,), _ = decode_messages(encode_message([("a", bytearray(b"\x01")), ("b", memoryview(b"\x02"))], b""))
    assert message.headers == [("a", b"\x01"), ("b", b"\x02")]


def test_repeated_header_name_is_refused():
    with pytest.raises(EventStreamError, match="header ':event-type' is repeated"):
        encode_message([(":event-type", "PayloadChunk"), (":message-type", "event"), (":event-type", "Other")], b"")


@pytest.mark.parametrize(
    "hs, reason",
    [
        ([(b"k", "v")], "header name must be a str, not bytes"),
        ([(None, "v")], "header name must be a str, not NoneType"),
        ([("", "v")], "1-255 bytes"),
        ([("\ud800", "v")], "not valid Unicode"),
        ([("k", "\udfff")], "not valid Unicode"),
        ([("k", "x" * 65536)], "over 65535 bytes"),
    ],
)
def test_bad_names_and_strings_are_clear_errors(hs, reason):
    with pytest.raises(EventStreamError, match=reason):
        encode_message(hs, b"")


def _headers_of_size(size):
    """Two headers whose encoded section is exactly ``size`` bytes (each: 1 + name + 1 + 2 + value)."""
    first = 65535
    return [("a", b"\x00" * first), ("b", b"\x00" * (size - 2 * 5 - first))]


def _message_with_raw_headers(head: bytes, payload: bytes = b"") -> bytes:
    """A well-formed message (both CRCs right) around any headers section: bypasses our encoder."""
    prelude = struct.pack(">II", 16 + len(head) + len(payload), len(head))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + payload
    return message + struct.pack(">I", zlib.crc32(message))


def test_headers_limit_is_128_kib_on_encode_and_botocore_agrees():
    assert MAX_HEADERS == 128 * 1024
    at_limit = encode_message(_headers_of_size(MAX_HEADERS), b"p")
    (message,), _ = decode_messages(at_limit)
    assert message.headers == _headers_of_size(MAX_HEADERS)
    buffer = botocore_eventstream.EventStreamBuffer()
    buffer.add_data(at_limit)
    assert [m.payload for m in buffer] == [b"p"]
    with pytest.raises(EventStreamError, match="headers of 131073 bytes are over the 131072-byte limit"):
        encode_message(_headers_of_size(MAX_HEADERS + 1), b"p")


def test_headers_limit_on_decode_fails_from_the_prelude_as_botocore_does():
    head = b"".join(encode_message([h], b"")[12:-4] for h in _headers_of_size(MAX_HEADERS + 1))
    over = _message_with_raw_headers(head)
    with pytest.raises(EventStreamError, match="headers length 131073 at byte 0 is over the 131072-byte limit"):
        decode_messages(over[:12])  # the prelude alone is enough: no waiting for the rest
    with pytest.raises(EventStreamError, match="over the 131072-byte limit"):
        decode_messages(over)
    buffer = botocore_eventstream.EventStreamBuffer()
    buffer.add_data(over)
    with pytest.raises(botocore_eventstream.InvalidHeadersLength):
        list(buffer)


@pytest.mark.parametrize(
    "head, reason",
    [
        (b"\x02\xc3\x28\x00", "header name at byte 0 is not valid UTF-8"),  # name: bad continuation byte
        (b"\x01k\x07\x00\x02\xff\xfe", "header 'k' value is not valid UTF-8"),  # string value
        (b"\x05ab", "header name at byte 0 is truncated"),
    ],
)
def test_malformed_header_bytes_are_event_stream_errors(head, reason):
    with pytest.raises(EventStreamError, match=reason):
        decode_messages(_message_with_raw_headers(head))


def test_invalid_utf8_in_a_bytes_header_is_just_bytes():
    (message,), _ = decode_messages(_message_with_raw_headers(b"\x01k\x06\x00\x02\xff\xfe"))
    assert message.headers == [("k", b"\xff\xfe")]


# --------------------------------------------------------------------------- splitting a payload

@pytest.mark.parametrize("size", [0, 1, MAX_CHUNK - 1, MAX_CHUNK, MAX_CHUNK + 1, 3 * MAX_CHUNK])
def test_payload_chunks_split_at_max_chunk_in_order(size):
    data = bytes(i % 251 for i in range(size))
    events = list(payload_chunks(data))
    messages = [m for e in events for m in decode_messages(e)[0]]
    assert b"".join(m.payload for m in messages) == data
    assert [len(m.payload) for m in messages] == [min(MAX_CHUNK, size - i) for i in range(0, size, MAX_CHUNK)]
    assert all(e == payload_chunk(m.payload) for e, m in zip(events, messages))


def test_payload_chunks_small_limit():
    assert [decode_messages(e)[0][0].payload for e in payload_chunks(b"abcdefg", 3)] == [b"abc", b"def", b"g"]
    with pytest.raises(ValueError):
        list(payload_chunks(b"x", 0))
