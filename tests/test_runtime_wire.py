"""The core runtime through the wire: a real ``python -m lambdaric`` process against the
scripted Runtime API, asserting on the exact bytes it sends (issue 2)."""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import threading

from runtime_api import Event, Reply, RuntimeAPI, runtime_env

import lambdaric

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: run_runtime arguments that wait until the process exits on its own (or 20 s).
UNTIL_EXIT = {"expect_posts": 99, "timeout": 20}
UA = "lambdaric-python/%d.%d.%d-%s" % (sys.version_info[:3] + (lambdaric.__version__,))


def src(code):
    return textwrap.dedent(code).lstrip()


def one(result, path_suffix):
    matches = [r for r in result.posts if r.path.endswith(path_suffix)]
    assert len(matches) == 1, (path_suffix, [r.path for r in result.posts], result.stderr)
    return matches[0]


# --------------------------------------------------------------------------- entry


def test_help_and_version():
    # the transport lambdaric picks by itself (the suite may run with LAMBDARIC_TRANSPORT set)
    auto = {k: v for k, v in os.environ.items() if k != "LAMBDARIC_TRANSPORT"}
    out = subprocess.run([sys.executable, "-m", "lambdaric", "--help"], capture_output=True, cwd=ROOT, env=auto, timeout=30)
    assert out.returncode == 0 and b"usage: python -m lambdaric" in out.stdout
    out = subprocess.run([sys.executable, "-m", "lambdaric", "--version"], capture_output=True, cwd=ROOT, env=auto, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith(("lambdaric %s" % lambdaric.__version__).encode())
    # the transport it would use, so that a Dockerfile's RUN line can check the native module loaded
    native = importlib.util.find_spec("lambdaric._native") is not None
    assert b"transport: native, " in out.stdout if native else b"transport: python (native module unavailable: " in out.stdout
    # and the JSON codec (lambdaric._codec, else simplejson)
    codec = importlib.util.find_spec("lambdaric._codec") is not None
    assert out.stdout.endswith(b", codec: native\n") if codec else b", codec: simplejson (native codec unavailable: " in out.stdout
    env = dict(os.environ, LAMBDARIC_TRANSPORT="python")
    out = subprocess.run([sys.executable, "-m", "lambdaric", "-V"], capture_output=True, cwd=ROOT, env=env, timeout=30)
    expected = "lambdaric %s (Python %s), transport: python (LAMBDARIC_TRANSPORT=python), codec: %s\n"
    assert out.stdout == (expected % (lambdaric.__version__, sys.version.split()[0], "native" if codec else
                                      lambdaric.marshal.describe())).encode()


def test_runtime_help_lists_every_setting():
    """Under Lambda (AWS_LAMBDA_RUNTIME_API set) --help is the runtime's: one line per variable
    it reads, each within 80 columns."""
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API="127.0.0.1:9")
    out = subprocess.run([sys.executable, "-m", "lambdaric", "--help"], capture_output=True, cwd=ROOT, env=env, timeout=30)
    assert out.returncode == 0 and out.stderr == b""
    lines = out.stdout.decode().splitlines()
    listed = [line.split()[0] for line in lines[lines.index("environment:") + 1:] if line.strip()]
    assert listed == [
        "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDARIC_TRANSPORT", "LAMBDARIC_MALLOC_TUNE", "LAMBDARIC_ANSWER_TIMEOUT",
        "LAMBDARIC_RETRY_DELAYS", "AWS_LAMBDA_LOG_FORMAT", "AWS_LAMBDA_LOG_LEVEL", "AWS_LAMBDA_MAX_CONCURRENCY", "LAMBDARIC_CONCURRENCY_MODE",
        "LAMBDARIC_SIGTERM_EXTENSION", "AWS_LAMBDA_INITIALIZATION_TYPE",
    ]
    assert max(map(len, lines)) <= 80


def test_success_exact_bytes_and_keep_alive(run_runtime):
    files = {"app.py": "def handler(event, context):\n    return {'got': event, 'n': 1}\n"}
    events = [Event(body=b'{"x": 1}', request_id="req-1"), Event(body=b'{"x": 2}', request_id="req-2")]
    result = run_runtime(files, "app.handler", events, expect_posts=2)
    gets = [r for r in result.requests if r.method == "GET"]
    assert gets[0].raw.startswith(b"GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: 127.0.0.1:")
    assert gets[0].header("User-Agent") == UA
    first = result.posts[0]
    body = b'{"got": {"x": 1}, "n": 1}'
    assert first.path == "/2018-06-01/runtime/invocation/req-1/response"
    assert first.raw.endswith(
        b"\r\nUser-Agent: " + UA.encode() + b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        + body
    )
    assert result.posts[1].body == b'{"got": {"x": 2}, "n": 1}'
    # keep-alive: every request came over the first connection
    assert len({r.conn_id for r in result.requests}) == 1


def test_handler_from_env_and_task_root_on_sys_path(run_runtime, tmp_path):
    task = tmp_path / "task"
    task.mkdir()
    (task / "fn.py").write_text("import sys\ndef go(event, context):\n    return sys.path[:2]\n")
    result = run_runtime(
        {}, None, [Event()], env={"_HANDLER": "fn.go", "LAMBDA_TASK_ROOT": str(task)}, expect_posts=1
    )
    paths = json.loads(one(result, "/response").body)
    assert paths[0] == str(task)


@pytest.mark.parametrize(
    "files, handler, error_type, message",
    [
        ({}, "app", "Runtime.MalformedHandlerName", "Bad handler 'app': not enough values to unpack (expected 2, got 1)"),
        ({}, "sys.handler", "Runtime.BuiltInModuleConflict", "Cannot use built-in module sys as a handler module"),
        ({}, "nosuchmod.handler", "Runtime.ImportModuleError", "Unable to import module 'nosuchmod': No module named 'nosuchmod'"),
        ({"app.py": "x = 1\n"}, "app.nothere", "Runtime.HandlerNotFound", "Handler 'nothere' missing on module 'app'"),
        ({"app.py": "raise ValueError('boom at import')\n"}, "app.handler", "ValueError", "boom at import"),
    ],
)
def test_init_errors(run_runtime, files, handler, error_type, message):
    result = run_runtime(files, handler, [Event()], expect_posts=1)
    post = one(result, "/runtime/init/error")
    assert post.header("Lambda-Runtime-Function-Error-Type") == error_type
    error = json.loads(post.body)
    assert list(error) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert error["errorType"] == error_type and error["errorMessage"] == message and error["requestId"] == ""
    assert result.returncode == 1
    assert b"LAMBDA_WARNING: Unhandled exception." in result.stdout
    assert ("[ERROR] %s: %s" % (error_type, message)).encode() in result.stdout
    assert not [r for r in result.requests if r.path.endswith("/invocation/next")]


def test_syntax_error_trace(run_runtime):
    result = run_runtime({"app.py": "def handler(:\n    pass\n"}, "app.handler", [Event()], expect_posts=1)
    error = json.loads(one(result, "/runtime/init/error").body)
    assert error["errorType"] == "Runtime.UserCodeSyntaxError"
    assert error["errorMessage"].startswith("Syntax error in module 'app': invalid syntax")
    assert len(error["stackTrace"]) == 1 and " Line 1\n    def handler(:" in error["stackTrace"][0]


def test_import_error_inside_user_code_keeps_trace(run_runtime):
    result = run_runtime({"app.py": "import nosuchdependency\n"}, "app.handler", [Event()], expect_posts=1)
    error = json.loads(one(result, "/runtime/init/error").body)
    assert error["errorMessage"] == "Unable to import module 'app': No module named 'nosuchdependency'"
    assert len(error["stackTrace"]) == 1 and 'app.py", line 1, in <module>' in error["stackTrace"][0]


def test_not_callable_reported_at_init(run_runtime):
    result = run_runtime({"app.py": "handler = 5\n"}, "app.handler", [Event()], expect_posts=1)
    post = one(result, "/runtime/init/error")
    assert post.header("Lambda-Runtime-Function-Error-Type") == "Runtime.HandlerNotFound"
    assert "is not callable" in json.loads(post.body)["errorMessage"]


def test_slash_and_dot_module_paths(run_runtime):
    files = {"pkg/sub/app.py": "def handler(e, c):\n    return __name__\n"}
    for handler in ("pkg/sub/app.handler", "pkg.sub.app.handler"):
        result = run_runtime(files, handler, [Event()], expect_posts=1)
        assert one(result, "/response").body == b'"pkg.sub.app"'


# --------------------------------------------------------------------------- invoke loop


def test_invocation_id_echo_trace_env_and_tenant(run_runtime):
    files = {
        "app.py": src(
            """
            import os
            def handler(event, context):
                return [os.environ.get("_X_AMZN_TRACE_ID"), context.tenant_id]
            """
        )
    }
    events = [
        Event(request_id="r1", headers={"Lambda-Runtime-Trace-Id": "Root=1-abc;Sampled=1", "Lambda-Runtime-Invocation-Id": "inv-1", "Lambda-Runtime-Aws-Tenant-Id": "t1"}),
        Event(request_id="r2"),
    ]
    result = run_runtime(files, "app.handler", events, expect_posts=2)
    first, second = result.posts
    assert first.header("Lambda-Runtime-Invocation-Id") == "inv-1"
    assert json.loads(first.body) == ["Root=1-abc;Sampled=1", "t1"]
    assert second.header("Lambda-Runtime-Invocation-Id") is None
    assert json.loads(second.body) == [None, None]


def test_410_is_not_fatal(run_runtime):
    files = {"app.py": "def handler(e, c):\n    return e\n"}
    with RuntimeAPI([Event(request_id="r1", body=b"1"), Event(request_id="r2", body=b"2")]) as api:
        api.script("/invocation/r1/response", Reply(410, b'{"errorMessage":"Invoke timeout","errorType":"InvokeTimeout"}'))
        result = run_runtime(files, "app.handler", api=api, expect_posts=2)
    assert [p.path.split("/")[-2] for p in result.posts] == ["r1", "r2"]
    assert b"410" in result.stderr


def test_500_on_response_exits_promptly(run_runtime):
    files = {"app.py": "def handler(e, c):\n    return e\n"}
    with RuntimeAPI([Event(request_id="r1")]) as api:
        api.script("/invocation/r1/response", Reply(500, b'{"errorMessage":"boom","errorType":"ServiceException"}'))
        result = run_runtime(files, "app.handler", api=api, **UNTIL_EXIT)
    assert result.returncode == 1 and b"answered 500" in result.stderr


def test_context_object_complete(run_runtime):
    files = {
        "app.py": src(
            """
            def handler(event, context):
                cc = context.client_context
                return {
                    "rid": context.aws_request_id, "name": context.function_name,
                    "version": context.function_version, "arn": context.invoked_function_arn,
                    "mem": context.memory_limit_in_mb, "group": context.log_group_name,
                    "stream": context.log_stream_name, "tenant": context.tenant_id,
                    "cid": context.identity.cognito_identity_id, "pool": context.identity.cognito_identity_pool_id,
                    "client": [cc.client.installation_id, cc.client.app_title, cc.client.app_version_name,
                               cc.client.app_version_code, cc.client.app_package_name],
                    "custom": cc.custom, "env": cc.env, "w3c": context.w3c(),
                    "remaining_ok": 0 < context.get_remaining_time_in_millis() <= 300000,
                }
            """
        )
    }
    client_context = {
        "client": {"installation_id": "i", "app_title": "t", "app_version_name": "vn", "app_version_code": "vc", "app_package_name": "p"},
        "custom": {"k": "v", "w3c": {"traceparent": "00-abc-def-01", "tracestate": "x=y", "baggage": "b=1", "other": "z"}},
        "env": {"e": "1"},
    }
    event = Event(
        request_id="r1",
        headers={
            "Lambda-Runtime-Client-Context": json.dumps(client_context),
            "Lambda-Runtime-Cognito-Identity": '{"cognitoIdentityId":"id1","cognitoIdentityPoolId":"pool1"}',
            "Lambda-Runtime-Aws-Tenant-Id": "t1",
        },
    )
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": "fn",
        "AWS_LAMBDA_FUNCTION_VERSION": "7",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[7]abc",
    }
    result = run_runtime(files, "app.handler", [event], env=env, expect_posts=1)
    got = json.loads(one(result, "/response").body)
    assert got == {
        "rid": "r1", "name": "fn", "version": "7", "arn": event.function_arn, "mem": "512",
        "group": "/aws/lambda/fn", "stream": "2024/01/01/[7]abc", "tenant": "t1", "cid": "id1", "pool": "pool1",
        "client": ["i", "t", "vn", "vc", "p"], "custom": {"k": "v"}, "env": {"e": "1"},
        "w3c": {"traceparent": "00-abc-def-01", "tracestate": "x=y", "baggage": "b=1"}, "remaining_ok": True,
    }


def test_context_defaults_when_headers_absent(run_runtime):
    files = {"app.py": "def handler(e, c):\n    return [c.client_context, c.identity.cognito_identity_id, c.tenant_id, c.w3c()]\n"}
    result = run_runtime(files, "app.handler", [Event()], expect_posts=1)
    assert json.loads(one(result, "/response").body) == [None, None, None, {}]


@pytest.mark.parametrize(
    "header, message",
    [
        ("Lambda-Runtime-Client-Context", "Unable to parse Client Context JSON: Expecting value: line 1 column 1 (char 0)"),
        ("Lambda-Runtime-Cognito-Identity", "Unable to parse Cognito Identity JSON: Expecting value: line 1 column 1 (char 0)"),
    ],
)
def test_bad_context_json(run_runtime, header, message):
    result = run_runtime({"app.py": "def handler(e, c):\n    return 1\n"}, "app.handler", [Event(headers={header: "not json"})], expect_posts=1)
    post = one(result, "/error")
    assert post.header("Lambda-Runtime-Function-Error-Type") == "Runtime.LambdaContextUnmarshalError"
    assert json.loads(post.body)["errorMessage"] == message


# --------------------------------------------------------------------------- marshalling


@pytest.mark.parametrize(
    "code, body, content_type",
    [
        ("return b'\\x00raw'", b"\x00raw", "application/unknown"),
        ("return 'caf\u00e9'", b'"caf\xc3\xa9"', "application/json"),
        ("return None", b"null", "application/json"),
        ("import decimal; return {'d': decimal.Decimal('1.10'), 'n': decimal.Decimal('NaN'), 'f': 1.5}", b'{"d": 1.10, "n": NaN, "f": 1.5}', "application/json"),
    ],
)
def test_results(run_runtime, code, body, content_type):
    files = {"app.py": "def handler(e, c):\n    %s\n" % code}
    post = one(run_runtime(files, "app.handler", [Event()], expect_posts=1), "/response")
    assert post.body == body and post.header("Content-Type") == content_type


def test_event_content_types(run_runtime):
    files = {"app.py": "def handler(e, c):\n    return repr(e)\n"}
    events = [
        Event(request_id="a", body=b'{"k": "v"}', content_type="application/json; charset=utf-8"),
        Event(request_id="b", body=b"plain", content_type="text/plain"),
        Event(request_id="c", body=b"nothing", content_type=None),
    ]
    posts = run_runtime(files, "app.handler", events, expect_posts=3).posts
    assert [json.loads(p.body) for p in posts] == ["{'k': 'v'}", "b'plain'", "b'nothing'"]


def test_unmarshal_and_marshal_errors(run_runtime):
    files = {"app.py": "def handler(e, c):\n    return {1, 2}\n"}
    events = [Event(request_id="a", body=b"not json"), Event(request_id="b")]
    posts = run_runtime(files, "app.handler", events, expect_posts=2).posts
    first, second = (json.loads(p.body) for p in posts)
    assert first == {"errorMessage": "Unable to unmarshal input: Expecting value: line 1 column 1 (char 0)", "errorType": "Runtime.UnmarshalError", "requestId": "a", "stackTrace": []}
    assert second == {"errorMessage": "Unable to marshal response: Object of type set is not JSON serializable", "errorType": "Runtime.MarshalError", "requestId": "b", "stackTrace": []}
    assert json.loads(posts[1].header("Lambda-Runtime-Function-XRay-Error-Cause"))["exceptions"][0]["type"] == "LambdaValidationError"


# --------------------------------------------------------------------------- errors


def test_error_exact_json_xray_and_log_record(run_runtime, tmp_path):
    files = {
        "app.py": src(
            """
            def inner():
                raise ValueError("bad thing")

            def handler(event, context):
                inner()
            """
        )
    }
    result = run_runtime(files, "app.handler", [Event(request_id="r1", headers={"Lambda-Runtime-Invocation-Id": "inv-9"})], expect_posts=1)
    post = one(result, "/invocation/r1/error")
    path = os.path.join(result.cwd, "app.py")
    trace = [
        '  File "%s", line 5, in handler\n    inner()\n' % path,
        '  File "%s", line 2, in inner\n    raise ValueError("bad thing")\n' % path,
    ]
    expected = {"errorMessage": "bad thing", "errorType": "ValueError", "requestId": "r1", "stackTrace": trace}
    assert post.body == json.dumps(expected).encode()
    assert post.header("Lambda-Runtime-Function-Error-Type") == "ValueError"
    assert post.header("Content-Type") == "application/json"
    assert post.header("Lambda-Runtime-Invocation-Id") == "inv-9"
    cause = json.loads(post.header("Lambda-Runtime-Function-XRay-Error-Cause"))
    assert cause == {
        "working_directory": result.cwd,
        "exceptions": [{"message": "bad thing", "type": "ValueError", "stack": [
            {"label": "handler", "path": path, "line": 5}, {"label": "inner", "path": path, "line": 2}]}],
        "paths": [path],
    }
    nbsp = "\u00a0".encode()
    record = (
        b"[ERROR] ValueError: bad thing\rTraceback (most recent call last):\r"
        + nbsp * 2 + b'File "' + path.encode() + b'", line 5, in handler\r' + nbsp * 4 + b"inner()\r"
        + nbsp * 2 + b'File "' + path.encode() + b'", line 2, in inner\r' + nbsp * 4 + b'raise ValueError("bad thing")\n'
    )
    assert record in result.stdout


def test_xray_cause_dropped_at_one_mib(run_runtime):
    files = {"app.py": "def handler(e, c):\n    raise ValueError('x' * (1024 * 1024))\n"}
    post = one(run_runtime(files, "app.handler", [Event()], expect_posts=1), "/error")
    assert post.header("Lambda-Runtime-Function-XRay-Error-Cause") is None
    assert post.header("Lambda-Runtime-Function-Error-Type") == "ValueError"
    assert len(json.loads(post.body)["errorMessage"]) == 1024 * 1024


def test_response_over_limit_becomes_function_error(run_runtime):
    files = {"app.py": "def handler(e, c):\n    return b'x' * 6291557\n"}
    post = one(run_runtime(files, "app.handler", [Event(request_id="r1")], expect_posts=1), "/invocation/r1/error")
    error = json.loads(post.body)
    assert error["errorType"] == "Function.ResponseSizeTooLarge"
    assert error["errorMessage"] == "Response payload size (6291557 bytes) exceeded maximum allowed payload size (6291556 bytes)."


def test_large_payloads_round_trip(run_runtime):
    payload = json.dumps({"data": "y" * (5 * 1024 * 1024)}).encode()
    files = {"app.py": "def handler(e, c):\n    return e\n"}
    post = one(run_runtime(files, "app.handler", [Event(body=payload)], expect_posts=1, timeout=60), "/response")
    assert post.body == payload


# --------------------------------------------------------------------------- robustness


def test_missing_content_type_and_bad_deadline(run_runtime):
    files = {"app.py": "def handler(e, c):\n    return [repr(e), c.get_remaining_time_in_millis()]\n"}
    event = Event(body=b"{}", content_type=None, headers={"Lambda-Runtime-Deadline-Ms": "abc"})
    result = run_runtime(files, "app.handler", [event], expect_posts=1)
    assert json.loads(one(result, "/response").body) == ["b'{}'", 0]
    assert b"non-numeric Lambda-Runtime-Deadline-Ms 'abc'" in result.stderr


@pytest.mark.parametrize("request_id", [None, "../../init/error", "a b", "x/y"])
def test_missing_or_unsafe_request_id(run_runtime, request_id):
    headers = {"Lambda-Runtime-Aws-Request-Id": request_id}
    result = run_runtime({"app.py": "def handler(e, c):\n    return 1\n"}, "app.handler", [Event(headers=headers)], **UNTIL_EXIT)
    assert result.returncode == 1
    assert not result.posts
    assert b"Lambda-Runtime-Aws-Request-Id" in result.stderr
    assert b"Traceback" not in result.stderr


def test_body_shorter_than_content_length_then_recovers(run_runtime):
    def short(sock):
        sock.sendall(
            b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r0\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{\"trunc"
        )
        sock.close()

    files = {"app.py": "def handler(e, c):\n    return e\n"}
    result = run_runtime(files, "app.handler", [Event(raw=short), Event(request_id="r1", body=b"7")], expect_posts=1)
    assert one(result, "/invocation/r1/response").body == b"7"
    assert b"Traceback" not in result.stderr


#: A short retry schedule (LAMBDARIC_RETRY_DELAYS) for tests that wait for the runtime to give up.
FAST_RETRIES = {"LAMBDARIC_RETRY_DELAYS": "0.01,0.02"}


def test_runtime_api_down_at_start(run_runtime):
    env = dict(FAST_RETRIES, AWS_LAMBDA_RUNTIME_API="127.0.0.1:9")  # the discard port: nothing listens
    start = time.monotonic()
    result = run_runtime({"app.py": "def handler(e, c):\n    return 1\n"}, "app.handler", [], env=env, **UNTIL_EXIT)
    assert result.exited and result.returncode == 1
    lines = result.stderr.decode().strip().splitlines()
    assert lines == ["lambdaric: cannot reach the Runtime API at 127.0.0.1:9 (GET /next): [Errno 111] Connection "
                     "refused; giving up after 3 attempts"], result.stderr
    assert time.monotonic() - start < 15


def test_runtime_api_by_host_name(run_runtime):
    """A host name (not what Lambda gives) is resolved by Python; the native transport
    connects numeric addresses itself. Where ``localhost`` does not resolve (a bare root with no
    /etc/hosts), the runtime says so, with the resolver's words."""
    import socket

    try:
        socket.getaddrinfo("localhost", 1, 0, socket.SOCK_STREAM)
        resolves = True
    except socket.gaierror as exc:
        resolves, why = False, str(exc)
    with RuntimeAPI(events=[Event(request_id="r1", body=b"[1]")]) as api:
        env = {"AWS_LAMBDA_RUNTIME_API": "localhost:%d" % api.port, "LAMBDARIC_RETRY_DELAYS": "0.01"}
        result = run_runtime({"app.py": "def handler(e, c):\n    return e\n"}, "app.handler", api=api, env=env,
                             **({} if resolves else UNTIL_EXIT))
    if resolves:
        assert one(result, "/invocation/r1/response").body == b"[1]", result.stderr
    else:
        assert result.exited and result.returncode == 1, result.stderr
        assert result.stderr.decode().endswith("cannot reach the Runtime API at localhost:%d (GET /next): %s; giving up "
                                               "after 2 attempts\n" % (api.port, why)), result.stderr


@pytest.mark.parametrize("transport, unused", [
    # the native transport connects in C and parses answers in C: neither the socket module nor
    # the pure-Python transport, nor the answer reader that only errors and chunked answers need
    ("native", ('_socket', 'socket', 'lambdaric.transport.python', 'lambdaric.answers', 'lambdaric.streamwire')),
    # the pure-Python one needs the socket module and the answer reader, not the C module
    ("python", ('lambdaric._native', '_cffi_backend', 'lambdaric.transport.native', 'lambdaric.streamwire')),
])
def test_a_plain_invoke_loads_only_what_it_needs(transport, unused):
    """What a runtime that never streams or fails does not import (each costs cold-start time);
    the stream framing (lambdaric.streamwire) is loaded by the first stream only."""
    import runtime_api
    files = {"app.py": "import sys\n"
                       "def handler(e, c):\n"
                       "    return sorted(m for m in %r if m in sys.modules)\n" % (unused,)}
    result = runtime_api.run_runtime(files, "app.handler", [Event(request_id="r1", body=b"{}")],
                                     env={"LAMBDARIC_TRANSPORT": transport})
    assert one(result, "/invocation/r1/response").body == b"[]", result.stderr


def test_runtime_api_on_ipv6(tmp_path, lambdaric_env):
    """``[::1]:port``: the one-event exchange over IPv6, answered 202; the runtime comes back to /next."""
    import socket

    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.bind(("::1", 0))
    listener.listen(4)
    listener.settimeout(20)
    seen = []

    def serve():
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.settimeout(20)
        data = b""
        with conn:
            event = b"[6]"
            for answer in (b"HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: r6\r\nLambda-Runtime-Deadline-Ms: "
                           b"99999999999999\r\nContent-Type: application/json\r\nContent-Length: 3\r\n\r\n" + event,
                           b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"):
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, data = data.partition(b"\r\n\r\n")
                length = int(([l.split(b":")[1] for l in head.lower().split(b"\r\n") if l.startswith(b"content-length:")]
                               or [b"0"])[0])
                while len(data) < length:
                    data += conn.recv(65536)
                seen.append((head.split(b"\r\n")[0], data[:length]))
                data = data[length:]
                conn.sendall(answer)
            while b"\r\n\r\n" not in data:  # the next /next: held until the test ends
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            seen.append((data.split(b"\r\n")[0], b""))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    app = tmp_path / "app.py"
    app.write_text("def handler(e, c):\n    return e\n")
    env = runtime_env("[::1]:%d" % listener.getsockname()[1], str(tmp_path), lambdaric_env)
    proc = subprocess.Popen([sys.executable, "-m", "lambdaric", "app.handler"], cwd=str(tmp_path), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while len(seen) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
    finally:
        proc.kill()
        _, stderr = proc.communicate()
        listener.close()
    assert seen == [
        (b"GET /2018-06-01/runtime/invocation/next HTTP/1.1", b""),
        (b"POST /2018-06-01/runtime/invocation/r6/response HTTP/1.1", b"[6]"),
        (b"GET /2018-06-01/runtime/invocation/next HTTP/1.1", b""),
    ], stderr


def test_the_default_retry_schedule_and_a_bad_one():
    """7 tries over ~3 s by default (0.05 s doubling); LAMBDARIC_RETRY_DELAYS replaces the delays
    in every mode, and a value that is no list of seconds stops the runtime before it starts."""
    from lambdaric.client import CLASSIC, MANAGED_NEXT, retries

    assert CLASSIC.delays == (0.05, 0.1, 0.2, 0.4, 0.8, 1.6) and not CLASSIC.invalid and CLASSIC.fatal
    assert MANAGED_NEXT.delays == (0.1, 0.2, 0.4, 0.8) and MANAGED_NEXT.invalid
    assert retries({}) == (CLASSIC, CLASSIC)
    next_retry, post_retry = retries({"LAMBDARIC_RETRY_DELAYS": "0,1.5"}, managed=True)
    assert (next_retry.delays, next_retry.invalid, post_retry.delays, post_retry.fatal) == ((0.0, 1.5), True, (0.0, 1.5), False)
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API="127.0.0.1:9", LAMBDARIC_RETRY_DELAYS="0.1,soon")
    out = subprocess.run([sys.executable, "-m", "lambdaric", "app.handler"], capture_output=True, cwd=ROOT, env=env,
                         timeout=30)
    assert (out.returncode, out.stderr) == (2, b"lambdaric: LAMBDARIC_RETRY_DELAYS must be 1 to 20 comma-separated "
                                               b"seconds (0 to 60 each), not '0.1,soon'\n")


def test_runtime_api_goes_away_later(run_runtime):
    files = {"app.py": "def handler(e, c):\n    return 1\n"}
    with RuntimeAPI([Event(request_id="r1")]) as api:

        def close_after_first_post():
            api.wait_for_posts(1, timeout=15)
            time.sleep(0.2)
            api.close()

        closer = threading.Thread(target=close_after_first_post, daemon=True)
        closer.start()
        result = run_runtime(files, "app.handler", api=api, env=FAST_RETRIES, **UNTIL_EXIT)
        closer.join(5)
    assert one(result, "/invocation/r1/response").body == b"1"
    assert result.exited and result.returncode == 1
    assert b"cannot reach the Runtime API" in result.stderr and b"Traceback" not in result.stderr


@pytest.mark.parametrize("code, status", [("sys.exit(3)", 3), ("sys.exit()", 0)])
def test_sys_exit_in_handler(run_runtime, code, status):
    files = {"app.py": "import sys\ndef handler(e, c):\n    %s\n" % code}
    result = run_runtime(files, "app.handler", [Event(request_id="r1"), Event(request_id="r2")], **UNTIL_EXIT)
    post = one(result, "/invocation/r1/error")
    error = json.loads(post.body)
    assert error["errorType"] == "Runtime.ExitError"
    assert error["errorMessage"] == "RequestId: r1 Error: Runtime exited with error: exit status %d" % status
    assert result.returncode == status
    assert not [p for p in result.posts if "/r2/" in p.path]


def test_user_sigterm_handler_runs_while_idle(tmp_path, lambdaric_env):
    marker = tmp_path / "sigterm.txt"
    (tmp_path / "app.py").write_text(
        src(
            """
            import os, signal, sys
            def on_term(signum, frame):
                with open(os.environ["MARKER"], "w") as f:
                    f.write("got %d" % signum)
                sys.exit(0)
            signal.signal(signal.SIGTERM, on_term)
            def handler(e, c):
                return 1
            """
        )
    )
    with RuntimeAPI([Event(request_id="r1")]) as api:
        env = runtime_env(api.address, str(tmp_path), dict(lambdaric_env, MARKER=str(marker)))
        proc = subprocess.Popen([sys.executable, "-m", "lambdaric", "app.handler"], cwd=str(tmp_path), env=env)
        try:
            api.wait_for_posts(1, timeout=15)
            api.wait_idle(1, timeout=10)  # blocked on the second /next
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert marker.read_text() == "got %d" % signal.SIGTERM


def test_async_handler_one_loop_for_the_process(run_runtime):
    files = {
        "app.py": src(
            """
            import asyncio
            async def handler(event, context):
                await asyncio.sleep(0)
                return id(asyncio.get_running_loop())
            """
        )
    }
    posts = run_runtime(files, "app.handler", [Event(request_id="a"), Event(request_id="b")], expect_posts=2).posts
    first, second = (json.loads(p.body) for p in posts)
    assert isinstance(first, int) and first == second
