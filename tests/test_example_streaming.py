"""examples/streaming end to end: the SSE token stream runs under the emulator and is read with
boto3's InvokeWithResponseStream (botocore decodes the AWS event stream), as a function URL in
RESPONSE_STREAM mode or a direct caller would. Checked: the tokens arrive while the function is
still producing them (coarse bounds: ~2 s of tokens, the first one at least 1 s before the end),
and the whole body, HTTP prelude included, is exactly what the function wrote."""
import copy
import json
import os
import time

import pytest

from peers import peer_module

from emulator_harness import REPO, RunningEmulator
from lambdaric import events

peer_module("boto3", "pip install boto3")

EXAMPLE = os.path.join(REPO, "examples", "streaming")
TOKEN_DELAY = 0.1
PROMPT = "why stream"
# what the stand-in model says for PROMPT: 18 tokens, TOKEN_DELAY apart
TOKENS = ["You", " asked:", " why", " stream.", " Here", " is", " the", " answer,", " streamed", " one", " token",
          " at", " a", " time", " as", " it", " is", " generated."]
PRELUDE_END = b"\0" * 8


def url_event(body):
    """The function-url sample (POST /orders) as a POST /chat with ``body``."""
    event = copy.deepcopy(events.load("function-url"))
    event["rawPath"] = event["requestContext"]["http"]["path"] = "/chat"
    event["body"] = body
    event["headers"]["content-length"] = str(len(body.encode()))
    return event


def expected_sse(request_id):
    sse = ["event: token\ndata: %s\n\n" % json.dumps({"index": i, "text": t}, separators=(",", ":"))
           for i, t in enumerate(TOKENS)]
    sse.append('event: done\ndata: {"tokens":%d,"request_id":"%s"}\n\n' % (len(TOKENS), request_id))
    return "".join(sse).encode()


@pytest.fixture(scope="module")
def emu():
    env = {"PYTHONDONTWRITEBYTECODE": "1", "TOKEN_DELAY": str(TOKEN_DELAY)}
    with RunningEmulator({}, handler="app.handler", cwd=EXAMPLE, env=env) as running:
        yield running


def stream(emu, event):
    """(answer, chunks with their arrival times, InvokeComplete, when it came)."""
    answer = emu.client().invoke_with_response_stream(FunctionName="function", Payload=json.dumps(event).encode())
    chunks, complete, done_at = [], None, None
    for item in answer["EventStream"]:
        if "PayloadChunk" in item:
            chunks.append((time.monotonic(), item["PayloadChunk"]["Payload"]))
        if "InvokeComplete" in item:
            complete, done_at = item["InvokeComplete"], time.monotonic()
    return answer, chunks, complete, done_at


def test_function_url_tokens_arrive_as_they_are_generated(emu):
    answer, chunks, complete, done_at = stream(emu, url_event(json.dumps({"prompt": PROMPT})))
    assert not complete.get("ErrorCode"), complete
    assert answer["ResponseStreamContentType"] == "application/vnd.awslambda.http-integration-response"
    body = b"".join(data for _, data in chunks)
    prelude, sep, sse = body.partition(PRELUDE_END)
    assert sep
    assert json.loads(prelude) == {
        "statusCode": 200, "headers": {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}, "cookies": [],
    }
    assert sse == expected_sse(answer["ResponseMetadata"]["RequestId"])
    # incremental: ~1.8 s of tokens; the first token came long before the last (generous bounds)
    first_token_at = next(at for at, data in chunks if b"event: token" in data)
    assert first_token_at < done_at - 1.0, "the first token did not arrive before the function ended"
    assert len(chunks) >= 10, "tokens arrived in %d pieces: the response was buffered" % len(chunks)


def test_direct_invoke_streams_server_sent_events(emu):
    answer, chunks, complete, _ = stream(emu, {"prompt": "  %s " % PROMPT})
    assert not complete.get("ErrorCode"), complete
    assert answer["ResponseStreamContentType"] == "text/event-stream"
    assert b"".join(data for _, data in chunks) == expected_sse(answer["ResponseMetadata"]["RequestId"])


@pytest.mark.parametrize("body", ["{}", '{"prompt": "  "}', "not json"])
def test_function_url_without_a_prompt_is_400(emu, body):
    answer, chunks, complete, _ = stream(emu, url_event(body))
    assert not complete.get("ErrorCode"), complete
    prelude, sep, rest = b"".join(data for _, data in chunks).partition(PRELUDE_END)
    assert json.loads(prelude) == {"statusCode": 400, "headers": {"Content-Type": "application/json"}, "cookies": []}
    assert json.loads(rest) == {"error": 'POST a JSON body {"prompt": "<non-empty text>"}'}


def test_direct_invoke_without_a_prompt_is_a_function_error(emu):
    """Raised before anything was written: an ordinary function error, no stream at all."""
    answer, chunks, complete, _ = stream(emu, {"question": PROMPT})
    assert chunks == []
    assert complete["ErrorCode"] == "ValueError"
    assert complete["ErrorDetails"] == 'the event must be {"prompt": "<non-empty text>"}'
