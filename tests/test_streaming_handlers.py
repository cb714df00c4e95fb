"""Handlers that stream their response (lambdaric.streaming): generators, async generators and
``@lambdaric.streaming_handler`` functions, through a real ``python -m lambdaric`` process.

Wire tests run once per transport against the scripted Runtime API and check the exact bytes of
the head, the chunks and the trailers; then the same handlers through our emulator (read by
boto3's ``invoke_with_response_stream``) and through the official ``aws-lambda-rie``.
"""
import base64
import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

import lambdaric
from peers import peer_module, rie, start_rie  # noqa: F401  (rie: fixture)
from runtime_api import Event, Reply, RuntimeAPI

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UA = "lambdaric-python/%d.%d.%d-%s" % (sys.version_info[0], sys.version_info[1], sys.version_info[2], lambdaric.__version__)
TRAILER = "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body"
HTTP_CT = "application/vnd.awslambda.http-integration-response"

APP = textwrap.dedent(
    '''
    import asyncio, logging, sys, time
    import lambdaric

    def chunks(event, context):
        print("printed before the stream")
        yield b"hello "
        yield "w\\u00f6rld "          # str: UTF-8
        yield b""                     # empty: skipped
        yield bytearray(b"and ")      # any buffer
        yield memoryview(b"more")

    def empty(event, context):
        return
        yield

    def fails_mid_stream(event, context):
        yield b"partial "
        raise ValueError("broke after one chunk")

    def fails_first(event, context):
        yield b""                     # nothing sent yet: still a normal error
        raise KeyError("before anything")

    def exits_mid_stream(event, context):
        yield b"bye"
        sys.exit(3)

    def bad_first_item(event, context):
        yield {"a": 1}

    def bad_later_item(event, context):
        yield b"ok "
        yield 42

    def late_http_response(event, context):
        yield b"data"
        yield lambdaric.HttpResponse(status_code=500)

    def function_url(event, context):
        yield lambdaric.HttpResponse(
            status_code=201,
            headers={"Content-Type": "text/plain", "X-Custom": "v1"},
            cookies=["session=abc; Path=/; HttpOnly", "theme=dark"],
        )
        yield "body "
        yield b"text"

    def slow(event, context):
        for i in range(3):
            yield b"chunk-%d;" % i
            time.sleep(0.5)

    def own_output(event, context):
        print("printed before the stream")
        yield b"first"
        with open("/proc/self/fd/1", "rb") as f:  # the log file as written so far
            yield f.read()

    def logs_with_request_id(event, context):
        yield b"a"
        logging.getLogger().warning("inside the generator %s", context.aws_request_id)
        yield b"b"

    async def async_chunks(event, context):
        loop = asyncio.get_running_loop()
        await asyncio.sleep(0.01)
        yield b"loop=%d;" % id(loop)
        await asyncio.sleep(0.01)
        logging.getLogger().warning("inside the async generator")
        yield "done"

    @lambdaric.streaming_handler
    def writer(event, context, stream):
        assert not stream.started
        stream.content_type = "text/plain; charset=utf-8"
        stream.write("one ")
        assert stream.started
        stream.write(b"")
        stream.write(b"two")

    @lambdaric.streaming_handler
    async def async_writer(event, context, stream):
        stream.content_type = "text/plain; charset=utf-8"
        stream.write("one ")
        await asyncio.sleep(0.01)
        stream.write(b"two")

    @lambdaric.streaming_handler
    def writer_fails_first(event, context, stream):
        raise RuntimeError("no write yet")

    @lambdaric.streaming_handler
    async def async_writer_fails_mid_stream(event, context, stream):
        stream.write(b"x")
        await asyncio.sleep(0)
        raise RuntimeError("after a write")

    @lambdaric.streaming_handler
    def writer_returns_a_value(event, context, stream):
        stream.write(b"x")
        return {"not": "allowed"}

    @lambdaric.streaming_handler
    def writer_function_url(event, context, stream):
        stream.write(lambdaric.HttpResponse(status_code=404, headers={"Content-Type": "text/html"}))
        stream.write("<p>not here</p>")

    KEPT = []

    @lambdaric.streaming_handler
    def keeps_its_stream(event, context, stream):
        if KEPT:  # the second invoke: the first one's stream must refuse
            try:
                KEPT[0].write(b"late")
            except RuntimeError as exc:
                stream.write("refused: %s" % exc)
            return
        KEPT.append(stream)
        stream.write(b"first")
    '''
)


def head(api, content_type="application/octet-stream", request_id="req-1", invocation_id="inv-1"):
    return (
        "POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\n"
        "Host: %s\r\n"
        "User-Agent: %s\r\n"
        "Content-Type: %s\r\n"
        "Lambda-Runtime-Invocation-Id: %s\r\n"
        "Lambda-Runtime-Function-Response-Mode: streaming\r\n"
        "Trailer: %s\r\n"
        "Transfer-Encoding: chunked\r\n"
        "\r\n" % (request_id, api.address, UA, content_type, invocation_id, TRAILER)
    ).encode("latin-1")


def chunk(data):
    return b"%x\r\n" % len(data) + data + b"\r\n"


def event(body=b"{}", request_id="req-1", invocation_id="inv-1"):
    return Event(body, request_id=request_id, headers={"Lambda-Runtime-Invocation-Id": invocation_id})


def run(run_runtime, handler, events=None, **kwargs):
    return run_runtime({"app.py": APP}, "app." + handler, events if events is not None else [event()], **kwargs)


def only_post(result, kind="response"):
    posts = result.posts
    assert len(posts) == 1, result.describe()
    assert posts[0].kind == kind and posts[0].complete, result.describe()
    return posts[0]


def error_trailers(post):
    """(error type, decoded error JSON) from a stream's trailers."""
    names = [k for k, _ in post.trailers]
    assert names == ["Lambda-Runtime-Function-Error-Type", "Lambda-Runtime-Function-Error-Body"], post.trailers
    return post.trailer("Lambda-Runtime-Function-Error-Type"), json.loads(base64.b64decode(post.trailer("Lambda-Runtime-Function-Error-Body")))


# --------------------------------------------------------------------------- exact bytes


def test_generator_chunks_exact_bytes(run_runtime):
    result = run(run_runtime, "chunks")
    post = only_post(result)
    assert post.raw == (
        head(result.api) + chunk(b"hello ") + chunk("wörld ".encode()) + chunk(b"and ") + chunk(b"more") + b"0\r\n\r\n"
    )
    assert post.chunks == [b"hello ", "wörld ".encode(), b"and ", b"more"]
    assert post.trailers == []
    assert result.requests[-1].kind == "next", "the runtime did not go back to /next"
    assert result.stdout == b"printed before the stream\n"
    assert result.stderr == b""


def test_empty_generator_sends_an_empty_stream(run_runtime):
    result = run(run_runtime, "empty")
    assert only_post(result).raw == head(result.api) + b"0\r\n\r\n"


def test_function_url_prelude_exact_bytes(run_runtime):
    result = run(run_runtime, "function_url")
    post = only_post(result)
    prelude = (
        b'{"statusCode":201,"headers":{"Content-Type":"text/plain","X-Custom":"v1"},'
        b'"cookies":["session=abc; Path=/; HttpOnly","theme=dark"]}' + b"\0" * 8
    )
    assert post.raw == head(result.api, HTTP_CT) + chunk(prelude) + chunk(b"body ") + chunk(b"text") + b"0\r\n\r\n"
    # what a Function URL makes of it: the JSON, 8 NULs, then the body
    meta, _, body = post.body.partition(b"\0" * 8)
    assert json.loads(meta) == {
        "statusCode": 201,
        "headers": {"Content-Type": "text/plain", "X-Custom": "v1"},
        "cookies": ["session=abc; Path=/; HttpOnly", "theme=dark"],
    }
    assert body == b"body text"


@pytest.mark.parametrize("handler", ["writer", "async_writer"])
def test_streaming_handler_writes_exact_bytes(run_runtime, handler):
    result = run(run_runtime, handler)
    assert only_post(result).raw == (
        head(result.api, "text/plain; charset=utf-8") + chunk(b"one ") + chunk(b"two") + b"0\r\n\r\n"
    )
    assert result.stderr == b""


def test_streaming_handler_function_url_prelude(run_runtime):
    result = run(run_runtime, "writer_function_url")
    prelude = b'{"statusCode":404,"headers":{"Content-Type":"text/html"},"cookies":[]}' + b"\0" * 8
    assert only_post(result).raw == head(result.api, HTTP_CT) + chunk(prelude) + chunk(b"<p>not here</p>") + b"0\r\n\r\n"


# --------------------------------------------------------------------------- errors


def test_mid_stream_error_in_trailers(run_runtime):
    result = run(run_runtime, "fails_mid_stream")
    post = only_post(result)
    error_type, error = error_trailers(post)
    assert error_type == "ValueError"
    assert list(error) == ["errorMessage", "errorType", "requestId", "stackTrace"]  # the /error shape and order
    assert error["errorMessage"] == "broke after one chunk"
    assert error["errorType"] == "ValueError"
    assert error["requestId"] == "req-1"
    line = [n for n, text in enumerate(APP.splitlines(), 1) if 'raise ValueError("broke after one chunk")' in text][0]
    assert len(error["stackTrace"]) == 1 and 'app.py", line %d, in fails_mid_stream' % line in error["stackTrace"][0]
    trailer_block = (
        b"0\r\nLambda-Runtime-Function-Error-Type: ValueError\r\nLambda-Runtime-Function-Error-Body: "
        + post.trailer("Lambda-Runtime-Function-Error-Body").encode() + b"\r\n\r\n"
    )
    assert post.raw == head(result.api) + chunk(b"partial ") + trailer_block
    # the uncaught-error record, as for a buffered error: one line, \r inside
    assert result.stdout.startswith(b"[ERROR] ValueError: broke after one chunk\rTraceback (most recent call last):\r")
    assert result.stdout.count(b"\n") == 1
    assert result.requests[-1].kind == "next"


def test_async_stream_handler_mid_stream_error_in_trailers(run_runtime):
    result = run(run_runtime, "async_writer_fails_mid_stream")
    post = only_post(result)
    assert post.chunks == [b"x"]
    error_type, error = error_trailers(post)
    assert (error_type, error["errorType"], error["errorMessage"]) == ("RuntimeError", "RuntimeError", "after a write")
    assert "in async_writer_fails_mid_stream" in error["stackTrace"][-1]
    assert b"[ERROR] RuntimeError: after a write" in result.stdout


@pytest.mark.parametrize(
    "handler, error_type, message",
    [
        ("fails_first", "KeyError", "'before anything'"),
        ("writer_fails_first", "RuntimeError", "no write yet"),
        ("bad_first_item", "Runtime.MarshalError",
         "Unable to marshal response: a streamed response takes bytes, str or lambdaric.HttpResponse, not dict"),
    ],
)
def test_error_before_anything_is_sent_is_a_normal_function_error(run_runtime, handler, error_type, message):
    result = run(run_runtime, handler)
    post = only_post(result, "error")
    assert not post.chunked
    assert post.header("Lambda-Runtime-Function-Error-Type") == error_type
    assert post.header("Lambda-Runtime-Invocation-Id") == "inv-1"
    assert post.json()["errorType"] == error_type
    assert post.json()["errorMessage"] == message
    assert result.stdout.startswith(("[ERROR] %s: %s\r" % (error_type, message)).encode())
    if not error_type.startswith("Runtime."):
        assert "in %s" % handler in post.json()["stackTrace"][-1]
    assert result.requests[-1].kind == "next"


@pytest.mark.parametrize(
    "handler, message",
    [
        ("bad_later_item", "Unable to marshal response: a streamed response takes bytes, str or lambdaric.HttpResponse, not int"),
        ("late_http_response", "Unable to marshal response: an HttpResponse must come before any data of the response"),
        ("writer_returns_a_value",
         "Unable to marshal response: a streaming handler writes to its stream and returns None, not dict"),
    ],
)
def test_bad_item_mid_stream_is_a_marshal_error_in_trailers(run_runtime, handler, message):
    result = run(run_runtime, handler)
    error_type, error = error_trailers(only_post(result))
    assert error_type == "Runtime.MarshalError"
    assert error == {"errorMessage": message, "errorType": "Runtime.MarshalError", "requestId": "req-1", "stackTrace": []}


def test_sys_exit_mid_stream_reported_then_exits_with_its_code(run_runtime):
    result = run(run_runtime, "exits_mid_stream")
    post = only_post(result)
    assert post.chunks == [b"bye"]
    error_type, error = error_trailers(post)
    assert error_type == "Runtime.ExitError"
    assert error["errorMessage"] == "RequestId: req-1 Error: Runtime exited with error: exit status 3"
    assert result.exited and result.returncode == 3, result.describe()


def test_stream_end_answers_410_logged_then_500_exits(run_runtime):
    api = RuntimeAPI(lifetime=60)
    try:
        api.script(r"/req-1/response$", Reply(410, {"errorMessage": "Invoke timeout", "errorType": "InvokeTimeout"}))
        api.script(r"/req-2/response$", Reply(500, {"errorMessage": "Internal error", "errorType": "ServiceException"}))
        result = run(run_runtime, "chunks", [event(request_id="req-1"), event(request_id="req-2")], api=api)
    finally:
        api.close()
    assert [p.path.rsplit("/", 2)[1] for p in result.posts] == ["req-1", "req-2"]
    assert result.stderr == (
        b"lambdaric: POST /response for req-1 answered 410 (the invoke timed out already): InvokeTimeout: Invoke timeout\n"
        b"lambdaric: POST /response for req-2 answered 500: ServiceException: Internal error; exiting\n"
    )
    assert result.exited and result.returncode == 1, result.describe()


def test_stream_end_unanswered_is_said_never_retried(run_runtime):
    api = RuntimeAPI(lifetime=60)
    try:
        api.script(r"/req-1/response$", Reply(raw=b""), times=1)  # the connection closes instead of an answer
        result = run(run_runtime, "chunks", [event(request_id="req-1"), event(request_id="req-2")], api=api)
    finally:
        api.close()
    assert [p.path.rsplit("/", 2)[1] for p in result.posts] == ["req-1", "req-2"]  # req-1 not sent again
    assert result.posts[0].conn_id != result.posts[1].conn_id
    assert result.stderr.startswith(b"lambdaric: the end of the response stream for req-1 was not delivered: ")
    assert result.stderr.count(b"\n") == 1


# --------------------------------------------------------------------------- timing, logs, state


def test_chunks_leave_as_they_are_produced(run_runtime):
    result = run(run_runtime, "slow")
    post = only_post(result)
    assert post.chunks == [b"chunk-0;", b"chunk-1;", b"chunk-2;"]
    first, last = post.chunk_times[0], post.chunk_times[-1]
    # three chunks 0.5 s apart, the handler ends 0.5 s after the last one
    assert post.received_at - first >= 1.0, (post.chunk_times, post.received_at)
    assert last - first >= 0.8, post.chunk_times


def test_logs_are_flushed_before_the_stream_starts(run_runtime):
    result = run(run_runtime, "own_output")
    post = only_post(result)
    assert post.chunks == [b"first", b"printed before the stream\n"]


def test_request_id_is_set_while_generators_run(run_runtime):
    result = run(run_runtime, "logs_with_request_id")
    assert only_post(result).chunks == [b"a", b"b"]
    (line,) = result.stdout.splitlines()
    assert line.startswith(b"[WARNING]\t") and line.endswith(b"\treq-1\tinside the generator req-1")


def test_async_generator_runs_on_the_runtime_loop(run_runtime):
    result = run(run_runtime, "async_chunks", [event(request_id="req-1"), event(request_id="req-2")])
    first, second = result.posts
    assert first.chunks[1:] == second.chunks[1:] == [b"done"]
    assert first.chunks[0] == second.chunks[0] and first.chunks[0].startswith(b"loop=")  # one loop for the process
    lines = result.stdout.splitlines()
    assert [line.split(b"\t")[2:] for line in lines] == [[b"req-1", b"inside the async generator"],
                                                         [b"req-2", b"inside the async generator"]]


def test_a_stream_refuses_writes_after_its_invoke(run_runtime):
    result = run(run_runtime, "keeps_its_stream", [event(request_id="req-1"), event(request_id="req-2")])
    first, second = result.posts
    assert first.chunks == [b"first"]
    assert second.chunks == [b"refused: the response stream is closed: its invoke is over"]


# --------------------------------------------------------------------------- emulators


def test_boto3_gets_the_first_chunk_before_the_handler_ends():
    peer_module("boto3", "pip install boto3")
    from emulator_harness import RunningEmulator

    with RunningEmulator({"app.py": APP}, handler="app.slow") as emu:
        answer = emu.client().invoke_with_response_stream(FunctionName="function", Payload=b"{}")
        arrivals, chunks, done_at, complete = [], [], None, None
        for ev in answer["EventStream"]:
            if "PayloadChunk" in ev:
                chunks.append(ev["PayloadChunk"]["Payload"])
                arrivals.append(time.monotonic())
            if "InvokeComplete" in ev:
                complete, done_at = ev["InvokeComplete"], time.monotonic()
        assert b"".join(chunks) == b"chunk-0;chunk-1;chunk-2;"
        assert not complete.get("ErrorCode"), complete
        # the handler sleeps 0.5 s after each chunk: it ends 1.5 s after the first
        assert done_at - arrivals[0] >= 1.0, (arrivals, done_at)


def test_boto3_sees_a_mid_stream_error():
    peer_module("boto3", "pip install boto3")
    from emulator_harness import RunningEmulator

    with RunningEmulator({"app.py": APP}, handler="app.fails_mid_stream") as emu:
        events = list(emu.client().invoke_with_response_stream(FunctionName="function", Payload=b"{}")["EventStream"])
        chunks = b"".join(e["PayloadChunk"]["Payload"] for e in events if "PayloadChunk" in e)
        (complete,) = [e["InvokeComplete"] for e in events if "InvokeComplete" in e]
        assert chunks == b"partial "
        assert complete["ErrorCode"] == "ValueError"
        assert "broke after one chunk" in complete["ErrorDetails"]


def _rie_env():
    return {
        "PYTHONPATH": os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH", "")) if p),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": "20",
        "AWS_LAMBDA_RUNTIME_API": None,
        "_HANDLER": None,
        "LAMBDA_TASK_ROOT": None,
    }


@pytest.mark.parametrize("handler, body", [("chunks", "hello wörld and more".encode()), ("writer", b"one two")])
def test_official_emulator_accepts_streamed_responses(rie, tmp_path, handler, body):
    (tmp_path / "app.py").write_text(APP, encoding="utf-8")
    cmd = [sys.executable, "-m", "lambdaric", "app." + handler]
    with start_rie(cmd, cwd=tmp_path, env=_rie_env(), rie=rie) as emu:
        for _ in range(2):  # and the runtime carries on with the next invoke
            status, _, answer = emu.invoke({}, timeout=60)
            assert (status, answer) == (200, body), emu.output()
        assert "panic" not in emu.output().lower()


def test_official_emulator_accepts_a_mid_stream_error(rie, tmp_path):
    (tmp_path / "app.py").write_text(APP, encoding="utf-8")
    cmd = [sys.executable, "-m", "lambdaric", "app.fails_mid_stream"]
    with start_rie(cmd, cwd=tmp_path, env=_rie_env(), rie=rie) as emu:
        status, _, answer = emu.invoke({}, timeout=60)
        assert (status, answer) == (200, b"partial "), emu.output()  # it ignores the trailers (notes: rie-observed)
        assert "[ERROR] ValueError: broke after one chunk" in emu.output()


# --------------------------------------------------------------------------- pure logic


def test_http_response_checks_its_values():
    from lambdaric.streaming import HttpResponse

    assert HttpResponse().prelude() == b'{"statusCode":200,"headers":{},"cookies":[]}' + b"\0" * 8
    assert HttpResponse(204, {"a": "b"}, ("c=d",)) == HttpResponse(status_code=204, headers={"a": "b"}, cookies=["c=d"])
    for bad in (99, 600, "200", True, 200.0):
        with pytest.raises(ValueError, match="status_code must be an int from 100 to 599"):
            HttpResponse(bad)
    with pytest.raises(ValueError, match="header name must be a non-empty HTTP token"):
        HttpResponse(headers={"Bad Name": "x"})
    with pytest.raises(ValueError, match="must not contain CR, LF or NUL"):
        HttpResponse(headers={"X-A": "a\r\nSet-Cookie: evil"})
    with pytest.raises(TypeError, match="header X-A must be a str, not int"):
        HttpResponse(headers={"X-A": 1})
    with pytest.raises(TypeError, match="cookies must be a list of str"):
        HttpResponse(cookies="a=b")
    with pytest.raises(ValueError, match="cookie must not contain"):
        HttpResponse(cookies=["a=b\n"])


def test_streaming_handler_decorator():
    calls = []

    @lambdaric.streaming_handler
    def handler(event, context, stream):
        """Doc."""
        calls.append((event, context, stream))

    assert handler.__name__ == "handler" and handler.__doc__ == "Doc." and handler.__wrapped__ is not None
    handler(1, 2, [])  # with a stream (as a test passes one): the function itself
    assert calls == [(1, 2, [])]
    call = handler(1, 2)  # as the runtime calls it: nothing runs until the runtime hands it the stream
    assert type(call).__name__ == "StreamingCall" and type(call).lambdaric_streamed and (call.event, call.context) == (1, 2)
    assert len(calls) == 1

    def gen(event, context):
        yield b"x"

    with pytest.raises(TypeError, match="is a generator function: it streams what it yields without @streaming_handler"):
        lambdaric.streaming_handler(gen)
    with pytest.raises(TypeError, match="streaming_handler takes a function, not int"):
        lambdaric.streaming_handler(1)


def test_streaming_is_not_imported_on_the_startup_path():
    code = "import sys, lambdaric, lambdaric.bootstrap; print('lambdaric.streaming' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
