"""The emulator's Extensions API and how it stops runtimes: a fake runtime (the emulator's
``--command``) registers extensions and records every answer, compared with what
``aws-lambda-rie`` (Lambda's own Runtime API code) answers; a function using
``lambdaric.on_shutdown`` starts without a "could not register" line and its callback runs when
the emulator stops or recycles the runtime (SIGTERM, then SIGKILL after 0.5 s)."""
import json
import os
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from emulator_harness import RunningEmulator
from peers import start_rie

#: A fake runtime: extension calls (legal and not), one extension taking INVOKE events and one
#: taking none, then invokes served as "ok". Each answer: [name, status, errorType or body].
PROBE = r'''
import http.client, json, os, threading
API = os.environ["AWS_LAMBDA_RUNTIME_API"]
OUT = open(os.environ["PROBE_OUT"], "a")
R = "/2020-01-01/extension/register"
N = "/2020-01-01/extension/event/next"

def call(name, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(API, timeout=60)
    conn.request(method, path, body, headers or {})
    resp = conn.getresponse()
    data = resp.read()
    doc = json.loads(data) if data else None
    detail = doc.get("errorType") if resp.status != 200 else doc
    OUT.write(json.dumps([name, resp.status, detail, resp.getheader("Lambda-Extension-Identifier")]) + "\n")
    OUT.flush()
    return resp

call("no-name", "POST", R, b'{"events": []}')
call("not-json", "POST", R, b'{"events": [', {"Lambda-Extension-Name": "a"})
call("no-body", "POST", R, b"", {"Lambda-Extension-Name": "a"})
call("not-an-object", "POST", R, b"[]", {"Lambda-Extension-Name": "a"})
call("events-not-a-list", "POST", R, b'{"events": "INVOKE"}', {"Lambda-Extension-Name": "a"})
call("unknown-event", "POST", R, b'{"events": ["FOO"]}', {"Lambda-Extension-Name": "a"})
call("shutdown", "POST", R, b'{"events": ["INVOKE", "SHUTDOWN"]}', {"Lambda-Extension-Name": "a"})
call("configuration-keys", "POST", R, b'{"events": [], "configurationKeys": ["k"]}', {"Lambda-Extension-Name": "a"})
ident = call("invoke", "POST", R, b'{"events": ["INVOKE"]}', {"Lambda-Extension-Name": "watcher"}).getheader(
    "Lambda-Extension-Identifier")
quiet = call("no-events", "POST", R, b'{"events": []}', {"Lambda-Extension-Name": "quiet"}).getheader(
    "Lambda-Extension-Identifier")
call("same-name", "POST", R, b'{"events": []}', {"Lambda-Extension-Name": "watcher"})
call("next-no-id", "GET", N)
call("next-bad-id", "GET", N, headers={"Lambda-Extension-Identifier": "nope"})
call("next-unknown-id", "GET", N, headers={"Lambda-Extension-Identifier": "8f2b6c1e-4d3a-4b5c-9e7f-0a1b2c3d4e5f"})

def extension(name, ident):
    while True:
        resp = call(name, "GET", N, headers={"Lambda-Extension-Identifier": ident})
        if resp.status != 200:
            return

threading.Thread(target=extension, args=("event", ident), daemon=True).start()
threading.Thread(target=extension, args=("quiet-event", quiet), daemon=True).start()
first = True
while True:
    conn = http.client.HTTPConnection(API, timeout=300)
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    resp = conn.getresponse()
    resp.read()
    rid = resp.getheader("Lambda-Runtime-Aws-Request-Id")
    if first:
        call("after-next", "POST", R, b'{"events": []}', {"Lambda-Extension-Name": "late"})
        first = False
    OUT.write(json.dumps(["request", rid]) + "\n")
    OUT.flush()
    conn.request("POST", "/2018-06-01/runtime/invocation/%s/response" % rid, b'"ok"')
    conn.getresponse().read()
'''

REFUSALS = {
    "no-name": [403, "Extension.InvalidExtensionName"],
    "not-json": [403, "InvalidRequestFormat"],
    "no-body": [403, "InvalidRequestFormat"],
    "not-an-object": [403, "InvalidRequestFormat"],
    "events-not-a-list": [403, "InvalidRequestFormat"],
    "unknown-event": [403, "Extension.InvalidEventType"],
    "shutdown": [403, "Extension.InvalidEventType"],
    "configuration-keys": [403, "InvalidRequestFormat"],
    "same-name": [403, "Extension.InvalidExtensionState"],
    "next-no-id": [403, "Extension.MissingExtensionIdentifier"],
    "next-bad-id": [403, "Extension.InvalidExtensionIdentifier"],
    "next-unknown-id": [403, "Extension.UnknownExtensionIdentifier"],
    "after-next": [403, "Extension.RegistrationClosed"],
}


def rows(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def wait_rows(path, predicate, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = rows(path) if os.path.exists(path) else []
        if predicate(found):
            return found
        time.sleep(0.05)
    raise AssertionError("probe output incomplete: %r" % (rows(path) if os.path.exists(path) else None))


def summary(found):
    """name -> [status, errorType] for refusals; the registrations and events, checked apart."""
    return {r[0]: r[1:3] for r in found if r[0] in REFUSALS}


def invoke(url):
    return urllib.request.urlopen(urllib.request.Request(url, data=b"{}"), timeout=30).read()


def test_extensions_api_answers_as_lambda(tmp_path):
    out = str(tmp_path / "probe.jsonl")
    with RunningEmulator({"probe.py": PROBE}, handler=None, args=["--command", "%s probe.py" % sys.executable],
                         env={"PROBE_OUT": out, "AWS_LAMBDA_FUNCTION_NAME": "fn", "_HANDLER": "app.handler"}) as emu:
        assert invoke(emu.url("fn")) == b'"ok"'
        assert invoke(emu.url("fn")) == b'"ok"'
        found = wait_rows(out, lambda f: sum(r[0] == "event" for r in f) == 2)
        assert emu.stop() == 0
    assert summary(found) == REFUSALS
    by_name = {r[0]: r for r in found}
    registered = [by_name["invoke"], by_name["no-events"]]
    for _, status, body, identifier in registered:
        assert status == 200 and body == {"functionName": "fn", "functionVersion": "$LATEST", "handler": "app.handler"}
        assert len(identifier) == 36 and identifier.count("-") == 4
    assert registered[0][3] != registered[1][3]
    # one INVOKE event per invoke, for the extension that asked for them only
    requests = [r[1] for r in found if r[0] == "request"]
    events = [r[2] for r in found if r[0] == "event"]
    assert [e["requestId"] for e in events] == requests and len(requests) == 2
    for event in events:
        assert sorted(event) == ["deadlineMs", "eventType", "invokedFunctionArn", "requestId", "tracing"]
        assert event["eventType"] == "INVOKE"
        assert event["invokedFunctionArn"] == "arn:aws:lambda:us-east-1:123456789012:function:fn"
        assert event["tracing"]["type"] == "X-Amzn-Trace-Id" and event["tracing"]["value"].startswith("Root=1-")
    assert not [r for r in found if r[0] == "quiet-event"]  # held until the runtime was stopped


def test_extensions_api_matches_aws_lambda_rie(tmp_path, rie):
    """The same probe against aws-lambda-rie: the same statuses and error types."""
    out = str(tmp_path / "rie.jsonl")
    with open(tmp_path / "probe.py", "w") as f:
        f.write(PROBE)
    with start_rie([sys.executable, "probe.py"], cwd=str(tmp_path), env={"PROBE_OUT": out}, rie=rie) as proc:
        assert invoke(proc.url) == b'"ok"'
        found = wait_rows(out, lambda f: any(r[0] == "event" for r in f))
    assert summary(found) == REFUSALS
    assert [r[1] for r in found if r[0] in ("invoke", "no-events")] == [200, 200]


ON_SHUTDOWN_APP = """
import time
import lambdaric

@lambdaric.on_shutdown
def cleanup():
    print("cleanup ran")

def handler(event, context):
    print("invoked")
    return "ok"
"""


def test_on_shutdown_runs_when_the_emulator_stops(lambdaric_env):
    """No "could not register" line at start (the emulator answers the register call), and the
    callback's output reaches the emulator's log when the emulator is stopped."""
    with RunningEmulator({"app.py": ON_SHUTDOWN_APP}, env=lambdaric_env) as emu:
        assert invoke(emu.url()) == b'"ok"'
        assert emu.stop() == 0
    out, err = emu.stdout(), emu.stderr()
    assert b"invoked\n" in out and out.count(b"cleanup ran\n") == 1, out
    assert out.index(b"invoked\n") < out.index(b"cleanup ran\n")
    assert b"could not register" not in out + err and b"SIGTERM extension" not in out + err, (out, err)


def test_on_shutdown_runs_when_watch_recycles_the_runtime(lambdaric_env):
    with RunningEmulator({"app.py": ON_SHUTDOWN_APP}, args=["--watch"], env=lambdaric_env) as emu:
        assert invoke(emu.url()) == b'"ok"'
        with open(os.path.join(emu.cwd, "app.py"), "a") as f:
            f.write("# changed\n")
        end = time.monotonic() + 15
        while b"cleanup ran" not in emu.stdout() and time.monotonic() < end:
            time.sleep(0.05)
        assert emu.stdout().count(b"cleanup ran\n") == 1  # the old runtime's, before the emulator stops
        assert invoke(emu.url()) == b'"ok"'  # a fresh runtime
        assert emu.stop() == 0
    assert emu.stdout().count(b"cleanup ran\n") == 2
    assert b"could not register" not in emu.stdout() + emu.stderr()


def test_stop_kills_after_a_short_grace(lambdaric_env):
    """Lambda gives the runtime about 500 ms after SIGTERM, then SIGKILL: a callback that takes
    longer is cut short and does not hold the emulator up."""
    app = ON_SHUTDOWN_APP.replace('    print("cleanup ran")', '    print("cleanup starts", flush=True)\n'
                                  '    time.sleep(5)\n    print("cleanup ends", flush=True)')
    with RunningEmulator({"app.py": app}, env=lambdaric_env) as emu:
        assert invoke(emu.url()) == b'"ok"'
        started = time.monotonic()
        assert emu.stop() == 0
        took = time.monotonic() - started
    assert b"cleanup starts\n" in emu.stdout() and b"cleanup ends" not in emu.stdout()
    assert took < 2.0, took  # the callback alone would take 5 s


def test_on_shutdown_in_every_worker_under_managed_instances(lambdaric_env):
    """--max-concurrency 2 (process mode): the extension is registered once (no refusal for a
    second one), and each worker runs its callback when the emulator stops."""
    app = ON_SHUTDOWN_APP.replace('print("cleanup ran")', 'print("cleanup ran in", os.getpid())').replace(
        "import time", "import os, time").replace('return "ok"', "time.sleep(0.3)\n    return os.getpid()")
    with RunningEmulator({"app.py": app}, args=["--max-concurrency", "2"], env=lambdaric_env) as emu:
        pids = set()
        end = time.monotonic() + 20
        while len(pids) < 2 and time.monotonic() < end:  # both workers done with init and serving
            with ThreadPoolExecutor(2) as pool:
                pids.update(int(answer) for answer in pool.map(invoke, [emu.url()] * 2))
        assert len(pids) == 2
        assert emu.stop() == 0
    out, err = emu.stdout(), emu.stderr()
    lines = sorted(line for line in out.splitlines() if line.startswith(b"cleanup ran in "))
    assert lines == sorted(b"cleanup ran in %d" % pid for pid in pids), out
    assert b"could not register" not in out + err and b"SIGTERM extension" not in out + err, (out, err)
