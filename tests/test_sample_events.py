"""The sample events (lambdaric/events/): each validates against the Powertools parser model of its
service, with no key that model does not know (a typo would otherwise pass unnoticed: pydantic
ignores extra keys), shares one fake account and region, and holds together (an SQS md5OfBody is
the body's MD5, a REST API's multiValueHeaders mirror its headers, ...). Then through the wire:
``python -m lambdaric event NAME|list`` as a user runs it, and ``lambdaric invoke --event NAME``
reaching a handler behind the emulator.
"""
import base64
import collections.abc
import hashlib
import inspect
import json
import os
import re
import subprocess
import sys
import types
import typing
import urllib.parse

import pytest

from emulator_harness import REPO

from lambdaric import events

ACCOUNT = "123456789012"
REGION = "us-east-1"
INSTALL = "pip install 'aws-lambda-powertools[parser]>=3' (or pip install -e '.[examples]')"

#: event name -> the Powertools parser model that must accept it
MODELS = {
    "apigw-v1": "APIGatewayProxyEventModel",
    "apigw-v2": "APIGatewayProxyEventV2Model",
    "function-url": "LambdaFunctionUrlModel",
    "alb": "AlbModel",
    "sqs": "SqsModel",
    "sns": "SnsModel",
    "s3": "S3Model",
    "dynamodb-stream": "DynamoDBStreamModel",
    "eventbridge": "EventBridgeModel",
    "kinesis": "KinesisDataStreamModel",
    "scheduled": "EventBridgeModel",
}


@pytest.fixture(scope="module")
def models():
    return pytest.importorskip("aws_lambda_powertools.utilities.parser.models", reason="Powertools is not installed: " + INSTALL)


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA_", "_HANDLER", "LAMBDARIC_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
    return env


def lambdaric(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "lambdaric"] + list(args), cwd=str(cwd), env=_env(),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=60)


# -- what the package holds ---------------------------------------------------------------------

def test_the_names_are_the_shipped_files_each_described():
    shipped = {n[:-5] for n in os.listdir(os.path.dirname(events.__file__)) if n.endswith(".json")}
    assert set(events.names()) == shipped == set(MODELS)
    assert len(events.names()) == len(shipped) == 11
    for name in events.names():
        assert events.DESCRIPTIONS[name].strip() and "\n" not in events.DESCRIPTIONS[name]


@pytest.mark.parametrize("name", events.names())
def test_text_is_the_json_of_load_and_load_is_a_fresh_copy(name):
    text = events.text(name)
    assert text.endswith("}\n") and json.loads(text) == events.load(name)
    first = events.load(name)
    first.clear()
    assert events.load(name) and events.load(name) == json.loads(text)


@pytest.mark.parametrize("bad", ["nope", "../setup", "s3.json", "S3", ""])
def test_an_unknown_name_is_refused_with_the_list(bad):
    with pytest.raises(events.UnknownEvent) as caught:
        events.load(bad)
    assert isinstance(caught.value, LookupError)
    assert repr(bad) in str(caught.value) and "apigw-v2, function-url" in str(caught.value)


# -- the shapes Powertools' parsers expect -------------------------------------------------------

def _is_model(annotation):
    from pydantic import BaseModel

    # a bare BaseModel (or type[BaseModel]) in a union means "parse into your own model": any keys
    return inspect.isclass(annotation) and issubclass(annotation, BaseModel) and annotation is not BaseModel


def _unknown_keys(annotation, value, where):
    """Keys in ``value`` that the pydantic type ``annotation`` has no field for, recursively."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if _is_model(annotation) and isinstance(value, dict):
        fields = {}
        for name, field in annotation.model_fields.items():
            fields[field.alias or name] = field.annotation
        found = []
        for key, item in value.items():
            if key not in fields:
                found.append("%s.%s" % (where, key))
            else:
                found += _unknown_keys(fields[key], item, "%s.%s" % (where, key))
        return found
    if origin in (typing.Union, getattr(types, "UnionType", typing.Union)):
        for arg in args:  # a concrete model first, then containers
            if _is_model(arg) and isinstance(value, dict):
                return _unknown_keys(arg, value, where)
        for arg in args:
            if typing.get_origin(arg) in (list, dict, collections.abc.Sequence):
                return _unknown_keys(arg, value, where)
        return []
    if origin in (list, collections.abc.Sequence) and isinstance(value, list):
        return [k for i, item in enumerate(value) for k in _unknown_keys(args[0], item, "%s[%d]" % (where, i))]
    if origin is dict and isinstance(value, dict) and len(args) == 2:
        return [k for key, item in value.items() for k in _unknown_keys(args[1], item, "%s.%s" % (where, key))]
    return []


@pytest.mark.parametrize("name", events.names())
def test_each_event_validates_against_its_powertools_model_with_no_unknown_key(models, name):
    model = getattr(models, MODELS[name])
    model.model_validate(events.load(name))  # raises pydantic's ValidationError, naming the field
    assert _unknown_keys(model, events.load(name), name) == []


def test_the_unknown_key_check_catches_a_typo(models):
    """The check above is not vacuous: a misspelt nested key is named."""
    event = events.load("apigw-v2")
    event["requestContext"]["http"]["sourceIP"] = event["requestContext"]["http"].pop("sourceIp")
    event["requestContext"]["http"]["sourceIp"] = "203.0.113.10"
    event["Records"] = []
    found = _unknown_keys(models.APIGatewayProxyEventV2Model, event, "apigw-v2")
    assert found == ["apigw-v2.requestContext.http.sourceIP", "apigw-v2.Records"]


def test_parsed_values_are_the_ones_a_handler_would_use(models):
    s3 = models.S3Model.model_validate(events.load("s3")).Records[0]
    assert (s3.eventName, s3.s3.bucket.name, s3.s3.object.key) == ("ObjectCreated:Put", "media", "videos/clip.mp4")
    scheduled = models.EventBridgeModel.model_validate(events.load("scheduled"))
    assert (scheduled.source, scheduled.detail_type, scheduled.detail) == ("aws.events", "Scheduled Event", {})
    kinesis = models.KinesisDataStreamModel.model_validate(events.load("kinesis"))
    assert [json.loads(r.kinesis.data)["user"] for r in kinesis.Records] == ["user-17", "user-42"]
    stream = models.DynamoDBStreamModel.model_validate(events.load("dynamodb-stream"))
    assert [r.eventName for r in stream.Records] == ["INSERT", "MODIFY"]
    assert stream.Records[1].dynamodb.OldImage["status"] == "PLACED" and stream.Records[1].dynamodb.NewImage["status"] == "SHIPPED"


# -- one consistent fake world --------------------------------------------------------------------

def _walk(value, path=""):
    if isinstance(value, dict):
        for key, item in value.items():
            yield path + "." + key, key, item
            yield from _walk(item, path + "." + key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, "%s[%d]" % (path, i))


@pytest.mark.parametrize("name", events.names())
def test_one_account_one_region(name):
    text = events.text(name)
    for service, region, account in re.findall(r"arn:aws:([a-z0-9-]+):([a-z0-9-]*):(\d*):", text):
        assert region in ("", REGION) and account in ("", ACCOUNT), (service, region, account)
    for path, key, item in _walk(events.load(name)):
        if key in ("awsRegion", "region"):
            assert item == REGION, path
        if key in ("accountId", "account") and item is not None:
            # a function URL with auth type NONE says "anonymous"
            assert item == ("anonymous" if name == "function-url" else ACCOUNT), path
        if key in ("Host", "host", "domainName") and isinstance(item, str):
            assert ".%s." % REGION in item, path


def test_each_event_holds_together():
    v1 = events.load("apigw-v1")
    assert v1["multiValueHeaders"] == {k: [v] for k, v in v1["headers"].items()}
    assert v1["multiValueQueryStringParameters"] == {k: [v] for k, v in v1["queryStringParameters"].items()}
    ctx = v1["requestContext"]
    assert ctx["path"] == "/%s%s" % (ctx["stage"], v1["path"]) and ctx["resourcePath"] == v1["resource"]
    assert ctx["httpMethod"] == v1["httpMethod"] and v1["path"] == v1["resource"].replace("{id}", v1["pathParameters"]["id"])
    for name in ("apigw-v2", "function-url"):
        ev = events.load(name)
        assert ev["rawPath"] == ev["requestContext"]["http"]["path"], name
        assert dict(urllib.parse.parse_qsl(ev["rawQueryString"])) == ev.get("queryStringParameters", {}), name
        assert ev["headers"]["host"] == ev["requestContext"]["domainName"], name
        if ev.get("body"):
            assert ev["headers"]["content-length"] == str(len(ev["body"].encode())), name
    for record in events.load("sqs")["Records"]:
        assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
        assert int(record["attributes"]["ApproximateFirstReceiveTimestamp"]) >= int(record["attributes"]["SentTimestamp"])
    for record in events.load("kinesis")["Records"]:
        json.loads(base64.b64decode(record["kinesis"]["data"], validate=True))
        assert record["eventID"].endswith(":" + record["kinesis"]["sequenceNumber"])
    sns = events.load("sns")["Records"][0]
    assert sns["EventSubscriptionArn"].startswith(sns["Sns"]["TopicArn"] + ":")
    assert sns["EventSubscriptionArn"] in sns["Sns"]["UnsubscribeUrl"]
    s3 = events.load("s3")["Records"][0]["s3"]
    assert s3["bucket"]["arn"] == "arn:aws:s3:::" + s3["bucket"]["name"]


# -- through the wire ------------------------------------------------------------------------------

def test_event_list_prints_every_name_with_its_description():
    done = lambdaric("event", "list")
    assert done.returncode == 0 and done.stderr == b""
    lines = done.stdout.decode().splitlines()
    assert [line.split()[0] for line in lines] == events.names()
    for line, name in zip(lines, events.names()):
        assert line.endswith("  " + events.DESCRIPTIONS[name])
    assert lambdaric("event", "LIST").stdout == done.stdout


@pytest.mark.parametrize("name", events.names())
def test_event_name_prints_the_json_that_round_trips(name):
    done = lambdaric("event", name)
    assert done.returncode == 0 and done.stderr == b""
    assert done.stdout == events.text(name).encode("utf-8")
    assert json.loads(done.stdout) == events.load(name)


@pytest.mark.parametrize("argv", [["event", "nope"], ["event", "s3", "sqs"], ["event"]])
def test_event_with_an_unknown_name_or_no_name_exits_2_and_says_why(argv):
    done = lambdaric(*argv)
    assert done.returncode == 2 and done.stdout == b""
    if argv[1:] == ["nope"]:
        err = done.stderr.decode()
        assert err.startswith("lambdaric event: no sample event named 'nope'; one of:\n")
        assert all(("\n%s " % n) in err for n in events.names())
    else:
        assert b"usage: python -m lambdaric event list" in done.stderr


ECHO = "def handler(event, context):\n    return {'event': event, 'request_id': context.aws_request_id}\n"


@pytest.mark.parametrize("name", ["s3", "apigw-v2", "sqs"])
def test_invoke_with_a_sample_event_by_name_reaches_the_handler(tmp_path, name):
    pytest.importorskip("requests", reason="requests is not installed")
    (tmp_path / "app.py").write_text(ECHO)
    done = lambdaric("invoke", "app.handler", "--event", name, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["event"] == events.load(name) and re.fullmatch(r"[0-9a-f-]{36}", answer["request_id"])


def test_invoke_refuses_an_unknown_sample_or_two_events(tmp_path):
    (tmp_path / "app.py").write_text(ECHO)
    done = lambdaric("invoke", "app.handler", "--event", "nope", cwd=tmp_path)
    assert done.returncode == 2 and b"argument --event: invalid choice: 'nope'" in done.stderr
    done = lambdaric("invoke", "app.handler", '{"a": 1}', "--event", "s3", cwd=tmp_path)
    assert done.returncode == 2 and b"give the event either as EVENT or as --event NAME, not both" in done.stderr
    assert done.stdout == b""
