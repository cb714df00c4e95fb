"""stdout through the wire: print() is buffered, yet nothing is lost or reordered; request
and tenant ids are right in threads and tasks and empty after the invoke.

The syscall counts come from ``strace -f -e trace=...`` of a real ``python -m lambdaric``
(skipped when strace is missing); they are the figures the README and the benchmarks quote.
"""
import json
import os
import re
import shutil
import signal
import sys
import textwrap

import pytest

from runtime_api import Event, run_runtime

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_strace = pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (apt-get install strace)")

PRINTS = """
    def handler(event, context):
        for i in range(100):
            print("line", i)
        return 1
"""


def strace_run(tmp_path, lambdaric_env, app, events, trace="write", env=None, official=False, pass_fds=(), **kwargs):
    """Run under strace; returns (result, the traced syscalls in order, one string each)."""
    out = tmp_path / ("trace-%s" % ("official" if official else "ours"))
    module = "awslambdaric" if official else "lambdaric"
    cmd = ["strace", "-f", "-qq", "-s", "64", "-e", "trace=" + trace, "-o", str(out), sys.executable, "-m", module]
    full_env = dict(env or {})
    if not official:
        full_env.update(lambdaric_env)
        full_env["PYTHONPATH"] = REPO  # cmd is given, so the fixture does not add it
    cwd = tmp_path / "app"
    cwd.mkdir(exist_ok=True)
    result = run_runtime({"app.py": textwrap.dedent(app).lstrip()}, "app.handler", events, cmd=cmd, env=full_env,
                         cwd=str(cwd), pass_fds=pass_fds, timeout=30, **kwargs)
    return result, out.read_text().splitlines()


@needs_strace
@pytest.mark.parametrize("unbuffered", [None, "1"], ids=["default", "PYTHONUNBUFFERED=1"])
def test_print_writes_per_invoke(tmp_path, lambdaric_env, unbuffered):
    """100 prints in one invoke cost at most 2 write() calls on stdout, even when the image
    sets PYTHONUNBUFFERED=1 (the official client: one or more per print)."""
    env = {"PYTHONUNBUFFERED": unbuffered} if unbuffered else {}
    result, calls = strace_run(tmp_path, lambdaric_env, PRINTS, [Event()], env=env)
    assert result.stdout == b"".join(b"line %d\n" % i for i in range(100))
    writes = [c for c in calls if re.search(r"\bwrite\(1, ", c)]
    assert 1 <= len(writes) <= 2, writes
    if shutil.which("strace") and __import__("importlib").util.find_spec("awslambdaric"):
        theirs, their_calls = strace_run(tmp_path, lambdaric_env, PRINTS, [Event()], env=env, official=True)
        assert theirs.stdout == result.stdout
        assert len([c for c in their_calls if re.search(r"\bwrite\(1, ", c)]) >= 100


@needs_strace
def test_prints_and_frames_keep_their_order(tmp_path, lambdaric_env):
    """With the telemetry fd, buffered print() output goes out before the next record's frame."""
    app = """
        import logging
        def handler(event, context):
            print("p1")
            logging.getLogger().warning("l1")
            print("p2")
            print("p3")
            logging.getLogger().warning("l2")
            print("p4")
            return 1
    """
    r, w = os.pipe()
    try:
        _, calls = strace_run(tmp_path, lambdaric_env, app, [Event()], env={"_LAMBDA_TELEMETRY_LOG_FD": str(w)}, pass_fds=(w,))
    finally:
        os.close(w)
        os.close(r)
    order = []
    for call in calls:
        if re.search(r"\bwrite\(1, ", call):
            order += re.findall(r"p\d", call)
        elif re.search(r"\bwrite\(%d, " % w, call):
            # the message ends the record ("...\treq-1\tl2\n"); the frame's binary header (a
            # timestamp) may hold the bytes of "l" and a digit too, so only that is matched
            order += re.findall(r"\\t(l\d)\\n", call)
    assert order == ["p1", "l1", "p2", "p3", "l2", "p4"], calls


@needs_strace
def test_init_output_is_written_before_waiting_for_an_event(tmp_path, lambdaric_env):
    """What the module prints at import is written before the first GET /next (a sandbox
    can be frozen, snapshotted or never invoked after init)."""
    app = """
        print("init line")
        def handler(event, context):
            return 1
    """
    _, calls = strace_run(tmp_path, lambdaric_env, app, [Event()], trace="write,sendto,sendmsg")
    printed = [i for i, c in enumerate(calls) if "init line" in c and re.search(r"\bwrite\(1, ", c)]
    polled = [i for i, c in enumerate(calls) if "/runtime/invocation/next" in c]
    assert printed and polled and printed[0] < polled[0], calls


def test_sigterm_flushes_buffered_output(run_runtime):
    """SIGTERM at its default: buffered output is written, then the process dies of the signal."""
    app = textwrap.dedent(
        """
        import os, signal, time
        def handler(event, context):
            print("before the signal")
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            print("never")
        """
    )
    result = run_runtime({"app.py": app}, "app.handler", [Event()], timeout=10)
    assert result.exited and result.returncode == -signal.SIGTERM
    assert result.stdout == b"before the signal\n"


def test_exit_paths_flush_buffered_output(run_runtime):
    """sys.exit() in the handler and atexit callbacks: every print reaches the log."""
    app = textwrap.dedent(
        """
        import atexit, sys
        atexit.register(lambda: print("from atexit"))
        def handler(event, context):
            print("before exit")
            sys.exit(3)
        """
    )
    result = run_runtime({"app.py": app}, "app.handler", [Event()], timeout=10)
    assert result.exited and result.returncode == 3
    before, record, after, end = result.stdout.split(b"\n")
    assert (before, after, end) == (b"before exit", b"from atexit", b"")
    assert record.startswith(b"[ERROR] Runtime.ExitError: RequestId: req-1 Error: Runtime exited with error: exit status 3\r")
    assert result.posts[0].json()["errorType"] == "Runtime.ExitError"


def test_request_and_tenant_ids_in_threads_tasks_and_after(run_runtime):
    app = textwrap.dedent(
        """
        import asyncio, concurrent.futures, logging, threading, time
        log = logging.getLogger("ids")
        started_at_init = threading.Event()

        def init_worker():  # a thread from init: logs during the invoke
            started_at_init.wait()
            log.warning("init thread")

        threading.Thread(target=init_worker, daemon=True).start()

        def late():
            time.sleep(0.3)  # outlives the invoke
            log.warning("late thread")

        def handler(event, context):
            log.warning("handler")
            t = threading.Thread(target=log.warning, args=("thread",))
            t.start(); t.join()
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                pool.submit(log.warning, "pool").result()
            started_at_init.set()
            time.sleep(0.05)
            async def task():
                await asyncio.gather(*(asyncio.sleep(0) for _ in range(3)))
                log.warning("task")
            asyncio.run(task())
            threading.Thread(target=late).start()
            return 1
        """
    )
    events = [Event(b"{}", "r1", headers={"Lambda-Runtime-Aws-Tenant-Id": "tenant-1"})]
    # one event, then the runtime idles on /next while the late thread logs
    result = run_runtime({"app.py": app}, "app.handler", events, env={"AWS_LAMBDA_LOG_FORMAT": "JSON"},
                         expect_posts=2, timeout=1.5)
    records = {r["message"]: r for r in map(json.loads, result.stdout.splitlines())}
    for message in ("handler", "thread", "pool", "init thread", "task"):
        assert (records[message]["requestId"], records[message].get("tenantId")) == ("r1", "tenant-1"), records[message]
    assert records["late thread"]["requestId"] == "" and "tenantId" not in records["late thread"]
