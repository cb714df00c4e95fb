"""tests/browser.py itself: a missing browser is a skip that says what to install here and a
failure under CI=true (peers.missing_peer), and a run leaves nothing behind: the HTTP front,
its runtimes, Playwright's driver and Chromium's processes all end with the fixtures. Each case
runs pytest in a child process on a small test file using the fixtures."""
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

from browser import chromium_path
from emulator_harness import REPO
from peers import peer_module

TESTS = os.path.dirname(os.path.abspath(__file__))
USES_BROWSER = """
    import os
    from browser import browser, page, web_function  # noqa: F401

    def marked():
        \"\"\"Command lines of the live processes whose environment has this run's mark.\"\"\"
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open("/proc/%s/environ" % pid, "rb") as f:
                    if ("BROWSER_TEST_MARK=" + os.environ["BROWSER_TEST_MARK"]).encode() in f.read().split(b"\\0"):
                        with open("/proc/%s/cmdline" % pid, "rb") as g:
                            found.append(g.read().split(b"\\0")[0].decode())
            except OSError:
                pass
        return found

    def test_browse(page):
        with web_function("fastapi") as site:
            page.goto(site.url)
            assert page.inner_text("#visits").startswith("Visit 1 ")
            print("MARKED", sorted(set(os.path.basename(c) for c in marked())))
"""


def run_pytest(tmp_path, source, env, *options):
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(source))
    child_env = {k: v for k, v in os.environ.items() if k not in ("CI", "LAMBDARIC_CHROMIUM")}
    child_env.update(env, PYTHONPATH=os.pathsep.join([TESTS, REPO]))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rsf", "-p", "no:cacheprovider", *options, str(tmp_path)],
                          cwd=str(tmp_path), env=child_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=120)


@pytest.mark.parametrize("ci, outcome, words", [
    ("", "1 skipped", "chromium is not installed (apt-get install chromium)"),
    ("true", "1 error", "a real peer is missing in CI: chromium is not installed (apt-get install chromium)"),
])
def test_a_missing_chromium_skips_here_and_fails_in_ci(tmp_path, ci, outcome, words):
    run = run_pytest(tmp_path, USES_BROWSER, {"CI": ci, "LAMBDARIC_CHROMIUM": str(tmp_path / "no-chromium")})
    assert outcome in run.stdout and words in run.stdout, run.stdout
    assert run.returncode == (1 if ci else 0), run.stdout


def test_nothing_is_left_running(tmp_path):
    chromium_path()  # (missing_peer when there is none)
    peer_module("playwright", "pip install playwright")
    mark = uuid.uuid4().hex
    run = run_pytest(tmp_path, USES_BROWSER, {"BROWSER_TEST_MARK": mark}, "-s")
    assert "1 passed" in run.stdout, run.stdout
    # while it ran: the front and its runtime (python), Playwright's driver (node) and Chromium
    during = run.stdout.split("MARKED ", 1)[1].split("\n", 1)[0]
    assert all(name in during for name in ("python", "node", "chromium")), run.stdout
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/environ" % pid, "rb") as f:
                if ("BROWSER_TEST_MARK=" + mark).encode() in f.read().split(b"\0"):
                    left.append(pid)
        except OSError:
            continue
    assert left == [], "processes of the run still alive: %s" % left
