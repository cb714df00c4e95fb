"""The emulator under load: 2,000 invokes from 16 callers at once against ``python -m lambdaric
app.handler`` serving the Invoke API with a pool of 16 runtimes, and with a pool of 4 (12 callers
waiting in its queue at any time).

Payloads from a few bytes to about 1 MB, every 7th invoke raising. Each caller must get exactly
its own answer (the handler echoes the event's unique id and its padding, so a crossed or cut
answer shows), the handler must have run exactly once per invoke (each run appends its id to a
file with one O_APPEND write), the emulator's log must hold one END line per invoke, and after
SIGTERM no runtime may be left (none running in the function's directory, none in a runtime's
process group). The callers are raw http.client connections, kept alive, one per thread:
boto3 would be what the test measures on 2 cores.
"""
from __future__ import annotations

import http.client
import json
import os
import random
import signal
import threading
import time
from typing import Dict, List, Optional, Tuple

import pytest

from emulator_harness import RunningEmulator, children_of, group_members

INVOKES = 2_000
CALLERS = 16
FAIL_EVERY = 7

APP = {
    "app.py": '''
        import os

        def handler(event, context):
            fd = os.open("runs.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, (event["id"] + "\\n").encode())
            finally:
                os.close(fd)
            if event["i"] %% %d == 0:
                raise RuntimeError("failing on purpose: " + event["id"])
            return {"id": event["id"], "pad": event["pad"]}
    ''' % FAIL_EVERY,
}


def _size(rng: random.Random, i: int) -> int:
    """Mostly small, some 10-100 KB, one in 50 about 1 MB (under the 6 MB limit both ways)."""
    if i % 50 == 0:
        return 1_000_000 - rng.randrange(1000)
    if i % 10 == 0:
        return rng.randrange(10_000, 100_000)
    return rng.randrange(0, 2_000)


def _cwd_of(pid: int) -> Optional[str]:
    try:
        return os.readlink("/proc/%d/cwd" % pid)
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


@pytest.mark.parametrize("runtimes_at_most", [CALLERS, 4], ids=["pool16", "pool4-queued"])
def test_2000_invokes_16_callers_each_gets_its_own_answer(lambdaric_env, runtimes_at_most):
    rng = random.Random(9)
    sizes = [_size(rng, i) for i in range(INVOKES)]
    answers: Dict[int, Tuple[int, Dict[str, str], bytes, str]] = {}  # status, headers, body, event sent
    problems: List[str] = []
    lock = threading.Lock()
    next_index = [0]

    with RunningEmulator(APP, args=["--concurrency", str(runtimes_at_most), "--queue", str(CALLERS)], env=dict(lambdaric_env)) as emu:
        host, port = emu.base[len("http://"):].split(":")
        path = "/2015-03-31/functions/function/invocations"

        def caller() -> None:
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
            try:
                while True:
                    with lock:
                        i = next_index[0]
                        if i >= INVOKES:
                            return
                        next_index[0] += 1
                    body = json.dumps({"id": "load-%05d-%s" % (i, os.urandom(4).hex()), "i": i, "pad": "p" * sizes[i]})
                    try:
                        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
                        resp = conn.getresponse()
                        data = resp.read()
                    except (OSError, http.client.HTTPException) as exc:
                        with lock:
                            problems.append("invoke %d: %s: %s" % (i, type(exc).__name__, exc))
                        conn.close()
                        conn = http.client.HTTPConnection(host, int(port), timeout=60)
                        continue
                    with lock:
                        answers[i] = (resp.status, {k.lower(): v for k, v in resp.getheaders()}, data, body)
            finally:
                conn.close()

        started = time.monotonic()
        threads = [threading.Thread(target=caller, daemon=True) for _ in range(CALLERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        elapsed = time.monotonic() - started
        assert not any(t.is_alive() for t in threads), "callers still waiting after 120 s"

        runtimes = children_of(emu.proc.pid)
        assert 1 <= len(runtimes) <= runtimes_at_most, runtimes
        assert emu.stop(signal.SIGTERM) == 0
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in runtimes) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [pid for pid in runtimes if _alive(pid)] + [pid for r in runtimes for pid in group_members(r)]
        left += [int(p) for p in os.listdir("/proc") if p.isdigit() and _cwd_of(int(p)) == emu.cwd and _alive(int(p))]
        with open(os.path.join(emu.cwd, "runs.log")) as f:
            runs = f.read().split()
        log = emu.stdout()

    wrong = []
    failures = 0
    for i in range(INVOKES):
        if i not in answers:
            continue
        status, headers, data, sent = answers[i]
        event_id = json.loads(sent)["id"]
        if i % FAIL_EVERY == 0:
            failures += 1
            ok = status == 200 and headers.get("x-amz-function-error") == "Unhandled" and \
                json.loads(data).get("errorMessage") == "failing on purpose: " + event_id
        else:
            got = json.loads(data) if status == 200 else None
            ok = "x-amz-function-error" not in headers and got == {"id": event_id, "pad": "p" * sizes[i]}
        if not ok:
            wrong.append("invoke %d: %s %r" % (i, status, data[:200]))
    expected_ids = sorted(json.loads(answers[i][3])["id"] for i in answers)
    lost = INVOKES - len(answers)
    duplicated = len(runs) - len(set(runs))
    figures = ("%d invokes from %d callers (%d runtimes) in %.1f s (%.0f invokes/s); %d MB sent; %d function errors; "
               "%d wrong answers, %d lost, %d duplicated runs, %d END lines, %d processes left"
               % (INVOKES, CALLERS, len(runtimes), elapsed, INVOKES / elapsed, sum(sizes) >> 20, failures,
                  len(wrong), lost, duplicated, log.count(b"END RequestId: "), len(left)))
    print("\nLOAD " + lambdaric_env["LAMBDARIC_TRANSPORT"] + " transport: " + figures)
    assert not problems, problems[:5]
    assert not wrong, wrong[:5]
    assert lost == 0 and failures == len(range(0, INVOKES, FAIL_EVERY)), figures
    assert sorted(runs) == expected_ids, figures  # every invoke ran once, none twice, nothing else ran
    assert log.count(b"END RequestId: ") == INVOKES, figures
    assert not left, "processes left after SIGTERM: %s" % left
    assert b"Traceback" not in emu.stderr(), emu.stderr()[-2000:]
