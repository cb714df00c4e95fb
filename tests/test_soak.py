"""Soak: 200,000 invokes shaped like Lambda's through one ``python -m lambdaric``, on each
transport and in every concurrency mode.

A leak that costs a few bytes or one fd per invoke is invisible in every other test and
fatal in a long-lived sandbox. The Runtime API here is tests/soak_stub.c, a C stub, so the
runtime, not the server, is what runs. Every invoke has its own request id, trace id,
client context, Cognito identity, tenant id and invocation id (a stub that repeats its
headers hid a setenv leak of ~140 bytes per new trace id), and its own payload size: small
events with 0-3 KB of padding, a ~100 KB one every 101st invoke, a raising handler every
53rd. The handler echoes what it saw of each value (client context, identity, tenant,
trace id from ``_X_AMZN_TRACE_ID`` or, under Managed Instances, the contextvar), and the
stub checks it. The modes: the classic runtime, and Managed Instances with 4 pollers in
``thread``, ``asyncio`` and ``process`` mode (a supervisor and 4 workers).

RSS (VmRSS of the runtime and every worker) and open fds are read once it is warm (after
``WARMUP`` invokes) and after every ``STEP`` more, each time with every poller held in its
/next and nothing in flight. A leak grows with the invokes; the heap's fragmentation moves
a few hundred KB either way (a multi-threaded runtime's malloc arenas). So the growth that
counts is the trend, the least-squares slope of the samples times the invokes after
warm-up: under ``RSS_GROWTH_LIMIT_KB`` for every process, with the last sample less than
``RSS_JUMP_LIMIT_KB`` above the first. The fds must be the same ones throughout. Every invoke must have got exactly one POST, for its own request id and
invocation id, of the right kind, with the right echo. Slow (about 30-60 s per run on 2
cores): CI runs ``-m slow``.
"""
from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Tuple

import pytest

from runtime_api import runtime_env

HERE = os.path.dirname(os.path.abspath(__file__))

WARMUP = 20_000
TOTAL = 220_000
STEP = 20_000
BIG_EVERY = 101
FAIL_EVERY = 53
BIG_PAD = 100 * 1024
POLLERS = 4
#: (256 until a clean-clone CI measured a +261 kB trend, +136 kB at the end, for the Python transport in
#: thread mode: arena fragmentation over 200,000 invokes, 1.3 bytes each; the trace-id leak this guards
#: against was ~140 bytes per invoke, 28 MB here, and a 5-byte-per-invoke leak still fails)
RSS_GROWTH_LIMIT_KB = 512
RSS_JUMP_LIMIT_KB = 1024
STUB_TIMEOUT_S = 400

HANDLER = '''
import os

MANAGED = bool(os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY"))
if MANAGED:
    from lambdaric.concurrency import current_trace_id


def handler(event, context):
    if event["kind"] == "fail":
        raise ValueError("soak failure in " + context.aws_request_id)
    trace = current_trace_id() if MANAGED else os.environ.get("_X_AMZN_TRACE_ID")
    check = "%s/%s/%s/%s" % (context.client_context.custom["n"], context.identity.cognito_identity_id,
                             context.tenant_id, trace)
    if event["kind"] == "big":
        return {"id": context.aws_request_id, "check": check, "pad": event["pad"]}
    return {"id": context.aws_request_id, "check": check, "n": event["n"], "pad": event["pad"][:64]}


async def async_handler(event, context):
    return handler(event, context)
'''

#: mode -> the environment it runs with, and the handler it calls
MODES = {
    "classic": ({}, "app.handler"),
    "thread": ({"AWS_LAMBDA_MAX_CONCURRENCY": str(POLLERS), "LAMBDARIC_CONCURRENCY_MODE": "thread"}, "app.handler"),
    "asyncio": ({"AWS_LAMBDA_MAX_CONCURRENCY": str(POLLERS), "LAMBDARIC_CONCURRENCY_MODE": "asyncio"},
                "app.async_handler"),
    "process": ({"AWS_LAMBDA_MAX_CONCURRENCY": str(POLLERS), "LAMBDARIC_CONCURRENCY_MODE": "process"}, "app.handler"),
}


@pytest.fixture(scope="module")
def soak_stub(tmp_path_factory) -> str:
    """tests/soak_stub.c compiled once for the module (skips, saying why, with no C compiler)."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no C compiler to build tests/soak_stub.c")
    out = str(tmp_path_factory.mktemp("soak") / "soak_stub")
    subprocess.run([cc, "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-o", out, os.path.join(HERE, "soak_stub.c")],
                   check=True)
    return out


def _vm_rss_kb(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def _fds(pid: int) -> Dict[str, str]:
    """Open fds of a process and what each points at (sockets by inode: a reconnect shows)."""
    found = {}
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            found[fd] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
    return found


def _line(stub: subprocess.Popen, runtime: subprocess.Popen, timeout: float) -> str:
    """The stub's next line, bounded; fails early if the runtime died on the way."""
    assert stub.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stub.stdout], [], [], 0.5)
        if ready:
            line = stub.stdout.readline()
            assert line, "the stub ended early (rc=%s)" % stub.poll()
            return line.strip()
        assert runtime.poll() is None, "the runtime exited with %s" % runtime.returncode
    raise AssertionError("no line from the stub within %.0f s" % timeout)


def _tree(pid: int) -> List[int]:
    """pid and its live descendants (process mode's workers)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        for task in os.listdir("/proc/%d/task" % p) if os.path.exists("/proc/%d/task" % p) else ():
            try:
                with open("/proc/%d/task/%s/children" % (p, task)) as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                continue
    return sorted(found)


def _snapshot(pid: int) -> Dict[int, Tuple[int, Dict[str, str]]]:
    """For each process of the runtime: (VmRSS kB, its fds)."""
    return {p: (_vm_rss_kb(p), _fds(p)) for p in _tree(pid)}


def _trend_kb(samples: List[Tuple[int, int]], invokes: int) -> float:
    """Least-squares slope of (invokes so far, RSS kB) samples, times ``invokes``."""
    n = len(samples)
    mx = sum(x for x, _ in samples) / n
    my = sum(y for _, y in samples) / n
    sxx = sum((x - mx) ** 2 for x, _ in samples)
    return sum((x - mx) * (y - my) for x, y in samples) / sxx * invokes


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MODES))
def test_soak_realistic_invokes_no_rss_or_fd_growth(soak_stub, lambdaric_env, tmp_path, mode):
    cwd = str(tmp_path)
    with open(os.path.join(cwd, "app.py"), "w") as f:
        f.write(HANDLER)
    mode_env, handler = MODES[mode]
    pollers = POLLERS if mode_env else 1
    port_file = os.path.join(cwd, "port")
    stub = subprocess.Popen(
        [soak_stub, port_file, str(pollers), str(WARMUP), str(TOTAL - WARMUP), str(STEP), str(STUB_TIMEOUT_S),
         str(BIG_EVERY), str(FAIL_EVERY)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    procs: List[subprocess.Popen] = [stub]
    out_path, err_path = os.path.join(cwd, "stdout"), os.path.join(cwd, "stderr")
    try:
        deadline = time.monotonic() + 10
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            assert time.monotonic() < deadline and stub.poll() is None, "the soak stub did not start"
            time.sleep(0.005)
        address = "127.0.0.1:" + open(port_file).read().strip()
        env = runtime_env(address, cwd, dict(lambdaric_env, **mode_env))
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            runtime = subprocess.Popen([sys.executable, "-m", "lambdaric", handler], cwd=cwd, env=env,
                                       stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        procs.append(runtime)

        assert _line(stub, runtime, 200) == "HOLD %d" % WARMUP
        samples = [(WARMUP, _snapshot(runtime.pid))]
        started = time.monotonic()
        assert stub.stdin is not None
        while True:
            stub.stdin.write("GO\n")
            stub.stdin.flush()
            line = _line(stub, runtime, STUB_TIMEOUT_S).split()
            if line[0] != "HOLD":
                break
            assert int(line[1]) == samples[-1][0] + STEP, line
            samples.append((int(line[1]), _snapshot(runtime.pid)))
        done = line
        elapsed = time.monotonic() - started
        samples.append((TOTAL, _snapshot(runtime.pid)))
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)

    assert done[0] == "DONE", done
    responses, errors, wrong_id, wrong_kind, wrong_body, other = (int(x) for x in done[1:7])
    response_bytes = int(done[7])
    fails = TOTAL // FAIL_EVERY
    bigs = len([n for n in range(1, TOTAL + 1) if n % BIG_EVERY == 0 and n % FAIL_EVERY != 0])
    warm, end = samples[0][1], samples[-1][1]
    jump = {p: end[p][0] - warm[p][0] for p in warm if p in end}
    trend = {p: _trend_kb([(n, snap[p][0]) for n, snap in samples if p in snap], TOTAL - WARMUP) for p in jump}
    figures = ("%s transport, %s mode: %d invokes (%d after warm-up in %.1f s: %.0f invokes/s); VmRSS kB after "
               "%d -> at the end (trend over %d samples), per process: %s; fds %s -> %s; POSTs: %d /response, "
               "%d /error"
               % (lambdaric_env["LAMBDARIC_TRANSPORT"], mode, TOTAL, TOTAL - WARMUP, elapsed,
                  (TOTAL - WARMUP) / elapsed, WARMUP, len(samples),
                  ", ".join("%d -> %d (%+d, trend %+.0f)" % (warm[p][0], end[p][0], jump[p], trend[p]) for p in jump),
                  sum(len(v[1]) for v in warm.values()), sum(len(v[1]) for v in end.values()), responses, errors))
    print("\nSOAK " + figures)
    assert (responses, errors, wrong_id, wrong_kind, wrong_body, other) == (TOTAL - fails, fails, 0, 0, 0, 0), figures
    assert response_bytes > bigs * BIG_PAD, figures
    assert all(sorted(snap) == sorted(warm) for _, snap in samples), "processes came or went: %s" % figures
    assert max(trend.values()) < RSS_GROWTH_LIMIT_KB, figures
    assert max(jump.values()) < RSS_JUMP_LIMIT_KB, figures
    for _, snap in samples:
        assert {p: v[1] for p, v in snap.items()} == {p: v[1] for p, v in warm.items()}, figures
    with open(err_path, "rb") as f:
        stderr = f.read()
    assert b"Traceback" not in stderr, stderr[-2000:]
    with open(out_path, "rb") as f:
        logged_failures = f.read().count(b"soak failure in ")
    assert logged_failures >= fails, (logged_failures, fails)
