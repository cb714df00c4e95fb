"""Managed Instances preload (``LAMBDARIC_PRELOAD=1``, lambdaric/preload.py) through the wire:
real ``python -m lambdaric`` processes against the scripted Runtime API (and the emulator's
Managed Instances mode), on both transports. The handler is imported once, in the
supervisor; the workers are forked from it, reset what must not be shared, run the
function's after-fork hooks, and are forked again when one dies."""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from typing import List

import pytest

from emulator_harness import RunningEmulator, group_members, invoke_concurrently
from runtime_api import Event, RuntimeAPI
from test_managed_instances import SLEEPER, Started, lmi_env, text_records

COUNTED = """
import os, sys
print("imported in", os.getpid(), flush=True)
""" + SLEEPER


def preload_env(lambdaric_env, n: int, **extra: str):
    """Process mode with preload; the transport is the fixture's (each test runs on both)."""
    return lmi_env(lambdaric_env, n, LAMBDARIC_PRELOAD="1", **extra)


def test_imported_once_and_served_by_forked_workers(lambdaric_env):
    with RuntimeAPI() as api, Started(api, {"app.py": COUNTED}, "app.handler", preload_env(lambdaric_env, 3)) as rt:
        api.wait_idle(3, timeout=20)
        assert len({r.conn_id for r in api.requests}) == 3  # one connection per worker, none inherited
        started = time.monotonic()
        api.push(*[Event(json.dumps({"i": i, "sleep": 1}).encode(), request_id="r%d" % i) for i in range(3)])
        posts = api.wait_for_posts(3, timeout=20)
        assert time.monotonic() - started < 2.5  # concurrent
        results = {p.json()["rid"]: p.json() for p in posts}
        assert sorted(results) == ["r0", "r1", "r2"]
        pids = {r["pid"] for r in results.values()}
        assert len(pids) == 3 and rt.proc.pid not in pids
        assert set(group_members(rt.proc.pid)) == pids | {rt.proc.pid}
    out = rt.stdout()
    assert out.count(b"imported in") == 1 and b"imported in %d" % rt.proc.pid in out  # in the supervisor, once
    assert text_records(out) == {"work %d" % i: "r%d" % i for i in range(3)}, out


def test_after_fork_hooks_run_in_each_worker_in_order(lambdaric_env, tmp_path):
    files = {
        "app.py": """
            import os, lambdaric
            MARKS = os.environ["MARKS"]
            def mark(what):
                with open(os.path.join(MARKS, "%s-%d" % (what, os.getpid())), "w") as f:
                    f.write(what)
            order = []
            @lambdaric.register_after_fork
            def first():
                order.append("first")
                mark("hook")
            lambdaric.register_after_fork(order.append, "second")
            os.register_at_fork(after_in_child=lambda: mark("at_fork"))
            def handler(event, context):
                return {"pid": os.getpid(), "order": order}
        """
    }
    with RuntimeAPI() as api, Started(api, files, "app.handler", preload_env(lambdaric_env, 2, MARKS=str(tmp_path))) as rt:
        api.wait_idle(2, timeout=20)
        api.push(*[Event(b"{}", request_id="r%d" % i) for i in range(2)])
        posts = api.wait_for_posts(2, timeout=20)
        workers = sorted(m for m in group_members(rt.proc.pid) if m != rt.proc.pid)
    assert all(p.json()["order"] == ["first", "second"] for p in posts)
    assert sorted(os.listdir(tmp_path)) == sorted(["hook-%d" % w for w in workers] + ["at_fork-%d" % w for w in workers])


def test_failing_after_fork_hook_is_the_init_error(lambdaric_env):
    files = {"app.py": """
        import lambdaric
        def broken():
            raise ConnectionError("cannot reach the database")
        lambdaric.register_after_fork(broken)
        def handler(event, context):
            return 1
    """}
    with RuntimeAPI() as api, Started(api, files, "app.handler", preload_env(lambdaric_env, 3)) as rt:
        assert rt.wait(20) == 1
        assert [r.kind for r in api.requests] == ["init_error"]  # once, whatever the number of workers
        assert api.requests[0].header("Lambda-Runtime-Function-Error-Type") == "ConnectionError"
        assert api.requests[0].json()["errorMessage"] == "cannot reach the database"
    assert group_members(rt.proc.pid) == []


def test_init_error_during_preload_is_posted_once_and_nothing_is_forked(lambdaric_env):
    files = {"app.py": "import os\nprint('importing in', os.getpid(), flush=True)\nraise RuntimeError('no config')\n"}
    with RuntimeAPI() as api, Started(api, files, "app.handler", preload_env(lambdaric_env, 4)) as rt:
        assert rt.wait(20) == 1
        assert [r.kind for r in api.requests] == ["init_error"]
        assert api.requests[0].header("Lambda-Runtime-Function-Error-Type") == "RuntimeError"
        assert api.requests[0].json()["errorMessage"] == "no config"
    assert rt.stdout().count(b"importing in") == 1


def test_asyncio_loop_made_at_import_is_replaced_in_each_worker(lambdaric_env):
    # mangum's case: a loop made (and set) at import; every worker runs coroutines on it
    files = {"app.py": """
        import asyncio, os
        IMPORT_LOOP = asyncio.new_event_loop()
        asyncio.set_event_loop(IMPORT_LOOP)
        def handler(event, context):
            loop = asyncio.get_event_loop()
            loop.run_until_complete(asyncio.sleep(event["sleep"]))
            return {"pid": os.getpid(), "inherited": loop is IMPORT_LOOP, "rid": context.aws_request_id}
    """}
    with RuntimeAPI() as api, Started(api, files, "app.handler", preload_env(lambdaric_env, 4)) as rt:
        api.wait_idle(4, timeout=20)
        for round_ in range(5):
            api.push(*[Event(json.dumps({"sleep": 0.05}).encode(), request_id="r%d-%d" % (round_, i)) for i in range(4)])
            api.wait_for_posts(4 * (round_ + 1), timeout=10)  # a shared epoll would hang a worker here
        results = [p.json() for p in api.posts]
    assert len(results) == 20 and not any(r["inherited"] for r in results)
    assert len({r["pid"] for r in results}) >= 2


def test_thread_alive_at_fork_is_named(lambdaric_env):
    files = {"app.py": """
        import threading, time
        threading.Thread(target=time.sleep, args=(30,), name="metrics-pusher", daemon=True).start()
        def handler(event, context):
            return [t.name for t in threading.enumerate()]
    """}
    with RuntimeAPI() as api, Started(api, files, "app.handler", preload_env(lambdaric_env, 2)) as rt:
        api.wait_idle(2, timeout=20)
        api.push(Event(b"{}", request_id="r"))
        (post,) = api.wait_for_posts(1, timeout=20)
        assert "metrics-pusher" not in post.json()
    err = rt.stderr()
    assert err.count(b"metrics-pusher") == 1, err  # said once, not per fork
    assert b"LAMBDARIC_PRELOAD: thread(s) metrics-pusher alive in the supervisor" in err


def test_worker_killed_mid_invoke_is_answered_and_forked_again(lambdaric_env):
    files = {"app.py": COUNTED + """
def killer(event, context):
    if event.get("kill"):
        os.kill(os.getpid(), 9)
    return handler(event, context)
"""}
    with RuntimeAPI() as api, Started(api, files, "app.killer", preload_env(lambdaric_env, 2)) as rt:
        api.wait_idle(2, timeout=20)
        api.push(Event(b'{"i": 0, "kill": true}', request_id="doomed"))
        (post,) = api.wait_for_posts(1, timeout=20)
        assert post.kind == "error" and post.header("Lambda-Runtime-Function-Error-Type") == "Runtime.ExitError"
        assert post.json()["errorMessage"] == "RequestId: doomed Error: Runtime exited with error: signal: killed"
        api.wait_idle(2, timeout=20)  # the replacement, forked from the supervisor, polls
        api.push(*[Event(json.dumps({"i": i}).encode(), request_id="r%d" % i) for i in (1, 2)])
        posts = api.wait_for_posts(3, timeout=20)
        assert sorted(p.json()["rid"] for p in posts[1:]) == ["r1", "r2"]
    assert rt.stdout().count(b"imported in") == 1  # the replacement did not import again


def test_sigterm_runs_on_shutdown_and_the_functions_handler_in_every_worker(lambdaric_env, tmp_path):
    files = {"app.py": """
        import os, lambdaric
        @lambdaric.on_shutdown
        def bye():
            with open(os.path.join(os.environ["MARKS"], "bye-%d" % os.getpid()), "w") as f:
                f.write("bye")
        def handler(event, context):
            return os.getpid()
    """}
    env = preload_env(lambdaric_env, 3, MARKS=str(tmp_path), LAMBDARIC_SIGTERM_EXTENSION="0")
    with RuntimeAPI() as api, Started(api, files, "app.handler", env) as rt:
        api.wait_idle(3, timeout=20)
        members = group_members(rt.proc.pid)
        assert len(members) == 4
        rt.proc.send_signal(signal.SIGTERM)
        assert rt.wait(10) == -signal.SIGTERM
        end = time.monotonic() + 5
        while group_members(rt.proc.pid) and time.monotonic() < end:
            time.sleep(0.05)
        assert group_members(rt.proc.pid) == []
    assert sorted(os.listdir(tmp_path)) == sorted("bye-%d" % m for m in members if m != rt.proc.pid)


def test_bad_setting_is_refused_clearly(lambdaric_env):
    with RuntimeAPI() as api, Started(api, {"app.py": SLEEPER}, "app.handler", lmi_env(lambdaric_env, 2, LAMBDARIC_PRELOAD="yes please")) as rt:
        assert rt.wait(20) == 2
        assert api.requests == []
    assert rt.stderr() == b"lambdaric: LAMBDARIC_PRELOAD must be 1 or 0, not 'yes please'\n"


def test_emulator_managed_instances_with_preload(lambdaric_env):
    from peers import peer_module

    peer_module("boto3", "pip install boto3")
    env = dict(lambdaric_env, LAMBDARIC_CONCURRENCY_MODE="process", LAMBDARIC_PRELOAD="1")
    with RunningEmulator({"app.py": COUNTED}, handler="app.handler", args=["--max-concurrency", "3"], env=env) as emu:
        client = emu.client()

        def one(i: int) -> dict:
            answer = client.invoke(FunctionName="function", Payload=json.dumps({"i": i, "sleep": 1 if i >= 0 else 0}).encode())
            assert "FunctionError" not in answer
            return json.loads(answer["Payload"].read())

        results, elapsed = invoke_concurrently(one, 3)
        assert sorted(results) == [-1, 0, 1, 2]
        assert elapsed < 2.5, "3 invokes of 1 s took %.2f s: not concurrent" % elapsed
        assert len({r["pid"] for r in results.values()}) >= 3  # forked workers
        assert emu.stdout().count(b"imported in") == 1


# ------------------------------------------------------------------------- a pool used before the fork


class EchoServer:
    """A keep-alive HTTP server on loopback standing in for S3: answers ``GET /?id=X`` with
    ``X`` and records which worker pids (``X-Pid``) used each connection."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.pids_by_conn: List[set] = []
        self.stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            seen: set = set()
            self.pids_by_conn.append(seen)
            threading.Thread(target=self._serve, args=(conn, seen), daemon=True).start()

    def _serve(self, conn: socket.socket, seen: set) -> None:
        conn.settimeout(30)
        buf = b""
        with conn:
            while not self.stop.is_set():
                while b"\r\n\r\n" not in buf:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                ident = lines[0].split(b" ")[1].partition(b"id=")[2]
                for line in lines[1:]:
                    if line.lower().startswith(b"x-pid:"):
                        seen.add(int(line.split(b":")[1]))
                time.sleep(0.02)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(ident), ident))

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


POOLED = """
import http.client, os, lambdaric
PORT = int(os.environ["ECHO_PORT"])
conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=3)

def fetch(ident):
    conn.request("GET", "/?id=" + ident, headers={"X-Pid": str(os.getpid())})
    return conn.getresponse().read().decode()

fetch("import")  # used before the fork: one keep-alive socket, inherited by every worker

if os.environ.get("RECREATE") == "1":
    @lambdaric.register_after_fork
    def new_pool():
        global conn
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=3)

def handler(event, context):
    try:
        got = fetch(context.aws_request_id)
    except Exception as exc:
        got = "%s: %s" % (type(exc).__name__, exc)
    return {"rid": context.aws_request_id, "got": got, "pid": os.getpid()}
"""


@pytest.mark.parametrize("recreate", [True, False], ids=["after-fork-hook", "no-hook"])
def test_connection_pool_used_before_the_fork(lambdaric_env, recreate):
    """The README's rule, shown: a keep-alive connection opened during the import is ONE socket
    shared by every worker (the server sees several workers on one connection, and answers
    can reach the wrong worker); re-created in an after-fork hook, each worker has its own."""
    server = EchoServer()
    env = preload_env(lambdaric_env, 3, ECHO_PORT=str(server.port), RECREATE="1" if recreate else "0")
    try:
        with RuntimeAPI() as api, Started(api, {"app.py": POOLED}, "app.handler", env) as rt:
            api.wait_idle(3, timeout=20)
            for round_ in range(4):
                api.push(*[Event(b"{}", request_id="r%d-%d" % (round_, i)) for i in range(3)])
                api.wait_for_posts(3 * (round_ + 1), timeout=30)
            results = [p.json() for p in api.posts]
    finally:
        server.close()
    shared = [pids for pids in server.pids_by_conn if len(pids) > 1]
    if recreate:
        assert all(r["got"] == r["rid"] for r in results), results
        assert not shared and len(server.pids_by_conn) == 1 + len({r["pid"] for r in results})
    else:
        assert shared, "the workers did not share the inherited connection: %r" % server.pids_by_conn


@pytest.mark.parametrize("setting,shared", [(None, True), ("0", False), ("json,ssl", True)])
def test_without_preload_the_supervisor_shares_common_modules_and_freezes(lambdaric_env, setting, shared):
    """Process mode without preload: the supervisor imports the standard modules nearly every
    function loads (ssl, http.client... for boto3) and freezes the GC before forking, so the
    workers share those pages instead of each copying them."""
    files = {"app.py": """
        import gc, sys
        SSL_BEFORE = "ssl" in sys.modules
        def handler(event, context):
            return {"ssl_before_import": SSL_BEFORE, "frozen": gc.get_freeze_count()}
    """}
    env = lmi_env(lambdaric_env, 2, **({} if setting is None else {"LAMBDARIC_SHARED_IMPORTS": setting}))
    with RuntimeAPI() as api, Started(api, files, "app.handler", env):
        api.wait_idle(2, timeout=20)
        api.push(Event(b"{}", request_id="r"))
        (post,) = api.wait_for_posts(1, timeout=20)
    assert post.json()["ssl_before_import"] is shared
    assert post.json()["frozen"] > 1000


def test_mangum_fastapi_app_preloaded_under_the_emulator(lambdaric_env):
    """The issue's trap with the real adapter: mangum makes an event loop at import; preloaded,
    every worker still serves overlapping API Gateway events through FastAPI."""
    from peers import peer_module

    peer_module("boto3", "pip install boto3")
    peer_module("mangum", "pip install mangum")
    peer_module("fastapi", "pip install fastapi")
    files = {"app.py": """
        import asyncio, os
        from fastapi import FastAPI
        from mangum import Mangum
        app = FastAPI()
        @app.get("/work/{n}")
        async def work(n: int):
            await asyncio.sleep(0.2)
            return {"n": n, "pid": os.getpid()}
        handler = Mangum(app, lifespan="off")
    """}
    env = dict(lambdaric_env, LAMBDARIC_CONCURRENCY_MODE="process", LAMBDARIC_PRELOAD="1")

    def event(n: int) -> bytes:
        return json.dumps({
            "version": "2.0", "routeKey": "$default", "rawPath": "/work/%d" % n, "rawQueryString": "",
            "headers": {"host": "x"}, "isBase64Encoded": False,
            "requestContext": {"http": {"method": "GET", "path": "/work/%d" % n, "protocol": "HTTP/1.1",
                                        "sourceIp": "127.0.0.1", "userAgent": "t"},
                               "requestId": "r", "routeKey": "$default", "stage": "$default"},
        }).encode()

    with RunningEmulator(files, handler="app.handler", args=["--max-concurrency", "4"], env=env) as emu:
        client = emu.client()
        results = {}
        for round_ in range(3):
            def one(i: int, base: int = round_ * 10) -> dict:
                answer = client.invoke(FunctionName="function", Payload=event(base + i))
                assert "FunctionError" not in answer
                return json.loads(answer["Payload"].read())

            got, _ = invoke_concurrently(lambda i: one(max(i, 0)), 4)
            results.update({round_ * 10 + max(i, 0): r for i, r in got.items()})
        assert all(r["statusCode"] == 200 for r in results.values())
        bodies = [json.loads(r["body"]) for r in results.values()]
        assert sorted({b["n"] for b in bodies}) == sorted(results)
        assert len({b["pid"] for b in bodies}) >= 2
