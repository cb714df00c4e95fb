"""The HTTP front on the wire (issue 19): a real ``python -m lambdaric ... --http
127.0.0.1:0`` emulator process, plain HTTP clients (http.client, raw sockets), a handler that
echoes the event it got; exact fields of each integration's event and of the HTTP answers."""
import base64
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid

import pytest

from emulator_harness import REPO, RunningEmulator

_FRONT = re.compile(rb"HTTP front on (http://127\.0\.0\.1:(\d+))/")

APP = {
    "app.py": r"""
        import base64, json, os, time

        def mode_of(event):
            query = event.get("queryStringParameters") or {}
            multi = event.get("multiValueQueryStringParameters") or {}
            return query.get("mode") or (multi.get("mode") or [None])[0]

        def handler(event, context):
            mode = mode_of(event)
            if mode == "bytes":
                return b"\xff\xfe not json"
            if mode == "list":
                return [1, 2]
            if mode == "string":
                return "Hello from Lambda!"
            if mode == "nostatus":
                return {"message": "hi"}
            if mode == "strstatus":
                return {"statusCode": "200", "body": "x"}
            if mode == "badb64":
                return {"statusCode": 200, "body": "!!!", "isBase64Encoded": True}
            if mode == "inject":
                return {"statusCode": 200, "headers": {"X-Evil": "a\r\nSet-Cookie: owned=1"}, "body": "x"}
            if mode == "raise":
                raise ValueError("boom from the handler")
            if mode == "sleep":
                time.sleep(float(os.environ.get("SLEEP", "3")))
            if mode == "binary":
                return {"statusCode": 200, "headers": {"Content-Type": "image/png"},
                        "body": base64.b64encode(b"\x89PNG\x00\xff").decode(), "isBase64Encoded": True}
            if mode == "full":
                return {"statusCode": 201, "statusDescription": "201 Made", "headers": {"Content-Type": "text/plain", "X-One": "1"},
                        "multiValueHeaders": {"X-Two": ["a", "b"]}, "cookies": ["c1=1; Path=/", "c2=2"], "body": "made"}
            if mode == "huge":
                return {"statusCode": 200, "body": "x" * (7 * 1024 * 1024)}
            if mode == "version":
                with open("version.txt") as f:
                    return {"statusCode": 200, "body": f.read()}
            return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
                    "body": json.dumps({"event": event, "request_id": context.aws_request_id, "arn": context.invoked_function_arn})}
    """
}


class WebEmulator(RunningEmulator):
    """A RunningEmulator with the HTTP front on a free port; ``web`` is its base URL."""

    def __init__(self, files, args=(), **kwargs):
        super().__init__(files, args=["--http", "127.0.0.1:0"] + list(args), **kwargs)
        end = time.monotonic() + 20
        while True:
            match = _FRONT.search(self.stderr())
            if match:
                self.web = match.group(1).decode()
                self.port = int(match.group(2))
                return
            if time.monotonic() > end or self.proc.poll() is not None:
                self.stop()
                raise AssertionError("no HTTP front line: %r" % self.stderr())
            time.sleep(0.02)

    def request(self, method, path, body=None, headers=None, timeout=30):
        """(status, reason, header list, body) of one request on a new connection."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.reason, resp.getheaders(), resp.read()
        finally:
            conn.close()

    def echo(self, method="GET", path="/", body=None, headers=None):
        status, _, _, data = self.request(method, path, body, headers)
        assert status == 200, (status, data)
        return json.loads(data)

    def log_lines(self):
        return [line for line in self.stderr().decode("utf-8", "replace").splitlines() if '" ' in line and line.startswith("lambdaric: ")]


def raw(port, data, timeout=10, shut=True):
    """Send ``data`` on a new connection and read until the server closes it (or timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        if shut:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while True:
                piece = s.recv(65536)
                if not piece:
                    break
                chunks.append(piece)
        except socket.timeout:
            pass
        return b"".join(chunks)


def header(headers, name):
    values = [v for k, v in headers if k.lower() == name.lower()]
    return values[-1] if values else None


@pytest.fixture(scope="module")
def url_emu():
    with WebEmulator(APP) as running:
        yield running


# --------------------------------------------------------------------------- function URL (2.0)


def test_function_url_event_fields(url_emu):
    started = time.time()
    got = url_emu.echo("GET", "/hello/world?b=2&a=1&a=x%20y", headers={"Cookie": "s=1; t=2", "User-Agent": "tester/1", "X-Dup": "1"})
    event = got["event"]
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/hello/world" and event["rawQueryString"] == "b=2&a=1&a=x%20y"
    assert event["cookies"] == ["s=1", "t=2"]
    assert event["queryStringParameters"] == {"b": "2", "a": "1,x y"}
    host = "127.0.0.1:%d" % url_emu.port
    assert event["headers"] == {
        "host": host, "accept-encoding": "identity", "cookie": "s=1; t=2", "user-agent": "tester/1", "x-dup": "1",
        "x-forwarded-for": "127.0.0.1", "x-forwarded-port": str(url_emu.port), "x-forwarded-proto": "http",
        "x-amzn-trace-id": event["headers"]["x-amzn-trace-id"],
    }
    assert re.match(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24}\Z", event["headers"]["x-amzn-trace-id"])
    ctx = event["requestContext"]
    assert set(ctx) == {"accountId", "apiId", "domainName", "domainPrefix", "http", "requestId", "routeKey", "stage", "time", "timeEpoch"}
    assert ctx["accountId"] == "123456789012" and re.match(r"[0-9a-f]{32}\Z", ctx["apiId"])
    assert (ctx["domainName"], ctx["domainPrefix"], ctx["routeKey"], ctx["stage"]) == (host, "127", "$default", "$default")
    assert ctx["http"] == {"method": "GET", "path": "/hello/world", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "tester/1"}
    uuid.UUID(ctx["requestId"])
    assert re.match(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\Z", ctx["time"])
    assert started * 1000 - 1000 <= ctx["timeEpoch"] <= time.time() * 1000 + 1000
    assert event["isBase64Encoded"] is False and "body" not in event
    assert event["pathParameters"] is None and event["stageVariables"] is None
    assert got["arn"] == "arn:aws:lambda:us-east-1:%s:function:function" % got["arn"].split(":")[4]


def test_function_url_bodies_text_and_base64(url_emu):
    event = url_emu.echo("POST", "/", body=b'{"a": 1}', headers={"Content-Type": "application/json"})["event"]
    assert (event["body"], event["isBase64Encoded"]) == ('{"a": 1}', False)
    event = url_emu.echo("POST", "/", body=b"\x00\x01\xfe", headers={"Content-Type": "application/octet-stream"})["event"]
    assert (event["body"], event["isBase64Encoded"]) == ("AAH+", True)
    event = url_emu.echo("POST", "/", body=b"a=1&b=2", headers={"Content-Type": "application/x-www-form-urlencoded"})["event"]
    assert (base64.b64decode(event["body"]), event["isBase64Encoded"]) == (b"a=1&b=2", True)
    event = url_emu.echo("PUT", "/", body="é".encode(), headers={"Content-Type": "text/plain; charset=utf-8"})["event"]
    assert (event["body"], event["isBase64Encoded"]) == ("é", False)


def test_result_status_headers_cookies_and_base64_body(url_emu):
    status, reason, headers, body = url_emu.request("GET", "/?mode=full")
    assert (status, reason, body) == (201, "Created", b"made")  # statusDescription is the ALB's, not payload 2.0's
    assert header(headers, "Content-Type") == "text/plain" and header(headers, "X-One") == "1"
    assert header(headers, "X-Two") is None  # multiValueHeaders is not payload 2.0
    assert [v for k, v in headers if k.lower() == "set-cookie"] == ["c1=1; Path=/", "c2=2"]
    uuid.UUID(header(headers, "X-Amzn-RequestId"))
    status, _, headers, body = url_emu.request("GET", "/?mode=binary")
    assert (status, body, header(headers, "Content-Type")) == (200, b"\x89PNG\x00\xff", "image/png")


@pytest.mark.parametrize("mode, body", [
    ("nostatus", b'{"message": "hi"}'), ("list", b"[1, 2]"), ("string", b"Hello from Lambda!"),
])
def test_payload_v2_result_without_status_code_is_200_json(url_emu, mode, body):
    status, _, headers, data = url_emu.request("GET", "/?mode=" + mode)
    assert (status, header(headers, "Content-Type"), data) == (200, "application/json", body)


@pytest.mark.parametrize("mode, why", [
    ("raise", "ValueError: boom from the handler"), ("bytes", "not JSON"), ("strstatus", "not an integer"),
    ("badb64", "not valid base64"), ("inject", "CR, LF or NUL"),
])
def test_function_url_failures_are_502(url_emu, mode, why):
    status, _, headers, data = url_emu.request("GET", "/fail?mode=" + mode)
    assert (status, data) == (502, b"Internal Server Error")
    assert header(headers, "X-Evil") is None and header(headers, "Set-Cookie") is None
    time.sleep(0.05)
    line = [l for l in url_emu.log_lines() if "/fail?mode=%s" % mode in l][-1]
    assert " 502 " in line and why in line, line


def test_access_log_line(url_emu):
    url_emu.request("GET", "/logged?x=1")
    time.sleep(0.05)
    line = [l for l in url_emu.log_lines() if "/logged?x=1" in l][-1]
    assert re.match(r'lambdaric: 127\.0\.0\.1 "GET /logged\?x=1" 200 \d+ B [\d.]+ ms \(function: function, RequestId: [0-9a-f-]{36}\)\Z', line), line


def test_head_and_keep_alive(url_emu):
    conn = http.client.HTTPConnection("127.0.0.1", url_emu.port, timeout=30)
    try:
        for i in range(3):
            conn.request("GET", "/ka%d" % i)
            resp = conn.getresponse()
            assert json.loads(resp.read())["event"]["rawPath"] == "/ka%d" % i
        conn.request("HEAD", "/?mode=full")
        resp = conn.getresponse()
        assert resp.status == 201 and resp.getheader("Content-Length") == "4" and resp.read() == b""
        conn.request("GET", "/after-head")
        assert json.loads(conn.getresponse().read())["event"]["rawPath"] == "/after-head"
    finally:
        conn.close()


def test_lambda_url_prefix_picks_the_function(url_emu):
    event = url_emu.echo("GET", "/lambda-url/function/inner/path?q=1")["event"]
    assert (event["rawPath"], event["rawQueryString"]) == ("/inner/path", "q=1")
    assert url_emu.echo("GET", "/lambda-url/function")["event"]["rawPath"] == "/"
    status, _, _, data = url_emu.request("GET", "/lambda-url/nosuch/x")
    assert (status, json.loads(data)) == (404, {"message": "Not Found"})
    time.sleep(0.05)
    assert "no function 'nosuch'" in [l for l in url_emu.log_lines() if "/lambda-url/nosuch/x" in l][-1]


def test_request_over_the_payload_limit_is_413(url_emu):
    body = b"x" * (6 * 1024 * 1024 + 10)
    status, _, _, data = url_emu.request("POST", "/big", body=body, headers={"Content-Type": "text/plain"})
    assert (status, data) == (413, b"Request Entity Too Large")
    # text that fits 6 MB raw but not once base64-encoded in the event
    status, _, _, data = url_emu.request("POST", "/big", body=b"\x00" * (5 * 1024 * 1024), headers={"Content-Type": "application/octet-stream"})
    assert status == 413
    assert url_emu.echo("GET", "/still-serving")["event"]["rawPath"] == "/still-serving"


# --------------------------------------------------------------------------- HTTP API (2.0)


def test_http_api_routes_and_errors():
    args = ["--integration", "http-api", "--route", "GET /items/{id}", "--route", "ANY /files/{proxy+}"]
    with WebEmulator(APP, args=args) as emu:
        event = emu.echo("GET", "/items/42?x=1")["event"]
        assert event["routeKey"] == event["requestContext"]["routeKey"] == "GET /items/{id}"
        assert event["pathParameters"] == {"id": "42"} and event["requestContext"]["stage"] == "$default"
        assert re.match(r"[A-Za-z0-9+/]{15}=\Z", event["requestContext"]["requestId"])
        assert re.match(r"[0-9a-f]{10}\Z", event["requestContext"]["apiId"])
        assert "stageVariables" not in event
        event = emu.echo("DELETE", "/files/a/b%20c.txt")["event"]
        assert (event["routeKey"], event["pathParameters"]) == ("ANY /files/{proxy+}", {"proxy": "a/b c.txt"})
        for method, path in (("POST", "/items/42"), ("GET", "/nothing"), ("GET", "/items")):
            status, _, headers, data = emu.request(method, path)
            assert (status, data, header(headers, "Content-Type")) == (404, b'{"message":"Not Found"}', "application/json")
        status, _, headers, data = emu.request("GET", "/items/1?mode=raise")
        assert (status, data) == (500, b'{"message":"Internal Server Error"}')
        status, _, headers, data = emu.request("GET", "/items/1?mode=full")
        assert status == 201 and header(headers, "Apigw-Requestid")
        status, _, _, data = emu.request("POST", "/files/x", body=b"x" * (6 * 1024 * 1024 + 1))
        assert (status, data) == (413, b'{"message":"Request Entity Too Large"}')


# --------------------------------------------------------------------------- REST (1.0)


def test_rest_event_and_answers():
    args = ["--integration", "rest", "--binary-media-types", "image/*"]
    with WebEmulator(APP, args=args) as emu:
        conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=30)
        conn.putrequest("GET", "/a/b?x=1&x=2&y=%2F", skip_accept_encoding=True)
        conn.putheader("X-Multi", "one")
        conn.putheader("X-Multi", "two")
        conn.putheader("User-Agent", "rest-tester")
        conn.endheaders()
        event = json.loads(conn.getresponse().read())["event"]
        conn.close()
        assert (event["resource"], event["path"], event["httpMethod"]) == ("/{proxy+}", "/a/b", "GET")
        assert event["headers"]["X-Multi"] == "two" and event["multiValueHeaders"]["X-Multi"] == ["one", "two"]
        assert event["headers"]["User-Agent"] == "rest-tester"
        assert event["queryStringParameters"] == {"x": "2", "y": "/"}
        assert event["multiValueQueryStringParameters"] == {"x": ["1", "2"], "y": ["/"]}
        assert event["pathParameters"] == {"proxy": "a/b"} and event["stageVariables"] is None
        assert event["body"] is None and event["isBase64Encoded"] is False
        ctx = event["requestContext"]
        assert (ctx["resourcePath"], ctx["httpMethod"], ctx["path"], ctx["stage"]) == ("/{proxy+}", "GET", "/local/a/b", "local")
        assert (ctx["identity"]["sourceIp"], ctx["identity"]["userAgent"], ctx["accountId"]) == ("127.0.0.1", "rest-tester", "123456789012")
        assert ctx["protocol"] == "HTTP/1.1" and re.match(r"[0-9a-f]{10}\Z", ctx["apiId"])
        uuid.UUID(ctx["requestId"])
        assert re.match(r"\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\Z", ctx["requestTime"]) and ctx["requestTimeEpoch"] > 1.7e12
        event = emu.echo("GET", "/")["event"]
        assert (event["resource"], event["pathParameters"], event["queryStringParameters"], event["multiValueQueryStringParameters"]) == ("/", None, None, None)
        event = emu.echo("POST", "/up", body=b"\x89PNG", headers={"Content-Type": "image/png"})["event"]
        assert (event["body"], event["isBase64Encoded"]) == (base64.b64encode(b"\x89PNG").decode(), True)
        event = emu.echo("POST", "/up", body=b"plain", headers={"Content-Type": "application/octet-stream"})["event"]
        assert (event["body"], event["isBase64Encoded"]) == ("plain", False)
        status, _, headers, data = emu.request("GET", "/?mode=full")
        assert status == 201 and [v for k, v in headers if k == "X-Two"] == ["a", "b"] and data == b"made"
        assert header(headers, "Set-Cookie") is None  # cookies is payload 2.0's
        status, _, _, data = emu.request("GET", "/?mode=binary", headers={"Accept": "image/png,*/*"})
        assert (status, data) == (200, b"\x89PNG\x00\xff")  # the first Accept type is a binary media type: decoded
        status, _, _, data = emu.request("GET", "/?mode=binary", headers={"Accept": "text/html,image/png"})
        assert (status, data) == (200, base64.b64encode(b"\x89PNG\x00\xff"))  # it is not: the base64 text, as API Gateway
        for mode in ("raise", "nostatus", "list", "string", "bytes", "strstatus", "badb64", "inject"):
            status, _, headers, data = emu.request("GET", "/?mode=" + mode)
            assert (status, data, header(headers, "Content-Type")) == (502, b'{"message": "Internal server error"}', "application/json"), mode


def test_rest_without_binary_media_types_answers_base64_text():
    with WebEmulator(APP, args=["--integration", "rest"]) as emu:
        status, _, _, data = emu.request("GET", "/?mode=binary")
        assert (status, data) == (200, base64.b64encode(b"\x89PNG\x00\xff"))


def test_rest_routes_give_resource_and_path_parameters():
    with WebEmulator(APP, args=["--integration", "rest", "--route", "GET /users/{id}", "--stage", "prod"]) as emu:
        event = emu.echo("GET", "/users/7")["event"]
        assert (event["resource"], event["requestContext"]["resourcePath"], event["pathParameters"]) == ("/users/{id}", "/users/{id}", {"id": "7"})
        assert (event["requestContext"]["stage"], event["requestContext"]["path"]) == ("prod", "/prod/users/7")
        status, _, _, data = emu.request("GET", "/other")
        assert (status, data) == (404, b'{"message":"Not Found"}')


# --------------------------------------------------------------------------- ALB


def test_alb_event_and_answers():
    with WebEmulator(APP, args=["--integration", "alb"]) as emu:
        event = emu.echo("GET", "/lb/path?a=%20b&a=c&mode=echo", headers={"X-Thing": "v"})["event"]
        assert event["requestContext"]["elb"]["targetGroupArn"].startswith("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/function/")
        assert (event["httpMethod"], event["path"]) == ("GET", "/lb/path")
        assert event["queryStringParameters"] == {"a": "c", "mode": "echo"}  # not decoded; the last of a repeated key
        assert event["headers"]["x-thing"] == "v" and event["headers"]["host"] == "127.0.0.1:%d" % emu.port
        assert (event["body"], event["isBase64Encoded"]) == ("", False)
        assert "multiValueHeaders" not in event
        status, reason, headers, data = emu.request("GET", "/?mode=full")
        assert (status, reason, data) == (201, "Made", b"made")  # statusDescription gives the reason phrase
        assert header(headers, "X-One") == "1" and header(headers, "X-Two") is None
        status, reason, headers, data = emu.request("GET", "/?mode=raise")
        assert (status, reason, header(headers, "Content-Type")) == (502, "Bad Gateway", "text/html")
        assert b"<h1>502 Bad Gateway</h1>" in data
        status, _, _, data = emu.request("POST", "/", body=b"x" * (1024 * 1024 + 1), headers={"Content-Type": "text/plain"})
        assert status == 413 and b"413" in data


def test_alb_multi_value():
    with WebEmulator(APP, args=["--integration", "alb-multi"]) as emu:
        conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=30)
        conn.putrequest("POST", "/m?a=%20b&a=c")
        conn.putheader("X-Multi", "one")
        conn.putheader("X-Multi", "two")
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", "2")
        conn.endheaders(b"\x00\x01")
        event = json.loads(conn.getresponse().read())["event"]
        conn.close()
        assert event["multiValueQueryStringParameters"] == {"a": ["%20b", "c"]}
        assert event["multiValueHeaders"]["x-multi"] == ["one", "two"]
        assert "headers" not in event and "queryStringParameters" not in event
        assert (event["body"], event["isBase64Encoded"]) == ("AAE=", True)
        status, _, headers, data = emu.request("GET", "/?mode=full")
        assert status == 201 and [v for k, v in headers if k == "X-Two"] == ["a", "b"] and header(headers, "X-One") is None


# --------------------------------------------------------------------------- CLI, watch, security


def test_http_front_listens_on_loopback_by_default_and_says_so():
    with WebEmulator(APP, args=[]) as emu:
        line = [l for l in emu.stderr().decode().splitlines() if "HTTP front" in l]
        assert line == ["lambdaric: HTTP front on %s/ (function URL, payload 2.0, BUFFERED, every path, function function)" % emu.web]
    # a port alone: loopback
    with RunningEmulator(APP, args=["--http", "0"]) as emu:
        end = time.monotonic() + 20
        while b"HTTP front" not in emu.stderr() and time.monotonic() < end:
            time.sleep(0.02)
        assert re.search(rb"HTTP front on http://127\.0\.0\.1:\d+/", emu.stderr())


def _run(args, timeout=30):
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("AWS_LAMBDA_RUNTIME_API", None)
    return subprocess.run([sys.executable, "-m", "lambdaric", "app.handler", "--listen", "127.0.0.1:0"] + args,
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)


@pytest.mark.parametrize("args, said, code", [
    (["--http", "127.0.0.1:0", "--route", "FETCH /x"], "the method must be one of", 2),
    (["--http", "127.0.0.1:0", "--route", "GET /{a+}/b"], "must be the last segment", 2),
    (["--http", "nonsense:port"], "--http must be HOST:PORT", 2),
    (["--http", "127.0.0.1:0", "--integration", "soap"], "invalid choice", 2),
    (["--http", "127.0.0.1:0", "--integration", "rest", "--invoke-mode", "RESPONSE_STREAM"], "RESPONSE_STREAM is for --integration url", 1),
    (["--http", "127.0.0.1:0", "--route", "GET /x=other"], "--route names other", 1),
])
def test_cli_refuses_bad_options_in_one_line(args, said, code):
    out = _run(args)
    assert out.returncode == code and said in out.stderr, out.stderr


def test_watch_keeps_serving_new_code(tmp_path):
    (tmp_path / "app.py").write_text(APP["app.py"].replace("\n        ", "\n").strip() + "\n")
    (tmp_path / "version.txt").write_text("one")
    with WebEmulator({}, args=["--watch"], cwd=str(tmp_path)) as emu:
        assert emu.request("GET", "/?mode=version")[3] == b"one"
        time.sleep(1.1)
        (tmp_path / "app.py").write_text((tmp_path / "app.py").read_text().replace('"body": f.read()', '"body": "two:" + f.read()'))
        end = time.monotonic() + 15
        while time.monotonic() < end:
            if emu.request("GET", "/?mode=version")[3] == b"two:one":
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the front did not see the new code: %r" % emu.stderr()[-2000:])


# --------------------------------------------------------------------------- several functions


def test_several_functions_by_prefix_and_by_route():
    files = dict(APP)
    files["other.py"] = """
        import json
        def handler(event, context):
            return {"statusCode": 200, "body": json.dumps({"who": "other", "path": event["rawPath"], "params": event.get("pathParameters"),
                                                           "arn": context.invoked_function_arn})}
    """
    args = ["--function", "main=app.handler", "--function", "other=other.handler", "--integration", "http-api",
            "--route", "GET /o/{thing}=other", "--route", "ANY /{proxy+}"]
    with WebEmulator(files, handler=None, args=args) as emu:
        assert "function main" in [l for l in emu.stderr().decode().splitlines() if "HTTP front" in l][0]
        got = json.loads(emu.request("GET", "/o/7")[3])
        assert (got["who"], got["path"], got["params"]) == ("other", "/o/7", {"thing": "7"})
        assert got["arn"].endswith(":function:other")
        got = json.loads(emu.request("GET", "/lambda-url/other/anything")[3])
        assert (got["who"], got["path"]) == ("other", "/anything")
        got = emu.echo("GET", "/lambda-url/main/x")
        assert got["event"]["rawPath"] == "/x" and got["arn"].endswith(":function:main")
        assert emu.echo("GET", "/plain")["arn"].endswith(":function:main")  # the first function is the default
        assert emu.request("GET", "/lambda-url/third/")[0] == 404


def test_a_port_in_use_is_one_line_and_exit_1():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        out = _run(["--http", "127.0.0.1:%d" % port])
    assert out.returncode == 1
    assert "lambdaric: cannot listen on 127.0.0.1:%d for --http: " % port in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("sampled", [True, False])
def test_http_front_invokes_are_sampled_under_xray_sampled(sampled):
    """A request without a trace header gets the one the emulator makes: sampled under
    --xray-sampled (active tracing), as Invoke API calls are; a caller's header is kept."""
    files = {"app.py": "import os\ndef handler(event, context):\n    return {'statusCode': 200, 'body': os.environ.get('_X_AMZN_TRACE_ID', '')}\n"}
    with WebEmulator(files, args=["--xray-sampled"] if sampled else []) as emu:
        status, _, _, made = emu.request("GET", "/")
        kept = emu.request("GET", "/", headers={"X-Amzn-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0"})[3]
    assert status == 200 and re.fullmatch(rb"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=%d" % sampled, made), made
    assert kept == b"Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=0"
