"""examples/fastapi end to end: the FastAPI app behind mangum runs under the emulator and is
invoked (boto3) with the sample API Gateway HTTP API and function URL events (payload 2.0),
changed only where a route needs it; what comes back is the proxy-integration answer API
Gateway or the function URL turns into the HTTP response: statusCode, headers, cookies, body."""
import copy
import json
import os

import pytest

from peers import peer_module

from emulator_harness import REPO, RunningEmulator
from lambdaric import events

peer_module("boto3", "pip install boto3")
pytest.importorskip("fastapi", reason="fastapi is not installed (pip install fastapi mangum)")
pytest.importorskip("mangum", reason="mangum is not installed (pip install mangum)")

EXAMPLE = os.path.join(REPO, "examples", "fastapi")


def request(name, method=None, path=None, query=None, body=None):
    """The sample event ``name`` with the request line (and body) changed as an HTTP API would."""
    event = copy.deepcopy(events.load(name))
    if method:
        event["requestContext"]["http"]["method"] = method
    if path:
        event["rawPath"] = event["requestContext"]["http"]["path"] = path
    if query is not None:
        event["rawQueryString"] = query
        event.pop("queryStringParameters", None)
    if body is not None:
        event["body"] = body
        event["headers"]["content-length"] = str(len(body.encode()))
    return event


@pytest.fixture(scope="module")
def emu():
    with RunningEmulator({}, handler="app.handler", cwd=EXAMPLE, env={"PYTHONDONTWRITEBYTECODE": "1"}) as running:
        yield running


def invoke(emu, event):
    answer = emu.client().invoke(FunctionName="function", Payload=json.dumps(event).encode())
    result = json.loads(answer["Payload"].read())
    assert "FunctionError" not in answer, result
    return answer, result


def test_http_api_get_with_query_and_cookies(emu):
    """The apigw-v2 sample as it is: GET /hello?name=lambdaric&lang=en, cookie theme=dark."""
    _, result = invoke(emu, events.load("apigw-v2"))
    assert result["statusCode"] == 200
    assert result["headers"]["content-type"] == "application/json"
    assert json.loads(result["body"]) == {"message": "hello, lambdaric", "theme": "dark"}
    assert result["cookies"] == ["greeted=lambdaric; Path=/; SameSite=lax"]
    assert result["isBase64Encoded"] is False


def test_http_api_path_parameter(emu):
    _, result = invoke(emu, request("apigw-v2", path="/items/42", query=""))
    assert result["statusCode"] == 200
    assert json.loads(result["body"]) == {"item_id": 42, "name": "thumbnail-pack", "price": 4.5}
    assert result["headers"]["content-length"] == str(len(result["body"]))


@pytest.mark.parametrize("path, detail", [
    ("/items/7", "item 7 not found"),      # the route's own 404
    ("/no/such/route", "Not Found"),       # FastAPI's
])
def test_http_api_not_found(emu, path, detail):
    _, result = invoke(emu, request("apigw-v2", path=path, query=""))
    assert result["statusCode"] == 404
    assert result["headers"]["content-type"] == "application/json"
    assert json.loads(result["body"]) == {"detail": detail}


def test_function_url_post_with_a_body_model(emu):
    """The function-url sample as it is: POST /orders {"item": "thumbnail-pack", "quantity": 2};
    the order id is the Lambda request id, which the app gets from mangum's scope."""
    answer, result = invoke(emu, events.load("function-url"))
    request_id = answer["ResponseMetadata"]["RequestId"]
    assert result["statusCode"] == 201
    assert result["headers"]["location"] == "/orders/" + request_id
    assert json.loads(result["body"]) == {
        "order_id": request_id, "item": "thumbnail-pack", "quantity": 2, "source_ip": "203.0.113.10",
    }


def test_function_url_invalid_body_is_422(emu):
    _, result = invoke(emu, request("function-url", body='{"item": "thumbnail-pack", "quantity": 0}'))
    assert result["statusCode"] == 422
    errors = json.loads(result["body"])["detail"]
    assert [(e["loc"], e["type"]) for e in errors] == [(["body", "quantity"], "greater_than")]


def test_function_url_method_not_allowed(emu):
    _, result = invoke(emu, request("function-url", method="DELETE"))
    assert result["statusCode"] == 405
    assert result["headers"]["allow"] == "POST"
