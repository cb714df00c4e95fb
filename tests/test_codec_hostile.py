"""The native JSON codec under hostile input and long use: malformed, truncated at every byte,
100,000 levels deep, 6 MB: a clean value or error, never a crash; no reference leak or memory
growth over 100,000 calls; and a real ``python -m lambdaric`` uses it (``--version``, an event
round trip, simplejson/decimal/re left unimported)."""
import gc
import json
import os
import subprocess
import sys

import pytest
import simplejson

from lambdaric import events, marshal
from lambdaric.errors import FaultException
from runtime_api import Event

_codec = pytest.importorskip("lambdaric._codec", reason="the native codec is not built here")
NOT_MINE = _codec.NOT_MINE
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def outcome(body):
    try:
        return ("ok", marshal.parse_event(body, "application/json"))
    except FaultException as exc:
        return ("error", exc.message)


def reference(body):
    try:
        return ("ok", simplejson.loads(body))
    except Exception as exc:
        return ("error", "Unable to unmarshal input: %s" % exc)


@pytest.mark.parametrize("name", ["apigw-v1", "dynamodb-stream", "sqs"])
def test_truncated_at_every_byte(name):
    body = events.text(name).encode("utf-8")
    for cut in range(len(body) + 1):
        assert outcome(body[:cut]) == reference(body[:cut]), cut


def test_every_single_byte_change_of_a_small_document():
    body = b'{"a": [1, -2.5e3, "x\\u00e9\\n", true, null], "b": {"c": false}}'
    for pos in range(len(body)):
        for byte in (0x00, 0x20, 0x22, 0x2c, 0x5c, 0x5d, 0x7d, 0x80, 0xff, ord("e"), ord("0")):
            mutated = body[:pos] + bytes([byte]) + body[pos + 1:]
            assert outcome(mutated) == reference(mutated), (pos, byte)


@pytest.mark.parametrize("body", [
    b"[" * 100000, b"]" * 100000, b"[" * 100000 + b"]" * 100000, b'{"a":' * 100000, b'{"a":' * 100000 + b"1" + b"}" * 100000,
    b'[{"a":' * 50000 + b"1" + b"}]" * 50000, b'"' + b"\\" * 100001, b'"' + b"\\u" * 50000, b"-" * 100000, b"1" * 100000,
])
def test_deep_and_degenerate_inputs_give_a_clean_error(body):
    ours = outcome(body)
    assert ours[0] == "error" or ours == reference(body)
    assert _codec.decode(body) is NOT_MINE or body.startswith(b"1")


def test_deep_values_give_a_clean_error():
    value = 1
    for _ in range(100000):
        value = [value]
    with pytest.raises(FaultException) as info:
        marshal.to_response(value)
    assert info.value.error_type == "Runtime.MarshalError" and "recursion" in info.value.message
    assert _codec.encode(value) is NOT_MINE


def test_six_megabytes():
    record = {"id": "x" * 90, "n": 12345, "f": 0.5, "tags": ["a", "é", "\U0001f600"], "nested": {"k": [None, True]}}
    doc = {"Records": [dict(record, i=i) for i in range(33000)]}
    body = marshal.to_response(doc)[0]
    assert len(body) > 6 * 1024 * 1024
    assert body == simplejson.dumps(doc, ensure_ascii=False).encode()
    assert marshal.parse_event(body, "application/json") == doc
    assert marshal.parse_event(bytearray(body), "application/json") == doc
    for bad in (body[:-1], body[:len(body) // 2], body + b"x", b"[" * (6 * 1024 * 1024), b'"' + b"a" * (6 << 20),
                b"\xff" * (6 << 20)):
        assert outcome(bad) == reference(bad)


def _rss_kb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _under_asan():
    with open("/proc/self/maps") as f:
        return "asan" in f.read()


def test_no_growth_over_100000_calls():
    """Encode and decode 100,000 times (common types, escapes, big ints, floats, cached keys, and
    the NOT_MINE paths): the RSS stays flat and the objects' reference counts do not move."""
    doc = {"key": ["v\u00e9\n", 1, 2**70, -0.5, None, True, {"key": (1, "x")}], "other": {}}
    body = json.dumps(doc).encode()
    odd = [b"[1,]", b'"\\ud800"', b"NaN", b"\xef\xbb\xbf1"]
    shared_key = "key"
    before_key = sys.getrefcount(shared_key)
    before_doc = [sys.getrefcount(x) for x in (doc, doc["key"], doc["key"][0], doc["key"][2])]
    for _ in range(2000):  # warm up allocators and caches
        _codec.decode(_codec.encode(doc))
    gc.collect()
    start = _rss_kb()
    for i in range(100000):
        assert _codec.encode(doc) is not NOT_MINE
        _codec.encode_str(doc)
        _codec.encode_ascii(doc)
        _codec.encode({1: 2})
        _codec.decode(body)
        _codec.decode(odd[i & 3])
    gc.collect()
    grown = _rss_kb() - start
    if not _under_asan():  # (ASan keeps freed memory in quarantine: its RSS grows by design)
        assert grown < 2048, "RSS grew by %d KB over 100,000 calls" % grown
    assert sys.getrefcount(shared_key) == before_key
    assert [sys.getrefcount(x) for x in (doc, doc["key"], doc["key"][0], doc["key"][2])] == before_doc
    value = _codec.decode(body)
    # owned by the result only (plus getrefcount's argument)
    counts = [sys.getrefcount(value), sys.getrefcount(value["key"])]
    assert counts == [2, 2]
    key = next(iter(value))  # one str for both "key"s (the key cache), held by the two dicts and the cache
    inner = next(iter(value["key"][6]))
    same, count = key is inner, sys.getrefcount(key)
    assert same and count == 2 + 1 + 3  # (key, inner, the argument)


@pytest.mark.skipif(not hasattr(sys, "gettotalrefcount"), reason="sys.gettotalrefcount needs a debug build of Python")
def test_total_refcount_flat():  # pragma: no cover (debug builds only)
    doc = {"a": [1, 2.5, "x", None, {"b": (True,)}]}
    body = json.dumps(doc).encode()
    for _ in range(100):
        _codec.decode(_codec.encode(doc))
    before = sys.gettotalrefcount()
    for _ in range(100000):
        _codec.decode(_codec.encode(doc))
        _codec.decode(b"[1,]")
    assert sys.gettotalrefcount() - before < 100


# ----------------------------------------------------------------------------- a real runtime

def test_version_names_the_codec():
    out = subprocess.run([sys.executable, "-m", "lambdaric", "--version"], capture_output=True, cwd=ROOT, timeout=30)
    assert out.returncode == 0 and out.stdout.endswith(b", codec: native\n"), out


def test_runtime_round_trip_uses_the_codec_and_leaves_simplejson_out(run_runtime):
    """An event through the scripted Runtime API: the handler sees the parsed event, the answer is
    the exact bytes, and neither simplejson nor decimal was imported by the runtime."""
    files = {"app.py": (
        "import sys\n"
        "def handler(event, context):\n"
        "    return {'event': event, 'codec': sys.modules['lambdaric.marshal'].describe(),\n"
        "            'loaded': sorted(m for m in ('simplejson', 'decimal') if m in sys.modules)}\n"
    )}
    body = '{"k": [1, 2.5, "caf\u00e9", null, true, {"n": -0}], "big": 123456789012345678901234567890}'.encode()
    result = run_runtime(files, "app.handler", [Event(body=body, request_id="req-c")])
    post = result.post("response")
    assert post.body == ('{"event": {"k": [1, 2.5, "caf\u00e9", null, true, {"n": 0}], "big": 123456789012345678901234567890},'
                         ' "codec": "native", "loaded": []}').encode(), result


def test_runtime_modules_do_not_import_simplejson_decimal_or_re():
    """Importing the runtime's modules (both transports) loads none of simplejson, decimal, re
    (run without site, so that no import hook of an editable install loads re first)."""
    paths = [ROOT] + [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
    code = ("import sys; import lambdaric.bootstrap, lambdaric.marshal, lambdaric.transport.python\n"
            "try:\n    import lambdaric.transport.native\nexcept ImportError:\n    pass\n"
            "print(sorted(m for m in ('simplejson', 'decimal', 're') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=os.pathsep.join(paths)))
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_runtime_falls_back_for_decimals_and_invalid_events(run_runtime):
    files = {"app.py": (
        "import decimal\n"
        "def handler(event, context):\n"
        "    return {'d': decimal.Decimal('1.10'), 'e': event}\n"
    )}
    result = run_runtime(files, "app.handler", [Event(body=b'{"a": 1}', request_id="r1"),
                                                 Event(body=b'{"a": NaN}', request_id="r2")])
    assert result.post("response").body == b'{"d": 1.10, "e": {"a": 1}}', result
    error = json.loads(result.post("error").body)
    assert error["errorType"] == "Runtime.UnmarshalError"
    assert error["errorMessage"] == "Unable to unmarshal input: Expecting value: line 1 column 7 (char 6)"


def test_collector_paused_only_during_big_decodes():
    """The decoder pauses the cyclic collector while it builds a big document, and leaves it as it
    found it: enabled (after a value or NOT_MINE), or disabled when the caller had disabled it."""
    big = json.dumps([{"k": [i]} for i in range(5000)]).encode()
    bad = big[:-1]
    try:
        for data in (big, bad, bytearray(big), bytearray(bad), b"[1]", bytearray(b"[1]")):
            gc.enable()
            _codec.decode(data)
            assert gc.isenabled(), data[:20]
            gc.disable()
            _codec.decode(data)
            assert not gc.isenabled(), data[:20]
    finally:
        gc.enable()
