"""Graceful shutdown through the wire (issue 7): ``lambdaric.on_shutdown`` callbacks on SIGTERM
and on a normal exit, user SIGTERM handlers, the no-op extension that has Lambda send SIGTERM
(exact bytes against the scripted Runtime API), and SIGTERM to the runtime running as PID 1.

Every runtime here is a real ``python -m lambdaric`` process, once per transport."""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

from runtime_api import (
    EXTENSION_ID,
    EXTENSION_NEXT_PATH,
    EXTENSION_REGISTER_PATH,
    SERVER_500,
    Event,
    Reply,
    RuntimeAPI,
    runtime_env,
)

import lambdaric
from lambdaric.shutdown import Callbacks

UA = "lambdaric-python/%d.%d.%d-%s" % (sys.version_info[:3] + (lambdaric.__version__,))

#: A function with three callbacks: a decorated one, one that fails, one registered last.
APP_WITH_CALLBACKS = """
import lambdaric

@lambdaric.on_shutdown
def first():
    print("cleanup first")

def boom():
    raise RuntimeError("boom in cleanup")

lambdaric.on_shutdown(boom)
lambdaric.on_shutdown(lambda: print("cleanup last"))

def handler(event, context):
    print("invoked")
    return 1
"""
CALLBACKS_OUTPUT = b"invoked\ncleanup last\ncleanup first\n"


def src(code):
    return textwrap.dedent(code).lstrip()


class Runtime:
    """One ``python -m lambdaric`` process (optionally under a command prefix such as unshare),
    output to files, killed with its process group at the end."""

    def __init__(self, tmp_path, api, app, env=None, prefix=()):
        (tmp_path / "app.py").write_text(src(app))
        self.env = runtime_env(api.address, str(tmp_path), env or {})
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()
        argv = list(prefix) + [sys.executable, "-m", "lambdaric", "app.handler"]
        self.proc = subprocess.Popen(argv, cwd=str(tmp_path), env=self.env, stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=self.err, start_new_session=True)

    def wait(self, timeout):
        return self.proc.wait(timeout=timeout)

    def output(self):
        self.out.seek(0)
        self.err.seek(0)
        return self.out.read(), self.err.read()

    def close(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)
        self.out.close()
        self.err.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def kinds(api):
    return [r.kind for r in api.requests]


# --------------------------------------------------------------------------- SIGTERM while idle


def test_sigterm_while_idle_runs_callbacks_once(tmp_path, lambdaric_env):
    """Lambda's shutdown: SIGTERM while the runtime waits on /next. The callbacks run newest
    first, the failing one is reported with its traceback, the others still run, stdout is
    flushed, and the process dies of SIGTERM as before."""
    with RuntimeAPI([Event(request_id="r1")]) as api:
        with Runtime(tmp_path, api, APP_WITH_CALLBACKS, lambdaric_env) as rt:
            api.wait_for(lambda reqs: any(r.kind == "response" for r in reqs), 15, "the response")
            api.wait_idle(1, timeout=10)
            rt.proc.send_signal(signal.SIGTERM)
            assert rt.wait(10) == -signal.SIGTERM
            out, err = rt.output()
    assert out == CALLBACKS_OUTPUT
    assert err.count(b"lambdaric: on_shutdown callback app.boom failed:\nTraceback (most recent call last):\n") == 1
    assert b'raise RuntimeError("boom in cleanup")\nRuntimeError: boom in cleanup\n' in err
    assert b"shutdown.py" not in err  # the runtime's own frame is not in the user's traceback


def test_user_sigterm_handler_runs_first_then_callbacks_at_exit(tmp_path, lambdaric_env):
    """A handler the function installs replaces the runtime's: it runs (while idle), and the
    callbacks run when it ends the process, once, although both the runtime's exit path and
    atexit would run them."""
    app = APP_WITH_CALLBACKS + src(
        """
        import signal, sys
        def on_term(signum, frame):
            print("user handler got %d" % signum)
            sys.exit(0)
        signal.signal(signal.SIGTERM, on_term)
        """
    )
    with RuntimeAPI([Event(request_id="r1")]) as api:
        with Runtime(tmp_path, api, app, lambdaric_env) as rt:
            api.wait_for(lambda reqs: any(r.kind == "response" for r in reqs), 15, "the response")
            api.wait_idle(1, timeout=10)
            rt.proc.send_signal(signal.SIGTERM)
            assert rt.wait(10) == 0
            out, err = rt.output()
    assert out == b"invoked\nuser handler got %d\ncleanup last\ncleanup first\n" % signal.SIGTERM
    assert err.count(b"on_shutdown callback app.boom failed") == 1


def test_user_sigterm_handler_that_returns_leaves_the_runtime_running(tmp_path, lambdaric_env):
    """Documented: a user handler that returns does not end the process, so the callbacks wait
    for the exit; the runtime goes back to /next and serves the next event."""
    app = APP_WITH_CALLBACKS + src(
        """
        import signal
        signal.signal(signal.SIGTERM, lambda signum, frame: print("user handler returns"))
        """
    )
    with RuntimeAPI([Event(request_id="r1")]) as api:
        with Runtime(tmp_path, api, app, lambdaric_env) as rt:
            api.wait_for(lambda reqs: any(r.kind == "response" for r in reqs), 15, "the response")
            api.wait_idle(1, timeout=10)
            rt.proc.send_signal(signal.SIGTERM)
            api.push(Event(request_id="r2"))
            reqs = api.wait_for(lambda reqs: sum(r.kind == "response" for r in reqs) == 2, 15, "the 2nd response")
            assert rt.proc.poll() is None
    assert [r.request_id for r in reqs if r.kind == "response"] == ["r1", "r2"]


# --------------------------------------------------------------------------- normal exit


@pytest.mark.parametrize("how", ["runtime api 500", "sys.exit in handler"])
def test_normal_exit_runs_callbacks_once(run_runtime, how):
    """The runtime ends by itself (a 5xx answer, or sys.exit in the handler): the callbacks run
    once before the process exits (not again from atexit)."""
    app = src(
        """
        import sys
        import lambdaric
        lambdaric.on_shutdown(lambda: print("cleanup"))
        def handler(event, context):
            print("invoked")
            if event.get("exit"):
                sys.exit(3)
            return 1
        """
    )
    api = RuntimeAPI()
    if how == "runtime api 500":
        api.script(r"/invocation/r1/response$", SERVER_500)
        events, code = [Event(request_id="r1")], 1
    else:
        events, code = [Event(b'{"exit": true}', request_id="r1")], 3
    try:
        result = run_runtime({"app.py": app}, "app.handler", events, api=api, expect_posts=99, timeout=20)
    finally:
        api.close()
    assert result.exited and result.returncode == code, result
    if how == "runtime api 500":
        assert result.stdout == b"invoked\ncleanup\n"
    else:  # the Runtime.ExitError record comes between
        assert result.stdout.startswith(b"invoked\n[ERROR] Runtime.ExitError: RequestId: r1 Error: Runtime exited")
        assert result.stdout.endswith(b"\ncleanup\n") and result.stdout.count(b"cleanup") == 1


# --------------------------------------------------------------------------- the no-op extension


def test_extension_register_and_event_next_exact_bytes(run_runtime):
    """LAMBDARIC_SIGTERM_EXTENSION=1: during init, before the first /next, the register call
    (name header, no events) and event/next with the identifier the register call returned."""
    app = "def handler(event, context):\n    return 1\n"
    result = run_runtime({"app.py": app}, "app.handler", [Event(request_id="r1")], expect_posts=2,
                         env={"LAMBDARIC_SIGTERM_EXTENSION": "1"})
    host = result.api.address.encode()
    # register is answered before the runtime goes on; event/next is sent before the first /next,
    # but on another connection, so the server may record the two in either order
    assert [r.kind for r in result.requests if r.kind != "extension_next"] == [
        "extension_register", "next", "response", "next"]
    register = result.requests[0]
    (event_next,) = [r for r in result.requests if r.kind == "extension_next"]
    assert register.raw == (
        b"POST " + EXTENSION_REGISTER_PATH.encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\nUser-Agent: "
        + UA.encode() + b"\r\nContent-Type: application/json\r\nLambda-Extension-Name: lambdaric-sigterm\r\n"
        b'Content-Length: 14\r\n\r\n{"events": []}'
    )
    assert event_next.raw == (
        b"GET " + EXTENSION_NEXT_PATH.encode() + b" HTTP/1.1\r\nHost: " + host + b"\r\nUser-Agent: " + UA.encode()
        + b"\r\nLambda-Extension-Identifier: " + EXTENSION_ID.encode() + b"\r\n\r\n"
    )
    assert result.post("response").body == b"1"
    assert result.stderr == b""


@pytest.mark.parametrize(
    "uses_on_shutdown, setting, registered",
    [(True, None, True), (False, None, False), (True, "0", False), (False, "1", True)],
)
def test_extension_registered_when_asked_or_when_on_shutdown_is_used(run_runtime, uses_on_shutdown, setting,
                                                                     registered):
    app = "import lambdaric\nlambdaric.on_shutdown(print)\n" if uses_on_shutdown else ""
    # (the handler gives the extension's own thread time to send its event/next, which the
    # runtime's answers do not wait for: under load it could come after the run was over)
    app += ("import sys, time\ndef handler(event, context):\n    time.sleep(0.3 if %r else 0)\n"
            "    return 'lambdaric.shutdown' in sys.modules\n" % registered)
    env = {"LAMBDARIC_SIGTERM_EXTENSION": setting}
    result = run_runtime({"app.py": app}, "app.handler", [Event(request_id="r1")], env=env,
                         expect_posts=2 if registered else 1)
    ext = [r.kind for r in result.requests if r.kind.startswith("extension")]
    assert ext == (["extension_register", "extension_next"] if registered else []), result
    # the module is loaded only when the function uses it, or the extension is asked for
    assert result.post("response").body == (b"true" if uses_on_shutdown or setting == "1" else b"false")


@pytest.mark.parametrize(
    "reply, reason",
    [
        (Reply(403, {"errorMessage": "Extension registration closed", "errorType": "Extension.RegistrationClosed"}),
         b"answered 403: Extension.RegistrationClosed: Extension registration closed"),
        (Reply(200, {"functionName": "test-function"}),
         b"answered 200 without a usable Lambda-Extension-Identifier header"),
    ],
    ids=["403", "no identifier"],
)
def test_extension_register_failure_is_said_once_and_not_fatal(run_runtime, reply, reason):
    api = RuntimeAPI()
    api.script(EXTENSION_REGISTER_PATH + "$", reply)
    app = "import lambdaric\nlambdaric.on_shutdown(print)\ndef handler(event, context):\n    return 1\n"
    try:
        result = run_runtime({"app.py": app}, "app.handler", [Event(request_id="r1")], api=api, expect_posts=2)
    finally:
        api.close()
    assert [r.kind for r in result.requests] == ["extension_register", "next", "response", "next"]
    assert result.post("response").body == b"1"
    assert result.stderr == (
        b"lambdaric: could not register the SIGTERM extension at " + api.address.encode()
        + b" (/2020-01-01/extension/register): " + reason
        + b"; without it Lambda sends no SIGTERM (on_shutdown callbacks then run only on a normal exit)\n"
    )


def test_bad_setting_is_said_and_treated_as_unset(run_runtime):
    app = "def handler(event, context):\n    return 1\n"
    result = run_runtime({"app.py": app}, "app.handler", [Event(request_id="r1")],
                         env={"LAMBDARIC_SIGTERM_EXTENSION": "yes"})
    assert not [r for r in result.requests if r.kind.startswith("extension")]
    assert result.stderr == b"lambdaric: LAMBDARIC_SIGTERM_EXTENSION must be 1 or 0, not 'yes'; treating it as unset\n"


# --------------------------------------------------------------------------- PID 1


def _unshare_problem():
    if not shutil.which("unshare"):
        return "unshare is not installed"
    try:
        probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "unshare cannot run: %s" % exc
    if probe.returncode != 0:
        return "unshare --pid is not permitted here: %s" % probe.stderr.decode(errors="replace").strip()
    return None


def _pid1_of(unshare_pid, timeout=10.0):
    """The host pid of the process unshare forked (PID 1 in the new namespace)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with open("/proc/%d/task/%d/children" % (unshare_pid, unshare_pid)) as f:
                children = f.read().split()
        except OSError:
            children = []
        if children:
            pid = int(children[0])
            with open("/proc/%d/status" % pid) as f:
                nspid = [line.split()[1:] for line in f if line.startswith("NSpid:")]
            assert nspid and nspid[0][-1] == "1", nspid
            return pid
        time.sleep(0.02)
    raise AssertionError("unshare started no child")


UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]


@pytest.fixture
def unshare():
    problem = _unshare_problem()
    if problem:
        pytest.skip(problem)
    return UNSHARE


def test_pid1_sigterm_ends_promptly_with_callbacks(tmp_path, lambdaric_env, unshare):
    """As PID 1 (a container without an init) the kernel drops a signal the process sends
    itself, so re-raising SIGTERM would leave the runtime waiting on /next until SIGKILL: it
    exits with 143 instead, after the callbacks, at once."""
    with RuntimeAPI([Event(request_id="r1")]) as api:
        with Runtime(tmp_path, api, APP_WITH_CALLBACKS, lambdaric_env, prefix=unshare) as rt:
            api.wait_for(lambda reqs: any(r.kind == "response" for r in reqs), 20, "the response")
            api.wait_idle(1, timeout=10)
            pid1 = _pid1_of(rt.proc.pid)
            start = time.monotonic()
            os.kill(pid1, signal.SIGTERM)  # what `docker stop` does
            assert rt.wait(10) == 143  # unshare exits with its child's status
            elapsed = time.monotonic() - start
            out, err = rt.output()
    assert elapsed < 2.0, elapsed
    assert out == CALLBACKS_OUTPUT
    assert err.count(b"on_shutdown callback app.boom failed") == 1


def test_pid1_sigterm_without_callbacks(tmp_path, lambdaric_env, unshare):
    """The same for every function, with on_shutdown unused: buffered output flushed, 143."""
    app = "print('init')\ndef handler(event, context):\n    return 1\n"
    with RuntimeAPI([Event(request_id="r1")]) as api:
        with Runtime(tmp_path, api, app, lambdaric_env, prefix=unshare) as rt:
            api.wait_for(lambda reqs: any(r.kind == "response" for r in reqs), 20, "the response")
            api.wait_idle(1, timeout=10)
            os.kill(_pid1_of(rt.proc.pid), signal.SIGTERM)
            assert rt.wait(10) == 143
            out, _ = rt.output()
    assert out == b"init\n"
    assert not [r for r in api.requests if r.kind.startswith("extension")]


def test_awslambdaric_as_pid1_ignores_sigterm(tmp_path, awslambdaric_cmd, unshare):
    """The official client (black box): it installs no SIGTERM handler, so as PID 1 the signal
    is dropped and only SIGKILL ends it (`docker stop` waits its grace period out)."""
    (tmp_path / "app.py").write_text("def handler(event, context):\n    return 1\n")
    with RuntimeAPI([Event(request_id="r1")]) as api:
        env = runtime_env(api.address, str(tmp_path), {}, lambdaric_on_path=False)
        proc = subprocess.Popen(unshare + awslambdaric_cmd + ["app.handler"], cwd=str(tmp_path), env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            api.wait_for(lambda reqs: any(r.kind == "response" for r in reqs), 20, "the response")
            api.wait_idle(1, timeout=10)
            os.kill(_pid1_of(proc.pid), signal.SIGTERM)
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(1.5)
            assert not [r for r in api.requests if r.kind.startswith("extension")]
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


# --------------------------------------------------------------------------- the callback list (pure logic)


def test_callbacks_run_newest_first_once_each_and_survive_failures(capsys):
    calls = []
    cbs = Callbacks()

    @cbs.add
    def a():
        calls.append("a")

    assert a.__name__ == "a"  # the decorator returns the function

    def fails():
        calls.append("fails")
        raise ValueError("no")

    cbs.add(fails)
    cbs.add(lambda: (calls.append("c"), cbs.add(lambda: calls.append("added while running"))))
    cbs.add(lambda: calls.append("exits") or sys.exit(2))
    assert len(cbs) == 4
    assert cbs.run() == 5
    assert calls == ["exits", "c", "added while running", "fails", "a"]
    assert cbs.run() == 0 and calls[-1] == "a"
    err = capsys.readouterr().err
    assert "failed:\nTraceback (most recent call last):\n" in err and "ValueError: no\n" in err
    assert "SystemExit: 2" in err


def test_callbacks_refuse_what_is_not_callable():
    with pytest.raises(TypeError, match=r"on_shutdown\(\) takes a callable with no arguments, not 'cleanup'"):
        Callbacks().add("cleanup")


def test_runtime_startup_does_not_import_shutdown():
    code = "import sys, lambdaric, lambdaric.bootstrap; print('lambdaric.shutdown' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout == b"False\n", out.stderr
