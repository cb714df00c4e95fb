"""Differential property test: lambdaric's marshaller against the official client's.

The official marshaller escapes non-ASCII unless it believes it runs on a managed Python
3.12+ runtime; with ``AWS_EXECUTION_ENV`` saying so, its output must equal ours byte for
byte. Without it, ours must decode to the same JSON (only the escaping differs).
"""
import collections
import decimal
import importlib
import json
import os

import pytest

from peers import peer_module

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lambdaric import marshal  # noqa: E402
from lambdaric.errors import FaultException  # noqa: E402


class _Official:
    """awslambdaric's to_json (a black-box oracle), called with ``AWS_EXECUTION_ENV`` set
    as given, since it picks its encoder from that variable."""

    def __init__(self, execution_env):
        peer_module("awslambdaric", "pip install awslambdaric")
        self.module = importlib.import_module("awslambdaric.lambda_runtime_marshaller")
        self.execution_env = execution_env

    def __call__(self, value):
        old = os.environ.get("AWS_EXECUTION_ENV")
        try:
            if self.execution_env is None:
                os.environ.pop("AWS_EXECUTION_ENV", None)
            else:
                os.environ["AWS_EXECUTION_ENV"] = self.execution_env
            try:
                return self.module.to_json(value).encode("utf-8", "surrogatepass")
            except Exception as exc:  # it reports these as Runtime.MarshalError
                return ("error", "Runtime.MarshalError", "Unable to marshal response: %s" % exc)
        finally:
            if old is None:
                os.environ.pop("AWS_EXECUTION_ENV", None)
            else:
                os.environ["AWS_EXECUTION_ENV"] = old


Point = collections.namedtuple("Point", "x y")

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.decimals(allow_nan=True, allow_infinity=True)
)
keys = st.text() | st.integers() | st.booleans() | st.none() | st.floats(allow_nan=False)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.lists(children, max_size=5).map(tuple)
        | st.dictionaries(keys, children, max_size=5)
        | st.tuples(children, children).map(lambda t: Point(*t))
    ),
    max_leaves=30,
)


def _ours(value):
    try:
        return marshal.to_response(value)[0]
    except FaultException as exc:
        return ("error", exc.error_type, exc.message)


@settings(max_examples=400, deadline=None)
@given(values)
def test_byte_identical_to_official_utf8_mode(value):
    assert _ours(value) == _Official("AWS_Lambda_python3.12")(value)


@settings(max_examples=200, deadline=None)
@given(values)
def test_same_json_as_official_ascii_mode(value):
    theirs = _Official(None)(value)
    ours = _ours(value)
    if isinstance(theirs, tuple):
        assert ours == theirs
    else:
        # the only difference: they escape what we write as UTF-8
        assert _escape_non_ascii(ours.decode("utf-8", "surrogatepass")).encode("ascii") == theirs


def _escape_non_ascii(text):
    out = []
    for ch in text:
        code = ord(ch)
        if code < 127:
            out.append(ch)
        elif code > 0xFFFF:
            code -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 | (code >> 10), 0xDC00 | (code & 0x3FF)))
        else:
            out.append("\\u%04x" % code)
    return "".join(out)


@pytest.mark.parametrize(
    "value",
    [{1, 2}, object(), decimal.Decimal("sNaN"), {"a": float("nan")}, {(1, 2): 3}, [b"bytes inside"]],
)
def test_edge_values_match(value):
    assert _ours(value) == _Official("AWS_Lambda_python3.12")(value)


json_texts = st.one_of(
    values.map(lambda v: marshal.dumps(v).encode("utf-8", "surrogatepass")),
    st.binary(max_size=40),
    st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b"NaN", b"[Infinity]", b'{"a": 1,}', b"\xff", b'"\\ud800"', b"1e400", b" [1] "]),
)


@settings(max_examples=400, deadline=None)
@given(json_texts)
def test_event_parsing_matches_official(body):
    """Events are parsed as the official client parses them: same value or same error."""
    peer_module("awslambdaric", "pip install awslambdaric")
    from awslambdaric.lambda_runtime_marshaller import LambdaMarshaller

    def outcome(fn):
        try:
            return ("ok", marshal.dumps(fn()))
        except Exception as exc:
            return ("error", getattr(exc, "msg", None) or getattr(exc, "message", None) or str(exc))

    ours = outcome(lambda: marshal.parse_event(bytearray(body), "application/json"))
    theirs = outcome(lambda: LambdaMarshaller().unmarshal_request(body, "application/json"))
    assert ours == theirs
