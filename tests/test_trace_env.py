"""``_X_AMZN_TRACE_ID`` per invoke (lambdaric.traceenv): what handlers and SDKs see, and no growth.

The X-Ray SDK reads ``os.getenv``, OpenTelemetry ``os.environ``, native code and child
processes the C environment: each must give the current invoke's trace header, through
the wire. And a new trace id per invoke must not grow the process (setenv(3) on glibc
keeps every replaced value: ~140 bytes per invoke); the setenv row is the control that
shows the measurement sees that leak.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from peers import peer_module
from runtime_api import Event

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HANDLER = textwrap.dedent(
    """
    import ctypes, os, subprocess

    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_char_p

    def handler(event, context):
        if event.get("set"):
            os.environ["_X_AMZN_TRACE_ID"] = event["set"]  # a function may write it itself
        c_value = libc.getenv(b"_X_AMZN_TRACE_ID")
        child = subprocess.run(["sh", "-c", 'printf %s "${_X_AMZN_TRACE_ID-unset}"'], capture_output=True).stdout
        return {
            "environ": os.environ.get("_X_AMZN_TRACE_ID"),
            "getenv": os.getenv("_X_AMZN_TRACE_ID"),
            "copy": dict(os.environ).get("_X_AMZN_TRACE_ID"),
            "c": c_value.decode() if c_value is not None else None,
            "child": child.decode(),
        }
    """
)

LONG = "Root=1-6a000000-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1;Lineage=" + "a1b2c3d4:0," * 60


def _trace(value):
    return {"Lambda-Runtime-Trace-Id": value} if value is not None else {}


def test_every_reader_sees_the_current_invokes_trace_id(run_runtime):
    traces = ["Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1", LONG, None,
              "Root=1-5759e988-00000000000000000000000c;Sampled=0", "Root=1-5759e988-00000000000000000000000d", None]
    events = [Event(request_id="r%d" % i, headers=_trace(t), body=b"{}") for i, t in enumerate(traces)]
    # the function writes the variable itself once; the next invoke's value replaces it
    events.insert(4, Event(request_id="own", headers=_trace(traces[3]), body=b'{"set": "Root=1-own"}'))
    expected = traces[:4] + ["Root=1-own"] + traces[4:]
    result = run_runtime({"app.py": HANDLER}, "app.handler", events, expect_posts=len(events))
    seen = [json.loads(p.body) for p in result.posts]
    assert [p.path.split("/")[-2] for p in result.posts] == [e.request_id for e in events], result.describe()
    for got, want in zip(seen, expected):
        assert got == {"environ": want, "getenv": want, "copy": want, "c": want,
                       "child": want if want is not None else "unset"}, result.describe()


XRAY_HANDLER = textwrap.dedent(
    """
    from aws_xray_sdk.core import xray_recorder

    def handler(event, context):
        with xray_recorder.in_subsegment("work") as sub:
            return [sub.trace_id, sub.parent_id, sub.sampled]
    """
)


def test_the_xray_sdk_follows_each_invokes_trace_header(run_runtime):
    """The real X-Ray SDK (its Lambda mode reads ``os.getenv('_X_AMZN_TRACE_ID')`` per subsegment)."""
    peer_module("aws_xray_sdk.core", "pip install aws-xray-sdk, or the examples extra")
    roots = ["1-6a000001-00000000000000000000000%d" % i for i in range(4)]
    events = [Event(request_id="x%d" % i, headers=_trace("Root=%s;Parent=%016x;Sampled=1" % (root, i + 1)))
              for i, root in enumerate(roots)]
    result = run_runtime({"app.py": XRAY_HANDLER}, "app.handler", events, expect_posts=len(events),
                         env={"AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR", "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:9"})
    assert [json.loads(p.body) for p in result.posts] == [[root, "%016x" % (i + 1), True]
                                                          for i, root in enumerate(roots)], result.describe()


GROWTH = textwrap.dedent(
    """
    import ctypes, os, sys
    from lambdaric import traceenv

    backends = [b for b in traceenv.BACKENDS if b[0] == sys.argv[1]]
    env = traceenv.TraceEnv(backends)
    libc = ctypes.CDLL(None)
    libc.getenv.restype = ctypes.c_char_p

    def rss():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    for i in range(60000):
        value = "Root=1-6a%06x-%024x;Parent=%016x;Sampled=%d" % (i % 0xffffff, i, i * 7, i & 1)
        env.set(value if i % 1000 else None)  # now and then an invoke without a trace
        if i % 1000 and (os.environ["_X_AMZN_TRACE_ID"] != value or libc.getenv(b"_X_AMZN_TRACE_ID") != value.encode()):
            sys.exit("wrong value at %d" % i)
        if i == 10000:
            warm = rss()
    print(env.backend, rss() - warm)
    """
)


@pytest.mark.parametrize("backend, limit_kb", [("native", 256), ("ctypes", 256), ("setenv", None)])
def test_growth_over_50k_new_trace_ids(backend, limit_kb):
    if backend == "native":
        pytest.importorskip("lambdaric._native", reason="the native module is not built here")
    out = subprocess.run([sys.executable, "-c", GROWTH, backend], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    name, growth_kb = out.stdout.split()
    assert name == backend
    if limit_kb is None:  # the control: plain setenv, as os.environ[...] = value does, grows ~140 B per value
        assert int(growth_kb) > 4096, out.stdout
    else:
        assert int(growth_kb) < limit_kb, out.stdout
