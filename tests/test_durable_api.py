"""The durable routes' bad input, answered as Lambda answers it, with nothing lost or left running.

A non-durable function invoked as durable, a malformed checkpoint, a stale checkpoint token, an
unknown callback id or execution, a reused execution name: each gets Lambda's status,
``X-Amzn-ErrorType`` and ``{"Type", "message"}`` (boto3 raises the modelled exception), and the
executions already there go on.
"""
from __future__ import annotations

import http.client
import json
import os
import sys
import time
from urllib.parse import quote

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from emulator_harness import RunningEmulator  # noqa: E402
from peers import peer_module  # noqa: E402

peer_module("aws_durable_execution_sdk_python", "pip install 'lambdaric[durable]'")
peer_module("aws_durable_execution_sdk_python_testing", "pip install 'lambdaric[durable]'")

APP = '''
import json
from aws_durable_execution_sdk_python import durable_execution, DurableContext
from aws_durable_execution_sdk_python.config import Duration


def durable(event, context):
    """Keep every checkpoint token the service hands the function (for the stale-token test)."""
    with open("tokens", "a") as f:
        f.write(event["CheckpointToken"] + "\\n")
    return steps(event, context)


@durable_execution
def steps(event, context: DurableContext):
    a = context.step(lambda _: event.get("n", 0) + 1, name="one")
    context.wait(Duration.from_seconds(event.get("wait", 0) or 1), name="pause")
    return context.step(lambda _: a * 2, name="two")


def plain(event, context):
    return event
'''
FUNCTIONS = json.dumps({"functions": {
    "durable": {"handler": "app.durable", "durable": True},
    "plain": {"handler": "app.plain"},
}})


@pytest.fixture(scope="module")
def emu():
    with RunningEmulator({"app.py": APP, "functions.json": FUNCTIONS}, handler=None,
                         args=["--functions", "functions.json", "--skip-time"]) as e:
        yield e


def raw(emu: RunningEmulator, method: str, path: str, body: bytes = b"", headers: dict = None):  # type: ignore[assignment]
    host, port = emu.base[len("http://"):].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body or None, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def assert_lambda_error(answer, status: int, error_type: str) -> dict:  # type: ignore[no-untyped-def]
    got_status, headers, body = answer
    assert (got_status, headers.get("x-amzn-errortype")) == (status, error_type), (got_status, headers, body)
    obj = json.loads(body)
    assert obj["Type"] in ("User", "Service") and isinstance(obj["message"], str) and obj["message"]
    return obj


def run_one(emu: RunningEmulator, name: str, event: dict = None) -> str:  # type: ignore[assignment]
    r = emu.client().invoke(FunctionName="durable", Payload=json.dumps(event or {}).encode(), DurableExecutionName=name)
    assert "FunctionError" not in r, r["Payload"].read()
    assert json.loads(r["Payload"].read()) == ((event or {}).get("n", 0) + 1) * 2
    return r["DurableExecutionArn"]


def test_a_non_durable_function_invoked_as_durable(emu):
    client = emu.client()
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="not a durable function"):
        client.invoke(FunctionName="plain", Payload=b"{}", DurableExecutionName="nope")
    assert json.loads(client.invoke(FunctionName="plain", Payload=b'{"a": 1}')["Payload"].read()) == {"a": 1}


def test_execution_names_are_idempotent_per_payload(emu):
    client = emu.client()
    arn = run_one(emu, "same-name", {"n": 1})
    again = client.invoke(FunctionName="durable", Payload=json.dumps({"n": 1}).encode(), DurableExecutionName="same-name")
    assert again["DurableExecutionArn"] == arn and json.loads(again["Payload"].read()) == 4
    with pytest.raises(client.exceptions.DurableExecutionAlreadyStartedException):
        client.invoke(FunctionName="durable", Payload=b'{"n": 2}', DurableExecutionName="same-name")
    assert_lambda_error(raw(emu, "POST", "/2015-03-31/functions/durable/invocations", b'{"n": 2}',
                            {"X-Amz-Durable-Execution-Name": "same-name"}), 409, "DurableExecutionAlreadyStartedException")
    assert client.get_durable_execution(DurableExecutionArn=arn)["Status"] == "SUCCEEDED"


def test_invalid_names_and_payloads(emu):
    assert_lambda_error(raw(emu, "POST", "/2015-03-31/functions/durable/invocations", b"{}",
                            {"X-Amz-Durable-Execution-Name": "has space"}), 400, "InvalidParameterValueException")
    assert_lambda_error(raw(emu, "POST", "/2015-03-31/functions/durable/invocations", b"{not json",
                            {"X-Amz-Durable-Execution-Name": "bad-json"}), 400, "InvalidRequestContentException")
    assert_lambda_error(raw(emu, "POST", "/2021-11-15/functions/durable/response-streaming-invocations", b"{}"),
                        400, "InvalidParameterValueException")


def test_unknown_and_malformed_execution_arns(emu):
    client = emu.client()
    arn = run_one(emu, "for-arns")
    unknown = arn.rpartition("/")[0] + "/00000000-0000-4000-8000-000000000000"
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_durable_execution(DurableExecutionArn=unknown)
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_durable_execution_history(DurableExecutionArn=unknown)
    other_account = arn.replace(":123456789012:", ":999999999999:")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.get_durable_execution(DurableExecutionArn=other_account)
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.get_durable_execution(DurableExecutionArn="not-an-arn")
    assert_lambda_error(raw(emu, "GET", "/2025-12-01/durable-executions/%s/nothing" % quote(arn, safe="")), 404, "ResourceNotFoundException")
    assert_lambda_error(raw(emu, "DELETE", "/2025-12-01/durable-executions/%s/stop" % quote(arn, safe="")), 405, "InvalidRequestContentException")
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.list_durable_executions_by_function(FunctionName="nosuch")


def test_state_wants_a_current_token_and_list_names_the_execution(emu):
    client = emu.client()
    arn = run_one(emu, "for-state")
    with pytest.raises(client.exceptions.InvalidParameterValueException, match="checkpoint token"):
        client.get_durable_execution_state(DurableExecutionArn=arn, CheckpointToken="dG9rZW4=")
    token = open(os.path.join(emu.cwd, "tokens")).read().split()[-1]
    with pytest.raises(client.exceptions.InvalidParameterValueException):  # the execution has ended: no token is current
        client.get_durable_execution_state(DurableExecutionArn=arn, CheckpointToken=token)
    listed = client.list_durable_executions_by_function(FunctionName="durable")["DurableExecutions"]
    assert arn in [e["DurableExecutionArn"] for e in listed]


@pytest.mark.parametrize("body, why", [
    (b"{not json", "Could not parse"),
    (b"[]", "JSON object"),
    (b"{}", "CheckpointToken"),
    (json.dumps({"CheckpointToken": "dG9rZW4=", "Updates": "all"}).encode(), "Updates"),
    (json.dumps({"CheckpointToken": "dG9rZW4=", "Updates": [{"Id": "x"}]}).encode(), "Type"),
])
def test_a_malformed_checkpoint(emu, body, why):
    arn = run_one(emu, "malformed-%d" % abs(hash(body)))
    obj = assert_lambda_error(raw(emu, "POST", "/2025-12-01/durable-executions/%s/checkpoint" % quote(arn, safe=""), body,
                                  {"Content-Type": "application/json"}), 400, "InvalidParameterValueException")
    assert why in obj["message"]


def test_a_stale_checkpoint_token(emu):
    client = emu.client()
    arn = run_one(emu, "stale")
    tokens = open(os.path.join(emu.cwd, "tokens")).read().split()
    assert len(tokens) >= 2  # invoked again after the wait, with a new token
    update = [{"Id": "late-step", "Type": "STEP", "Action": "START", "SubType": "Step", "Name": "late"}]
    with pytest.raises(client.exceptions.InvalidParameterValueException):
        client.checkpoint_durable_execution(DurableExecutionArn=arn, CheckpointToken=tokens[0], Updates=update)
    history = client.get_durable_execution_history(DurableExecutionArn=arn)["Events"]
    assert "late" not in json.dumps(history, default=str)
    assert client.get_durable_execution(DurableExecutionArn=arn)["Status"] == "SUCCEEDED"


def test_unknown_callback_ids(emu):
    client = emu.client()
    for send in (lambda cid: client.send_durable_execution_callback_success(CallbackId=cid, Result=b"{}"),
                 lambda cid: client.send_durable_execution_callback_failure(CallbackId=cid, Error={"ErrorMessage": "x"}),
                 lambda cid: client.send_durable_execution_callback_heartbeat(CallbackId=cid)):
        with pytest.raises(client.exceptions.ResourceNotFoundException):
            send("dW5rbm93bg==")
    assert_lambda_error(raw(emu, "POST", "/2025-12-01/durable-execution-callbacks/%s/succeed" % quote("not valid!", safe=""), b"{}"),
                        400, "InvalidParameterValueException")


def test_the_durable_routes_without_a_durable_function():
    with RunningEmulator({"app.py": "def handler(e, c):\n    return e\n"}) as emu:
        assert_lambda_error(raw(emu, "GET", "/2025-12-01/durable-executions/x"), 404, "ResourceNotFoundException")
        with pytest.raises(emu.client().exceptions.InvalidParameterValueException):
            emu.client().invoke(FunctionName="function", Payload=b"{}", DurableExecutionName="n")


def test_work_goes_on_after_bad_input(emu):
    started = time.monotonic()
    assert run_one(emu, "after-all", {"n": 5})
    assert time.monotonic() - started < 10


def test_the_functions_files_durable_keys_are_checked():
    from lambdaric.emulator.function_config import ConfigError, parse_functions_file

    specs = parse_functions_file('{"functions": {"a": {"handler": "x.y", "durable": true, "execution_timeout": 60}, '
                                 '"b": {"handler": "x.z"}}}')
    assert [(s.name, s.durable, s.execution_timeout) for s in specs] == [("a", True, 60), ("b", None, None)]
    for bad, why in (('"durable": "yes"', "durable must be true or false"),
                     ('"execution_timeout": 0', "execution_timeout must be a whole number from 1 to 31622400"),
                     ('"execution_timeout": 31622401', "execution_timeout"),
                     ('"execution_timeout": 1.5', "execution_timeout")):
        with pytest.raises(ConfigError, match=why):
            parse_functions_file('{"functions": {"a": {"handler": "x.y", %s}}}' % bad)


def test_durable_runtimes_always_get_dummy_credentials_and_others_keep_theirs():
    import argparse

    from lambdaric.emulator.cli import build_parser
    from lambdaric.emulator.function_config import plan_functions

    args: argparse.Namespace = build_parser().parse_args(["app.handler", "--durable", "--function", "other=app.other"])
    inherited = {"AWS_ACCESS_KEY_ID": "AKIAREAL", "AWS_SECRET_ACCESS_KEY": "real", "AWS_SESSION_TOKEN": "t", "AWS_PROFILE": "prod"}
    functions, _ = plan_functions(args, "/tmp", inherited, lambda _: None)
    assert [f.durable for f in functions] == [True, True]
    for f in functions:
        assert (f.env["AWS_ACCESS_KEY_ID"], f.env["AWS_SECRET_ACCESS_KEY"]) == ("lambdaric-local", "lambdaric-local")
        assert "AWS_SESSION_TOKEN" not in f.env and "AWS_PROFILE" not in f.env
        assert f.execution_timeout == 86400
    plain, _ = plan_functions(build_parser().parse_args(["app.handler"]), "/tmp", inherited, lambda _: None)
    assert not plain[0].durable and plain[0].env["AWS_ACCESS_KEY_ID"] == "AKIAREAL"
