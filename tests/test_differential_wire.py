"""Differential tests: the same handler, events and working directory under the official
client (``awslambdaric``, a black-box oracle) and under lambdaric; what both post must match.

Known, documented differences are normalised, never ignored wholesale:
- lambdaric sends ``Lambda-Runtime-Function-Error-Type`` on invocation errors too;
- the official client escapes non-ASCII unless it thinks it runs on a managed 3.12+ runtime,
  so it runs with ``AWS_EXECUTION_ENV=AWS_Lambda_python3.12`` here (lambdaric writes UTF-8 always).
"""
import json
import re
import sys
import textwrap

import pytest

from peers import peer_module
from runtime_api import Event, run_runtime

OFFICIAL_ENV = {"AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"}


def both(tmp_path, lambdaric_env, files, handler, events, env=None, expect_posts=None):
    """Run lambdaric and then the official client in the same folder; returns (ours, theirs)."""
    peer_module("awslambdaric", "pip install awslambdaric")
    files = {k: textwrap.dedent(v).lstrip() for k, v in files.items()}
    common = dict(OFFICIAL_ENV, **(env or {}))
    kwargs = dict(cwd=str(tmp_path), expect_posts=expect_posts, timeout=30)
    ours = run_runtime(files, handler, list(events), env=dict(common, **lambdaric_env), **kwargs)
    theirs = run_runtime(files, handler, list(events), env=common, cmd=[sys.executable, "-m", "awslambdaric"], **kwargs)
    return ours, theirs


def comparable(result):
    """What must be equal: per POST the path, content type, body and X-Ray cause.

    Normalised: the official client sends ``/init/error`` without a Content-Type (lambdaric
    says ``application/json``), and its X-Ray header carries raw UTF-8 where lambdaric
    sends ASCII ``\\u`` escapes: the header is compared as the JSON it carries.
    """
    out = []
    for post in result.posts:
        xray = post.header("Lambda-Runtime-Function-XRay-Error-Cause")
        content_type = (post.header("Content-Type") or "").lower()
        if post.path.endswith("/init/error") and content_type == "application/json":
            content_type = ""
        out.append(
            {
                "path": post.path,
                "content-type": content_type,
                "body": post.body,
                "xray": json.loads(xray.encode("latin-1").decode("utf-8")) if xray else None,
            }
        )
    return out


_TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z")


def error_records(stdout):
    """The uncaught-error records and warnings of a stdout capture, timestamps masked."""
    masked = _TIMESTAMP.sub(b"<ts>", stdout)
    return [line for line in masked.split(b"\n") if line.startswith((b"[ERROR]", b"[WARNING]"))]


ERRORS = {
    "app.py": """
        def inner():
            raise ValueError("bad thing")

        def middle():
            inner()

        class MyErr(Exception):
            pass

        def handler(event, context):
            kind = event["kind"]
            if kind == "nested":
                middle()
            if kind == "cause":
                try:
                    {}["key"]
                except KeyError as e:
                    raise RuntimeError("wrapped") from e
            if kind == "empty":
                raise ValueError()
            if kind == "nonascii":
                raise Exception("h\u00e9llo \u2713")
            if kind == "custom":
                raise MyErr("mine", 2)
            if kind == "set":
                return {1, 2}
            if kind == "ok":
                import decimal
                return {"a": 1, "\u00e9": decimal.Decimal("1.10"), "n": decimal.Decimal("NaN"), "l": [1.5, None, True]}
            if kind == "str":
                return "h\u00e9llo \\"q\\" \u2713"
            if kind == "bytes":
                return b"\\x00raw"
            return None
    """
}


def test_results_and_errors_match(tmp_path, lambdaric_env):
    kinds = ["ok", "str", "bytes", "none", "nested", "cause", "empty", "nonascii", "custom", "set"]
    events = [Event(request_id="r-" + k, body=json.dumps({"kind": k}).encode()) for k in kinds]
    events.append(Event(request_id="r-badjson", body=b"not json"))
    ours, theirs = both(tmp_path, lambdaric_env, ERRORS, "app.handler", events)
    assert len(ours.posts) == len(events)
    assert comparable(ours) == comparable(theirs)
    for post in ours.posts:
        if post.path.endswith("/error"):
            assert post.header("Lambda-Runtime-Function-Error-Type") == json.loads(post.body)["errorType"]
    assert error_records(ours.stdout) == error_records(theirs.stdout)


@pytest.mark.parametrize(
    "files, handler",
    [
        ({}, "app"),
        ({}, "sys.handler"),
        ({}, "nosuchmod.handler"),
        ({"app.py": "x = 1\n"}, "app.nothere"),
        ({"app.py": "raise ValueError('boom at import')\n"}, "app.handler"),
        ({"app.py": "def handler(:\n    pass\n"}, "app.handler"),
        ({"pkg/sub/app.py": "def handler(e, c):\n    return 1\n"}, "pkg/sub/app.handler"),
    ],
)
def test_init_errors_match(tmp_path, lambdaric_env, files, handler):
    ours, theirs = both(tmp_path, lambdaric_env, files, handler, [Event(request_id="r1")])
    assert comparable(ours) == comparable(theirs)
    assert [p.header("Lambda-Runtime-Function-Error-Type") for p in ours.posts] == [
        p.header("Lambda-Runtime-Function-Error-Type") for p in theirs.posts
    ]
    assert error_records(ours.stdout) == error_records(theirs.stdout)
    assert (ours.exited, ours.returncode) == (theirs.exited, theirs.returncode)


def test_context_matches(tmp_path, lambdaric_env):
    files = {
        "app.py": """
            def handler(event, context):
                cc = context.client_context
                return {
                    "rid": context.aws_request_id, "name": context.function_name,
                    "version": context.function_version, "arn": context.invoked_function_arn,
                    "mem": context.memory_limit_in_mb, "group": context.log_group_name,
                    "stream": context.log_stream_name,
                    "cid": context.identity.cognito_identity_id, "pool": context.identity.cognito_identity_pool_id,
                    "client": cc and cc.client and [cc.client.installation_id, cc.client.app_title,
                               cc.client.app_version_name, cc.client.app_version_code, cc.client.app_package_name],
                    "custom": cc and cc.custom, "env": cc and cc.env,
                    "remaining_ok": 0 < context.get_remaining_time_in_millis() <= 300000,
                    "repr": [repr(cc), repr(cc and cc.client), repr(context.identity)],
                }
        """
    }
    client_context = {
        "client": {"installation_id": "i", "app_title": "t", "app_version_name": "vn", "app_version_code": "vc", "app_package_name": "p"},
        "custom": {"k": "v"},
        "env": {"e": "1"},
    }
    events = [
        Event(
            request_id="r1",
            headers={
                "Lambda-Runtime-Client-Context": json.dumps(client_context),
                "Lambda-Runtime-Cognito-Identity": '{"cognitoIdentityId":"id1","cognitoIdentityPoolId":"pool1"}',
            },
        ),
        Event(request_id="r2"),
        Event(request_id="r3", headers={"Lambda-Runtime-Client-Context": "not json"}),
        Event(request_id="r4", headers={"Lambda-Runtime-Cognito-Identity": "[1"}),
    ]
    env = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/fn"}
    ours, theirs = both(tmp_path, lambdaric_env, files, "app.handler", events, env=env)
    assert comparable(ours) == comparable(theirs)
