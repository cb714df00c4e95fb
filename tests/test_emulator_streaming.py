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

from peers import peer_module

from emulator_harness import REPO, RunningEmulator

peer_module("boto3", "pip install boto3")

# A runtime that streams: three chunks 0.4 s apart, then (for "fail") error trailers; for
# "big", one single HTTP chunk of BIG_SIZE bytes of a pattern that shows order (4-byte counter).
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
    if event.get("big"):
        data = b"".join(i.to_bytes(4, "big") for i in range(event["big"] // 4))
        s.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
    for i in range(0 if event.get("big") else 3):
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


MIB = 1024 * 1024


def _counter_pattern(size: int) -> bytes:
    return b"".join(i.to_bytes(4, "big") for i in range(size // 4))


def test_one_large_streamed_chunk_arrives_whole_in_events_of_at_most_1_mib(emu):
    # the runtime sends 5 MiB as one HTTP chunk; Lambda's clients get it as PayloadChunk
    # events, which the emulator keeps to 1 MiB each (botocore parses every one of them)
    answer = emu.client().invoke_with_response_stream(FunctionName="function", Payload=json.dumps({"big": 5 * MIB}).encode())
    events = list(answer["EventStream"])
    sizes = [len(e["PayloadChunk"]["Payload"]) for e in events if "PayloadChunk" in e]
    assert b"".join(e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e) == _counter_pattern(5 * MIB)
    assert sizes == [MIB] * 5
    assert [e for e in events if "InvokeComplete" in e] == [events[-1]] and not events[-1]["InvokeComplete"].get("ErrorCode")


def test_large_buffered_response_behind_the_streaming_api_is_split_too():
    app = {"app.py": "def handler(e, c):\n    return 'x' * (5 * 1024 * 1024 + 10)\n"}
    with RunningEmulator(app) as emu:
        events = list(emu.client().invoke_with_response_stream(FunctionName="function", Payload=b"{}")["EventStream"])
    chunks = [e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e]
    assert b"".join(chunks) == b'"' + b"x" * (5 * MIB + 10) + b'"'
    assert [len(c) for c in chunks] == [MIB] * 5 + [12]


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
