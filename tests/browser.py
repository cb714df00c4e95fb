"""A web function served by a real ``python -m lambdaric HANDLER --http 127.0.0.1:0`` (the
emulator's HTTP front), and a headless Chromium driven by Playwright to browse it.

Chromium is Debian's (``apt-get install chromium``), never a browser Playwright downloads: only
the PyPI package ``playwright`` is used, with ``executable_path``. Both are real peers, taken
through :func:`peers.missing_peer`: a skip saying what to install here, a failure under
``CI=true``. Everything listens on 127.0.0.1 and every wait is bounded; the emulator's process
group, the browser and Playwright's driver are stopped when the fixture ends.

Use: ``from browser import browser, page, web_function`` in a test module (the fixtures are
module-scoped: Playwright's sync API cannot be started twice at once in one thread, and a
module's fixture ends before the next module's starts).
"""
from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

from emulator_harness import REPO, CapturedProcess
from peers import missing_peer

#: Launch flags that work headless as root in a container with no network beyond loopback
#: (no sandbox: root; no GPU; no QUIC, sync, component updates or first-run work: no
#: background traffic). Playwright adds --headless and a fresh --user-data-dir itself.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
#: Bound on each Playwright action and navigation (ms).
ACTION_TIMEOUT_MS = 15_000
_FRONT_BANNER = re.compile(rb"lambdaric: HTTP front on (http://127\.0\.0\.1:(\d+))/")
#: ``python -m lambdaric`` (the front's contract); the handler and options are appended.
COMMAND = [sys.executable, "-m", "lambdaric"]


def example_dir(name: str) -> str:
    return os.path.join(REPO, "examples", name)


class WebFunction(CapturedProcess):
    """``python -m lambdaric HANDLER --http 127.0.0.1:0 ARGS...`` in ``cwd``: waits (bounded)
    for the front's stderr line and keeps its URL; the Invoke API is put on a free loopback port
    too (``--listen 127.0.0.1:0``), never on 8080."""

    def __init__(self, cwd: str, args: List[str] = (), env: Optional[Dict[str, str]] = None,  # type: ignore[assignment]
                 handler: str = "app.handler", timeout: float = 30.0) -> None:
        child_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA_", "_HANDLER", "LAMBDARIC_"))}
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
        child_env["PYTHONDONTWRITEBYTECODE"] = "1"
        child_env.update(env or {})
        argv = COMMAND + [handler, "--http", "127.0.0.1:0", "--listen", "127.0.0.1:0"] + list(args)
        super().__init__(argv, cwd, child_env)
        self.url, self.port = self._wait_for_banner(timeout)

    def _wait_for_banner(self, timeout: float) -> Tuple[str, int]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            match = _FRONT_BANNER.search(self.stderr())
            if match:
                return match.group(1).decode() + "/", int(match.group(2))
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise AssertionError("the HTTP front did not start: rc=%s stderr=%r" % (self.proc.returncode, self.stderr()[-4000:]))

    def request(self, method: str, path: str, body: Optional[bytes] = None, headers: Optional[Dict[str, str]] = None,
                timeout: float = 30.0) -> Tuple[int, List[Tuple[str, str]], bytes]:
        """One plain HTTP/1.1 request on a new connection: (status, headers as sent, in order, with
        lower-case names, body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, [(k.lower(), v) for k, v in resp.getheaders()], data
        finally:
            conn.close()

    def stop(self, timeout: float = 15.0) -> Optional[int]:
        """SIGTERM, wait (bounded), then SIGKILL the whole process group (runtimes included)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.poll() is None:
            self.proc.wait(5)
        return self.proc.returncode


@contextlib.contextmanager
def web_function(example: str, *args: str, env: Optional[Dict[str, str]] = None) -> Iterator[WebFunction]:
    """The example folder ``examples/<example>`` served by the HTTP front for the test's duration."""
    running = WebFunction(example_dir(example), list(args), env)
    try:
        yield running
    finally:
        running.stop()


def header(headers: List[Tuple[str, str]], name: str) -> List[str]:
    """Every value of header ``name`` (lower-case), in order."""
    return [v for k, v in headers if k == name]


def chromium_path() -> str:
    """Debian's chromium ($LAMBDARIC_CHROMIUM to use another build), or :func:`missing_peer`."""
    path = os.environ.get("LAMBDARIC_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path or not os.access(path, os.X_OK):
        missing_peer("chromium is not installed (apt-get install chromium)")
    return str(path)


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    """A headless Chromium (Playwright's sync API, Debian's binary), closed with its driver."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        missing_peer("playwright is not installed (pip install playwright; no 'playwright install' needed): %s" % exc)
    executable = chromium_path()
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS, timeout=30_000)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    """A page in a fresh browser context (its own cookies), every action and navigation bounded."""
    context = browser.new_context(accept_downloads=True)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.set_default_navigation_timeout(ACTION_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()
