"""SnapStart (docs/runtime-api.md section 8) through the wire: real ``python -m lambdaric`` processes
with ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start`` against the scripted Runtime API (both
transports), the official client as the reference for bytes and order, and the built-in
emulator's ``--snapstart`` mode with lambdaric itself as the runtime.

The sequence: before-snapshot hooks (last registered first), ``GET /restore/next``,
after-restore hooks (first registered first), the invoke loop. A before-snapshot failure
(or a failed ``/restore/next``) is posted to ``/init/error`` as ``Runtime.BeforeSnapshotError``
and the runtime exits 64; an after-restore failure goes to ``/restore/error`` as
``Runtime.AfterRestoreError``, exit 65.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time

import pytest

from peers import peer_module

from runtime_api import Event, Reply, RuntimeAPI, run_runtime as run_any, runtime_env

SNAP = {"AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start"}
RESTORED = Reply(200, b"")
RESTORE_NEXT = r"/runtime/restore/next$"
BEFORE = "Runtime.BeforeSnapshotError"
AFTER = "Runtime.AfterRestoreError"
NBSP = "\u00a0".encode("utf-8")

#: A function whose hooks write their names to $ORDER (one line each) and whose
#: environment variable FAIL names the hook that raises (or "exit" for a sys.exit).
HOOKS_APP = """
import os, sys
from snapshot_restore_py import register_after_restore, register_before_snapshot
import lambdaric

def note(what):
    with open(os.environ["ORDER"], "a") as f:
        f.write(what + "\\n")
    print("hook", what)

def hook(name, *args, **kwargs):
    note(name + "".join(" %s" % (a,) for a in args) + "".join(" %s=%s" % kv for kv in sorted(kwargs.items())))
    if os.environ.get("FAIL") == name:
        raise ValueError("%s broke" % name)
    if os.environ.get("EXIT") == name:
        sys.exit(3)

# registration order across both APIs: b1 (package), b2 (lambdaric), b3 (package, decorator)
register_before_snapshot(hook, "b1")
lambdaric.register_before_snapshot(hook, "b2", x=1)

@register_before_snapshot
def b3():
    hook("b3")

@lambdaric.register_after_restore
def a1():
    hook("a1")

register_after_restore(hook, "a2")
lambdaric.register_after_restore(hook, "a3")

def handler(event, context):
    note("invoke")
    return "ok"
"""

#: snapshot_restore_py made unimportable for the function (it shadows the installed one).
NO_PACKAGE = {"snapshot_restore_py.py": "raise ImportError('snapshot_restore_py is hidden in this test')\n"}

#: The same function with lambdaric's API only.
LAMBDARIC_ONLY_APP = """
import os
from lambdaric import register_after_restore, register_before_snapshot

def note(what):
    with open(os.environ["ORDER"], "a") as f:
        f.write(what + "\\n")

for name in ("b1", "b2", "b3"):
    register_before_snapshot(note, name)
for name in ("a1", "a2"):
    register_after_restore(note, name)

def handler(event, context):
    note("invoke")
    return "ok"
"""


def needs_package():
    pytest.importorskip("snapshot_restore_py", reason="snapshot_restore_py is not installed (pip install snapshot-restore-py)")


def snap_api(restore_next=RESTORED, events=(Event(b"{}", request_id="r1"),)):
    api = RuntimeAPI(events=list(events))
    if restore_next is not None:
        api.script(RESTORE_NEXT, restore_next, method="GET")
    return api


def kinds(result):
    return [(r.method, r.kind) for r in result.requests]


def order(path):
    return path.read_text().split("\n")[:-1] if path.exists() else []


def run_snap(run_runtime, tmp_path, app, env=None, api=None, files=None, expect_posts=1):
    """Run ``app`` with SnapStart on against ``api`` (restore/next answered 200 by default)."""
    order_file = tmp_path / "order.txt"
    own = api is None
    api = api or snap_api()
    try:
        result = run_runtime(
            dict(files or {}, **{"app.py": app}),
            "app.handler",
            env=dict(SNAP, ORDER=str(order_file), **(env or {})),
            api=api,
            expect_posts=expect_posts,
            timeout=20,
        )
    finally:
        if own:
            api.close()
    return result, order(order_file)


def error_record(stdout):
    """The one uncaught-error record of a capture."""
    records = [line for line in stdout.split(b"\n") if line.startswith(b"[ERROR]")]
    assert len(records) == 1, stdout
    return records[0]


# ------------------------------------------------------------------------------ the sequence


def test_hooks_run_in_order_around_restore_next(run_runtime, tmp_path):
    """Both APIs feed one order: before-snapshot reversed, after-restore as registered, and
    /restore/next comes between them, after every before-snapshot hook and before any other."""
    needs_package()
    order_file = tmp_path / "order.txt"
    seen_at_restore = []

    def restore_next(req):
        seen_at_restore.append(order(order_file))
        return RESTORED

    api = snap_api(restore_next)
    try:
        result, done = run_snap(run_runtime, tmp_path, HOOKS_APP, api=api)
    finally:
        api.close()
    assert kinds(result) == [("GET", "restore_next"), ("GET", "next"), ("POST", "response"), ("GET", "next")], result
    assert result.post("response").body == b'"ok"'
    assert seen_at_restore == [["b3", "b2 x=1", "b1"]]
    assert done == ["b3", "b2 x=1", "b1", "a1", "a2", "a3", "invoke"]
    assert result.requests[0].raw == (
        b"GET /2018-06-01/runtime/restore/next HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n\r\n"
        % (api.address.encode(), result.requests[1].header("User-Agent").encode())
    )
    assert result.stdout == b"".join(b"hook %s\n" % n for n in (b"b3", b"b2 x=1", b"b1", b"a1", b"a2", b"a3", b"invoke"))


def test_lambdaric_api_without_snapshot_restore_py(run_runtime, tmp_path):
    """lambdaric's own registry when the package cannot be imported."""
    result, done = run_snap(run_runtime, tmp_path, LAMBDARIC_ONLY_APP, files=NO_PACKAGE)
    assert kinds(result)[:3] == [("GET", "restore_next"), ("GET", "next"), ("POST", "response")], result
    assert done == ["b3", "b2", "b1", "a1", "a2", "invoke"]


def test_output_of_before_snapshot_hooks_is_flushed_before_restore_next(tmp_path, lambdaric_env):
    """What the hooks print is out before the snapshot (else every restored copy would
    write it again, or it would wait for the first invoke)."""
    (tmp_path / "app.py").write_text(
        "import lambdaric\n"
        "lambdaric.register_before_snapshot(print, 'printed before the snapshot')\n"
        "def handler(e, c):\n    return 1\n"
    )
    stdout_path = tmp_path / "stdout.txt"
    seen = []

    def restore_next(req):
        seen.append(stdout_path.read_bytes())
        return RESTORED

    with snap_api(restore_next) as api, open(stdout_path, "wb") as out:
        env = runtime_env(api.address, str(tmp_path), dict(SNAP, **lambdaric_env))
        proc = subprocess.Popen([sys.executable, "-m", "lambdaric", "app.handler"], cwd=str(tmp_path), env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL)
        try:
            api.wait_for(lambda reqs: any(r.kind == "response" for r in reqs), timeout=20, what="the response")
        finally:
            proc.kill()
            proc.wait(10)
    assert seen == [b"printed before the snapshot\n"]


def test_async_hooks_are_awaited(run_runtime, tmp_path):
    app = textwrap.dedent("""
        import asyncio, os, lambdaric
        def note(what):
            with open(os.environ["ORDER"], "a") as f:
                f.write(what + "\\n")
        async def before():
            await asyncio.sleep(0)
            note("async before")
        async def after():
            await asyncio.sleep(0)
            note("async after")
        lambdaric.register_before_snapshot(before)
        lambdaric.register_after_restore(after)
        async def handler(event, context):
            note("invoke")
            return "ok"
    """)
    result, done = run_snap(run_runtime, tmp_path, app)
    assert result.post("response").body == b'"ok"'
    assert done == ["async before", "async after", "invoke"]


def test_without_snapstart_no_hooks_and_no_restore_next(run_runtime, tmp_path):
    needs_package()
    result, done = run_snap(run_runtime, tmp_path, HOOKS_APP, env={"AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand"})
    assert kinds(result)[:2] == [("GET", "next"), ("POST", "response")], result
    assert done == ["invoke"]


def test_init_error_comes_first_no_hooks(run_runtime, tmp_path):
    """A handler that fails to import is the usual init error (exit 1): no hooks, no restore."""
    app = "import lambdaric, os\nlambdaric.register_before_snapshot(print, 'never')\nraise RuntimeError('import broke')\n"
    result, done = run_snap(run_runtime, tmp_path, app)
    assert kinds(result) == [("POST", "init_error")], result
    assert result.post("init_error").header("Lambda-Runtime-Function-Error-Type") == "RuntimeError"
    assert result.returncode == 1 and b"never" not in result.stdout


# ------------------------------------------------------------------------------ failures


def test_before_snapshot_failure_exact_report_exit_64(run_runtime, tmp_path):
    """The first failing hook (b2: hooks run b3, b2, b1) stops the sequence: no b1, no
    /restore/next; the exception's JSON goes to /init/error typed in the header."""
    needs_package()
    result, done = run_snap(run_runtime, tmp_path, HOOKS_APP, env={"FAIL": "b2"})
    assert result.exited and result.returncode == 64, result
    assert kinds(result) == [("POST", "init_error")], result
    assert done == ["b3", "b2 x=1"]
    post = result.post("init_error")
    app = os.path.join(result.cwd, "app.py")
    line = '    raise ValueError("%s broke" % name)\n'
    body = (
        '{"errorMessage": "b2 broke", "errorType": "ValueError", "requestId": "", "stackTrace": '
        + json.dumps(['  File "%s", line 14, in hook\n%s' % (app, line)])
        + "}"
    ).encode()
    assert post.raw == (
        b"POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\n"
        b"Content-Type: application/json\r\nLambda-Runtime-Function-Error-Type: Runtime.BeforeSnapshotError\r\n"
        b"Content-Length: %d\r\n\r\n%s"
        % (result.api.address.encode(), post.header("User-Agent").encode(), len(body), body)
    )
    assert error_record(result.stdout) == (
        b'[ERROR] ValueError: b2 broke\rTraceback (most recent call last):\r' + NBSP * 2
        + b'File "%s", line 14, in hook\r' % app.encode() + NBSP * 4 + b'raise ValueError("%s broke" % name)'
    )
    assert b"LAMBDA_WARNING" not in result.stdout  # as the official client: no init warning here


def test_after_restore_failure_exact_report_exit_65(run_runtime, tmp_path):
    needs_package()
    result, done = run_snap(run_runtime, tmp_path, HOOKS_APP, env={"FAIL": "a2"})
    assert result.exited and result.returncode == 65, result
    assert kinds(result) == [("GET", "restore_next"), ("POST", "restore_error")], result
    assert done == ["b3", "b2 x=1", "b1", "a1", "a2"]
    post = result.post("restore_error")
    assert post.path == "/2018-06-01/runtime/restore/error"
    assert [k for k, _ in post.headers] == [
        "Host", "User-Agent", "Content-Type", "Lambda-Runtime-Function-Error-Type", "Content-Length"]
    assert post.header("Content-Type") == "application/json"
    assert post.header("Lambda-Runtime-Function-Error-Type") == AFTER
    error = post.json()
    assert list(error) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert error["errorMessage"] == "a2 broke" and error["errorType"] == "ValueError" and error["requestId"] == ""
    assert [frame.split(", ")[-1].split("\n")[0] for frame in error["stackTrace"]] == ["in hook"]
    assert error_record(result.stdout).startswith(b"[ERROR] ValueError: a2 broke\rTraceback")


def test_sys_exit_in_a_hook_is_a_hook_failure(run_runtime, tmp_path):
    """SystemExit from a hook is reported like any exception, exit 64 (not the hook's 3)."""
    needs_package()
    result, done = run_snap(run_runtime, tmp_path, HOOKS_APP, env={"EXIT": "b3"})
    assert result.returncode == 64, result
    error = result.post("init_error").json()
    assert (error["errorType"], error["errorMessage"]) == ("SystemExit", "3")
    assert done == ["b3"]


def test_restore_next_error_status_is_before_snapshot_error(run_runtime, tmp_path):
    needs_package()
    api = snap_api(Reply(500, {"errorMessage": "restore failed", "errorType": "ServiceException"}))
    with api:
        result, done = run_snap(run_runtime, tmp_path, HOOKS_APP, api=api)
    assert result.returncode == 64, result
    assert kinds(result) == [("GET", "restore_next"), ("POST", "init_error")]
    post = result.post("init_error")
    assert post.header("Lambda-Runtime-Function-Error-Type") == BEFORE
    assert post.body == (
        b'{"errorMessage": "Request to Lambda Runtime \'/2018-06-01/runtime/restore/next\' endpoint failed. '
        b'Reason: \'500\'. Response body: \'{\\"errorMessage\\":\\"restore failed\\",\\"errorType\\":\\"ServiceException\\"}\'", '
        b'"errorType": "LambdaRuntimeClientError", "requestId": "", "stackTrace": []}'
    )
    assert done == ["b3", "b2 x=1", "b1"]  # no after-restore hook


def test_restore_next_garbled_answer_is_before_snapshot_error(run_runtime, tmp_path):
    api = snap_api(Reply(raw=b"HTTP/1.1 2x0 Nope\r\n\r\n"))
    with api:
        result, done = run_snap(run_runtime, tmp_path, LAMBDARIC_ONLY_APP, api=api)
    assert result.returncode == 64, result
    assert [k for k in kinds(result)] == [("GET", "restore_next"), ("POST", "init_error")]
    error = result.post("init_error").json()
    assert error["errorType"] == "LambdaRuntimeClientError"
    assert error["errorMessage"].startswith(
        "Request to Lambda Runtime '/2018-06-01/runtime/restore/next' endpoint failed. Reason: no valid answer")
    assert b"invalid answer from the Runtime API" in result.stderr
    assert done == ["b3", "b2", "b1"]


def test_restore_next_404_carries_on_as_restored(run_runtime, tmp_path):
    """No SnapStart behind the Runtime API (a local emulator): one line on stderr, the
    after-restore hooks run, then the invokes (the official client exits 64 here)."""
    api = snap_api(restore_next=None)  # the scripted API answers 404 by default
    with api:
        result, done = run_snap(run_runtime, tmp_path, LAMBDARIC_ONLY_APP, api=api)
    assert kinds(result)[:3] == [("GET", "restore_next"), ("GET", "next"), ("POST", "response")], result
    assert done == ["b3", "b2", "b1", "a1", "a2", "invoke"]
    assert re.fullmatch(
        rb"lambdaric: AWS_LAMBDA_INITIALIZATION_TYPE is snap-start, but the Runtime API at 127\.0\.0\.1:\d+ has no "
        rb"SnapStart \(GET /restore/next answered 404: .*\); carrying on as if restored at once\n",
        result.stderr,
    ), result.stderr


def test_report_not_accepted_still_exits_with_the_code(run_runtime, tmp_path):
    """A /restore/error the API refuses (500) is said on stderr; the exit code is still 65."""
    needs_package()
    api = snap_api()
    api.script(r"/restore/error$", Reply(500, {"errorMessage": "no", "errorType": "ServiceException"}))
    with api:
        result, _ = run_snap(run_runtime, tmp_path, HOOKS_APP, env={"FAIL": "a1"}, api=api)
    assert result.returncode == 65, result
    assert b"POST /restore/error answered 500: ServiceException: no" in result.stderr


def test_json_log_format_error_record(run_runtime, tmp_path):
    needs_package()
    result, _ = run_snap(run_runtime, tmp_path, HOOKS_APP, env={"FAIL": "a1", "AWS_LAMBDA_LOG_FORMAT": "JSON"})
    records = [json.loads(line) for line in result.stdout.split(b"\n") if line.startswith(b"{")]
    assert len(records) == 1, result.stdout
    assert list(records[0]) == ["timestamp", "level", "errorMessage", "errorType", "requestId", "stackTrace"]
    assert records[0]["errorType"] == "ValueError" and records[0]["level"] == "ERROR"


def test_register_refuses_what_is_not_callable():
    from lambdaric import register_after_restore, register_before_snapshot

    for register in (register_before_snapshot, register_after_restore):
        with pytest.raises(TypeError, match=r"needs a callable, not str"):
            register("not a function")


def test_snapstart_stays_off_the_startup_path():
    """Importing the package and the bootstrap does not import lambdaric.snapstart."""
    code = "import sys, lambdaric.bootstrap; print('lambdaric.snapstart' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30,
                         env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert out.stdout == b"False\n", out


# ------------------------------------------------------------------------------ the official client


def _official_frame_free(result):
    """Posts and the error record with the official client's own frames taken out (the
    contract hides the runtime's frames; lambdaric has none of its own there) and the
    run's folder written as <cwd>."""
    posts = []
    for post in result.posts:
        body = post.body.replace(result.cwd.encode(), b"<cwd>")
        if post.header("Content-Type", "").startswith("application/json") or post.kind in ("init_error", "restore_error"):
            if body.startswith(b"{"):
                error = json.loads(body)
                error["stackTrace"] = [f for f in error["stackTrace"] if "/awslambdaric/" not in f]
                body = error
        posts.append((post.method, post.path, post.header("Lambda-Runtime-Function-Error-Type"), body))
    gets = [(r.method, r.path) for r in result.requests if r.method == "GET"]
    lines = []
    for line in result.stdout.replace(result.cwd.encode(), b"<cwd>").split(b"\n"):
        if line.startswith(b"{"):  # a JSON record
            record = json.loads(line)
            record["timestamp"] = "<ts>"
            record["stackTrace"] = [f for f in record.get("stackTrace", []) if "/awslambdaric/" not in f]
            line = json.dumps(record).encode()
        lines.append(line)
    stdout = b"\n".join(lines).split(b"\r")
    kept, skip = [], False
    for line in stdout:
        if skip:
            skip = False
            continue
        if b"/awslambdaric/" in line:
            skip = True  # the frame's line and its source line
            continue
        kept.append(line)
    return {"order": [(r.method, r.path) for r in result.requests], "posts": posts, "gets": gets,
            "stdout": b"\r".join(kept), "exit": result.returncode if result.exited else None}


@pytest.mark.parametrize(
    "env",
    [{}, {"FAIL": "b2"}, {"FAIL": "a2"}, {"EXIT": "a1"}, {"FAIL": "b1", "AWS_LAMBDA_LOG_FORMAT": "JSON"}],
    ids=["success", "before-snapshot-failure", "after-restore-failure", "after-restore-exit", "json-logs"],
)
def test_same_requests_order_and_exit_as_the_official_client(tmp_path, lambdaric_env, awslambdaric_cmd, env):
    """A differential wire test: same hooks, same Runtime API; the order of requests, the
    paths, error types, error JSON (stack without the runtime's own frames), the log record
    and the exit code agree. Known difference: lambdaric sends Content-Type:
    application/json on /init/error and /restore/error (the official client sends none)."""
    needs_package()
    runs = []
    for name, cmd, extra in (("lambdaric", None, lambdaric_env), ("official", awslambdaric_cmd, {})):
        cwd = tmp_path / name
        cwd.mkdir()
        order_file = tmp_path / ("%s-order.txt" % name)
        api = snap_api()
        with api:
            result = run_any({"app.py": HOOKS_APP}, "app.handler", cmd=cmd, api=api, expect_posts=1, timeout=20,
                             cwd=str(cwd), env=dict(SNAP, ORDER=str(order_file), **extra, **env))
        runs.append((result, order(order_file)))
    (ours, our_order), (theirs, their_order) = runs
    assert our_order == their_order
    mine, official = _official_frame_free(ours), _official_frame_free(theirs)
    assert mine == official, (ours, theirs)
    for post in ours.posts:
        if post.kind in ("init_error", "restore_error"):
            assert post.header("Content-Type") == "application/json"


# ------------------------------------------------------------------------------ the emulator


def test_emulator_snapstart_mode_with_lambdaric_as_the_runtime(tmp_path, lambdaric_env):
    """``python -m lambdaric --snapstart``: the child lambdaric runs the hooks in order,
    is restored by the emulator's /restore/next, and serves the invoke."""
    peer_module("boto3", "pip install boto3")
    from emulator_harness import RunningEmulator

    order_file = tmp_path / "order.txt"
    with RunningEmulator({"app.py": LAMBDARIC_ONLY_APP}, args=["--snapstart"],
                         env=dict(lambdaric_env, ORDER=str(order_file))) as emu:
        answer = emu.client().invoke(FunctionName="function", Payload=b"{}")
        assert answer["StatusCode"] == 200 and "FunctionError" not in answer
        assert answer["Payload"].read() == b'"ok"'
        answer = emu.client().invoke(FunctionName="function", Payload=b"{}")
        assert answer["Payload"].read() == b'"ok"'
    assert order(order_file) == ["b3", "b2", "b1", "a1", "a2", "invoke", "invoke"]


def test_emulator_snapstart_after_restore_failure(tmp_path, lambdaric_env):
    """An after-restore failure reaches the caller as the function's error."""
    peer_module("boto3", "pip install boto3")
    from emulator_harness import RunningEmulator

    app = "import lambdaric\n@lambdaric.register_after_restore\ndef broken():\n    raise KeyError('gone')\ndef handler(e, c):\n    return 1\n"
    with RunningEmulator({"app.py": app}, args=["--snapstart"], env=dict(lambdaric_env)) as emu:
        answer = emu.client().invoke(FunctionName="function", Payload=b"{}")
        error = json.loads(answer["Payload"].read())
    assert answer.get("FunctionError") == "Unhandled"
    assert (error["errorType"], error["errorMessage"]) == ("KeyError", "'gone'")
