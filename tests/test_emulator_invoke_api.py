"""The emulator's Invoke API checks and its invocation state machine, without sockets."""
import asyncio
import base64

import pytest

from lambdaric.emulator.invocation import TRANSITIONS, Invocation, State
from lambdaric.emulator.invoke_api import (PAYLOAD_NOT_JSON, InvokeRequest, Refused, Route, check_payload, function_name,
                                           parse_invoke, route)

PATH = "/2015-03-31/functions/%s/invocations"


def parse(name="function", query=None, too_large=False, **headers):
    where = route("POST", PATH % name)
    assert isinstance(where, Route)
    return parse_invoke(where, query or {}, {k.replace("_", "-"): v for k, v in headers.items()}, too_large)


def test_route():
    assert route("POST", PATH % "f") == Route("f", False)
    assert route("POST", "/2021-11-15/functions/f/response-streaming-invocations") == Route("f", True)
    missing, wrong_method = route("POST", "/nowhere"), route("GET", PATH % "f")
    assert isinstance(missing, Refused) and (missing.status, missing.error_type) == (404, "ResourceNotFoundException")
    assert isinstance(wrong_method, Refused) and wrong_method.status == 405


def test_parse_invoke_defaults_and_headers():
    parsed = parse(query={"Qualifier": "7"}, x_amz_log_type="Tail", x_amz_tenant_id="t1", x_amzn_trace_id="Root=1")
    assert isinstance(parsed, InvokeRequest)
    assert (parsed.name, parsed.qualifier, parsed.invocation_type, parsed.tail) == ("function", "7", "RequestResponse", True)
    assert (parsed.tenant_id, parsed.trace_id, parsed.executed_version) == ("t1", "Root=1", "7")
    assert parse("function:prod").executed_version == "$LATEST"


@pytest.mark.parametrize(
    "kwargs, status, message",
    [
        ({"too_large": True}, 413, "Request must be smaller than 6291556 bytes"),
        ({"name": "bad%20name"}, 400, "Invalid function name"),
        ({"query": {"Qualifier": "a\r\nb"}}, 400, "Invalid qualifier"),
        ({"x_amz_invocation_type": "Later"}, 400, "Unsupported invocation type"),
        ({"x_amz_client_context": "not base64!"}, 400, "Client context must be"),
        ({"x_amz_client_context": base64.b64encode(b"[1]").decode()}, 400, "Client context must be"),
    ],
)
def test_parse_invoke_refusals(kwargs, status, message):
    refused = parse(**kwargs)
    assert isinstance(refused, Refused) and refused.status == status and refused.message.startswith(message)


@pytest.mark.parametrize("payload", [b"", b"{}", b"[]", b'"text"', b"0", b"-1.5e300", b"null", b" {\"a\": [1, {}]}\n",
                                     b'{"\\u00e9": "\\ud800"}', b'{"a": 1, "a": 2}', b"\xef\xbb\xbf{}", b"[" * 500 + b"]" * 500])
def test_payloads_lambda_takes(payload):
    assert check_payload(payload) is None


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"not json", "Expecting value: line 1 column 1 (char 0)"),
        (b"{", "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
        (b'{"a": 1', "Expecting ',' delimiter: line 1 column 8 (char 7)"),  # cut off
        (b"{} {}", "Extra data: line 1 column 4 (char 3)"),
        (b" ", "Expecting value: line 1 column 2 (char 1)"),
        (b"NaN", "NaN is not a JSON value"),
        (b"[Infinity]", "Infinity is not a JSON value"),
        (b'"\xff"', "invalid UTF-8 at byte 1"),
        (b'\xef\xbb\xbf"\xff"', "invalid UTF-8 at byte 4"),  # (counted from the payload's first byte)
        (b"\x00", "Expecting value: line 1 column 1 (char 0)"),
        (b"[" * 100000 + b"]" * 100000, None),  # deeper than Python's parser goes: refused, not a crash
        (b'{"a": "' + b"x" * 6000000 + b'"', None),  # 6 MB cut off
    ],
)
def test_payloads_lambda_refuses(payload, reason):
    refused = check_payload(payload)
    assert isinstance(refused, Refused)
    assert (refused.status, refused.error_type) == (400, "InvalidRequestContentException")
    assert refused.message.startswith(PAYLOAD_NOT_JSON) and len(refused.message) < len(PAYLOAD_NOT_JSON) + 301
    if reason is not None:
        assert refused.message == PAYLOAD_NOT_JSON + reason


def test_streaming_refuses_event_invocations():
    where = route("POST", "/2021-11-15/functions/f/response-streaming-invocations")
    assert isinstance(where, Route)
    refused = parse_invoke(where, {}, {"x-amz-invocation-type": "Event"}, False)
    assert isinstance(refused, Refused) and refused.status == 400


def test_function_names():
    assert function_name("arn:aws:lambda:us-east-1:123456789012:function:f:3") == ("f", "3")
    assert function_name("123456789012:function:f") == ("f", None)
    assert function_name("f%3A%24LATEST") == ("f", "$LATEST")
    assert function_name("a:b:c") == (None, None)


def test_invocation_states_only_move_forward():
    assert TRANSITIONS[State.QUEUED] == {State.DELIVERED}
    assert TRANSITIONS[State.DELIVERED] == {State.ANSWERED, State.TIMEDOUT}
    assert not TRANSITIONS[State.ANSWERED] and not TRANSITIONS[State.TIMEDOUT]  # an answer after a timeout stays a timeout


def test_an_answer_after_the_timeout_leaves_it_timed_out():
    async def moves():
        inv = Invocation(b"{}", function_arn="arn", timeout=1.0)
        return [inv.advance(State.ANSWERED), inv.advance(State.DELIVERED), inv.advance(State.TIMEDOUT), inv.advance(State.ANSWERED), inv.state]

    assert asyncio.run(moves()) == [False, True, True, False, State.TIMEDOUT]
