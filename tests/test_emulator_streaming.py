"""InvokeWithResponseStream through our emulator, read by boto3 (botocore parses the AWS
event stream) and by ``lambdaric invoke --stream``: chunks reach the caller while the
function is still producing them, and a mid-stream error arrives in InvokeComplete."""
import base64
import json
import os
import subprocess
import sys
import time

import pytest

from emulator_harness import REPO, RunningEmulator

pytest.importorskip("boto3", reason="boto3 is not installed")

# A runtime that streams: three chunks 0.4 s apart, then (for "fail") error trailers.
STREAMER = r'''
import base64, http.client, json, os, socket, time
API = os.environ["AWS_LAMBDA_RUNTIME_API"]
host, port = API.rsplit(":", 1)
while True:
    conn = http.client.HTTPConnection(API)
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    resp = conn.getresponse()
    event = json.loads(resp.read())
    rid = resp.getheader("Lambda-Runtime-Aws-Request-Id")
    s = socket.create_connection((host, int(port)))
    s.sendall(("POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: %s\r\n"
               "Content-Type: text/plain\r\nLambda-Runtime-Function-Response-Mode: streaming\r\n"
               "Transfer-Encoding: chunked\r\n"
               "Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n" % (rid, API)).encode())
    for i in range(3):
        data = ("chunk-%d;" % i).encode()
        s.sendall(b"%x\r\n%s\r\n" % (len(data), data))
        time.sleep(0.4)
    trailers = b""
    if event.get("fail"):
        body = base64.b64encode(json.dumps({"errorMessage": "broke mid-stream", "errorType": "StreamBroke"}).encode())
        trailers = b"Lambda-Runtime-Function-Error-Type: StreamBroke\r\nLambda-Runtime-Function-Error-Body: " + body + b"\r\n"
    s.sendall(b"0\r\n" + trailers + b"\r\n")
    s.recv(65536)
    s.close()
'''


@pytest.fixture(scope="module")
def emu():
    with RunningEmulator({"streamer.py": STREAMER}, handler=None, args=["--command", "%s streamer.py" % sys.executable]) as running:
        yield running


def test_boto3_receives_chunks_as_they_are_produced(emu):
    answer = emu.client().invoke_with_response_stream(FunctionName="function", Payload=b"{}", LogType="Tail")
    arrivals, chunks, complete = [], [], None
    for event in answer["EventStream"]:
        if "PayloadChunk" in event:
            chunks.append(event["PayloadChunk"]["Payload"])
            arrivals.append(time.monotonic())
        if "InvokeComplete" in event:
            complete = event["InvokeComplete"]
            done_at = time.monotonic()
    assert b"".join(chunks) == b"chunk-0;chunk-1;chunk-2;"
    assert len(chunks) == 3
    assert arrivals[0] < done_at - 0.6, "the first chunk did not arrive before the function ended"
    assert arrivals[1] - arrivals[0] > 0.2
    assert not complete.get("ErrorCode")
    assert "START RequestId" in base64.b64decode(complete["LogResult"]).decode()


def test_mid_stream_error_reported_in_invoke_complete(emu):
    answer = emu.client().invoke_with_response_stream(FunctionName="function", Payload=json.dumps({"fail": True}).encode())
    events = list(answer["EventStream"])
    chunks = b"".join(e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e)
    complete = [e["InvokeComplete"] for e in events if "InvokeComplete" in e][0]
    assert chunks == b"chunk-0;chunk-1;chunk-2;"
    assert complete["ErrorCode"] == "StreamBroke"
    assert complete["ErrorDetails"] == "broke mid-stream"


def test_buffered_invoke_of_a_streaming_function(emu):
    answer = emu.client().invoke(FunctionName="function", Payload=b"{}")
    assert answer["Payload"].read() == b"chunk-0;chunk-1;chunk-2;"


def test_buffered_function_behind_the_streaming_api(tmp_path):
    with RunningEmulator({"app.py": "def handler(e, c):\n    return {'whole': True}\n"}) as emu:
        events = list(emu.client().invoke_with_response_stream(FunctionName="function", Payload=b"{}")["EventStream"])
        assert b"".join(e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e) == b'{"whole": true}'
        assert [e for e in events if "InvokeComplete" in e]


def test_lambdaric_invoke_stream_prints_chunks(emu, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_LAMBDA_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
    out = subprocess.run(
        [sys.executable, "-m", "lambdaric", "invoke", emu.url(), "{}", "--stream"], env=env, capture_output=True, timeout=60, cwd=str(tmp_path)
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"chunk-0;chunk-1;chunk-2;"
    out = subprocess.run(
        [sys.executable, "-m", "lambdaric", "invoke", emu.url(), '{"fail": true}', "--stream"], env=env, capture_output=True, timeout=60, cwd=str(tmp_path)
    )
    assert out.returncode == 1 and b"StreamBroke: broke mid-stream" in out.stderr
