"""Several functions in one emulator, their environment, and Lambda's edge cases (issue 19),
through the wire: real ``python -m lambdaric`` processes on loopback, boto3 as the client
(botocore parses each answer against Lambda's service model), raw HTTP for exact bytes."""
import base64
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from peers import peer_module

from emulator_harness import REPO, RunningEmulator

from lambdaric.protocol import MAX_PAYLOAD

boto3 = peer_module("boto3", "pip install boto3")
from botocore.exceptions import ClientError  # noqa: E402

APP = {
    "app.py": """
        import os, time

        def handler(event, context):
            if isinstance(event, dict) and event.get("sleep"):
                time.sleep(event["sleep"])
            return {
                "event": event,
                "name": context.function_name,
                "arn": context.invoked_function_arn,
                "memory": context.memory_limit_in_mb,
                "remaining_ms": context.get_remaining_time_in_millis(),
                "group": context.log_group_name,
                "pid": os.getpid(),
                "trace": os.environ.get("_X_AMZN_TRACE_ID"),
                "env": {k: v for k, v in os.environ.items()
                        if k in ("TZ", "STAGE", "TABLE", "OWN", "QUOTED", "MULTI", "AWS_EXECUTION_ENV", "AWS_XRAY_DAEMON_ADDRESS",
                                 "_AWS_XRAY_DAEMON_ADDRESS", "_AWS_XRAY_DAEMON_PORT", "AWS_XRAY_CONTEXT_MISSING",
                                 "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_FUNCTION_NAME", "_HANDLER")},
            }

        other = handler
    """,
    "functions.json": """
        {"functions": {
            "orders": {"handler": "app.handler", "timeout": 30, "memory": 512, "environment": {"TABLE": "orders", "STAGE": "config"}},
            "thumbs": {"handler": "app.other", "timeout": 1, "memory": 1024, "concurrency": 1, "tracing": "Active"}
        }}
    """,
    "env.json": """
        {"Parameters": {"STAGE": "common"}, "orders": {"OWN": "orders-only"}}
    """,
    ".env": """
        # the dotenv shape
        export STAGE=dotenv
        QUOTED='a # b'
        MULTI="one
        two"
    """,
}
ARN = "arn:aws:lambda:us-east-1:123456789012:function:"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


@pytest.fixture(scope="module")
def emu():
    """Three functions: two from the file (one with active tracing), one from --function;
    the env.json gives common and per-function variables; no runtime may wait in a queue."""
    args = ["--functions", "functions.json", "--function", "plain=app.handler", "--env-file", "env.json", "--queue", "0"]
    with RunningEmulator(APP, handler=None, args=args) as running:
        yield running


def call(client, name, payload=b"{}", **kwargs):
    answer = client.invoke(FunctionName=name, Payload=payload, **kwargs)
    return answer, json.loads(answer["Payload"].read())


def post(emu, path, body=b"{}", headers=None):
    conn = http.client.HTTPConnection(emu.base[len("http://"):], timeout=30)
    try:
        conn.request("POST", path, body, headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_the_banner_lists_each_function(emu):
    lines = [line for line in emu.stderr().decode().splitlines() if " serving " in line]
    assert lines == [  # --function options first, then the file's functions in its order
        "lambdaric: serving plain (app.handler) on %s/2015-03-31/functions/plain/invocations" % emu.base,
        "lambdaric: serving orders (app.handler) on %s/2015-03-31/functions/orders/invocations" % emu.base,
        "lambdaric: serving thumbs (app.other) on %s/2015-03-31/functions/thumbs/invocations (Ctrl-C to stop)" % emu.base,
    ]


def test_each_function_has_its_own_settings_and_environment(emu):
    client = emu.client()
    _, orders = call(client, "orders")
    _, thumbs = call(client, "thumbs")
    _, plain = call(client, "plain")
    assert [(g["name"], g["arn"], g["memory"], g["group"]) for g in (orders, thumbs, plain)] == [
        ("orders", ARN + "orders", "512", "/aws/lambda/orders"),
        ("thumbs", ARN + "thumbs", "1024", "/aws/lambda/thumbs"),
        ("plain", ARN + "plain", "3008", "/aws/lambda/plain"),
    ]
    assert 25000 < orders["remaining_ms"] <= 30000 and thumbs["remaining_ms"] <= 1000 and 290000 < plain["remaining_ms"]
    # the env file's function section, then its Parameters, win over the functions file's environment
    assert (orders["env"]["STAGE"], orders["env"]["TABLE"], orders["env"]["OWN"]) == ("common", "orders", "orders-only")
    assert (thumbs["env"]["STAGE"], "OWN" in thumbs["env"]) == ("common", False)
    assert (thumbs["env"]["_HANDLER"], plain["env"]["_HANDLER"]) == ("app.other", "app.handler")
    assert len({orders["pid"], thumbs["pid"], plain["pid"]}) == 3  # a runtime of its own each


def test_names_partial_and_full_arns_and_qualifiers_route(emu):
    client = emu.client()
    for name, arn, version in (
        (ARN + "orders", ARN + "orders", "$LATEST"),
        (ARN + "orders:7", ARN + "orders:7", "7"),
        ("123456789012:function:thumbs", ARN + "thumbs", "$LATEST"),
        ("plain:live", ARN + "plain:live", "$LATEST"),
    ):
        answer, got = call(client, name)
        assert (got["name"], got["arn"], answer["ExecutedVersion"]) == (name.split(":function:")[-1].split(":")[0], arn, version)
    answer, got = call(client, "orders", Qualifier="3")
    assert (got["arn"], answer["ExecutedVersion"]) == (ARN + "orders:3", "3")
    status, _, body = post(emu, "/2015-03-31/functions/%s/invocations" % "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Aplain")
    assert status == 200 and json.loads(body)["name"] == "plain"


@pytest.mark.parametrize("name, message", [
    ("nosuch", "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nosuch"),
    ("function", "Function not found: arn:aws:lambda:us-east-1:123456789012:function:function"),  # no catch-all with named functions
    ("Orders", "Function not found: arn:aws:lambda:us-east-1:123456789012:function:Orders"),  # names are case-sensitive
    ("nosuch:3", "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nosuch"),
    ("arn:aws:lambda:eu-west-1:123456789012:function:orders", "Functions from 'eu-west-1' are not reachable in this region ('us-east-1')"),
    ("arn:aws:lambda:us-east-1:999999999999:function:orders", "Function not found: arn:aws:lambda:us-east-1:999999999999:function:orders"),
    ("999999999999:function:orders", "Function not found: arn:aws:lambda:us-east-1:999999999999:function:orders"),
])
def test_unknown_functions_are_lambdas_404(emu, name, message):
    with pytest.raises(ClientError) as info:
        emu.client().invoke(FunctionName=name, Payload=b"{}")
    error = info.value.response
    assert (error["Error"]["Code"], error["Error"]["Message"], error["ResponseMetadata"]["HTTPStatusCode"]) == (
        "ResourceNotFoundException", message, 404)
    with pytest.raises(ClientError) as info:  # the streaming API and the other invocation types say the same
        emu.client().invoke_with_response_stream(FunctionName=name, Payload=b"{}")
    assert info.value.response["Error"]["Message"] == message
    for kind in ("Event", "DryRun"):
        with pytest.raises(ClientError) as info:
            emu.client().invoke(FunctionName=name, InvocationType=kind, Payload=b"{}")
        assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_the_404_bytes(emu):
    status, headers, body = post(emu, "/2015-03-31/functions/nosuch/invocations")
    assert status == 404
    assert body == b'{"Type": "User", "message": "Function not found: arn:aws:lambda:us-east-1:123456789012:function:nosuch"}'
    assert (headers["Content-Type"], headers["X-Amzn-ErrorType"]) == ("application/json", "ResourceNotFoundException")
    assert re.fullmatch(UUID, headers["X-Amzn-RequestId"])


@pytest.mark.parametrize("path, status, error_type", [
    ("/2015-03-31/functions/bad%20name/invocations", 400, "InvalidParameterValueException"),
    ("/2015-03-31/functions/arn:aws:lambda:us-east-1:1234:function:orders/invocations", 400, "InvalidParameterValueException"),
    ("/2015-03-31/functions/%s/invocations" % ("x" * 141), 400, "InvalidParameterValueException"),
    ("/2015-03-31/functions/orders%0d%0aX-Injected:%20yes/invocations", 400, "InvalidParameterValueException"),
    ("/2015-03-31/functions/orders/invocations?Qualifier=%0d%0a", 400, "InvalidParameterValueException"),
    ("/2015-03-31/functions/orders/nope", 404, "ResourceNotFoundException"),
])
def test_invalid_names_are_400(emu, path, status, error_type):
    got_status, headers, body = post(emu, path)
    assert (got_status, headers["X-Amzn-ErrorType"]) == (status, error_type)
    assert "X-Injected" not in headers and json.loads(body)["Type"] == "User"


def test_oversized_payload_to_a_named_function_is_413(emu):
    status, headers, _ = post(emu, "/2015-03-31/functions/orders/invocations", b"x" * (MAX_PAYLOAD + 1))
    assert (status, headers["X-Amzn-ErrorType"]) == (413, "RequestTooLargeException")
    answer, got = call(emu.client(), "orders")  # and the emulator goes on
    assert got["name"] == "orders"


def test_each_function_times_out_on_its_own_timeout(emu):
    client = emu.client()
    answer = client.invoke(FunctionName="thumbs", Payload=b'{"sleep": 2}', LogType="Tail")
    error = json.loads(answer["Payload"].read())
    assert answer["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Sandbox.Timedout" and error["errorMessage"].endswith("Task timed out after 1.00 seconds")
    log = base64.b64decode(answer["LogResult"]).decode()
    assert "Task timed out after 1.00 seconds" in log and "\tMemory Size: 1024 MB\t" in log
    _, got = call(client, "orders", b'{"sleep": 1.5}')  # orders' 30 s are its own
    assert got["event"] == {"sleep": 1.5}


def test_concurrent_invokes_to_two_functions(emu):
    """The functions' pools are apart: thumbs (one runtime, no queue) refuses a second
    overlapping invoke with 429 while orders serves as many as come; nothing is lost or
    crossed. (Raw HTTP: boto3 would retry the 429.)"""
    results = {}

    def one(key, name, payload):
        status, headers, body = post(emu, "/2015-03-31/functions/%s/invocations" % name, json.dumps(payload).encode())
        results[key] = (status, headers.get("X-Amzn-ErrorType"), json.loads(body))

    call(emu.client(), "thumbs")  # warm
    threads = [threading.Thread(target=one, args=("thumbs-%d" % i, "thumbs", {"sleep": 0.6, "i": i})) for i in range(2)]
    threads += [threading.Thread(target=one, args=("orders-%d" % i, "orders", {"sleep": 0.6, "i": i})) for i in range(4)]
    started = time.monotonic()
    starts = emu.stdout().count(b"START RequestId")
    for t in threads:
        t.start()
        while t is threads[0] and emu.stdout().count(b"START RequestId") == starts and time.monotonic() - started < 5:
            time.sleep(0.01)  # thumbs' first invoke has its runtime before the second comes
    for t in threads:
        t.join(30)
    assert time.monotonic() - started < 5
    status, _, got = results["thumbs-0"]
    assert (status, got["name"], got["event"]) == (200, "thumbs", {"sleep": 0.6, "i": 0})
    assert results["thumbs-1"] == (429, "TooManyRequestsException", {"Type": "User", "message": "Rate Exceeded."})
    for i in range(4):
        status, _, got = results["orders-%d" % i]
        assert (status, got["name"], got["event"]) == (200, "orders", {"sleep": 0.6, "i": i})


def test_empty_body_is_the_event_empty_object(emu):
    """Lambda hands an invoke without a payload the event {} (docs/emulator.md); boto3 sends
    no body when Payload is left out."""
    answer = emu.client().invoke(FunctionName="orders")
    assert json.loads(answer["Payload"].read())["event"] == {}
    status, _, body = post(emu, "/2015-03-31/functions/plain/invocations", b"", {"Content-Length": "0"})
    assert status == 200 and json.loads(body)["event"] == {}
    stream = emu.client().invoke_with_response_stream(FunctionName="plain")
    chunks = b"".join(e["PayloadChunk"]["Payload"] for e in stream["EventStream"] if "PayloadChunk" in e)
    assert json.loads(chunks)["event"] == {}


def test_the_environment_lambda_sets(emu):
    _, got = call(emu.client(), "orders")
    assert got["env"] == {
        "TZ": ":UTC",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
        "_AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129",
        "_AWS_XRAY_DAEMON_PORT": "2000",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_LAMBDA_FUNCTION_NAME": "orders",
        "_HANDLER": "app.handler",
        "STAGE": "common",
        "TABLE": "orders",
        "OWN": "orders-only",
    }  # and no AWS_EXECUTION_ENV: Lambda sets none for container images


def test_active_tracing_samples_invokes_sent_without_a_trace(emu):
    _, traced = call(emu.client(), "thumbs")  # "tracing": "Active"
    _, passthrough = call(emu.client(), "orders")
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=1", traced["trace"]), traced["trace"]
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0", passthrough["trace"])
    given = "Root=1-5e1b4151-5ac6c58f5b5dbd6a8b1a8d1e;Parent=53995c3f42cd8ad8;Sampled=0"
    status, _, body = post(emu, "/2015-03-31/functions/thumbs/invocations", b"{}", {"X-Amzn-Trace-Id": given})
    assert json.loads(body)["trace"] == given  # a caller's header is the caller's decision


def test_xray_sampled_option_and_a_local_daemon_address():
    env = {"AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2999"}
    with RunningEmulator(APP, args=["--xray-sampled"], env=env) as emu:
        _, got = call(emu.client(), "any-name-at-all")
    assert got["trace"].endswith(";Sampled=1")
    assert (got["env"]["AWS_XRAY_DAEMON_ADDRESS"], got["env"]["_AWS_XRAY_DAEMON_ADDRESS"], got["env"]["_AWS_XRAY_DAEMON_PORT"]) == (
        "127.0.0.1:2999", "127.0.0.1", "2999")


def test_dotenv_file_and_one_unnamed_function():
    """One unnamed function keeps taking every name (the ARN is the name called); a dotenv
    file's variables reach it."""
    with RunningEmulator(APP, args=["--env-file", ".env"]) as emu:
        _, got = call(emu.client(), "called-so")
        assert (got["name"], got["arn"]) == ("function", ARN + "called-so")
        assert (got["env"]["STAGE"], got["env"]["QUOTED"], got["env"]["MULTI"]) == ("dotenv", "a # b", "one\ntwo")
        banner = [line for line in emu.stderr().decode().splitlines() if " serving " in line]
        assert banner == ["lambdaric: serving app.handler on %s/2015-03-31/functions/function/invocations (Ctrl-C to stop)" % emu.base]


def test_one_named_function_is_found_by_name_only():
    with RunningEmulator(APP, handler=None, args=["--function", "only=app.handler"]) as emu:
        _, got = call(emu.client(), "only")
        assert got["name"] == "only"
        with pytest.raises(ClientError) as info:
            emu.client().invoke(FunctionName="function", Payload=b"{}")
        assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_watch_restarts_every_functions_runtimes(tmp_path):
    with RunningEmulator(APP, handler=None, args=["--function", "a=app.handler", "--function", "b=app.handler", "--watch"]) as emu:
        before = {name: call(emu.client(), name)[1]["pid"] for name in ("a", "b")}
        time.sleep(0.6)  # a change within the first poll interval would be in its first snapshot
        with open(os.path.join(emu.cwd, "touched.py"), "w") as f:
            f.write("# changed\n")
        deadline = time.monotonic() + 10
        while b"files changed, restarting the runtimes" not in emu.stderr() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert b"files changed, restarting the runtimes" in emu.stderr()
        after = {name: call(emu.client(), name)[1]["pid"] for name in ("a", "b")}
        assert before["a"] != after["a"] and before["b"] != after["b"], (before, after)


# ------------------------------------------------------------------ what cannot be served: exit 2, one line


def run_emulator(args, cwd, files=None):
    for name, text in (files or {}).items():
        with open(os.path.join(cwd, name), "wb") as f:
            f.write(text if isinstance(text, bytes) else text.encode())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA_", "_HANDLER", "LAMBDARIC_"))}
    env["PYTHONPATH"] = REPO
    return subprocess.run([sys.executable, "-m", "lambdaric", "--listen", "127.0.0.1:0"] + args, cwd=cwd, env=env,
                          capture_output=True, timeout=30, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("args, files, stderr", [
    (["app.handler", "--env-file", "bad.env"], {"bad.env": "A=1\nB\n"}, "lambdaric: bad.env:2: expected KEY=VALUE, got 'B'"),
    (["app.handler", "--env-file", "bad.env"], {"bad.env": "A='open\n"}, "lambdaric: bad.env:1: the single-quoted value is never closed"),
    (["app.handler", "--env-file", "bad.env"], {"bad.env": b"A=\xff\n"}, "lambdaric: bad.env:1: not UTF-8 text (byte 0xff)"),
    (["app.handler", "--env-file", "env.json"], {"env.json": '{"f": {"A": [1]}}'},
     "lambdaric: env.json: 'f', A: the value must be a string, number or boolean, not an array"),
    (["app.handler", "--env-file", "env.json"], {"env.json": '{"f": '}, "lambdaric: env.json:1:7: invalid JSON: Expecting value"),
    (["app.handler", "--env-file", "missing.env"], {}, "lambdaric: missing.env: cannot read it: No such file or directory"),
    (["--functions", "fn.json"], {"fn.json": '{"functions": {"a": {"handler": "x.y", "timout": 3}}}'},
     "lambdaric: fn.json: function 'a': unknown setting 'timout' (known: handler, command, timeout, memory, environment, "
     "concurrency, max_concurrency, snapstart, tracing, durable, execution_timeout)"),
    (["--functions", "fn.json"], {"fn.json": "[]"}, 'lambdaric: fn.json: expected {"functions": {NAME: {settings}, ...}}'),
    (["--function", "a=x.y", "--function", "a=x.z"], {}, "lambdaric: function 'a' is given twice"),
    (["--function", "arn:aws:lambda:us-east-1:123456789012:function:a=x.y"], {},
     "lambdaric: --function arn:aws:lambda:us-east-1:123456789012:function:a=x.y: invalid function name "
     "'arn:aws:lambda:us-east-1:123456789012:function:a' (1 to 64 letters, digits, - and _)"),
    ([], {}, "lambdaric: no handler given (pass module.function, set _HANDLER, give --function NAME=module.function, "
             "--functions FILE or --command)"),
])
def test_what_cannot_be_served_is_one_line_and_exit_2(tmp_path, args, files, stderr):
    out = run_emulator(args, str(tmp_path), files)
    assert (out.returncode, out.stdout, out.stderr.decode()) == (2, b"", stderr + "\n")


def test_sigterm_stops_every_functions_runtimes():
    with RunningEmulator(APP, handler=None, args=["--function", "a=app.handler", "--function", "b=app.handler"]) as emu:
        pids = [call(emu.client(), name)[1]["pid"] for name in ("a", "b")]
        assert emu.stop(signal.SIGTERM) == 0
    for pid in pids:
        assert not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split(")")[1].split()[0] == "Z"


XRAY_APP = {
    "app.py": """
        import os
        from aws_xray_sdk.core import xray_recorder

        def handler(event, context):
            with xray_recorder.in_subsegment("work"):
                pass
            return os.environ["_X_AMZN_TRACE_ID"]
    """
}


@pytest.mark.parametrize("sampled", [True, False])
def test_the_xray_sdk_sends_to_a_local_daemon_when_sampled(sampled):
    """The real X-Ray SDK in the function, a UDP socket on loopback as its daemon
    (``AWS_XRAY_DAEMON_ADDRESS``): with ``--xray-sampled`` the subsegment arrives, carrying the
    trace id the emulator made; without it the SDK sends nothing, as on Lambda without active tracing."""
    import socket

    peer_module("aws_xray_sdk.core", "pip install aws-xray-sdk, or the examples extra")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        daemon.settimeout(10 if sampled else 2)
        env = {"AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:%d" % daemon.getsockname()[1]}
        with RunningEmulator(XRAY_APP, args=["--xray-sampled"] if sampled else [], env=env) as emu:
            trace = json.loads(emu.client().invoke(FunctionName="function")["Payload"].read())
            assert trace.endswith(";Sampled=%d" % sampled), trace
            if not sampled:
                with pytest.raises(socket.timeout):
                    daemon.recvfrom(65536)
                return
            packet, _ = daemon.recvfrom(65536)
    header, _, body = packet.partition(b"\n")
    assert json.loads(header) == {"format": "json", "version": 1}
    segment = json.loads(body)
    assert (segment["name"], segment["type"]) == ("work", "subsegment")
    fields = dict(part.split("=", 1) for part in trace.split(";"))
    assert (segment["trace_id"], segment["parent_id"]) == (fields["Root"], fields["Parent"])


def test_emulator_invoke_routes_by_name_for_other_fronts(tmp_path):
    """``Emulator.invoke(name, inv)``, the entry point the HTTP front shares: the function's
    own timeout applies, an unknown name raises Lambda's 404 as :class:`Refused`."""
    import asyncio

    from lambdaric.emulator.environment import function_environment
    from lambdaric.emulator.functions import FunctionSettings
    from lambdaric.emulator.invocation import Invocation
    from lambdaric.emulator.invoke_api import Refused
    from lambdaric.emulator.server import Emulator, EmulatorSettings

    (tmp_path / "app.py").write_text("def handler(event, context):\n    return [context.function_name, event]\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA_", "_HANDLER", "LAMBDARIC_"))}
    base["PYTHONPATH"] = REPO

    def settings(name, timeout):
        env = function_environment(base, name=name, handler="app.handler", memory_mb=128, cwd=str(tmp_path))
        return FunctionSettings(name, [sys.executable, "-m", "lambdaric", "app.handler"], env, str(tmp_path),
                                handler="app.handler", memory_mb=128, timeout=timeout)

    async def main():
        emulator = Emulator(EmulatorSettings([settings("a", 7.0), settings("b", 9.0)], port=0), lambda data: None, lambda data: None)
        await emulator.start()
        try:
            assert emulator.function_names() == ["a", "b"]
            assert emulator.arn("b") == ARN + "b" and emulator.arn("b", "2") == ARN + "b:2"
            inv = Invocation(b'{"x": 1}', function_arn=emulator.arn("b"), timeout=1.0)
            outcome = await emulator.invoke("b", inv)
            assert (outcome.kind, json.loads(outcome.body), inv.timeout) == ("response", ["b", {"x": 1}], 9.0)
            with pytest.raises(Refused) as info:
                await emulator.invoke("c", Invocation(b"{}", function_arn=emulator.arn("c"), timeout=1.0))
            assert (info.value.status, info.value.error_type, info.value.message) == (
                404, "ResourceNotFoundException", "Function not found: " + ARN + "c")
        finally:
            await emulator.close()

    asyncio.run(main())
