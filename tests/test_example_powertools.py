"""examples/powertools/app.py end to end: Powertools' Logger (inject_lambda_context), a disabled
Tracer and an APIGatewayHttpResolver with two routes, unchanged, behind lambdaric's emulator.

The apigw-v2 sample event, with its path, method and body changed per route, goes in through the
Invoke API (boto3, with the log tail); the test checks the HTTP answers the resolver builds and the
structured JSON lines Powertools writes to stdout, as lambdaric passes them on: one JSON object per
line, with the invoke's own request id, cold_start true on the first invoke and false after.
"""
import base64
import json
import os
import re
import subprocess
import sys

import pytest

from peers import peer_module

from emulator_harness import REPO, RunningEmulator

from lambdaric import events

INSTALL = "pip install 'aws-lambda-powertools[parser,tracer]>=3' (or pip install -e '.[examples]')"
pytest.importorskip("aws_lambda_powertools", reason="Powertools is not installed: " + INSTALL)
pytest.importorskip("aws_xray_sdk", reason="Powertools' Tracer needs aws-xray-sdk: " + INSTALL)
peer_module("boto3", "pip install boto3")

EXAMPLE = os.path.join(REPO, "examples", "powertools")
ENV = {"POWERTOOLS_SERVICE_NAME": "greeter", "POWERTOOLS_TRACE_DISABLED": "1"}


def http_event(method, path, query=None, body=None):
    """The apigw-v2 sample event for another route: what API Gateway would send for that request."""
    event = events.load("apigw-v2")
    event["rawPath"] = event["requestContext"]["http"]["path"] = path
    event["requestContext"]["http"]["method"] = method
    event["rawQueryString"] = "&".join("%s=%s" % kv for kv in (query or {}).items())
    if query:
        event["queryStringParameters"] = dict(query)
    else:
        event.pop("queryStringParameters", None)
    if body is not None:
        event["body"] = body
        event["headers"]["content-type"] = "application/json"
        event["headers"]["content-length"] = str(len(body.encode("utf-8")))
    return event


def invoke(client, event):
    """(HTTP answer, request id, Powertools' JSON log lines) of one invoke."""
    out = client.invoke(FunctionName="greeter", Payload=json.dumps(event).encode(), LogType="Tail")
    assert "FunctionError" not in out, out
    tail = base64.b64decode(out["LogResult"]).decode("utf-8")
    return json.loads(out["Payload"].read()), out["ResponseMetadata"]["RequestId"], structured(tail)


def structured(log):
    """The log's JSON lines as objects; every line is either lambdaric's START/END/REPORT or one
    whole JSON object (nothing of Powertools' output is split, prefixed or lost)."""
    found = []
    for line in log.splitlines():
        if line.startswith(("START RequestId: ", "END RequestId: ", "REPORT RequestId: ")):
            continue
        found.append(json.loads(line))
    return found


@pytest.fixture
def greeter(lambdaric_env):
    """The example served from its own folder (as LAMBDA_TASK_ROOT would be), on each transport."""
    env = dict(ENV, **lambdaric_env)
    with RunningEmulator({}, handler="app.handler", cwd=EXAMPLE, env=env, args=["--function-name", "greeter"]) as emu:
        yield emu


def check_common(line, request_id, cold_start):
    assert line["level"] == "INFO" and line["service"] == "greeter"
    assert line["function_request_id"] == request_id and line["cold_start"] is cold_start
    assert line["function_name"] == "greeter" and line["function_memory_size"] == "3008"
    assert re.fullmatch(r"arn:aws:lambda:[a-z0-9-]+:\d{12}:function:greeter", line["function_arn"]), line
    # the correlation id Powertools takes from the HTTP API event (correlation_paths.API_GATEWAY_HTTP)
    assert line["correlation_id"] == events.load("apigw-v2")["requestContext"]["requestId"]
    assert re.fullmatch(r"1-[0-9a-f]{8}-[0-9a-f]{24}", line["xray_trace_id"]), line
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}[+-]\d{4}", line["timestamp"]), line


def test_two_routes_answer_and_log_structured_lines_with_the_invoke_request_id(greeter):
    client = greeter.client()

    answer, first_id, lines = invoke(client, events.load("apigw-v2"))  # GET /hello?name=lambdaric
    assert answer["statusCode"] == 200 and answer["headers"]["Content-Type"] == "application/json"
    assert json.loads(answer["body"]) == {"message": "hello, lambdaric"}
    assert len(lines) == 1, lines
    check_common(lines[0], first_id, cold_start=True)
    assert lines[0]["message"] == "greeting" and lines[0]["greeted"] == "lambdaric"
    assert re.fullmatch(r"hello:\d+", lines[0]["location"]), lines[0]

    order = json.dumps({"item": "thumbnail-pack", "quantity": 2})
    answer, second_id, lines = invoke(client, http_event("POST", "/orders", body=order))
    assert second_id != first_id
    assert answer["statusCode"] == 201
    assert json.loads(answer["body"]) == {"item": "thumbnail-pack", "quantity": 2, "orderId": second_id}
    assert len(lines) == 1, lines
    check_common(lines[0], second_id, cold_start=False)
    assert (lines[0]["message"], lines[0]["item"], lines[0]["quantity"]) == ("order placed", "thumbnail-pack", 2)
    assert "greeted" not in lines[0]  # clear_state: nothing of the first invoke's keys is left

    answer, third_id, lines = invoke(client, http_event("GET", "/hello"))
    assert json.loads(answer["body"]) == {"message": "hello, world"}
    check_common(lines[0], third_id, cold_start=False)


def test_the_resolver_answers_bad_requests_and_unknown_routes(greeter):
    client = greeter.client()
    answer, _, lines = invoke(client, http_event("POST", "/orders", body=json.dumps({"quantity": 2})))
    assert answer["statusCode"] == 400 and json.loads(answer["body"]) == {"statusCode": 400, "message": "an order needs an item"}
    assert lines == []
    answer, _, lines = invoke(client, http_event("DELETE", "/hello"))
    assert answer["statusCode"] == 404 and lines == []


def test_the_command_in_the_example_docstring(tmp_path):
    """``python -m lambdaric invoke examples/powertools/app.handler --event apigw-v2 --tail`` as the
    example's docstring gives it: the answer on stdout, Powertools' line in the tail on stderr."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA_", "_HANDLER", "LAMBDARIC_"))}
    env.update(ENV, PYTHONPATH=os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
    done = subprocess.run([sys.executable, "-m", "lambdaric", "invoke", "examples/powertools/app.handler", "--event", "apigw-v2", "--tail"],
                          cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(json.loads(done.stdout)["body"]) == {"message": "hello, lambdaric"}
    err = done.stderr.decode()
    request_id = re.search(r"^START RequestId: (\S+) ", err, re.M).group(1)
    (line,) = structured("\n".join(l for l in err.splitlines() if l.startswith(("{", "START ", "END ", "REPORT "))))
    assert line["message"] == "greeting" and line["cold_start"] is True and line["function_request_id"] == request_id


def test_the_same_function_under_awslambdaric_answers_and_logs_alike(greeter, awslambdaric_peer):
    """The README's claim that nothing in the example knows lambdaric: behind the same emulator, the
    official client gives the same answers and the same log lines (but for ids and times)."""
    official = RunningEmulator({}, handler=None, cwd=EXAMPLE, env=ENV,
                               args=["--function-name", "greeter", "--command", "%s -m awslambdaric app.handler" % sys.executable])
    order = json.dumps({"item": "poster"})
    with official:
        for event in (events.load("apigw-v2"), http_event("POST", "/orders", body=order)):
            ours, our_id, our_lines = invoke(greeter.client(), event)
            theirs, their_id, their_lines = invoke(official.client(), event)
            assert ours["statusCode"] == theirs["statusCode"]
            assert json.loads(ours["body"].replace(our_id, "ID")) == json.loads(theirs["body"].replace(their_id, "ID"))
            assert len(our_lines) == len(their_lines) == 1
            varying = ("timestamp", "function_request_id", "xray_trace_id")
            assert {k: v for k, v in our_lines[0].items() if k not in varying} == {k: v for k, v in their_lines[0].items() if k not in varying}
            assert (our_lines[0]["function_request_id"], their_lines[0]["function_request_id"]) == (our_id, their_id)
