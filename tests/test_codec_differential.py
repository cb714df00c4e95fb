"""The native JSON codec (lambdaric._codec, native/lr_json.c) against simplejson with lambdaric's
settings: identical bytes, identical objects and types, identical errors and messages.

The codec handles the exact common types and answers NOT_MINE for anything else, and marshal.py
then hands the whole value to simplejson. So two things are checked: whatever marshal returns is
simplejson's answer (hand corpus of every edge and hypothesis documents, with subclasses,
Decimals, odd keys, lone surrogates), and the codec really does the common cases itself (it does
not answer NOT_MINE for them) with the same bytes and objects. Also compared with awslambdaric's
marshaller in its UTF-8 mode (AWS_EXECUTION_ENV=AWS_Lambda_python3.13).
"""
import collections
import decimal
import enum
import math
import os
import sys

import pytest

from peers import peer_module
import simplejson

from lambdaric import marshal
from lambdaric.errors import FaultException

_codec = pytest.importorskip("lambdaric._codec", reason="the native codec is not built here")
NOT_MINE = _codec.NOT_MINE

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

REF_UTF8 = simplejson.JSONEncoder(use_decimal=False, allow_nan=True, ensure_ascii=False, default=marshal._default)
REF_ASCII = simplejson.JSONEncoder(use_decimal=False, allow_nan=True, default=marshal._default)


def _old_to_response(value):
    # (one frame, as marshal.to_response: at the recursion limit's edge both have the same stack)
    return REF_UTF8.encode(value).encode("utf-8", "surrogatepass")


def _old_parse_event(body):
    return simplejson.loads(body)


def reference_body(value):
    """What lambdaric wrote before the codec: simplejson's text as UTF-8 (surrogatepass)."""
    try:
        return _old_to_response(value)
    except Exception as exc:
        return ("error", "Runtime.MarshalError", "Unable to marshal response: %s" % exc)


def our_body(value):
    try:
        return marshal.to_response(value)[0]
    except FaultException as exc:
        return ("error", exc.error_type, exc.message)


def outcome(fn, *args):
    try:
        return ("ok", fn(*args))
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))


def reference_event(body):
    try:
        return ("ok", _old_parse_event(body))
    except Exception as exc:
        return ("error", "Runtime.UnmarshalError", "Unable to unmarshal input: %s" % exc)


def our_event(body):
    try:
        return ("ok", marshal.parse_event(body, "application/json"))
    except FaultException as exc:
        return ("error", exc.error_type, exc.message)


def same(a, b):
    """Equal with the same types all the way down (floats by repr: NaN, -0.0), and dict key order.
    (Iterative: the values may be nested deeper than the recursion limit.)"""
    stack = [(a, b)]
    while stack:
        a, b = stack.pop()
        if type(a) is not type(b):
            return False
        if isinstance(a, float):
            if repr(a) != repr(b):
                return False
        elif isinstance(a, dict):
            if list(a) != list(b):
                return False
            stack.extend(zip(a, b))
            stack.extend((a[k], b[k]) for k in a)
        elif isinstance(a, (list, tuple)):
            if len(a) != len(b):
                return False
            stack.extend(zip(a, b))
        elif a != b:
            return False
    return True


def same_outcome(a, b):
    return a[0] == b[0] and (same(a[1], b[1]) if a[0] == "ok" else a == b)


# ----------------------------------------------------------------------------------- corpus

Point = collections.namedtuple("Point", "x y")


class Color(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    HIGH = 3


class MyStr(str):
    pass


class MyInt(int):
    pass


class MyFloat(float):
    def __repr__(self):
        return "MyFloat!"


class MyList(list):
    pass


class MyDict(dict):
    pass


class MyTuple(tuple):
    pass


ALL_LOW = "".join(chr(i) for i in range(0x100))
circular_list = []
circular_list.append(circular_list)
circular_dict = {}
circular_dict["self"] = circular_dict


def nested(depth, leaf=1, dicts=False):
    value = leaf
    for _ in range(depth):
        value = {"k": value} if dicts else [value]
    return value


SHALLOW = [
    None, True, False, 0, 1, -1, 2**63 - 1, -2**63, 2**63, -2**63 - 1, 2**64, 10**100, -10**200, 10**4299, 10**4300,
    0.0, -0.0, 1.5, 0.1 + 0.2, 1e16, 1e-7, 1e22, 5e-324, 1.7976931348623157e308, 123456789012345678.0,
    float("nan"), float("inf"), float("-inf"), [float("nan"), -0.0],
    "", "a", ALL_LOW, "\u2028\u2029\ufeff\u007f", "caf\u00e9", "\U0001f600", "\x00", '"\\/', "\ud800", "a\udfffb",
    "\ud83d\ude00", ["ok", "\udc00"], {"\ud800": 1},
    [], {}, (), [[]], [{}], {"a": []}, {"a": {}}, (1, 2), ((1,), [2]), [1, "2", 3.0, None, True, False],
    {"b": 1, "a": 2, "c": {"z": [1, {"y": None}]}}, {"": ""}, {"k\n\"": "v\t"},
    decimal.Decimal("1.10"), decimal.Decimal("NaN"), decimal.Decimal("-NaN"), decimal.Decimal("sNaN"),
    decimal.Decimal("-0"), decimal.Decimal("Infinity"), decimal.Decimal("-Infinity"), decimal.Decimal("1E+2"),
    {"price": decimal.Decimal("9.99"), "n": [decimal.Decimal("0.000")]},
    {True: 1, False: 2, None: 3, 1: 4, 1.5: 5, -0.0: 6, float("nan"): 7, float("inf"): 8, 10**30: 9},
    {"a": 1, 2: "b"}, {(1, 2): 3}, {decimal.Decimal("1.5"): 1}, {MyStr("k"): 1}, {b"k": 1}, {Color.RED: 1},
    Point(1, 2), [Point("a", [1])], {"p": Point(None, Point(1, 2))}, MyTuple((1, 2)),
    MyStr("s"), MyInt(5), MyFloat(1.5), MyList([1, 2]), MyDict(a=1), collections.OrderedDict(b=1, a=2),
    collections.defaultdict(list, a=[1]), Level.HIGH, [Level.HIGH], Color.RED, {1, 2}, frozenset([1]), object(),
    b"bytes inside a list".split(), [bytearray(b"x")], complex(1, 2), range(3), iter([1]),
    simplejson.RawJSON('{"raw": true}'), [simplejson.RawJSON("1")],
    circular_list, circular_dict, [circular_list], nested(50), nested(50, dicts=True), nested(300),
]
DEEP = [nested(990), nested(10000), nested(10000, dicts=True), nested(100000)]
ENCODE_CORPUS = SHALLOW + DEEP


@pytest.mark.parametrize("value", ENCODE_CORPUS, ids=range(len(ENCODE_CORPUS)))
def test_encode_corpus_identical_to_simplejson(value):
    assert our_body(value) == reference_body(value)
    assert outcome(marshal.dumps, value) == outcome(REF_UTF8.encode, value)
    assert outcome(marshal.dumps_ascii, value) == outcome(REF_ASCII.encode, value)


COMMON = [
    None, True, False, 0, -1, 2**63, -10**100, 0.0, -0.0, 1e16, float("nan"), float("-inf"), 5e-324, "", ALL_LOW,
    "\u2028\U0001f600", [], {}, (), (1, [2, (3,)]), {"a": [1, 2.5, None], "b": {"c": "d"}}, nested(300),
    nested(300, dicts=True),
]


@pytest.mark.parametrize("value", COMMON, ids=range(len(COMMON)))
def test_codec_does_the_common_cases_itself(value):
    body = _codec.encode(value)
    assert body is not NOT_MINE
    assert body == reference_body(value)
    assert _codec.encode_str(value) == REF_UTF8.encode(value)
    assert _codec.encode_ascii(value) == REF_ASCII.encode(value)


@pytest.mark.parametrize("value", [
    Point(1, 2), MyStr("s"), MyInt(1), MyFloat(1.0), MyList(), MyDict(), MyTuple(), Level.HIGH, decimal.Decimal(1),
    {1: 2}, {"a": {MyStr("b"): 1}}, "\ud800", ["x", "\udfff"], set(), b"", circular_list, nested(100000),
])
def test_codec_leaves_the_rest_to_simplejson(value):
    """Anything but the exact common types: NOT_MINE, never a guess."""
    assert _codec.encode(value) is NOT_MINE
    assert _codec.encode_str(value) is NOT_MINE
    assert _codec.encode_ascii(value) is NOT_MINE


def test_recursion_limit_is_respected():
    """With a low recursion limit the codec gives up before simplejson would fail, so marshal's
    answer is simplejson's (value or RecursionError message) at every depth."""
    old = sys.getrecursionlimit()
    results = []
    try:
        sys.setrecursionlimit(120)
        for depth in range(60, 130, 3):
            value = nested(depth)
            text = b"[" * depth + b"]" * depth
            results.append((depth, our_body(value), reference_body(value), our_event(text), reference_event(text)))
    finally:
        sys.setrecursionlimit(old)
    if sys.version_info < (3, 12):  # (from 3.12 C code has its own limit, which setrecursionlimit leaves)
        assert any(r[2][0] == "error" for r in results) and any(r[2][0] != "error" for r in results)
    for depth, ours, ref, ours_ev, ref_ev in results:
        assert ours == ref, depth
        assert same_outcome(ours_ev, ref_ev), depth


DECODE_CORPUS = [
    b"", b" ", b"null", b"true", b"false", b"nul", b"tru", b"0", b"-0", b"-", b"01", b"1.", b".5", b"1e", b"1e+",
    b"1E5", b"1e-5", b"-0.0", b"1.0e+2", b"1e400", b"-1e400", b"1e-400", b"123456789012345678", b"1234567890123456789",
    b"-9223372036854775808", b"9223372036854775808", b"9" * 4300, b"9" * 4301, b"0." + b"1" * 5000, b"2." + b"5" * 30,
    b"NaN", b"Infinity", b"-Infinity", b"[NaN]", b'"a"', b'"', b'"\\"', b'"\\u12"', b'"\\u00e9"', b'"\\u00E9"',
    b'"\\ud800"', b'"\\udc00"', b'"\\ud83d\\ude00"', b'"\\ud83d\\u0041"', b'"\\ud83dx"', b'"\\ud83d\\"', b'"\\x"',
    b'"\\/\\b\\f\\n\\r\\t\\"\\\\"', b'"\x00"', b'"\t"', b'"\x1f"', b'"\x7f"', b'"\xc3\xa9"', b'"\xff"', b'"\xed\xa0\x80"',
    b'"\xf0\x9f\x98\x80"', b'"\xe2\x80\xa8"', b"\xef\xbb\xbf[1]", b"\xef\xbb\xbf", b"[1]\xef\xbb\xbf", b"\xff",
    b"[]", b"[ ]", b"[1,]", b"[,1]", b"[1 2]", b"[1,,2]", b"[", b"]", b"{}", b"{ }", b'{"a":1,}', b'{"a"}', b'{"a":}',
    b"{1:2}", b'{"a":1 "b":2}', b'{"a":1,"a":2,"b":3,"a":4}', b" \t\r\n[1]\n\t ", b"[1]\x0c", b"\x0c[1]", b"[1] x",
    b"[1]]", b"{}{}", b'{"a":[{"b":[1,{"c":null}]}]}', b'[true,false,null,"x",1,-2.5e-3,{},[]]',
    b'{"k\\u00e9y":1,"k\\u00e9y":2}', b'{"\\ud800":1}', "\u00e9".encode("latin-1"), b"[1, 2]\x00",
    b"[" * 100 + b"]" * 100, b"[" * 2500 + b"]" * 2500, b"[" * 100000 + b"]" * 100000, b"[" * 100000,
    b'{"a":' * 100000 + b"1" + b"}" * 100000,
]


@pytest.mark.parametrize("body", DECODE_CORPUS, ids=range(len(DECODE_CORPUS)))
def test_decode_corpus_identical_to_simplejson(body):
    ref = reference_event(body)
    assert same_outcome(our_event(body), ref)
    assert same_outcome(our_event(bytearray(body)), ref)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return
    assert same_outcome(outcome(marshal.loads, text), outcome(simplejson.loads, text))
    assert same_outcome(outcome(marshal.loads, body), outcome(simplejson.loads, body))


def test_decoder_does_valid_json_itself():
    text = (b'{"a": [1, -0, 2.5, -1e400, 12345678901234567890123, "x\\u00e9\\ud83d\\ude00\\n", true, false, null],'
            b' "b": {}, "c": [], "a": {"dup": 1}}')
    value = _codec.decode(text)
    assert value is not NOT_MINE and same(value, simplejson.loads(text))
    for bad in (b"NaN", b"[1,]", b"\xef\xbb\xbf1", b'"\\ud800"', b"\xff", b"", b"1 2", b"[" * 100000):
        assert _codec.decode(bad) is NOT_MINE
    assert _codec.decode(1) is NOT_MINE and _codec.decode(memoryview(b"1")) is NOT_MINE


def test_repeated_keys_share_one_str():
    """Batch events repeat the same keys: the decoder makes each key's str once, and keeps it for
    the next events (a table of 1024 keys of up to 48 bytes); longer or escaped keys are made anew."""
    value = _codec.decode(b'[{"eventName": 1}, {"eventName": 2}, {"eventName": 3}]')
    first = next(iter(value[0]))
    assert all(next(iter(record)) is first for record in value)
    assert next(iter(_codec.decode(b'{"eventName": 4}'))) is first
    long_key = b'{"' + b"k" * 49 + b'": 1}'
    assert next(iter(_codec.decode(long_key))) is not next(iter(_codec.decode(long_key)))
    assert next(iter(_codec.decode(b'{"a\\u00e9": 1}'))) == "a\u00e9"


# ----------------------------------------------------------------------------------- hypothesis

text_no_surrogates = st.text(st.characters(blacklist_categories=("Cs",)))
common_scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-2**200, max_value=2**200)
                  | st.floats(allow_nan=True, allow_infinity=True) | text_no_surrogates)
common_values = st.recursive(
    common_scalars,
    lambda children: (st.lists(children, max_size=6) | st.lists(children, max_size=4).map(tuple)
                      | st.dictionaries(text_no_surrogates, children, max_size=6)),
    max_leaves=40,
)
any_scalars = (common_scalars | st.text() | st.decimals(allow_nan=True, allow_infinity=True)
               | st.sampled_from([MyStr("s"), MyInt(3), MyFloat(2.0), Level.HIGH, Color.RED, b"b", {1}]))
any_keys = st.text() | st.integers() | st.booleans() | st.none() | st.floats() | st.decimals(allow_nan=False)
any_values = st.recursive(
    any_scalars,
    lambda children: (st.lists(children, max_size=5) | st.lists(children, max_size=5).map(tuple)
                      | st.lists(children, max_size=3).map(MyList) | st.dictionaries(any_keys, children, max_size=5)
                      | st.dictionaries(st.text(), children, max_size=3).map(MyDict)
                      | st.tuples(children, children).map(lambda t: Point(*t))),
    max_leaves=30,
)


@settings(max_examples=600, deadline=None)
@given(common_values)
def test_common_documents_encoded_by_the_codec(value):
    body = _codec.encode(value)
    assert body is not NOT_MINE
    assert body == reference_body(value)
    assert _codec.encode_ascii(value) == REF_ASCII.encode(value)


@settings(max_examples=600, deadline=None)
@given(any_values)
def test_any_document_identical(value):
    hypothesis.assume(not isinstance(value, bytes))  # (bytes results go out as they are, not as JSON)
    assert our_body(value) == reference_body(value)
    assert outcome(marshal.dumps_ascii, value) == outcome(REF_ASCII.encode, value)


@settings(max_examples=600, deadline=None)
@given(common_values, st.sampled_from([(", ", ": "), (",", ":"), (" , ", " : ")]), st.booleans())
def test_common_documents_decoded_by_the_codec(value, separators, ascii):
    text = simplejson.dumps(value, separators=separators, ensure_ascii=ascii, allow_nan=False, indent=None) \
        if not _has_nonfinite(value) else "[]"
    body = text.encode("utf-8")
    decoded = _codec.decode(body)
    assert decoded is not NOT_MINE
    assert same(decoded, simplejson.loads(body))
    assert same(_codec.decode(text), simplejson.loads(text))


def _has_nonfinite(value):
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_nonfinite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_nonfinite(v) for v in value)
    return False


json_bodies = st.one_of(
    any_values.map(lambda v: REF_UTF8.encode(v).encode("utf-8", "surrogatepass") if reference_body(v)[0] != "error"
                   else b"null"),
    common_values.map(lambda v: simplejson.dumps(v, allow_nan=True).encode()),
    st.binary(max_size=60),
    st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.lists(st.sampled_from([b"{", b"}", b"[", b"]", b",", b":", b'"a"', b"1", b"-", b"0", b".", b"e", b"1.5", b" ",
                              b"\\", b'"', b"\\u", b"d800", b"null", b"tru", b"NaN", b"\xc3", b"\xa9", b"\x00"]),
             max_size=30).map(b"".join),
)


@settings(max_examples=1500, deadline=None)
@given(json_bodies, st.data())
def test_any_event_body_identical(body, data):
    """Whole, cut, or mutated: the same value (types included) or the same error as simplejson."""
    variants = [body]
    if body:
        cut = data.draw(st.integers(0, len(body)))
        pos = data.draw(st.integers(0, len(body) - 1))
        variants += [body[:cut], body[:pos] + bytes([data.draw(st.integers(0, 255))]) + body[pos + 1:]]
    for b in variants:
        ref = reference_event(b)
        assert same_outcome(our_event(b), ref), b
        assert same_outcome(our_event(bytearray(b)), ref), b


# ----------------------------------------------------------------------------------- awslambdaric

def _official(value):
    """awslambdaric's to_json in its UTF-8 mode (it reads AWS_EXECUTION_ENV per call)."""
    module = peer_module("awslambdaric.lambda_runtime_marshaller", "pip install awslambdaric")
    old = os.environ.get("AWS_EXECUTION_ENV")
    os.environ["AWS_EXECUTION_ENV"] = "AWS_Lambda_python3.13"
    try:
        return module.to_json(value).encode("utf-8", "surrogatepass")
    except Exception as exc:
        return ("error", "Runtime.MarshalError", "Unable to marshal response: %s" % exc)
    finally:
        if old is None:
            os.environ.pop("AWS_EXECUTION_ENV", None)
        else:
            os.environ["AWS_EXECUTION_ENV"] = old


@pytest.mark.parametrize("value", SHALLOW, ids=range(len(SHALLOW)))
def test_corpus_identical_to_awslambdaric_utf8(value):
    assert our_body(value) == _official(value)


@settings(max_examples=400, deadline=None)
@given(any_values)
def test_documents_identical_to_awslambdaric_utf8(value):
    hypothesis.assume(not isinstance(value, bytes))
    assert our_body(value) == _official(value)


def test_every_special_character_at_every_word_position():
    """The scans read eight bytes at a time: each character that needs care (escapes, 0x7f, non-ASCII
    of every UTF-8 length) at each offset of the first words, in strings of every length around them."""
    specials = ['"', "\\", "\n", "\x00", "\x1f", " ", "\x7f", "\x80", "\u00e9", "\u2028", "\uffff", "\U0001f600", "~"]
    for c in specials:
        for before in range(18):
            for after in (0, 1, 7, 8, 9):
                s = "a" * before + c + "b" * after
                assert _codec.encode(s) == REF_UTF8.encode(s).encode("utf-8")
                assert _codec.encode_ascii(s) == REF_ASCII.encode(s)
                text = REF_UTF8.encode([s, {s: s}]).encode("utf-8")
                assert same(_codec.decode(text), [s, {s: s}])
                assert same(_codec.decode(REF_ASCII.encode([s]).encode()), [s])
