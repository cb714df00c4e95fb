"""The built-in emulator through real clients: boto3's Lambda client (botocore parses every
answer against the service model) and raw HTTP for exact headers (issue 3)."""
import base64
import http.client
import json
import os
import signal
import threading
import time

import pytest

from peers import peer_module

from emulator_harness import RunningEmulator, children_of

boto3 = peer_module("boto3", "pip install boto3")
from botocore.exceptions import ClientError  # noqa: E402

APP = {
    "app.py": """
        import json, os, sys, time

        def handler(event, context):
            kind = event.get("kind") if isinstance(event, dict) else None
            if kind == "boom":
                raise ValueError("bad thing")
            if kind == "sleep":
                time.sleep(event["seconds"])
            if kind == "exit":
                os._exit(7)
            if kind == "big":
                return "x" * event["size"]
            if kind == "marker":
                with open(event["path"] + ".tmp", "w") as f:
                    f.write(context.aws_request_id)
                os.replace(event["path"] + ".tmp", event["path"])  # appears whole, never half-written
            print("log line from", context.aws_request_id)
            cc = context.client_context
            return {
                "event": event,
                "rid": context.aws_request_id,
                "arn": context.invoked_function_arn,
                "trace": os.environ.get("_X_AMZN_TRACE_ID"),
                "tenant": context.tenant_id,
                "custom": cc.custom if cc else None,
                "pid": os.getpid(),
            }
    """
}


@pytest.fixture(scope="module")
def emu():
    with RunningEmulator(APP) as running:
        yield running


def invoke(client, payload, **kwargs):
    answer = client.invoke(FunctionName="function", Payload=json.dumps(payload).encode(), **kwargs)
    return answer, answer["Payload"].read()


def test_request_response(emu):
    answer, body = invoke(emu.client(), {"x": 1})
    assert answer["StatusCode"] == 200 and "FunctionError" not in answer
    assert answer["ExecutedVersion"] == "$LATEST"
    assert answer["ResponseMetadata"]["HTTPHeaders"]["date"].endswith(" GMT")
    got = json.loads(body)
    assert got["event"] == {"x": 1}
    assert got["rid"] == answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert got["arn"] == "arn:aws:lambda:us-east-1:123456789012:function:function"
    assert got["trace"].startswith("Root=1-")


def test_any_function_name_and_qualifier(emu):
    answer = emu.client().invoke(FunctionName="other-name", Qualifier="3", Payload=b"{}")
    got = json.loads(answer["Payload"].read())
    assert got["arn"].endswith(":function:other-name:3") and answer["ExecutedVersion"] == "3"


def test_function_name_forms(emu):
    client = emu.client()
    for name in ("arn:aws:lambda:us-east-1:123456789012:function:fn1", "123456789012:function:fn2:7", "fn3:live"):
        got = json.loads(client.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())
        assert got["arn"].split(":function:")[1] in ("fn1", "fn2:7", "fn3:live")
    conn = http.client.HTTPConnection(emu.base[len("http://"):], timeout=30)
    conn.request("POST", "/2015-03-31/functions/bad%20name%0d%0a/invocations", b"{}")
    response = conn.getresponse()
    assert response.status == 400 and response.getheader("X-Amzn-ErrorType") == "InvalidParameterValueException"
    response.read()
    conn.request("POST", "/2015-03-31/functions/function/invocations?Qualifier=1%0d%0aX-Injected:%20yes", b"{}")
    response = conn.getresponse()
    assert response.status == 400 and response.getheader("X-Injected") is None


def test_function_error_is_unhandled(emu):
    answer, body = invoke(emu.client(), {"kind": "boom"})
    assert answer["StatusCode"] == 200 and answer["FunctionError"] == "Unhandled"
    error = json.loads(body)
    assert list(error) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert error["errorType"] == "ValueError" and error["errorMessage"] == "bad thing"


def test_log_tail(emu):
    answer, _ = invoke(emu.client(), {"x": 2}, LogType="Tail")
    log = base64.b64decode(answer["LogResult"]).decode()
    rid = answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert "START RequestId: %s Version: $LATEST" % rid in log
    assert "log line from %s" % rid in log
    assert "END RequestId: %s" % rid in log
    assert "REPORT RequestId: %s\tDuration: " % rid in log and "Max Memory Used: " in log


def test_event_and_dry_run(emu, tmp_path):
    marker = tmp_path / "marker.txt"
    answer = emu.client().invoke(
        FunctionName="function", InvocationType="Event", Payload=json.dumps({"kind": "marker", "path": str(marker)}).encode()
    )
    assert answer["StatusCode"] == 202 and answer["Payload"].read() == b""
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.read_text() == answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    answer = emu.client().invoke(FunctionName="function", InvocationType="DryRun", Payload=b"{}")
    assert answer["StatusCode"] == 204


def test_client_context_tenant_and_trace(emu):
    context = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    answer, body = invoke(emu.client(), {}, ClientContext=context, TenantId="tenant-7")
    got = json.loads(body)
    assert got["custom"] == {"k": "v"} and got["tenant"] == "tenant-7"
    conn = http.client.HTTPConnection(emu.base[len("http://"):], timeout=30)
    conn.request("POST", "/2015-03-31/functions/function/invocations", b"{}", {"X-Amzn-Trace-Id": "Root=1-5e1b4151-5ac6c58f5b5dbd6a8b1a8d1e;Sampled=1"})
    assert json.loads(conn.getresponse().read())["trace"] == "Root=1-5e1b4151-5ac6c58f5b5dbd6a8b1a8d1e;Sampled=1"


def test_invalid_client_context_is_a_clear_400(emu):
    with pytest.raises(ClientError) as info:
        emu.client().invoke(FunctionName="function", Payload=b"{}", ClientContext="not base64!!")
    error = info.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert error["Error"]["Code"] == "InvalidRequestContentException"
    assert "Base64-encoded JSON" in error["Error"]["Message"]


def test_payload_over_limit_is_413(emu):
    with pytest.raises(ClientError) as info:
        emu.client().invoke(FunctionName="function", Payload=b'"' + b"x" * 6291556 + b'"')
    assert info.value.response["Error"]["Code"] == "RequestTooLargeException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_response_over_limit(emu):
    answer, body = invoke(emu.client(), {"kind": "big", "size": 6291556})
    assert answer["FunctionError"] == "Unhandled"
    assert json.loads(body)["errorType"] == "Function.ResponseSizeTooLarge"


def test_exit_mid_invoke_then_fresh_runtime(emu):
    client = emu.client()
    answer, body = invoke(client, {"kind": "exit"})
    error = json.loads(body)
    rid = answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert answer["FunctionError"] == "Unhandled"
    assert error == {"errorMessage": "RequestId: %s Error: Runtime exited with error: exit status 7" % rid, "errorType": "Runtime.ExitError"}
    answer, body = invoke(client, {"x": 3})
    assert json.loads(body)["event"] == {"x": 3}


def test_overlapping_invokes_each_get_their_own_answer(emu):
    results = {}

    def one(i):
        _, body = invoke(emu.client(), {"kind": "sleep", "seconds": 0.3, "i": i})
        results[i] = json.loads(body)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == list(range(8))
    assert all(results[i]["event"]["i"] == i for i in results)
    assert len({r["rid"] for r in results.values()}) == 8
    assert len({r["pid"] for r in results.values()}) > 1  # served by a pool


def test_timeout_then_reinit():
    with RunningEmulator(APP, env={"AWS_LAMBDA_FUNCTION_TIMEOUT": "1"}) as emu:
        client = emu.client()
        answer, body = invoke(client, {"kind": "sleep", "seconds": 5})
        rid = answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
        assert answer["FunctionError"] == "Unhandled"
        assert json.loads(body) == {"errorMessage": "RequestId: %s Error: Task timed out after 1.00 seconds" % rid, "errorType": "Sandbox.Timedout"}
        _, body = invoke(client, {"x": 4})
        assert json.loads(body)["event"] == {"x": 4}
        assert b"Task timed out after 1.00 seconds" in emu.stdout()


def test_init_error_returned_to_caller():
    with RunningEmulator({"app.py": "import nosuchdependency\n"}) as emu:
        answer, body = invoke(emu.client(), {})
        assert answer["FunctionError"] == "Unhandled"
        error = json.loads(body)
        assert error["errorType"] == "Runtime.ImportModuleError"
        assert error["errorMessage"] == "Unable to import module 'app': No module named 'nosuchdependency'"


def test_queue_full_is_429():
    with RunningEmulator(APP, args=["--concurrency", "1", "--queue", "1"]) as emu:
        statuses = []

        def one():
            conn = http.client.HTTPConnection(emu.base[len("http://"):], timeout=30)
            conn.request("POST", "/2015-03-31/functions/function/invocations", json.dumps({"kind": "sleep", "seconds": 0.5}))
            response = conn.getresponse()
            statuses.append((response.status, response.getheader("X-Amzn-ErrorType")))

        threads = [threading.Thread(target=one) for _ in range(4)]
        for t in threads:
            t.start()
            time.sleep(0.05)
        for t in threads:
            t.join(30)
        assert statuses.count((200, None)) == 2
        assert statuses.count((429, "TooManyRequestsException")) == 2


def test_binds_loopback_by_default_and_sigterm_leaves_no_orphans():
    with RunningEmulator(APP) as emu:
        invoke(emu.client(), {})
        kids = children_of(emu.proc.pid)
        assert kids  # a runtime is running
        assert emu.stop(signal.SIGTERM) == 0
        time.sleep(0.2)
        assert all(not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z" for pid in kids)
    from lambdaric.emulator.cli import DEFAULT_LISTEN

    assert DEFAULT_LISTEN == "127.0.0.1:8080"


def test_watch_restarts_on_change(tmp_path):
    (tmp_path / "app.py").write_text("def handler(e, c):\n    return 'v1'\n")
    with RunningEmulator({}, args=["--watch"], cwd=str(tmp_path)) as emu:
        client = emu.client()
        assert invoke(client, {})[1] == b'"v1"'
        app = tmp_path / "app.py"
        mtime = app.stat().st_mtime
        app.write_text("def handler(e, c):\n    return 'v2'\n")
        os.utime(app, (mtime + 2, mtime + 2))  # a new mtime at once, whatever the file system's granularity
        deadline = time.monotonic() + 10
        body = b""
        while time.monotonic() < deadline:
            body = invoke(client, {})[1]
            if body == b'"v2"':
                break
            time.sleep(0.2)
        assert body == b'"v2"'


def test_awslambdaric_behind_our_emulator():
    peer_module("awslambdaric", "pip install awslambdaric")
    import sys

    with RunningEmulator(APP, handler=None, args=["--command", "%s -m awslambdaric app.handler" % sys.executable]) as emu:
        answer, body = invoke(emu.client(), {"x": 5})
        assert json.loads(body)["event"] == {"x": 5}
        answer, body = invoke(emu.client(), {"kind": "boom"})
        assert answer["FunctionError"] == "Unhandled" and json.loads(body)["errorType"] == "ValueError"
        # the official client posts oversized results as they are: the emulator's Runtime API refuses them (413)
        answer, body = invoke(emu.client(), {"kind": "big", "size": 6291556})
        error = json.loads(body)
        assert answer["FunctionError"] == "Unhandled" and error["errorType"] == "Function.ResponseSizeTooLarge"
        assert error["errorMessage"] == (
            "Response payload size (6291558 bytes) exceeded maximum allowed payload size (6291556 bytes)."
        )


def test_eager_init_and_sigint():
    with RunningEmulator(APP, args=["--eager"]) as emu:
        deadline = time.monotonic() + 10
        while not children_of(emu.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert children_of(emu.proc.pid), "--eager did not start a runtime before the first invoke"
        answer, _ = invoke(emu.client(), {}, LogType="Tail")
        assert "Init Duration" in base64.b64decode(answer["LogResult"]).decode()
        assert emu.stop(signal.SIGINT) == 0


LATE = r'''
import http.client, json, os, time
API = os.environ["AWS_LAMBDA_RUNTIME_API"]
conn = http.client.HTTPConnection(API)
conn.request("GET", "/2018-06-01/runtime/invocation/next")
resp = conn.getresponse(); resp.read()
rid = resp.getheader("Lambda-Runtime-Aws-Request-Id")
time.sleep(1.0)  # past the 0.5 s timeout
conn = http.client.HTTPConnection(API)
conn.request("POST", "/2018-06-01/runtime/invocation/%s/response" % rid, b'"late"')
late = conn.getresponse()
with open(os.environ["PROBE_OUT"], "w") as f:
    json.dump([late.status, json.loads(late.read())], f)
time.sleep(30)
'''


def test_late_answer_after_timeout_is_410(tmp_path):
    out = tmp_path / "late.json"
    args = ["--command", "%s late.py" % __import__("sys").executable, "--max-concurrency", "2", "--timeout", "0.5"]
    with RunningEmulator({"late.py": LATE}, handler=None, args=args, env={"PROBE_OUT": str(out)}) as emu:
        answer, body = invoke(emu.client(), {})
        assert json.loads(body)["errorType"] == "Sandbox.Timedout"
        deadline = time.monotonic() + 10
        while not out.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    status, error = json.loads(out.read_text())
    assert status == 410 and error["errorType"] == "InvokeTimeout"
