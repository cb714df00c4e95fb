"""The HTTP front's pure mapping (lambdaric/emulator/web_events.py): requests as the events
of each integration, results as HTTP answers, routes. Exact fields, no sockets."""
import base64
import json

import pytest

from lambdaric.emulator import web_events as we
from lambdaric.emulator.web_events import BadResult, INTEGRATIONS, Match, WebRequest

NOW = 1583348638.390  # 04/Mar/2020:19:03:58 +0000
TRACE = "Root=1-5e5ff9de-0123456789abcdef01234567;Parent=0123456789abcdef;Sampled=0"


def ctx(function="fn", stage="$default", binary=()):
    return we.Context(function, "c0ffee00-1111-2222-3333-444455556666", TRACE, NOW, stage, list(binary))


def req(method="GET", path="/my/path", query="", fields=(("Host", "127.0.0.1:8000"), ("User-Agent", "agent/1")), body=b""):
    return WebRequest(method, path, query, list(fields), body, "192.0.2.1", "HTTP/1.1", 8000)


def no_route():
    return Match(None, {})


# --------------------------------------------------------------------------- routes


def test_parse_route_forms():
    r = we.parse_route("GET /items/{id}/{proxy+}=other")
    assert (r.method, r.template, r.segments, r.function) == ("GET", "/items/{id}/{proxy+}", ("items", "{id}", "{proxy+}"), "other")
    assert r.key == "GET /items/{id}/{proxy+}"
    assert we.parse_route("any /").template == "/" and we.parse_route("any /").method == "ANY"
    assert we.parse_route("$default").key == "$default"
    assert we.parse_route("$default=fn2").function == "fn2"


@pytest.mark.parametrize("spec", [
    "FETCH /x", "GET x", "GET /a/{proxy+}/b", "GET /a/{id}/{id}", "GET /a/b{id}", "GET /x=bad name", "GET /{}",
])
def test_parse_route_refuses(spec):
    with pytest.raises(ValueError):
        we.parse_route(spec)


def test_match_prefers_the_most_specific_route():
    routes = [we.parse_route(s) for s in (
        "ANY /{proxy+}", "GET /items/{id}", "GET /items/new", "ANY /items/{id}", "POST /items/{id}=writer", "$default=fallback",
    )]
    assert we.match_route(routes, "GET", "/items/new").route.template == "/items/new"
    m = we.match_route(routes, "GET", "/items/42")
    assert (m.route.key, m.params) == ("GET /items/{id}", {"id": "42"})
    assert we.match_route(routes, "DELETE", "/items/42").route.key == "ANY /items/{id}"
    assert we.match_route(routes, "POST", "/items/42").route.function == "writer"
    m = we.match_route(routes, "GET", "/a/b%20c/d")
    assert (m.route.key, m.params) == ("ANY /{proxy+}", {"proxy": "a/b c/d"})
    assert we.match_route(routes, "GET", "/").route.key == "$default"  # {proxy+} needs a segment


def test_match_without_routes_takes_everything_and_with_routes_can_miss():
    assert we.match_route([], "PATCH", "/anything") == Match(None, {})
    routes = [we.parse_route("GET /only")]
    assert we.match_route(routes, "GET", "/only") is not None
    assert we.match_route(routes, "GET", "/only/more") is None
    assert we.match_route(routes, "POST", "/only") is None
    assert we.match_route([we.parse_route("GET /a/{id}")], "GET", "/a/") is None  # an empty variable does not match


# --------------------------------------------------------------------------- media types


@pytest.mark.parametrize("content_type, text", [
    ("text/plain", True), ("text/html; charset=utf-8", True), ("application/json", True), ("application/ld+json", True),
    ("application/xml", True), ("image/svg+xml", True), ("application/javascript", True), ("APPLICATION/JSON", True),
    ("application/octet-stream", False), ("image/png", False), ("application/x-www-form-urlencoded", False),
    ("multipart/form-data; boundary=x", False), (None, False), ("", False),
])
def test_is_text(content_type, text):
    assert we.is_text(content_type) is text


def test_binary_media_types():
    types = we.parse_media_types(" image/* , application/octet-stream")
    assert types == ["image/*", "application/octet-stream"]
    assert we.matches_media_type("image/png", types)
    assert we.matches_media_type("application/octet-stream; x=1", types)
    assert not we.matches_media_type("application/json", types)
    assert we.matches_media_type("anything/at-all", ["*/*"])
    with pytest.raises(ValueError):
        we.parse_media_types("image")


def test_request_time_format():
    assert we.request_time(NOW) == "04/Mar/2020:19:03:58 +0000"
    assert we.request_time(1584039838.0) == "12/Mar/2020:19:03:58 +0000"


# --------------------------------------------------------------------------- payload 2.0


def test_function_url_event_exact():
    fields = [("Host", "127.0.0.1:8000"), ("User-Agent", "agent/1"), ("Cookie", "a=1; b=2"), ("X-Multi", "x"), ("x-multi", "y"),
              ("Content-Type", "application/json")]
    event = we.build_event(INTEGRATIONS["url"], req("POST", "/my/path", "p1=v1&p1=v2&p2=%20x", fields, b'{"k":1}'), no_route(), ctx())
    url_id = we.api_id("fn", 32)
    assert event == {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/my/path",
        "rawQueryString": "p1=v1&p1=v2&p2=%20x",
        "cookies": ["a=1", "b=2"],
        "headers": {
            "host": "127.0.0.1:8000", "user-agent": "agent/1", "cookie": "a=1; b=2", "x-multi": "x,y", "content-type": "application/json",
            "x-forwarded-for": "192.0.2.1", "x-forwarded-port": "8000", "x-forwarded-proto": "http",
            "x-amzn-trace-id": "Root=1-5e5ff9de-0123456789abcdef01234567",
        },
        "queryStringParameters": {"p1": "v1,v2", "p2": " x"},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": url_id,
            "domainName": "127.0.0.1:8000",
            "domainPrefix": "127",
            "http": {"method": "POST", "path": "/my/path", "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "agent/1"},
            "requestId": "c0ffee00-1111-2222-3333-444455556666",
            "routeKey": "$default",
            "stage": "$default",
            "time": "04/Mar/2020:19:03:58 +0000",
            "timeEpoch": 1583348638390,
        },
        "body": '{"k":1}',
        "isBase64Encoded": False,
        "pathParameters": None,
        "stageVariables": None,
    }
    assert len(url_id) == 32


def test_http_api_takes_the_cookie_header_out():
    event = we.build_event(INTEGRATIONS["http-api"], req(fields=[("Host", "h"), ("Cookie", "a=1"), ("Cookie", "b=2; c=3")]), no_route(), ctx())
    assert event["cookies"] == ["a=1", "b=2", "c=3"] and "cookie" not in event["headers"]


def test_payload_v2_binary_body_is_base64_and_empty_parts_are_left_out():
    event = we.build_event(INTEGRATIONS["http-api"], req("PUT", body=b"\x00\xff", fields=[("Content-Type", "image/png")]), no_route(), ctx())
    assert event["body"] == "AP8=" and event["isBase64Encoded"] is True
    assert "cookies" not in event and "queryStringParameters" not in event and "pathParameters" not in event
    assert "stageVariables" not in event
    bare = we.build_event(INTEGRATIONS["http-api"], req(), no_route(), ctx())
    assert "body" not in bare and bare["isBase64Encoded"] is False


def test_http_api_route_key_and_path_parameters():
    route = we.parse_route("GET /items/{id}")
    event = we.build_event(INTEGRATIONS["http-api"], req(path="/items/7"), Match(route, {"id": "7"}), ctx())
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "GET /items/{id}"
    assert event["pathParameters"] == {"id": "7"}
    assert event["requestContext"]["apiId"] == we.api_id("fn")
    assert event["requestContext"]["requestId"].endswith("=")  # API Gateway's short base64 id


def test_client_forwarded_for_and_trace_kept():
    fields = [("Host", "h"), ("X-Forwarded-For", "203.0.113.9"), ("X-Amzn-Trace-Id", "Root=1-aaaaaaaa-bbbbbbbbbbbbbbbbbbbbbbbb")]
    event = we.build_event(INTEGRATIONS["url"], req(fields=fields), no_route(), ctx())
    assert event["headers"]["x-forwarded-for"] == "203.0.113.9, 192.0.2.1"
    assert event["headers"]["x-amzn-trace-id"] == "Root=1-aaaaaaaa-bbbbbbbbbbbbbbbbbbbbbbbb"


# --------------------------------------------------------------------------- REST 1.0


def test_rest_event_exact():
    fields = [("Host", "127.0.0.1:8000"), ("User-Agent", "agent/1"), ("Accept", "a/b"), ("accept", "c/d"), ("Content-Type", "text/plain")]
    event = we.build_event(INTEGRATIONS["rest"], req("POST", "/a/b", "x=1&x=2&y=%2F", fields, b"hello"), no_route(), ctx(stage="local"))
    assert event == {
        "resource": "/{proxy+}",
        "path": "/a/b",
        "httpMethod": "POST",
        "headers": {
            "Host": "127.0.0.1:8000", "User-Agent": "agent/1", "Accept": "a/b", "accept": "c/d", "Content-Type": "text/plain",
            "X-Forwarded-For": "192.0.2.1", "X-Forwarded-Port": "8000", "X-Forwarded-Proto": "http",
            "X-Amzn-Trace-Id": "Root=1-5e5ff9de-0123456789abcdef01234567",
        },
        "multiValueHeaders": {
            "Host": ["127.0.0.1:8000"], "User-Agent": ["agent/1"], "Accept": ["a/b"], "accept": ["c/d"], "Content-Type": ["text/plain"],
            "X-Forwarded-For": ["192.0.2.1"], "X-Forwarded-Port": ["8000"], "X-Forwarded-Proto": ["http"],
            "X-Amzn-Trace-Id": ["Root=1-5e5ff9de-0123456789abcdef01234567"],
        },
        "queryStringParameters": {"x": "2", "y": "/"},
        "multiValueQueryStringParameters": {"x": ["1", "2"], "y": ["/"]},
        "pathParameters": {"proxy": "a/b"},
        "stageVariables": None,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": we.api_id("fn"),
            "domainName": "127.0.0.1:8000",
            "domainPrefix": "127",
            "extendedRequestId": event["requestContext"]["extendedRequestId"],
            "httpMethod": "POST",
            "identity": {
                "accessKey": None, "accountId": None, "caller": None, "cognitoAuthenticationProvider": None,
                "cognitoAuthenticationType": None, "cognitoIdentityId": None, "cognitoIdentityPoolId": None,
                "principalOrgId": None, "sourceIp": "192.0.2.1", "user": None, "userAgent": "agent/1", "userArn": None,
            },
            "path": "/local/a/b",
            "protocol": "HTTP/1.1",
            "requestId": "c0ffee00-1111-2222-3333-444455556666",
            "requestTime": "04/Mar/2020:19:03:58 +0000",
            "requestTimeEpoch": 1583348638390,
            "resourceId": we.api_id("/{proxy+}", 6),
            "resourcePath": "/{proxy+}",
            "stage": "local",
        },
        "body": "hello",
        "isBase64Encoded": False,
    }


def test_rest_same_header_name_twice_multi_and_last():
    fields = [("Host", "h"), ("X-A", "1"), ("X-A", "2")]
    event = we.build_event(INTEGRATIONS["rest"], req(fields=fields), no_route(), ctx())
    assert event["headers"]["X-A"] == "2" and event["multiValueHeaders"]["X-A"] == ["1", "2"]


def test_rest_nulls_root_and_routes():
    event = we.build_event(INTEGRATIONS["rest"], req(path="/"), no_route(), ctx())
    assert (event["resource"], event["pathParameters"], event["queryStringParameters"]) == ("/", None, None)
    assert event["multiValueQueryStringParameters"] is None and event["body"] is None and event["isBase64Encoded"] is False
    route = we.parse_route("GET /users/{id}")
    event = we.build_event(INTEGRATIONS["rest"], req(path="/users/9"), Match(route, {"id": "9"}), ctx())
    assert (event["resource"], event["requestContext"]["resourcePath"], event["pathParameters"]) == ("/users/{id}", "/users/{id}", {"id": "9"})


def test_rest_base64_only_for_binary_media_types():
    png = [("Host", "h"), ("Content-Type", "image/png")]
    plain = we.build_event(INTEGRATIONS["rest"], req("POST", fields=png, body=b"\x89PNG"), no_route(), ctx())
    assert plain["isBase64Encoded"] is False and plain["body"] == "\ufffdPNG"  # not binary for this API: text
    binary = we.build_event(INTEGRATIONS["rest"], req("POST", fields=png, body=b"\x89PNG"), no_route(), ctx(binary=["image/*"]))
    assert binary["isBase64Encoded"] is True and base64.b64decode(binary["body"]) == b"\x89PNG"


# --------------------------------------------------------------------------- ALB


def test_alb_event_exact():
    fields = [("Host", "lb"), ("User-Agent", "ua"), ("X-A", "1"), ("X-A", "2"), ("Content-Type", "application/json")]
    event = we.build_event(INTEGRATIONS["alb"], req("POST", "/p", "a=%20b&a=c&d", fields, b"{}"), no_route(), ctx())
    assert event == {
        "requestContext": {"elb": {"targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/fn/%s" % we.api_id("fn", 16)}},
        "httpMethod": "POST",
        "path": "/p",
        "queryStringParameters": {"a": "c", "d": ""},
        "headers": {
            "host": "lb", "user-agent": "ua", "x-a": "2", "content-type": "application/json",
            "x-forwarded-for": "192.0.2.1", "x-forwarded-port": "8000", "x-forwarded-proto": "http",
            "x-amzn-trace-id": "Root=1-5e5ff9de-0123456789abcdef01234567",
        },
        "body": "{}",
        "isBase64Encoded": False,
    }


def test_alb_multi_event_keeps_raw_query_and_every_value():
    fields = [("Host", "lb"), ("X-A", "1"), ("X-A", "2")]
    event = we.build_event(INTEGRATIONS["alb-multi"], req(query="a=%20b&a=c", fields=fields), no_route(), ctx())
    assert event["multiValueQueryStringParameters"] == {"a": ["%20b", "c"]}
    assert event["multiValueHeaders"]["x-a"] == ["1", "2"]
    assert "headers" not in event and "queryStringParameters" not in event
    assert event["body"] == "" and event["isBase64Encoded"] is False
    empty = we.build_event(INTEGRATIONS["alb"], req(), no_route(), ctx())
    assert empty["queryStringParameters"] == {}


# --------------------------------------------------------------------------- results


def result(integration, obj, **kw):
    payload = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return we.parse_result(INTEGRATIONS[integration], payload, **kw)


def test_v2_structured_result():
    res = result("url", {"statusCode": 201, "headers": {"Content-Type": "text/plain", "X-N": 5, "Content-Length": "999"},
                         "cookies": ["a=1; Path=/", "b=2"], "body": "made"})
    assert res.status == 201 and res.body == b"made"
    assert res.headers == [("Content-Type", "text/plain"), ("X-N", "5"), ("Set-Cookie", "a=1; Path=/"), ("Set-Cookie", "b=2")]
    res = result("http-api", {"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True})
    assert res.body == b"\x00\x01"


@pytest.mark.parametrize("value, body", [
    ({"message": "hi"}, b'{"message": "hi"}'), ([1, 2], b"[1, 2]"), (42, b"42"), (None, b"null"), ("Hello from Lambda!", b"Hello from Lambda!"),
])
def test_v2_inferred_result(value, body):
    res = result("http-api", value)
    assert (res.status, res.headers, res.body) == (200, [("Content-Type", "application/json")], body)


@pytest.mark.parametrize("integration", ["url", "http-api", "rest", "alb", "alb-multi"])
@pytest.mark.parametrize("obj, why", [
    (b"not json", "not JSON"),
    ({"statusCode": "200", "body": ""}, "not an integer"),
    ({"statusCode": True}, "not an integer"),
    ({"statusCode": 99}, "not a final HTTP status"),
    ({"statusCode": 101}, "not a final HTTP status"),
    ({"statusCode": 600}, "not a final HTTP status"),
    ({"statusCode": 200, "body": {"a": 1}}, "not a string"),
    ({"statusCode": 200, "body": "!!!", "isBase64Encoded": True}, "not valid base64"),
    ({"statusCode": 200, "isBase64Encoded": "yes"}, "not true or false"),
    ({"statusCode": 200, "headers": {"X-Evil": "a\r\nSet-Cookie: owned=1"}}, "CR, LF or NUL"),
    ({"statusCode": 200, "headers": {"Bad Name": "v"}}, "invalid header name"),
    ({"statusCode": 200, "headers": {"X": {"nested": 1}}}, "not a string"),
    ({"statusCode": 200, "headers": ["X: y"]}, "not an object"),
])
def test_results_the_integration_refuses(integration, obj, why):
    with pytest.raises(BadResult, match=why):
        result(integration, obj)


@pytest.mark.parametrize("integration", ["rest", "alb", "alb-multi"])
@pytest.mark.parametrize("obj", [[1], "text", {"body": "no status"}, 5])
def test_proxy_results_need_an_object_with_status(integration, obj):
    with pytest.raises(BadResult):
        result(integration, obj)


def test_v2_cookie_injection_refused():
    with pytest.raises(BadResult, match="CR, LF or NUL"):
        result("url", {"statusCode": 200, "cookies": ["a=1\r\nX-Evil: 1"]})
    with pytest.raises(BadResult, match="not a list"):
        result("url", {"statusCode": 200, "cookies": "a=1"})


def test_rest_merges_headers_and_multi_value_headers():
    res = result("rest", {"statusCode": 200, "headers": {"X-A": "single", "X-B": "b"}, "multiValueHeaders": {"X-A": ["1", "2"], "Set-Cookie": ["c=1", "d=2"]}, "body": "x"})
    assert res.headers == [("X-A", "1"), ("X-A", "2"), ("Set-Cookie", "c=1"), ("Set-Cookie", "d=2"), ("X-B", "b")]


def test_rest_base64_answer_decoded_only_for_binary_media_types():
    obj = {"statusCode": 200, "headers": {"Content-Type": "image/png"}, "body": base64.b64encode(b"\x89PNG").decode(), "isBase64Encoded": True}
    assert result("rest", obj).body == base64.b64encode(b"\x89PNG")  # no binary media types: the text as is
    # the answer's Content-Type does not decide: the request's first Accept type does
    assert result("rest", obj, binary_media_types=["image/png"]).body == base64.b64encode(b"\x89PNG")
    assert result("rest", obj, accept="text/html,image/png", binary_media_types=["image/png"]).body == base64.b64encode(b"\x89PNG")
    assert result("rest", obj, accept="image/png", binary_media_types=["image/*"]).body == b"\x89PNG"
    assert result("rest", obj, accept="text/html,image/png", binary_media_types=["*/*"]).body == b"\x89PNG"
    obj["headers"] = {"Content-Type": "application/json"}
    assert result("rest", obj, accept="image/png, */*", binary_media_types=["image/png"]).body == b"\x89PNG"


def test_alb_status_description_and_multi_value_headers():
    res = result("alb", {"statusCode": 200, "statusDescription": "200 Fine", "headers": {"X": "1"}, "multiValueHeaders": {"Y": ["2"]}, "body": "b"})
    assert (res.status, res.reason, res.headers) == (200, "Fine", [("X", "1")])
    res = result("alb-multi", {"statusCode": 404, "multiValueHeaders": {"Y": ["2", "3"]}, "headers": {"X": "1"}})
    assert (res.status, res.reason, res.headers, res.body) == (404, None, [("Y", "2"), ("Y", "3")], b"")
    with pytest.raises(BadResult, match="one-line"):
        result("alb", {"statusCode": 200, "statusDescription": "200 OK\r\nX: y"})
    with pytest.raises(BadResult, match="1 MB"):
        result("alb", {"statusCode": 200, "body": "x" * (1024 * 1024)})


def test_framing_headers_of_the_function_are_dropped():
    res = result("url", {"statusCode": 200, "headers": {"Transfer-Encoding": "chunked", "Connection": "close", "X": "y"}, "body": ""})
    assert res.headers == [("X", "y")]


def test_prelude():
    assert we.parse_prelude(b'{"statusCode":201,"headers":{"Content-Type":"text/plain"},"cookies":["a=1"]}') == (
        201, [("Content-Type", "text/plain"), ("Set-Cookie", "a=1")])
    assert we.parse_prelude(b"{}") == (200, [])
    assert we.parse_prelude(b"") == (200, [])
    for bad in (b"nope", b"[]", b'{"statusCode":"x"}', b'{"headers":{"a":"b\\nc"}}'):
        with pytest.raises(BadResult):
            we.parse_prelude(bad)
    res = we.parse_result(INTEGRATIONS["url"], b'{"statusCode":202}' + we.PRELUDE_DELIMITER + b"body", we.HTTP_INTEGRATION_RESPONSE)
    assert (res.status, res.body) == (202, b"body")


def test_error_answers_per_integration():
    assert we.failed(INTEGRATIONS["rest"]) == (502, [("Content-Type", "application/json")], b'{"message": "Internal server error"}', None)
    assert we.failed(INTEGRATIONS["http-api"]).status == 500
    assert we.failed(INTEGRATIONS["http-api"]).body == b'{"message":"Internal Server Error"}'
    assert we.failed(INTEGRATIONS["url"])[:1] == (502,) and we.failed(INTEGRATIONS["url"]).body == b"Internal Server Error"
    assert we.failed(INTEGRATIONS["alb"]).status == 502 and b"502 Bad Gateway" in we.failed(INTEGRATIONS["alb"]).body
    assert we.too_large(INTEGRATIONS["http-api"]).body == b'{"message":"Request Entity Too Large"}'
    assert we.not_found(INTEGRATIONS["rest"]).body == b'{"message":"Not Found"}'
    assert we.refused(INTEGRATIONS["rest"], 429).status == 500
    assert we.refused(INTEGRATIONS["url"], 429).status == 429
    assert we.request_limit(INTEGRATIONS["alb"], 6 * 1024 * 1024) == 1024 * 1024
