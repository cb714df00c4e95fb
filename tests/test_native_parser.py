"""The native response-head parser (native/lr_http.c), built with cffi for the test and
checked against the pure-Python parser of the protocol core; and a short libFuzzer run of
both native harnesses (the parser, and the connection's receive path: native/fuzz.sh)."""
import os
import sys
import tempfile

import pytest

cffi = pytest.importorskip("cffi", reason="cffi is not installed")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from lambdaric.answers import parse_response_head  # noqa: E402
from lambdaric.protocol import ProtocolError  # noqa: E402

NATIVE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "native")
KNOWN = [
    "lambda-runtime-aws-request-id", "lambda-runtime-deadline-ms", "lambda-runtime-invoked-function-arn",
    "lambda-runtime-trace-id", "lambda-runtime-client-context", "lambda-runtime-cognito-identity",
    "lambda-runtime-aws-tenant-id", "lambda-runtime-invocation-id", "content-type", "content-length",
    "transfer-encoding", "connection",
]


@pytest.fixture(scope="module")
def native():
    sys.path.insert(0, NATIVE)
    try:
        import build_native
    finally:
        sys.path.remove(NATIVE)
    tmp = tempfile.mkdtemp(prefix="lambdaric-native-")
    os.environ["LAMBDARIC_NATIVE_WERROR"] = "1"
    try:
        path = build_native.build(tmp)
    except Exception as exc:  # no compiler: the pure-Python transport is what runs then
        pytest.skip("the native module cannot be built here: %s" % exc)
    finally:
        os.environ.pop("LAMBDARIC_NATIVE_WERROR", None)
    sys.path.insert(0, tmp)
    import _lr_native_test

    sys.path.remove(tmp)
    return _lr_native_test


def parse(native, data):
    head = native.ffi.new("lr_head *")
    n = native.lib.lr_parse_head(data, len(data), head)
    fields = {}
    if n > 0:
        for i, name in enumerate(KNOWN):
            span = head.headers[i]
            if span.present:
                fields[name] = data[span.off : span.off + span.len].decode("latin-1")
    return n, head.status, fields


GOOD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: 8476a536\r\n"
    b"Lambda-Runtime-Deadline-Ms: 1542409706888\r\nX-Other:  spaced value \r\nContent-Length: 7\r\n\r\n{\"a\":1}"
)


def test_known_head(native):
    n, status, fields = parse(native, GOOD)
    assert n == GOOD.index(b"\r\n\r\n") + 4 and status == 200
    assert fields == {
        "content-type": "application/json",
        "lambda-runtime-aws-request-id": "8476a536",
        "lambda-runtime-deadline-ms": "1542409706888",
        "content-length": "7",
    }
    head = native.ffi.new("lr_head *")
    native.lib.lr_parse_head(GOOD, len(GOOD), head)
    value = native.ffi.new("long long *")
    assert native.lib.lr_content_length(GOOD, head, value) == 1 and value[0] == 7


def test_every_prefix_is_incomplete(native):
    end = GOOD.index(b"\r\n\r\n") + 4
    for cut in range(end):
        assert parse(native, GOOD[:cut])[0] == 0, cut


@pytest.mark.parametrize(
    "data, error",
    [
        (b"garbage\r\n\r\n", 1),
        (b"HTTP/1.1 2x0 OK\r\n\r\n", 1),
        (b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n", 2),
        (b"HTTP/1.1 200 OK\r\nbad name: x\r\n\r\n", 2),
        (b"HTTP/1.1 200 OK\r\nX: a\x00b\r\n\r\n", 3),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\ncontent-length: 2\r\n\r\n", 4),
        (b"HTTP/1.1 200 OK\r\nX: " + b"a" * 70000, 5),
    ],
)
def test_malformed_heads_are_named(native, data, error):
    assert parse(native, data)[0] == -error


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.tuples(st.integers(0, len(GOOD)), st.binary(max_size=8)).map(lambda t: GOOD[: t[0]] + t[1] + GOOD[t[0] :])))
def test_never_crashes_and_agrees_with_python(native, data):
    n, status, fields = parse(native, data)
    assert n <= len(data)
    if n > 0:
        head_text = data[:n].rstrip(b"\r\n")
        try:
            py = parse_response_head(head_text)
        except ProtocolError:
            return  # the Python parser is stricter on some inputs (e.g. versions); never looser
        assert py.status == status
        for name, value in fields.items():
            assert py.headers.get(name) == value


def test_libfuzzer_bounded_run(tmp_path):
    """Coverage-guided fuzzing under ASan and UBSan for a few seconds (native/fuzz.sh; CI runs it
    for 60 s): fuzz_lr_http (the parser) and fuzz_lr_conn (lr_conn.c over a socketpair, driven as
    the native transport drives it, with its invariants)."""
    import shutil
    import subprocess

    if shutil.which("clang") is None:
        pytest.skip("clang is not installed (apt-get install clang): no libFuzzer run")
    out = subprocess.run(
        ["bash", os.path.join(NATIVE, "fuzz.sh"), "6"],
        env=dict(os.environ, LAMBDARIC_FUZZ_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "ERROR" not in out.stdout and "fuzz.sh: no crash" in out.stdout, out.stdout
    for name in ("lr_http", "lr_conn"):
        assert "=== fuzz_%s: Done " % name in out.stdout, out.stdout
