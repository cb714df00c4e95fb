"""Soak: 100,000 invokes through one ``python -m lambdaric`` process, on each transport.

A leak that costs a few bytes or one fd per invoke is invisible in every other test and
fatal in a long-lived sandbox. The Runtime API here is tests/soak_stub.c (benchmarks/stub.c
with mixed events and a tally of the POSTs), so the runtime, not the server, is what runs:
small JSON events, a 100 KB one every 101st invoke and a raising handler every 53rd. The
runtime's RSS (VmRSS) and open fds are read once it is warm (after 5,000 invokes, held in
its /next) and again after the last one (held again): RSS may grow less than 2 MB and the
fds must be the same ones. Every invoke must have got exactly one POST, for its own request
id, of the right kind. Slow (about 20-40 s per transport on 2 cores): CI runs ``-m slow``.
"""
from __future__ import annotations

import json
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

WARMUP = 5_000
TOTAL = 100_000
BIG_EVERY = 101
FAIL_EVERY = 53
BIG_PAD = 100 * 1024
RSS_GROWTH_LIMIT_KB = 2048
STUB_TIMEOUT_S = 240

HANDLER = '''
def handler(event, context):
    if event["kind"] == "fail":
        raise ValueError("soak failure in " + context.aws_request_id)
    if event["kind"] == "big":
        return {"id": context.aws_request_id, "pad": event["pad"]}
    return {"id": context.aws_request_id, "n": event["n"]}
'''


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


def _write_events(folder: str) -> Tuple[str, str, str]:
    paths = []
    for name, event in (("small", {"kind": "small", "n": 1, "user": {"name": "soak", "tags": ["a", "b"]}}),
                        ("big", {"kind": "big", "pad": "x" * BIG_PAD}),
                        ("fail", {"kind": "fail"})):
        path = os.path.join(folder, name + ".json")
        with open(path, "w") as f:
            json.dump(event, f)
        paths.append(path)
    return paths[0], paths[1], paths[2]


@pytest.mark.slow
def test_soak_100k_invokes_no_rss_or_fd_growth(soak_stub, lambdaric_env, tmp_path):
    cwd = str(tmp_path)
    with open(os.path.join(cwd, "app.py"), "w") as f:
        f.write(HANDLER)
    small, big, fail = _write_events(cwd)
    port_file = os.path.join(cwd, "port")
    stub = subprocess.Popen(
        [soak_stub, port_file, str(WARMUP), str(TOTAL - WARMUP), str(STUB_TIMEOUT_S),
         small, big, str(BIG_EVERY), fail, str(FAIL_EVERY)],
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
        env = runtime_env(address, cwd, dict(lambdaric_env))
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            runtime = subprocess.Popen([sys.executable, "-m", "lambdaric", "app.handler"], cwd=cwd, env=env,
                                       stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        procs.append(runtime)

        assert _line(stub, runtime, 120) == "READY"
        rss_warm, fds_warm = _vm_rss_kb(runtime.pid), _fds(runtime.pid)
        started = time.monotonic()
        assert stub.stdin is not None
        stub.stdin.write("GO\n")
        stub.stdin.flush()
        done = _line(stub, runtime, STUB_TIMEOUT_S).split()
        elapsed = time.monotonic() - started
        rss_end, fds_end = _vm_rss_kb(runtime.pid), _fds(runtime.pid)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)

    assert done[0] == "DONE", done
    responses, errors, wrong_id, wrong_kind, other = (int(x) for x in done[1:6])
    response_bytes = int(done[6])
    fails = TOTAL // FAIL_EVERY
    bigs = len([n for n in range(1, TOTAL + 1) if n % BIG_EVERY == 0 and n % FAIL_EVERY != 0])
    figures = ("%s transport: %d invokes (%d after warm-up in %.1f s: %.0f invokes/s); VmRSS %d kB after %d, "
               "%d kB at the end (%+d kB); fds %d -> %d; POSTs: %d /response, %d /error"
               % (lambdaric_env["LAMBDARIC_TRANSPORT"], TOTAL, TOTAL - WARMUP, elapsed, (TOTAL - WARMUP) / elapsed,
                  rss_warm, WARMUP, rss_end, rss_end - rss_warm, len(fds_warm), len(fds_end), responses, errors))
    print("\nSOAK " + figures)
    assert (responses, errors, wrong_id, wrong_kind, other) == (TOTAL - fails, fails, 0, 0, 0), figures
    assert response_bytes > bigs * BIG_PAD, figures
    assert rss_end - rss_warm < RSS_GROWTH_LIMIT_KB, figures
    assert fds_end == fds_warm, figures
    with open(err_path, "rb") as f:
        stderr = f.read()
    assert b"Traceback" not in stderr, stderr[-2000:]
    with open(out_path, "rb") as f:
        logged_failures = f.read().count(b"soak failure in soak-")
    assert logged_failures >= fails, (logged_failures, fails)
