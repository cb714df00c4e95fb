"""The event-stream codec (pure logic), checked against botocore's own decoder."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lambdaric.emulator.eventstream import EventStreamError, decode_messages, encode_message, invoke_complete, payload_chunk

botocore_eventstream = pytest.importorskip("botocore.eventstream", reason="botocore is not installed")

header_values = st.one_of(st.text(max_size=30), st.binary(max_size=30), st.booleans(), st.integers(-(2**31), 2**31 - 1))
headers = st.lists(st.tuples(st.text(min_size=1, max_size=20).filter(lambda n: len(n.encode()) < 256), header_values), max_size=5)


@settings(max_examples=200, deadline=None)
@given(headers, st.binary(max_size=300), st.integers(1, 50))
def test_round_trip_split_anywhere(hs, payload, step):
    wire = encode_message(hs, payload) * 2
    got, buf = [], b""
    for i in range(0, len(wire), step):
        messages, buf = decode_messages(buf + wire[i : i + step])
        got += messages
    assert buf == b"" and len(got) == 2
    assert all(m.payload == payload and m.headers == hs for m in got)


unique_headers = headers.map(lambda hs: list(dict(hs).items()))  # botocore refuses repeated names


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
