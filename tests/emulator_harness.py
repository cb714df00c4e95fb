"""Start a real ``python -m lambdaric`` emulator process on a free loopback port for a test.

The emulator prints the URL it serves on stderr; this harness waits for that line
(bounded), gives the test a boto3 Lambda client pointed at it, and stops the emulator's
whole process group at the end, checking it exited by itself on SIGTERM.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_BANNER = re.compile(rb"serving .* on (http://127\.0\.0\.1:(\d+))/")


class CapturedProcess:
    """A process started with ``start_new_session`` whose stdout and stderr go to temporary
    files, readable at any time while it runs."""

    def __init__(self, argv: List[str], cwd: str, env: Dict[str, str]) -> None:
        self._out = tempfile.TemporaryFile()
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err, start_new_session=True
        )

    def stdout(self) -> bytes:
        self._out.seek(0)
        return self._out.read()

    def stderr(self) -> bytes:
        self._err.seek(0)
        return self._err.read()


class RunningEmulator(CapturedProcess):
    def __init__(
        self,
        files: Dict[str, str],
        handler: Optional[str] = "app.handler",
        args: List[str] = (),  # type: ignore[assignment]
        env: Optional[Dict[str, str]] = None,
        cwd: Optional[str] = None,
        command: Optional[List[str]] = None,
    ) -> None:
        """``command`` replaces ``python -m lambdaric`` (e.g. the same run inside a chroot or a
        container); the handler and ``--listen 127.0.0.1:0`` are appended to it either way."""
        self._tmp = None
        if cwd is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="lambdaric-emu-")
            cwd = self._tmp.name
        self.cwd = cwd
        for rel, text in files.items():
            path = os.path.join(cwd, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(textwrap.dedent(text).lstrip())
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA_", "_HANDLER", "LAMBDARIC_"))}
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
        child_env.update(env or {})
        argv = list(command or [sys.executable, "-m", "lambdaric"]) + ([handler] if handler else []) + ["--listen", "127.0.0.1:0"] + list(args)
        super().__init__(argv, cwd, child_env)
        self.base = self._wait_for_banner(20.0)

    def _wait_for_banner(self, timeout: float) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            match = _BANNER.search(self.stderr())
            if match:
                return match.group(1).decode()
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise AssertionError("emulator did not start: rc=%s stderr=%r" % (self.proc.returncode, self.stderr()))

    def url(self, name: str = "function", streaming: bool = False) -> str:
        if streaming:
            return "%s/2021-11-15/functions/%s/response-streaming-invocations" % (self.base, name)
        return "%s/2015-03-31/functions/%s/invocations" % (self.base, name)

    def client(self):  # type: ignore[no-untyped-def]
        import boto3
        from botocore.config import Config

        return boto3.client(
            "lambda",
            endpoint_url=self.base,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 1}, read_timeout=60, connect_timeout=5),
        )

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> Optional[int]:
        """Signal the emulator, wait for it; SIGKILL the whole group if it does not end."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)
        return self.proc.returncode

    def __enter__(self) -> "RunningEmulator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()


def live_processes(field: int, value: int) -> List[int]:
    """Live (not zombie) processes whose /proc/PID/stat field ``field`` (counted after the
    command name: 1 = parent pid, 2 = process group) equals ``value``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            if int(fields[field]) == value and fields[0] != b"Z":
                found.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return found


def children_of(pid: int) -> List[int]:
    """Live processes whose parent is ``pid``, for orphan checks."""
    return live_processes(1, pid)


def group_members(pgid: int) -> List[int]:
    """Live processes in the process group ``pgid``."""
    return live_processes(2, pgid)


def invoke_concurrently(invoke: Callable[[int], dict], count: int) -> Tuple[Dict[int, dict], float]:
    """``invoke(-1)`` once (it may initialise a runtime), then ``invoke(0..count-1)`` on as many
    threads at once; returns every result by index and the seconds the concurrent ones took."""
    results: Dict[int, dict] = {-1: invoke(-1)}

    def one(i: int) -> None:
        results[i] = invoke(i)

    started = time.monotonic()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results, time.monotonic() - started
