"""The emulator under slow or absent readers (issue 15, items 2 and 3), through real
``python -m lambdaric`` processes on loopback.

- Its stdout is a pipe nobody reads (a test fixture's ``stdout=PIPE``): it keeps serving,
  ``--timeout`` still fires, and what it could not write is dropped whole lines at a time and
  counted, once, on stderr. It used to stop answering everyone after 248 invokes.
- A caller reads a 200 MB response stream slowly: the emulator's memory stays bounded (the
  runtime's POST is read only as fast as the caller takes the events), every byte arrives in
  order; a caller that goes away mid-stream does not wedge the runtime. The emulator used to
  hold the whole difference (214 MB RSS by the time 50 MB were read).
"""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

import pytest

from peers import peer_module

from emulator_harness import REPO, RunningEmulator

peer_module("boto3", "pip install boto3")
from botocore.eventstream import EventStreamBuffer  # noqa: E402

PATH = "/2015-03-31/functions/function/invocations"
STREAM_PATH = "/2021-11-15/functions/function/response-streaming-invocations"
LINE = "x" * 1000

CHATTY = {
    "app.py": """
        import time

        def handler(event, context):
            if event.get("sleep"):
                time.sleep(event["sleep"])
            print("%s")
            return {"i": event.get("i")}
    """ % LINE
}


def _emulator_with_unread_pipes(tmp_path, args: List[str]) -> Tuple[subprocess.Popen, int]:
    """``python -m lambdaric`` with stdout and stderr pipes that nobody reads, as a pytest
    fixture would start it; returns it and its port (read from the banner, the one read)."""
    for rel, text in CHATTY.items():
        (tmp_path / rel).write_text("\n".join(line[8:] for line in text.strip("\n").splitlines()) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA_", "_HANDLER", "LAMBDARIC_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lambdaric", "app.handler", "--listen", "127.0.0.1:0"] + args,
        cwd=str(tmp_path), env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    banner = proc.stderr.readline()  # type: ignore[union-attr]
    match = re.search(rb"http://127\.0\.0\.1:(\d+)/", banner)
    if match is None:
        proc.kill()
        raise AssertionError("no banner: %r" % banner)
    return proc, int(match.group(1))


def _post(conn: http.client.HTTPConnection, event: dict) -> Tuple[int, Dict[str, str], bytes, float]:
    started = time.monotonic()
    conn.request("POST", PATH, json.dumps(event).encode())
    response = conn.getresponse()
    body = response.read()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, body, time.monotonic() - started


def test_unread_stdout_pipe_never_stops_serving(tmp_path):
    """2,000 invokes (each about 1.3 KB of console output: 2.6 MB against a 64 KiB pipe and the
    1 MiB console buffer) with stdout never read; then an invoke past --timeout times out on
    time. Once stdout is read, the drop count on stderr accounts for every line not printed,
    and every line printed is whole."""
    proc, port = _emulator_with_unread_pipes(tmp_path, ["--timeout", "1", "--concurrency", "1"])
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for i in range(2000):
            status, headers, body, _ = _post(conn, {"i": i})
            assert (status, body) == (200, b'{"i": %d}' % i), (i, status, headers, body)
            assert "x-amz-function-error" not in headers
        status, headers, body, took = _post(conn, {"i": -1, "sleep": 5})
        rid = headers["x-amzn-requestid"]
        assert status == 200 and headers["x-amz-function-error"] == "Unhandled"
        assert json.loads(body) == {"errorMessage": "RequestId: %s Error: Task timed out after 1.00 seconds" % rid,
                                    "errorType": "Sandbox.Timedout"}
        assert 0.9 < took < 3.0, took
        assert _post(conn, {"i": 2001})[:3:2] == (200, b'{"i": 2001}')  # a new runtime, served
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)  # reading now: the held output flows out
    assert proc.returncode == 0, err[-2000:]
    notices = re.findall(rb"lambdaric: (\d+) lines \((\d+) bytes\) of console output dropped: stdout was not being read\n", err)
    assert notices, err[-2000:]
    dropped_lines = sum(int(n) for n, _ in notices)
    dropped_bytes = sum(int(b) for _, b in notices)
    # the 2,001 served invokes print START, the handler's line, END, REPORT; the one that timed
    # out START, its "Task timed out" line, END, REPORT
    assert out.count(b"\n") + dropped_lines == 2001 * 4 + 4, (out.count(b"\n"), dropped_lines)
    assert dropped_bytes > 1_000_000 and dropped_lines > 700
    lines = out.split(b"\n")
    assert lines.pop() == b""
    whole = re.compile(rb"(START RequestId: [0-9a-f-]{36} Version: \$LATEST|x{1000}|END RequestId: [0-9a-f-]{36}|"
                       rb"REPORT RequestId: [0-9a-f-]{36}\tDuration: .*|\S+ [0-9a-f-]{36} Task timed out after 1\.00 seconds)\Z")
    broken = [line[:80] for line in lines if not whole.match(line)]
    assert broken == []
    assert b"Traceback" not in err


# --------------------------------------------------------------------------- streaming

PIECE = 64 * 1024
STREAMING_APP = {
    "app.py": """
        def handler(event, context):
            piece = bytearray(%d)
            for i in range(event["pieces"]):
                piece[:4] = i.to_bytes(4, "big")  # each piece says where it belongs
                yield bytes(piece)
    """ % PIECE
}


def vm_rss_kb(pid: int) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for %d" % pid)


class StreamReader:
    """A caller reading an InvokeWithResponseStream answer at its own pace: HTTP (de-chunked by
    http.client), then AWS event-stream messages (parsed and CRC-checked by botocore), each
    PayloadChunk checked against the handler's pattern as it arrives."""

    def __init__(self, port: int, pieces: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        self.conn.request("POST", STREAM_PATH, json.dumps({"pieces": pieces}).encode())
        self.response = self.conn.getresponse()
        assert self.response.status == 200, (self.response.status, self.response.read())
        self.events = EventStreamBuffer()
        self.received = 0  # payload bytes checked
        self.pending = b""
        self.complete: Optional[dict] = None

    def read(self, size: int) -> int:
        """Read up to ``size`` bytes of the HTTP body; returns how many (0 at its end)."""
        data = self.response.read1(size) if hasattr(self.response, "read1") else self.response.read(size)
        if data:
            self.events.add_data(data)
            for message in self.events:
                self._take(message)
        return len(data)

    def _take(self, message) -> None:  # type: ignore[no-untyped-def]
        kind = message.headers.get(":event-type")
        if kind == "PayloadChunk":
            self.pending += message.payload
            while len(self.pending) >= PIECE:
                self._check(self.pending[:PIECE])
                self.pending = self.pending[PIECE:]
        elif kind == "InvokeComplete":
            self.complete = json.loads(message.payload)
        else:
            raise AssertionError("unexpected event %r" % (message.headers,))

    def _check(self, piece: bytes) -> None:
        index = self.received // PIECE
        assert piece[:4] == index.to_bytes(4, "big") and piece[4:] == bytes(PIECE - 4), "piece %d is wrong" % index
        self.received += PIECE


def test_slow_stream_reader_bounds_emulator_memory():
    """200 MB streamed in 64 KiB pieces to a caller reading about 5 MB/s: while it reads the
    first 32 MB the emulator's RSS stays within 40 MB of its baseline; then the rest is read at
    full speed and all 200 MB arrive, in order, with an InvokeComplete without error."""
    pieces = 200 * 1024 * 1024 // PIECE
    with RunningEmulator(STREAMING_APP, args=["--concurrency", "1"]) as emu:
        port = int(emu.base.rsplit(":", 1)[1])
        warm = StreamReader(port, 16)  # a runtime started, a stream served: the baseline
        while warm.read(1 << 20):
            pass
        assert warm.received == 16 * PIECE and warm.complete == {}
        baseline = vm_rss_kb(emu.proc.pid)
        reader = StreamReader(port, pieces)
        peak = baseline
        started = time.monotonic()
        while reader.received < 32 * 1024 * 1024:
            assert reader.read(PIECE), "the stream ended early"
            # pace: about 5 MB/s
            ahead = reader.received / 5e6 - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
            peak = max(peak, vm_rss_kb(emu.proc.pid))
        assert (peak - baseline) < 40 * 1024, "emulator RSS grew by %d kB while 32 MB were read slowly" % (peak - baseline)
        while reader.read(1 << 20):
            pass
        peak = max(peak, vm_rss_kb(emu.proc.pid))
        assert reader.received == pieces * PIECE and reader.pending == b""
        assert reader.complete == {}, reader.complete
        print("emulator RSS: baseline %d kB, peak %d kB (+%d kB)" % (baseline, peak, peak - baseline))


def test_caller_gone_mid_stream_does_not_wedge_the_runtime():
    """A caller that reads 4 MB of a 200 MB stream and hangs up: the rest of the runtime's POST
    is read and dropped (the emulator's memory stays bounded meanwhile), and the same single
    runtime serves the next invoke, whole."""
    pieces = 200 * 1024 * 1024 // PIECE
    with RunningEmulator(STREAMING_APP, args=["--concurrency", "1"]) as emu:
        port = int(emu.base.rsplit(":", 1)[1])
        warm = StreamReader(port, 1)
        while warm.read(1 << 20):
            pass
        baseline = vm_rss_kb(emu.proc.pid)
        reader = StreamReader(port, pieces)
        while reader.received < 4 * 1024 * 1024:
            assert reader.read(PIECE)
        reader.conn.sock.close()  # type: ignore[union-attr]
        reader.conn.close()
        peak = baseline
        started = time.monotonic()
        after = StreamReader(port, 3)  # waits for the only runtime to finish the abandoned stream
        while after.read(1 << 20):
            peak = max(peak, vm_rss_kb(emu.proc.pid))
        assert after.received == 3 * PIECE and after.complete == {}
        assert time.monotonic() - started < 15
        assert (max(peak, vm_rss_kb(emu.proc.pid)) - baseline) < 40 * 1024
        assert emu.stdout().count(b"Init Duration") == 1  # one runtime, never restarted
        assert emu.stdout().count(b"END RequestId: ") == 3 and b"Task timed out" not in emu.stdout()  # the abandoned one ended well
        assert b"Traceback" not in emu.stderr()
