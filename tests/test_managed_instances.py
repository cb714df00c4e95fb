"""Lambda Managed Instances (AWS_LAMBDA_MAX_CONCURRENCY=N): N pollers in process, thread and
asyncio modes, through the wire: real ``python -m lambdaric`` processes against the scripted
Runtime API (exact bytes) and under the emulator's Managed Instances mode (boto3).

Timing thresholds are coarse and only prove concurrency: N sleeps of 1 s overlapping
finish well under N seconds.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import tempfile
import textwrap
import threading
import time
from typing import Dict, List, Optional

import pytest

from peers import peer_module

from emulator_harness import CapturedProcess, RunningEmulator, group_members, invoke_concurrently
from runtime_api import STATE_403, Event, Reply, RuntimeAPI, _stop_process, runtime_env, write_files

SLEEPER = """
import asyncio, logging, os, sys, time
from lambdaric.concurrency import current_trace_id

def handler(event, context):
    logging.getLogger().warning("work %s", event["i"])
    time.sleep(event.get("sleep", 0))
    return {"i": event["i"], "rid": context.aws_request_id, "pid": os.getpid(),
            "env_trace": os.environ.get("_X_AMZN_TRACE_ID"), "trace": current_trace_id()}

async def async_handler(event, context):
    logging.getLogger().warning("work %s", event["i"])
    await asyncio.sleep(event.get("sleep", 0))
    return {"i": event["i"], "rid": context.aws_request_id, "pid": os.getpid(),
            "loop": id(asyncio.get_running_loop()),
            "env_trace": os.environ.get("_X_AMZN_TRACE_ID"), "trace": current_trace_id()}
"""

MODES = [("process", "app.handler"), ("thread", "app.handler"), ("asyncio", "app.async_handler")]


class Started(CapturedProcess):
    """A ``python -m lambdaric`` process against ``api``; its whole group is killed at the end."""

    def __init__(self, api: RuntimeAPI, files: Dict[str, str], handler: str, env: Dict[str, Optional[str]]) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="lambdaric-lmi-")
        self.cwd = self._tmp.name
        write_files(self.cwd, {k: textwrap.dedent(v).lstrip() for k, v in files.items()})
        super().__init__([sys.executable, "-m", "lambdaric", handler], self.cwd, runtime_env(api.address, self.cwd, env))

    def wait(self, timeout: float = 20.0) -> int:
        return self.proc.wait(timeout)

    def __enter__(self) -> "Started":
        return self

    def __exit__(self, *exc: object) -> None:
        _stop_process(self.proc)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._tmp.cleanup()


def lmi_env(lambdaric_env: Dict[str, str], n: int, mode: str = "process", **extra: str) -> Dict[str, Optional[str]]:
    env: Dict[str, Optional[str]] = dict(lambdaric_env)
    env.update(AWS_LAMBDA_MAX_CONCURRENCY=str(n), LAMBDARIC_CONCURRENCY_MODE=mode,
               AWS_LAMBDA_INITIALIZATION_TYPE="lambda-managed-instances")
    env.update(extra)
    return env


def text_records(stdout: bytes) -> Dict[str, str]:
    """``work N`` -> the request id column of its text log record."""
    found = {}
    for line in stdout.decode("utf-8", "replace").splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] == "[WARNING]" and parts[3].startswith("work "):
            found[parts[3]] = parts[2]
    return found


# ------------------------------------------------------------------------------ scripted Runtime API


@pytest.mark.parametrize("mode,handler", MODES)
def test_overlapping_invokes_run_concurrently(lambdaric_env, mode, handler):
    with RuntimeAPI() as api, Started(api, {"app.py": SLEEPER}, handler, lmi_env(lambdaric_env, 4, mode)) as rt:
        api.wait_idle(4, timeout=20)
        nexts_before = sum(r.kind == "next" for r in api.requests)
        assert nexts_before == 4 and len({r.conn_id for r in api.requests}) == 4  # one connection per poller
        started = time.monotonic()
        api.push(*[
            Event(json.dumps({"i": i, "sleep": 1}).encode(), request_id="r%d" % i,
                  headers={"Lambda-Runtime-Trace-Id": "Root=1-%d;Sampled=1" % i})
            for i in range(4)
        ])
        posts = api.wait_for_posts(4, timeout=20)
        elapsed = time.monotonic() - started
        api.wait_idle(4, timeout=10)  # every poller back on /next
        assert elapsed < 2.5, "4 invokes of 1 s took %.2f s in %s mode: not concurrent" % (elapsed, mode)
        results = {}
        for post in posts:
            assert post.kind == "response"
            result = post.json()
            results[result["rid"]] = result
            assert post.raw == (
                b"POST /2018-06-01/runtime/invocation/%s/response HTTP/1.1\r\nHost: %s\r\n"
                b"User-Agent: lambdaric-python/%d.%d.%d-0.1.0\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % ((result["rid"].encode(), api.address.encode()) + tuple(sys.version_info[:3]) + (len(post.body),))
            ) + post.body
        assert sorted(results) == ["r0", "r1", "r2", "r3"]
        for rid, result in results.items():
            i = int(rid[1:])
            assert result["i"] == i
            assert result["env_trace"] is None  # no _X_AMZN_TRACE_ID writes
            assert result["trace"] == "Root=1-%d;Sampled=1" % i  # the invoke's own, from a contextvar
        pids = {r["pid"] for r in results.values()}
        if mode == "process":
            assert len(pids) == 4 and rt.proc.pid not in pids
        else:
            assert pids == {rt.proc.pid}
        if mode == "asyncio":
            assert len({r["loop"] for r in results.values()}) == 1  # one event loop for all
    assert text_records(rt.stdout()) == {"work %d" % i: "r%d" % i for i in range(4)}, rt.stdout()


def test_worker_killed_mid_invoke_is_reported_and_replaced(lambdaric_env):
    files = {
        "app.py": SLEEPER + """
def killer(event, context):
    if event.get("kill"):
        os.kill(os.getpid(), 9)
    return handler(event, context)
"""
    }
    with RuntimeAPI() as api, Started(api, files, "app.killer", lmi_env(lambdaric_env, 2)) as rt:
        api.wait_idle(2, timeout=20)
        api.push(Event(b'{"i": 0, "kill": true}', request_id="doomed",
                       headers={"Lambda-Runtime-Invocation-Id": "inv-7"}))
        (post,) = api.wait_for_posts(1, timeout=20)
        body = (
            b'{"errorMessage": "RequestId: doomed Error: Runtime exited with error: signal: killed", '
            b'"errorType": "Runtime.ExitError", "requestId": "doomed", "stackTrace": []}'
        )
        cause = (
            '{"working_directory": "%s", "exceptions": [{"message": "RequestId: doomed Error: Runtime exited with '
            'error: signal: killed", "type": "LambdaValidationError", "stack": []}], "paths": []}' % rt.cwd
        )
        assert post.raw == (
            b"POST /2018-06-01/runtime/invocation/doomed/error HTTP/1.1\r\nHost: %s\r\n"
            b"User-Agent: lambdaric-python/%d.%d.%d-0.1.0\r\nContent-Type: application/json\r\n"
            b"Lambda-Runtime-Function-Error-Type: Runtime.ExitError\r\n"
            b"Lambda-Runtime-Function-XRay-Error-Cause: %s\r\n"
            b"Lambda-Runtime-Invocation-Id: inv-7\r\nContent-Length: %d\r\n\r\n"
            % ((api.address.encode(),) + tuple(sys.version_info[:3]) + (cause.encode(), len(body)))
        ) + body
        api.wait_idle(2, timeout=20)  # a replacement polls again
        started = time.monotonic()
        api.push(*[Event(json.dumps({"i": i, "sleep": 1}).encode(), request_id="r%d" % i) for i in (1, 2)])
        posts = api.wait_for_posts(3, timeout=20)
        assert time.monotonic() - started < 1.8  # both workers serve, at once
        assert sorted(p.json()["rid"] for p in posts[1:]) == ["r1", "r2"]
        assert rt.proc.poll() is None
    assert b"worker" in rt.stderr() and b"signal: killed" in rt.stderr()
    assert b"[ERROR] Runtime.ExitError: RequestId: doomed Error: Runtime exited with error: signal: killed" in rt.stdout()


def test_workers_that_keep_dying_end_the_runtime(lambdaric_env):
    files = {"app.py": "import os\ndef handler(event, context):\n    os._exit(3)\n"}
    with RuntimeAPI() as api, Started(api, files, "app.handler", lmi_env(lambdaric_env, 2)) as rt:
        api.wait_idle(2, timeout=20)
        api.push(*[Event(b"{}", request_id="d%d" % i) for i in range(12)])
        assert rt.wait(30) == 3  # the last worker's exit status
        errors = [p for p in api.posts if p.kind == "error"]
        # 5 deaths per worker slot within 60 s: both slots given up after 10 deaths
        assert len(errors) == 10 and api.pending_events == 2
        assert all(p.json()["errorMessage"].endswith("Runtime exited with error: exit status 3") for p in errors)
    assert rt.stderr().count(b"not replaced") == 2


def test_sigterm_reaches_every_worker_and_leaves_no_orphans(lambdaric_env, tmp_path):
    files = {
        "app.py": """
            import os, signal, sys
            def on_term(signum, frame):
                with open(os.path.join(os.environ["MARKS"], str(os.getpid())), "w") as f:
                    f.write("term")
                sys.exit(0)
            signal.signal(signal.SIGTERM, on_term)
            def handler(event, context):
                return os.getpid()
        """
    }
    env = lmi_env(lambdaric_env, 3, MARKS=str(tmp_path))
    with RuntimeAPI() as api, Started(api, files, "app.handler", env) as rt:
        api.wait_idle(3, timeout=20)
        members = group_members(rt.proc.pid)
        assert len(members) == 4  # supervisor + 3 workers
        rt.proc.send_signal(signal.SIGTERM)  # the supervisor only
        assert rt.wait(10) == -signal.SIGTERM
        end = time.monotonic() + 5
        while group_members(rt.proc.pid) and time.monotonic() < end:
            time.sleep(0.05)
        assert group_members(rt.proc.pid) == []
    assert sorted(int(p) for p in os.listdir(tmp_path)) == sorted(m for m in members if m != rt.proc.pid)


def test_workers_end_when_the_supervisor_is_killed(lambdaric_env):
    with RuntimeAPI() as api, Started(api, {"app.py": SLEEPER}, "app.handler", lmi_env(lambdaric_env, 2)) as rt:
        api.wait_idle(2, timeout=20)
        assert len(group_members(rt.proc.pid)) == 3
        rt.proc.kill()
        rt.wait(5)
        end = time.monotonic() + 5
        while group_members(rt.proc.pid) and time.monotonic() < end:
            time.sleep(0.05)
        assert group_members(rt.proc.pid) == []


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_init_error_is_posted_once(lambdaric_env, mode):
    files = {"app.py": "raise RuntimeError('no config')\ndef handler(e, c):\n    return 1\n"}
    with RuntimeAPI() as api, Started(api, files, "app.handler", lmi_env(lambdaric_env, 3, mode)) as rt:
        assert rt.wait(20) == 1
        assert [r.kind for r in api.requests] == ["init_error"]
        post = api.requests[0]
        assert post.header("Lambda-Runtime-Function-Error-Type") == "RuntimeError"
        assert post.json()["errorMessage"] == "no config"
    assert group_members(rt.proc.pid) == []


def test_init_error_403_is_not_an_error(lambdaric_env):
    files = {"app.py": "import nope_missing\n"}
    with RuntimeAPI(replies=[("POST", r"/init/error$", STATE_403)]) as api, \
            Started(api, files, "app.handler", lmi_env(lambdaric_env, 2)) as rt:
        assert rt.wait(20) == 1
        assert [r.kind for r in api.requests] == ["init_error"]
    assert b"403" not in rt.stderr()


@pytest.mark.parametrize("mode", ["process", "thread"])
def test_next_failures_back_off_and_retry(lambdaric_env, mode):
    api = RuntimeAPI(events=[Event(b'{"i": 1}', request_id="r1")])
    api.script(r"/invocation/next$", Reply(500, {"errorMessage": "busy", "errorType": "ServiceException"}),
               method="GET", times=3)
    with api, Started(api, {"app.py": SLEEPER}, "app.handler", lmi_env(lambdaric_env, 1, mode)) as rt:
        (post,) = api.wait_for_posts(1, timeout=20)
        assert post.json()["rid"] == "r1"
        nexts = [r.started for r in api.requests if r.kind == "next"][:4]
        gaps = [b - a for a, b in zip(nexts, nexts[1:])]
        assert gaps[0] >= 0.09 and gaps[1] >= 0.18 and gaps[2] >= 0.36, gaps  # 0.1 s, doubling
        assert rt.proc.poll() is None


def test_next_gives_up_after_five_tries_in_thread_mode(lambdaric_env):
    with RuntimeAPI(after_events="500") as api, \
            Started(api, {"app.py": SLEEPER}, "app.handler", lmi_env(lambdaric_env, 1, "thread")) as rt:
        assert rt.wait(20) == 1
        assert sum(r.kind == "next" for r in api.requests) == 5
    assert b"GET /next" in rt.stderr() and b"giving up after 5 attempts" in rt.stderr()


def test_sys_exit_in_thread_mode_ends_only_that_invoke(lambdaric_env):
    files = {"app.py": "import sys\ndef handler(event, context):\n    if event.get('exit'):\n        sys.exit(4)\n    return 'ok'\n"}
    with RuntimeAPI(events=[Event(b'{"exit": 1}', request_id="x1"), Event(b"{}", request_id="x2")]) as api, \
            Started(api, files, "app.handler", lmi_env(lambdaric_env, 2, "thread")) as rt:
        posts = api.wait_for_posts(2, timeout=20)
        kinds = {p.request_id: (p.kind, p.body) for p in posts}
        assert kinds["x2"] == ("response", b'"ok"')
        assert kinds["x1"][0] == "error" and b"Runtime.ExitError" in kinds["x1"][1]
        assert rt.proc.poll() is None


@pytest.mark.parametrize("env,message", [
    ({"AWS_LAMBDA_MAX_CONCURRENCY": "many"}, b"AWS_LAMBDA_MAX_CONCURRENCY must be a whole number from 1 to 4096, not 'many'"),
    ({"AWS_LAMBDA_MAX_CONCURRENCY": "2", "LAMBDARIC_CONCURRENCY_MODE": "fork"},
     b"LAMBDARIC_CONCURRENCY_MODE must be one of process, thread, asyncio, not 'fork'"),
])
def test_bad_settings_are_refused_clearly(lambdaric_env, env, message):
    full = dict(lambdaric_env)
    full.update(env)
    with RuntimeAPI() as api, Started(api, {"app.py": SLEEPER}, "app.handler", full) as rt:
        assert rt.wait(20) == 2
        assert api.requests == []
    assert rt.stderr() == b"lambdaric: " + message + b"\n"


class LogSocketServer:
    """A unix stream socket server recording each connection's bytes and peer pid (bounded)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.conns: List[Dict] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        end = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < end:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            record = {"pid": int.from_bytes(creds[:4], sys.byteorder), "data": bytearray()}
            with self._lock:
                record["order"] = len([c for c in self.conns if c["pid"] == record["pid"]])
                self.conns.append(record)
            t = threading.Thread(target=self._read, args=(conn, record, end), daemon=True)
            self._threads.append(t)
            t.start()

    def _read(self, conn: socket.socket, record: Dict, end: float) -> None:
        conn.settimeout(0.1)
        with conn:
            while not self._stop.is_set() and time.monotonic() < end:
                try:
                    data = conn.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    return
                with self._lock:
                    record["data"] += data

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(2)
        self.sock.close()


def test_log_socket_gets_each_workers_stdout_and_stderr(lambdaric_env, tmp_path):
    files = {"app.py": """
        import os, sys, time
        def handler(event, context):
            print("out %d %s" % (os.getpid(), context.aws_request_id))
            sys.stderr.write("err %d\\n" % os.getpid())
            time.sleep(0.5)
            return os.getpid()
    """}
    server = LogSocketServer(str(tmp_path / "logs.sock"))
    env = lmi_env(lambdaric_env, 2, _LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET=server.path)
    try:
        with RuntimeAPI() as api, Started(api, files, "app.handler", env) as rt:
            api.wait_idle(2, timeout=20)
            api.push(Event(b"{}", request_id="a1"), Event(b"{}", request_id="a2"))
            posts = api.wait_for_posts(2, timeout=20)
            worker_of = {p.request_id: int(p.body) for p in posts}
            assert len(set(worker_of.values())) == 2
            time.sleep(0.3)
    finally:
        server.close()
    assert rt.stdout() == b""  # nothing of the workers' went to the process's own stdout
    by_pid: Dict[int, List[Dict]] = {}
    for conn in server.conns:
        by_pid.setdefault(conn["pid"], []).append(conn)
    assert sorted(by_pid) == sorted(worker_of.values())  # the workers connect, the supervisor does not
    for rid, pid in worker_of.items():
        out, err = sorted(by_pid[pid], key=lambda c: c["order"])
        assert out["data"] == b"out %d %s\n" % (pid, rid.encode())  # fd 1: first connection
        assert err["data"] == b"err %d\n" % pid  # fd 2: second connection


# ------------------------------------------------------------------------------ the emulator's Managed Instances mode

@pytest.mark.parametrize("mode,handler", MODES)
def test_emulator_managed_instances(lambdaric_env, mode, handler):
    peer_module("boto3", "pip install boto3")
    env = dict(lambdaric_env, LAMBDARIC_CONCURRENCY_MODE=mode)
    with RunningEmulator({"app.py": SLEEPER}, handler=handler, args=["--max-concurrency", "4"], env=env) as emu:
        client = emu.client()

        def one(i: int) -> dict:
            answer = client.invoke(FunctionName="function", Payload=json.dumps({"i": i, "sleep": 1 if i >= 0 else 0}).encode())
            assert "FunctionError" not in answer
            return json.loads(answer["Payload"].read())

        results, elapsed = invoke_concurrently(one, 4)
        assert sorted(results) == [-1, 0, 1, 2, 3]
        assert elapsed < 2.5, "4 invokes of 1 s took %.2f s: not concurrent" % elapsed
        records = text_records(emu.stdout())
        for i, result in results.items():
            assert records["work %d" % i] == result["rid"]  # each record carries its own invoke's id
            assert result["env_trace"] is None and result["trace"].startswith("Root=1-")
        assert len({r["trace"] for r in results.values()}) == 5
        assert emu.stdout().count(b"Init Duration") == 1  # one runtime


def test_emulator_worker_killed_then_replaced(lambdaric_env):
    peer_module("boto3", "pip install boto3")
    files = {"app.py": SLEEPER + "\ndef killer(event, context):\n    if event.get('kill'):\n        os.kill(os.getpid(), 9)\n    return handler(event, context)\n"}
    with RunningEmulator(files, handler="app.killer", args=["--max-concurrency", "2"], env=dict(lambdaric_env)) as emu:
        client = emu.client()
        answer = client.invoke(FunctionName="function", Payload=b'{"i": 0, "kill": true}')
        assert answer.get("FunctionError") == "Unhandled"
        error = json.loads(answer["Payload"].read())
        assert error["errorType"] == "Runtime.ExitError"
        assert error["errorMessage"].endswith("Runtime exited with error: signal: killed")
        results = {}

        def one(i: int) -> None:
            results[i] = json.loads(client.invoke(FunctionName="function", Payload=json.dumps({"i": i, "sleep": 1}).encode())["Payload"].read())

        started = time.monotonic()
        threads = [threading.Thread(target=one, args=(i,)) for i in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(results) == [1, 2] and time.monotonic() - started < 1.8
        assert emu.stdout().count(b"Init Duration") == 1  # the same runtime, a replaced worker


# ------------------------------------------------------------------------------ request ids of background threads

BACKGROUND_LOGGER = """
import asyncio, logging, threading, time

def log_from_thread(i):
    t = threading.Thread(target=lambda: logging.getLogger().warning("bg %s", i))
    t.start()
    t.join()

def handler(event, context):
    time.sleep(0.5)  # both invokes are in flight by now
    log_from_thread(event["i"])
    logging.getLogger().warning("fg %s", event["i"])
    return event["i"]

async def async_handler(event, context):
    await asyncio.sleep(0.5)
    log_from_thread(event["i"])
    logging.getLogger().warning("fg %s", event["i"])
    return event["i"]
"""


def id_columns(stdout: bytes) -> Dict[str, str]:
    """``bg N`` / ``fg N`` -> the request id column of its text log record."""
    found = {}
    for line in stdout.decode("utf-8", "replace").splitlines():
        parts = line.split("\t")
        if len(parts) == 4 and parts[0] == "[WARNING]":
            found[parts[3]] = parts[2]
    return found


@pytest.mark.parametrize("mode,handler", MODES)
def test_background_thread_never_gets_another_invokes_id(lambdaric_env, mode, handler):
    """Threads do not inherit the invoke's contextvar; the process-wide fallback id would name
    whichever invoke began last. With invokes overlapping in one process (thread, asyncio) the
    thread's line carries no id; in process mode each worker has one invoke at a time, so it
    keeps the fallback (its own id), as the classic loop and the official client do."""
    with RuntimeAPI() as api, Started(api, {"app.py": BACKGROUND_LOGGER}, handler, lmi_env(lambdaric_env, 2, mode)) as rt:
        api.wait_idle(2, timeout=20)
        api.push(Event(b'{"i": 0}', request_id="r0"), Event(b'{"i": 1}', request_id="r1"))
        posts = api.wait_for_posts(2, timeout=20)
        assert sorted(p.body for p in posts) == [b"0", b"1"]
        api.wait_idle(2, timeout=10)
    columns = id_columns(rt.stdout())
    assert {k: v for k, v in columns.items() if k.startswith("fg")} == {"fg 0": "r0", "fg 1": "r1"}
    background = {k: v for k, v in columns.items() if k.startswith("bg")}
    assert background == ({"bg 0": "r0", "bg 1": "r1"} if mode == "process" else {"bg 0": "", "bg 1": ""}), columns


# ------------------------------------------------------------------------------ graceful shutdown

SHUTDOWN_APP = """
import os, sys, time
import lambdaric

@lambdaric.on_shutdown
def cleanup():
    print("cleanup %d" % os.getpid())

def handler(event, context):
    return os.getpid()

async def async_handler(event, context):
    return os.getpid()
"""


@pytest.mark.parametrize("mode,handler", MODES)
def test_shutdown_extension_once_and_callbacks_in_every_process(lambdaric_env, mode, handler):
    """on_shutdown used during init: the no-op extension is registered once for the environment
    (by the first worker done with init in process mode), before any poller's first /next
    (which closes the registration); SIGTERM to the runtime runs the callbacks once in each
    process that imported the handler (each worker, or the one process), then it dies of it."""
    n = 3
    with RuntimeAPI() as api, Started(api, {"app.py": SHUTDOWN_APP}, handler, lmi_env(lambdaric_env, n, mode)) as rt:
        api.wait_idle(n, timeout=20)
        api.wait_for(lambda reqs: any(r.kind == "extension_next" for r in reqs), 10, "the extension's event/next")
        api.push(*[Event(b"{}", request_id="r%d" % i) for i in range(n)])
        reqs = api.wait_for(lambda reqs: sum(r.kind == "response" for r in reqs) == n, 20, "%d responses" % n)
        pids = {int(r.body) for r in reqs if r.kind == "response"}
        api.wait_idle(n, timeout=10)
        kinds = [r.kind for r in api.requests]
        assert kinds.count("extension_register") == 1 and kinds.count("extension_next") == 1, kinds
        assert kinds.index("extension_register") < kinds.index("next"), kinds
        members = group_members(rt.proc.pid)
        rt.proc.send_signal(signal.SIGTERM)  # the supervisor (or the one process) only
        assert rt.wait(10) == -signal.SIGTERM
    importers = sorted(m for m in members if m != rt.proc.pid) if mode == "process" else [rt.proc.pid]
    assert len(importers) == (n if mode == "process" else 1)
    assert pids <= set(importers)
    lines = sorted(rt.stdout().decode().splitlines())
    assert lines == sorted("cleanup %d" % pid for pid in importers), rt.stdout()
    assert rt.stderr() == b""


@pytest.mark.parametrize("mode", ["process", "thread"])
@pytest.mark.parametrize("uses_on_shutdown, setting, registered", [(False, "1", True), (True, "0", False), (False, None, False)])
def test_shutdown_extension_setting_under_managed_instances(lambdaric_env, mode, uses_on_shutdown, setting, registered):
    app = SHUTDOWN_APP if uses_on_shutdown else "import os\ndef handler(event, context):\n    return os.getpid()\n"
    env = lmi_env(lambdaric_env, 2, mode, LAMBDARIC_SIGTERM_EXTENSION=setting)
    with RuntimeAPI() as api, Started(api, {"app.py": app}, "app.handler", env) as rt:
        api.wait_idle(2, timeout=20)
        if registered:
            api.wait_for(lambda reqs: any(r.kind == "extension_next" for r in reqs), 10, "the extension's event/next")
        else:
            time.sleep(0.3)
        ext = [r.kind for r in api.requests if r.kind.startswith("extension")]
        assert ext == (["extension_register", "extension_next"] if registered else [])
    assert rt.stderr() == b""


def test_worker_ended_by_sigterm_after_answering_is_not_reported(lambdaric_env):
    """SIGTERM reaches a worker waiting for the 202 of the answer it posted (its slot still says
    busy): the supervisor's Runtime.ExitError is refused 403 (answered already), and that is
    not an error: no record, no line on stderr."""
    api = RuntimeAPI(events=[Event(b"{}", request_id="r1")])

    def slow_202(req):
        time.sleep(1.0)
        return Reply(202, {"status": "OK"})

    api.script(r"/invocation/r1/response$", slow_202)
    api.script(r"/invocation/r1/error$", STATE_403)
    with api, Started(api, {"app.py": SHUTDOWN_APP}, "app.handler", lmi_env(lambdaric_env, 1)) as rt:
        api.wait_for(lambda reqs: any(r.kind == "response" for r in reqs), 20, "the response")
        time.sleep(0.1)
        rt.proc.send_signal(signal.SIGTERM)
        assert rt.wait(10) == -signal.SIGTERM
        assert [r.request_id for r in api.requests if r.kind == "error"] == ["r1"]  # the supervisor tried
    assert rt.stdout().startswith(b"cleanup ") and b"Runtime.ExitError" not in rt.stdout(), rt.stdout()
    assert rt.stderr() == b""


def test_restart_policy_gives_a_slot_up_after_five_deaths_within_a_minute():
    from lambdaric.concurrency import RestartPolicy

    policy = RestartPolicy(2)
    assert [policy.restart(0, t) for t in (0.0, 10.0, 20.0, 30.0)] == [True] * 4
    assert policy.restart(1, 35.0)  # the other slot counts its own deaths
    assert not policy.restart(0, 40.0)  # the fifth within 60 s
    assert policy.recent(0) == 5
    fresh = RestartPolicy(1)
    assert all(fresh.restart(0, t) for t in (0.0, 61.0, 122.0, 183.0, 244.0, 305.0))  # spread out: always
    assert fresh.recent(0) == 1
