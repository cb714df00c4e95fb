"""The emulator's Runtime API is strict like the real one: a scripted fake runtime (run as
the emulator's ``--command``) makes legal and illegal calls and records every answer."""
import json
import sys
import time

import pytest

from peers import peer_module

from emulator_harness import RunningEmulator

peer_module("boto3", "pip install boto3")

PROBE = r'''
import http.client, json, os, socket, time
API = os.environ["AWS_LAMBDA_RUNTIME_API"]
OUT = open(os.environ["PROBE_OUT"], "a")

def call(name, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection(API, timeout=30)
    conn.request(method, "/2018-06-01/runtime" + path, body, headers or {})
    resp = conn.getresponse()
    data = resp.read()
    OUT.write(json.dumps([name, resp.status, json.loads(data) if data else None]) + "\n")
    OUT.flush()
    return resp

def chunked(path, chunks, trailers):
    host, port = API.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    head = ("POST /2018-06-01/runtime%s HTTP/1.1\r\nHost: %s\r\n"
            "Lambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\n"
            "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n" % (path, API))
    s.sendall(head.encode())
    for c in chunks:
        s.sendall(b"%x\r\n%s\r\n" % (len(c), c))
        time.sleep(0.05)
    s.sendall(b"0\r\n" + "".join("%s: %s\r\n" % t for t in trailers).encode() + b"\r\n")
    data = s.recv(65536)
    OUT.write(json.dumps(["stream", int(data.split(b" ")[1])]) + "\n")
    OUT.flush()

rid = call("next1", "GET", "/invocation/next").getheader("Lambda-Runtime-Aws-Request-Id")
call("init-error-after-next", "POST", "/init/error", b"{}", {"Lambda-Runtime-Function-Error-Type": "Runtime.X"})
call("unknown-id", "POST", "/invocation/not-a-real-id/response", b"1")
call("bad-id", "POST", "/invocation/bad$id/response", b"1")
call("buffered-mode", "POST", "/invocation/%s/response" % rid, b"1", {"Lambda-Runtime-Function-Response-Mode": "buffered"})
call("bad-error-type", "POST", "/invocation/%s/error" % rid, b"{}", {"Lambda-Runtime-Function-Error-Type": "has space"})
call("next-while-busy", "GET", "/invocation/next")
call("restore-next", "GET", "/restore/next")
call("response", "POST", "/invocation/%s/response" % rid, b'"first"')
call("second-response", "POST", "/invocation/%s/response" % rid, b'"second"')
call("error-after-response", "POST", "/invocation/%s/error" % rid, b"{}")
rid = call("next2", "GET", "/invocation/next").getheader("Lambda-Runtime-Aws-Request-Id")
import base64
body = base64.b64encode(json.dumps({"errorMessage": "mid-stream", "errorType": "StreamError"}).encode()).decode()
chunked("/invocation/%s/response" % rid, [b"part1-", b"part2"],
        [("Lambda-Runtime-Function-Error-Type", "StreamError"), ("Lambda-Runtime-Function-Error-Body", body)])
rid = call("next3", "GET", "/invocation/next").getheader("Lambda-Runtime-Aws-Request-Id")
chunked("/invocation/%s/response" % rid, [b"hello ", b"streaming ", b"world"], [])
call("next4", "GET", "/invocation/next")
'''


def _wait_for_rows(path, complete, timeout=10.0):
    """The probe's rows once ``complete(rows)`` holds (or whatever is there after ``timeout``)."""
    end = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        rows = [json.loads(line) for line in text.split("\n")[:-1]]  # whole lines only
        if complete(rows) or time.monotonic() > end:
            return rows
        time.sleep(0.01)


def test_state_machine_and_streaming(tmp_path):
    out = tmp_path / "probe.jsonl"
    files = {"probe.py": PROBE}
    with RunningEmulator(files, handler=None, args=["--command", "%s probe.py" % sys.executable], env={"PROBE_OUT": str(out)}) as emu:
        client = emu.client()
        first = client.invoke(FunctionName="function", Payload=b"{}")
        assert first["Payload"].read() == b'"first"' and "FunctionError" not in first
        second = client.invoke(FunctionName="function", Payload=b"{}")
        assert second["FunctionError"] == "Unhandled"
        assert json.loads(second["Payload"].read()) == {"errorMessage": "mid-stream", "errorType": "StreamError"}
        third = client.invoke(FunctionName="function", Payload=b"{}")
        assert third["Payload"].read() == b"hello streaming world"
        # the probe writes its last row after the emulator answered the third invoke: stopping
        # the emulator at once would kill it first
        rows = _wait_for_rows(out, lambda rows: sum(row[0] == "stream" for row in rows) >= 2)
    answers = {row[0]: row[1:] for row in rows if row[0] != "stream"}
    streams = [row[1] for row in rows if row[0] == "stream"]
    assert answers["next1"][0] == 200
    assert answers["init-error-after-next"] == [403, answers["init-error-after-next"][1]]
    assert answers["init-error-after-next"][1]["errorType"] == "InvalidStateTransition"
    assert answers["unknown-id"][0] == 400 and answers["unknown-id"][1]["errorType"] == "InvalidRequestID"
    assert answers["bad-id"][0] == 400 and answers["bad-id"][1]["errorType"] == "InvalidRequestID"
    assert answers["buffered-mode"][0] == 400 and answers["buffered-mode"][1]["errorType"] == "InvalidFunctionResponseMode"
    assert answers["bad-error-type"][0] == 400
    assert answers["next-while-busy"][0] == 403
    assert answers["restore-next"][0] == 404
    assert answers["response"] == [202, {"status": "OK"}]
    assert answers["second-response"][0] == 403 and answers["second-response"][1]["errorType"] == "InvalidStateTransition"
    assert answers["error-after-response"][0] == 403
    assert streams == [202, 202]
