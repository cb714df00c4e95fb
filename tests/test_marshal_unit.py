"""Marshalling rules (docs/runtime-api.md section 4) as pure functions."""
import decimal

import pytest

from lambdaric import marshal
from lambdaric.errors import FaultException


@pytest.mark.parametrize(
    "value, expected",
    [
        ({"a": 1, "b": [1, None, True]}, b'{"a": 1, "b": [1, null, true]}'),
        (None, b"null"),
        ("caf\u00e9", b'"caf\xc3\xa9"'),
        (decimal.Decimal("1.10"), b"1.10"),
        (decimal.Decimal("NaN"), b"NaN"),
        (decimal.Decimal("-0"), b"-0"),
        (float("inf"), b"Infinity"),
        ((1, 2), b"[1, 2]"),
    ],
)
def test_to_response_json(value, expected):
    assert marshal.to_response(value) == (expected, "application/json")


def test_bytes_pass_through():
    assert marshal.to_response(b"\x00raw") == (b"\x00raw", "application/unknown")
    assert marshal.to_response(bytearray(b"ab")) == (b"ab", "application/unknown")


@pytest.mark.parametrize("value, name", [({1, 2}, "set"), (object(), "object")])
def test_unserializable(value, name):
    with pytest.raises(FaultException) as info:
        marshal.to_response(value)
    assert info.value.error_type == "Runtime.MarshalError"
    assert info.value.message == "Unable to marshal response: Object of type %s is not JSON serializable" % name


def test_parse_event():
    assert marshal.parse_event(b'{"a": 1.5}', "application/json; charset=utf-8") == {"a": 1.5}
    assert marshal.parse_event(b"raw", "text/plain") == b"raw"
    assert marshal.parse_event(b"raw", None) == b"raw"
    with pytest.raises(FaultException, match="Expecting value"):  # as the official client: no NaN in events
        marshal.parse_event(b"NaN", "application/json")
    assert marshal.parse_event(bytearray(b'{"a": [1]}'), "application/json") == {"a": [1]}
    with pytest.raises(FaultException) as info:
        marshal.parse_event(b"not json", "application/json")
    assert info.value.error_type == "Runtime.UnmarshalError"
    assert info.value.message == "Unable to unmarshal input: Expecting value: line 1 column 1 (char 0)"
