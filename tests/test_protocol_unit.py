"""Pure logic of the sans-IO protocol core: parsing heads, chunked bodies, request ids."""
import pytest

from lambdaric import protocol
from lambdaric.answers import ChunkedDecoder, parse_response_head
from lambdaric.protocol import ProtocolError, invocation_from_headers


def test_parse_head_lowercases_and_joins_repeats():
    head = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\nx-a: 2\r\n")
    assert head.status == 200 and head.reason == "OK"
    assert head.headers == {"content-length": "2", "x-a": "1,2"}
    assert head.content_length == 2 and head.keep_alive and not head.chunked


def test_parse_head_lf_only_and_connection_close():
    head = parse_response_head(b"HTTP/1.1 202 Accepted\nConnection: close\nContent-Length: 0")
    assert head.status == 202 and not head.keep_alive and head.content_length == 0


@pytest.mark.parametrize(
    "raw, needle",
    [
        (b"garbage", "malformed status line"),
        (b"HTTP/1.1 2000 OK", "malformed status line"),
        (b"HTTP/1.1 200 OK\r\nno colon here", "malformed header line"),
        (b"HTTP/1.1 200 OK\r\nX: a\x00b", "NUL byte"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 12x", "invalid Content-Length"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1", "invalid Content-Length"),
    ],
)
def test_parse_head_rejects_with_clear_errors(raw, needle):
    with pytest.raises(ProtocolError, match=needle):
        parse_response_head(raw)


def test_chunked_decoder_split_anywhere():
    wire = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\n0\r\nTrailer-A: x\r\n\r\nNEXT"
    for cut in range(len(wire) + 1):
        dec = ChunkedDecoder(100)
        rest = dec.feed(wire[:cut])
        if rest is None:
            rest = dec.feed(wire[cut:])
        else:
            rest += wire[cut:]
        assert dec.done and rest == b"NEXT", cut
        assert dec.body() == b"Wikipedia"
        assert dec.trailers == [b"Trailer-A: x"]


def test_chunked_decoder_byte_by_byte():
    wire = b"3\r\nabc\r\n0\r\n\r\n"
    dec = ChunkedDecoder(100)
    results = [dec.feed(wire[i : i + 1]) for i in range(len(wire))]
    assert results[:-1] == [None] * (len(wire) - 1) and results[-1] == b""
    assert dec.body() == b"abc"


def test_chunked_decoder_limit_and_garbage():
    with pytest.raises(ProtocolError, match="exceeds"):
        ChunkedDecoder(3).feed(b"4\r\nWiki\r\n0\r\n\r\n")
    with pytest.raises(ProtocolError, match="malformed chunk size"):
        ChunkedDecoder(3).feed(b"zz\r\n")
    with pytest.raises(ProtocolError, match="missing CRLF"):
        ChunkedDecoder(10).feed(b"1\r\naXX")


@pytest.mark.parametrize("rid", ["", None, "../x", "a/b", "a b", "a\r\nX: y", ".", "..", "x" * 300])
def test_unsafe_request_ids_refused(rid):
    headers = {} if rid is None else {protocol.H_REQUEST_ID: rid}
    with pytest.raises(ProtocolError):
        invocation_from_headers(headers, b"")


def test_invocation_fields_and_bad_deadline():
    inv = invocation_from_headers(
        {
            protocol.H_REQUEST_ID: "8476a536-e9f4-11e8-9739-2dfe598c3fcd",
            protocol.H_DEADLINE: "abc",
            protocol.H_INVOCATION_ID: "inv-1",
            protocol.H_TENANT_ID: "t1",
            protocol.H_CONTENT_TYPE: "application/json",
        },
        b"{}",
    )
    assert inv.request_id == "8476a536-e9f4-11e8-9739-2dfe598c3fcd"
    assert inv.deadline_ms == 0 and "non-numeric" in inv.deadline_problem
    assert inv.invocation_id == "inv-1" and inv.tenant_id == "t1"


def test_invocation_id_with_crlf_refused():
    with pytest.raises(ProtocolError, match="Invocation-Id"):
        invocation_from_headers({protocol.H_REQUEST_ID: "r1", protocol.H_INVOCATION_ID: "a\r\nb"}, b"")


@pytest.mark.parametrize(
    "ct, expected",
    [("application/json", True), ("Application/JSON; charset=utf-8", True), ("text/plain", False), (None, False), ("application/jsonx", False)],
)
def test_json_content_type(ct, expected):
    assert protocol.is_json_content_type(ct) is expected


def test_build_request_bytes():
    raw = protocol.build_request("POST", "/p", "h:1", "ua/1", [("X-A", "b")], b"xyz", "application/json")
    assert raw == (
        b"POST /p HTTP/1.1\r\nHost: h:1\r\nUser-Agent: ua/1\r\nContent-Type: application/json\r\n"
        b"X-A: b\r\nContent-Length: 3\r\n\r\nxyz"
    )


def test_bare_cr_in_a_header_is_refused():
    with pytest.raises(ProtocolError, match="bare CR"):
        parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\r\nX: y")


@pytest.mark.parametrize("raw", [b"HTTP/1.1 200 OK\r\nContent-Length: \xb27", b"HTTP/1.1 \xb200 OK"])
def test_non_ascii_digits_are_a_protocol_error(raw):
    with pytest.raises(ProtocolError):
        parse_response_head(raw)


_RID = "8476a536-e9f4-11e8-9739-2dfe598c3fcd"


@pytest.mark.parametrize(
    "values",
    [
        [_RID, "1542409706888", "arn:aws:lambda:us-east-1:123456789012:function:f", "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700",
         '{"custom": {}}', '{"cognitoIdentityId": "x"}', "tenant-1", "", "application/json"],
        [_RID, "", "", "", "", "", "", "", ""],  # no deadline
        [_RID, " 12", "", "", "", "", "", "", ""],  # int() takes it: the general path
        [_RID, "\u00b2", "", "", "", "", "", "", ""],  # a digit to isdigit(), not to int()
        [_RID, "12x", "", "", "", "", "", "", ""],
        [_RID, "7", "", "", "", "", "", "inv-1", "application/json"],  # Managed Instances
        [_RID, "7", "", "", "", "", "", "bad\tid\x01", ""],
        ["", "7", "", "", "", "", "", "", ""],
        ["-leading-dash", "7", "", "", "", "", "", "", ""],
        ["a/b", "7", "", "", "", "", "", "", ""],
        ["x" * 257, "7", "", "", "", "", "", "", ""],
    ],
)
def test_invocation_from_values_is_invocation_from_headers(values):
    """The native transport's lean constructor gives what the general one gives, errors included."""
    def build(fn, arg):
        try:
            inv = fn(arg, b"{}")
        except ProtocolError as exc:
            return "error", str(exc)
        return {name: getattr(inv, name) for name in protocol.Invocation.__slots__}

    expected = build(invocation_from_headers, dict(zip(protocol.NEXT_VALUES, values)))
    assert build(protocol.invocation_from_values, values) == expected
