"""Runtimes that cannot start, an emulator out of file descriptors, and an init that times out
(issue 15, items 4 and 5), through real ``python -m lambdaric`` processes on loopback.

Every failure to start or reach a runtime gets Lambda's answer and one console line:

- a command that cannot be run: 200, ``X-Amz-Function-Error: Unhandled``,
  ``Runtime.InvalidEntrypoint`` with Lambda's words (``fork/exec PATH: no such file or
  directory``), as Lambda answers for a container image whose entrypoint it cannot exec;
- a runtime that exits before taking the invoke: the same with ``Runtime.ExitError``;
- the emulator out of descriptors: 500 ``ServiceException`` (the service failed, not the
  function), and no traceback flood from asyncio's ``accept()`` retries;
- an init past its limit: ``Runtime.InitTimeout`` with Lambda's ``INIT_REPORT ... Status:
  timeout`` line and one saying why ``--timeout`` did not shorten it.

It used to drop the connection (boto3 retried, then reported ``ConnectionClosedError``),
print tracebacks, and say nothing of an init timeout.
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import re
import resource
import stat
import threading
import time
from typing import Dict, List, Optional, Tuple

import pytest

from peers import peer_module

from emulator_harness import RunningEmulator

PATH = "/2015-03-31/functions/function/invocations"
STREAM_PATH = "/2021-11-15/functions/function/response-streaming-invocations"

Answer = Tuple[int, Dict[str, str], bytes, float]


def post(emu: RunningEmulator, body: bytes = b"{}", path: str = PATH, headers: Optional[Dict[str, str]] = None) -> Answer:
    """One invoke on a fresh connection: (status, lower-cased headers, body, seconds taken)."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(emu.base[len("http://"):], timeout=20)
    try:
        conn.request("POST", path, body, headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data, time.monotonic() - started
    finally:
        conn.close()


def wait_for(predicate, what: str, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Console output is written out by the emulator as it comes; wait (bounded) for it."""
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out waiting for " + what
        time.sleep(0.02)


def _not_a_program(cwd: str) -> None:
    with open(os.path.join(cwd, "bootstrap"), "wb") as f:
        f.write(b"\x7fELF\x00garbage, not a program")
    os.chmod(os.path.join(cwd, "bootstrap"), 0o755)


def _not_executable(cwd: str) -> None:
    with open(os.path.join(cwd, "bootstrap"), "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(os.path.join(cwd, "bootstrap"), stat.S_IRUSR | stat.S_IWUSR)


def _a_directory(cwd: str) -> None:
    os.mkdir(os.path.join(cwd, "bootstrap"))


# (name, --command, set-up in the emulator's directory, errorType, the error after "Error: ")
START_CASES = [
    ("missing file", "./no-such-bootstrap", None, "Runtime.InvalidEntrypoint", "fork/exec ./no-such-bootstrap: no such file or directory"),
    ("not executable", "./bootstrap", _not_executable, "Runtime.InvalidEntrypoint", "fork/exec ./bootstrap: permission denied"),
    ("not a program", "./bootstrap", _not_a_program, "Runtime.InvalidEntrypoint", "fork/exec ./bootstrap: exec format error"),
    ("a directory", "./bootstrap", _a_directory, "Runtime.InvalidEntrypoint", "fork/exec ./bootstrap: permission denied"),
    ("exits at once", "sh -c 'exit 3'", None, "Runtime.ExitError", "Runtime exited with error: exit status 3"),
    ("killed at once", "sh -c 'kill -9 $$'", None, "Runtime.ExitError", "Runtime exited with error: signal: killed"),
]


@pytest.mark.parametrize("case", START_CASES, ids=[c[0] for c in START_CASES])
def test_runtime_that_cannot_start_gets_lambdas_error(case):
    """Two invokes, each answered at once in Lambda's shape; the console has exactly one line
    for each, which the log tail carries too; no traceback."""
    _, command, setup, error_type, error = case
    with RunningEmulator({}, handler=None, args=["--command", command]) as emu:
        if setup is not None:
            setup(emu.cwd)
        lines = []
        for _ in range(2):
            status, headers, body, took = post(emu, headers={"X-Amz-Log-Type": "Tail"})
            rid = headers["x-amzn-requestid"]
            message = "RequestId: %s Error: %s" % (rid, error)
            assert status == 200, (status, headers, body)
            assert headers["x-amz-function-error"] == "Unhandled" and headers["content-type"] == "application/json"
            assert headers["x-amz-executed-version"] == "$LATEST"
            assert body == json.dumps({"errorMessage": message, "errorType": error_type}).encode()
            assert took < 2.0, took
            line = "%s (%s)\n" % (message, error_type)
            assert base64.b64decode(headers["x-amz-log-result"]) == line.encode()
            lines.append(line)
        wait_for(lambda: emu.stdout().count(b"\n") >= 2, "two console lines")
        assert emu.stdout() == "".join(lines).encode()
        assert emu.stderr().count(b"\n") == 1 and b"Traceback" not in emu.stderr()  # the banner only


def test_missing_bootstrap_through_boto3_and_a_stream():
    """boto3 gets a function error (it used to retry a dropped connection and report
    ConnectionClosedError); a response stream gets an InvokeComplete with the error."""
    boto3 = peer_module("boto3", "pip install boto3")
    from botocore.config import Config

    with RunningEmulator({}, handler=None, args=["--command", "./no-such-bootstrap"]) as emu:
        client = boto3.client("lambda", endpoint_url=emu.base, region_name="us-east-1", aws_access_key_id="test",
                              aws_secret_access_key="test", config=Config(read_timeout=10, connect_timeout=5))
        answer = client.invoke(FunctionName="function", Payload=b"{}")
        assert answer["StatusCode"] == 200 and answer["FunctionError"] == "Unhandled"
        error = json.loads(answer["Payload"].read())
        assert error["errorType"] == "Runtime.InvalidEntrypoint"
        assert error["errorMessage"].endswith(" Error: fork/exec ./no-such-bootstrap: no such file or directory")
        stream = client.invoke_with_response_stream(FunctionName="function", Payload=b"{}")
        events = list(stream["EventStream"])
        assert [list(e) for e in events] == [["InvokeComplete"]]
        assert events[0]["InvokeComplete"]["ErrorCode"] == "Runtime.InvalidEntrypoint"
        assert events[0]["InvokeComplete"]["ErrorDetails"].endswith("fork/exec ./no-such-bootstrap: no such file or directory")
        wait_for(lambda: emu.stdout().count(b"\n") >= 2, "two console lines")
        assert emu.stdout().count(b"(Runtime.InvalidEntrypoint)\n") == 2


# --------------------------------------------------------------------------- file descriptors

APP = {"app.py": """
    def handler(event, context):
        return {"ok": event}
"""}


def _open_fds(pid: int) -> int:
    return len(os.listdir("/proc/%d/fd" % pid))


def _invoke_at_once(emu: RunningEmulator, count: int) -> List[Answer]:
    """``count`` invokes on as many threads at once; fails unless every one got an answer."""
    answers: List[Answer] = []
    failures: List[BaseException] = []

    def one() -> None:
        try:
            answers.append(post(emu, b'{"n": 1}'))
        except BaseException as exc:  # (a dropped connection, a timeout)
            failures.append(exc)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert failures == [] and len(answers) == count, failures
    return answers


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd") or not hasattr(resource, "prlimit"), reason="needs Linux prlimit")
def test_out_of_file_descriptors_answers_and_says_so_briefly():
    """The emulator's soft RLIMIT_NOFILE lowered (prlimit) to what it holds plus 1, 2, ... 8: three
    invokes at once each get a 500 ServiceException within seconds (no runtime is started without
    the descriptors to reach it), never a dropped connection; stderr stays one line per refused
    invoke and at most one for accept(), no traceback; with the limit back, invokes are served,
    and a runtime already running still serves at the limit."""
    with RunningEmulator(APP, args=["--concurrency", "1"]) as emu:
        pid = emu.proc.pid
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        held = _open_fds(pid)
        statuses = []
        refused = []
        try:
            for extra in range(1, 9):
                resource.prlimit(pid, resource.RLIMIT_NOFILE, (held + extra, hard))
                for status, headers, body, took in _invoke_at_once(emu, 3):
                    statuses.append(status)
                    refused.append(headers["x-amzn-requestid"].encode())
                    assert status == 500 and took < 5.0, (extra, status, headers, body, took)
                    assert headers["x-amzn-errortype"] == "ServiceException", (headers, body)
                    assert "x-amz-function-error" not in headers
                    error = json.loads(body)
                    assert error["Type"] == "Service"
                    assert re.match(r"Lambda emulator could not start a runtime: .*Too many open files\Z", error["message"]), error
        finally:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        status, headers, body, _ = post(emu, b'{"n": 2}')
        assert (status, body) == (200, b'{"ok": {"n": 2}}'), (status, headers, body)
        # a runtime already running holds its connection: at the limit, it still serves
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (_open_fds(pid) + 1, hard))
        try:
            for n in range(3):
                status, headers, body, _ = post(emu, b'{"n": %d}' % n)
                assert (status, body) == (200, b'{"ok": {"n": %d}}' % n), (status, headers, body)
        finally:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        err = emu.stderr()
        assert b"Traceback" not in err, err[-3000:]
        notices = err.split(b"\n")[1:-1]
        accept_lines = [n for n in notices if b"accept() out of system resource" in n]
        assert len(accept_lines) <= 1, notices
        # one line per refused invoke, one for accept(): nothing else
        assert len(notices) == statuses.count(500) + len(accept_lines), notices
        said = [re.match(rb"lambdaric: RequestId: ([0-9a-f-]{36}): .*Too many open files; answered 500 ServiceException\Z", n)
                for n in notices if n not in accept_lines]
        assert all(said) and sorted(m.group(1) for m in said) == sorted(refused), notices  # type: ignore[union-attr]


# --------------------------------------------------------------------------- init timeout

SLOW_INIT = {"app.py": """
    import time
    time.sleep(30)

    def handler(event, context):
        return "never"
"""}


def test_init_timeout_is_said_on_the_console_and_in_the_tail():
    """LAMBDARIC_INIT_TIMEOUT=1 and --timeout 0.5: the caller gets Runtime.InitTimeout after 1 s
    (init is not shortened by the function timeout, as on Lambda), and the console and the log
    tail say so: Lambda's INIT_REPORT line, then why."""
    with RunningEmulator(SLOW_INIT, args=["--timeout", "0.5"], env={"LAMBDARIC_INIT_TIMEOUT": "1"}) as emu:
        status, headers, body, took = post(emu, headers={"X-Amz-Log-Type": "Tail"})
        rid = headers["x-amzn-requestid"]
        assert status == 200 and headers["x-amz-function-error"] == "Unhandled"
        assert body == json.dumps({"errorMessage": "RequestId: %s Error: Init timed out after 1.00 seconds" % rid,
                                   "errorType": "Runtime.InitTimeout"}).encode()
        assert 0.9 < took < 3.0, took
        expected = re.compile(
            rb"INIT_REPORT Init Duration: 1\d{3}\.\d\d ms\tPhase: init\tStatus: timeout\n"
            rb"lambdaric: the runtime did not ask for an invoke \(GET /next\) within 1\.00 s of starting: "
            rb"Runtime\.InitTimeout, runtime stopped\. Init may take 1 s \(--init-timeout, LAMBDARIC_INIT_TIMEOUT\) "
            rb"or the function timeout when longer, as on Lambda; --timeout 0\.5 does not shorten it\n\Z"
        )
        tail = base64.b64decode(headers["x-amz-log-result"])
        assert expected.match(tail), tail
        wait_for(lambda: emu.stdout().count(b"\n") >= 2, "the console lines")
        assert emu.stdout() == tail


def test_init_timeout_option_and_a_longer_function_timeout():
    """--init-timeout 0.5 with --timeout 1.5: init may take the longer function timeout, and the
    line says 1.50 s without the --timeout remark."""
    with RunningEmulator(SLOW_INIT, args=["--timeout", "1.5", "--init-timeout", "0.5"]) as emu:
        status, headers, body, took = post(emu)
        assert json.loads(body)["errorType"] == "Runtime.InitTimeout" and 1.4 < took < 3.5, (body, took)
        wait_for(lambda: emu.stdout().count(b"\n") >= 2, "the console lines")
        lines = emu.stdout().split(b"\n")
        assert lines[0].startswith(b"INIT_REPORT Init Duration: 1") and lines[0].endswith(b" ms\tPhase: init\tStatus: timeout")
        assert lines[1].startswith(b"lambdaric: the runtime did not ask for an invoke (GET /next) within 1.50 s of starting")
        assert lines[1].endswith(b"Init may take 0.5 s (--init-timeout, LAMBDARIC_INIT_TIMEOUT) "
                                 b"or the function timeout when longer, as on Lambda")
        assert lines[2:] == [b""]
