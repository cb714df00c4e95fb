"""The aarch64 (Graviton) wheel where it will run (issue 17): an arm64 Debian bookworm root, made by
``debootstrap --arch=arm64`` and run under qemu-user-static (binfmt_misc registered inside a private
mount namespace: :func:`roots.binfmt_argv`), with Debian's python3 and the test suite's dependencies
and no compiler.

pip in the root installs ``lambdaric`` by name from the release set's simple index (``file://``, the
sdist and all four wheels) and must take the manylinux2014_aarch64 wheel; then, under qemu, this repository's own tests run inside the
root against that install: the protocol suite (tests/test_runtime_wire.py) on both transports,
the emulator's boto3 round trip and the codec's differential tests on their hand corpus (not the
hypothesis ones: minutes under qemu; nor those against awslambdaric, which is not in the root). The arm64 root is cached like the other roots (keyed by its
packages and architecture); a machine without it builds it once (minutes, under qemu).
"""
from __future__ import annotations

import os
import shutil
import time
import uuid
import zipfile
from typing import Dict, Iterator

import pytest

import roots
from test_image_debian import OverlayRoot

pytestmark = pytest.mark.slow

SUITE = "bookworm"
#: python3 and pip, and what the tests run inside need (Debian's own builds for arm64).
PACKAGES = ("python3", "python3-pip", "python3-pytest", "python3-hypothesis", "python3-boto3",
            "python3-simplejson", "python3-requests", "python3-cffi-backend")
TARGET = "/opt/lambdaric"
SUITE_DIR = "/opt/suite"
#: The codec's hypothesis tests (600 examples each) take about 4 minutes under qemu: left out here
#: (they run natively in the main suite); its hand corpus, parametrized over every edge, stays.
HYPOTHESIS = ("test_common_documents_encoded_by_the_codec", "test_any_document_identical",
              "test_common_documents_decoded_by_the_codec", "test_any_event_body_identical")
#: The subset run under qemu (bounded: CI's time), each with the transports it runs on.
RUNS = {
    "native": ["tests/test_runtime_wire.py", "tests/test_emulator.py::test_request_response",
               "tests/test_codec_differential.py"],
    "python": ["tests/test_runtime_wire.py", "tests/test_emulator.py::test_request_response"],
}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":  # .ci/run installs debootstrap and qemu-user-static
        pytest.fail("the arm64 root cannot be made in CI: " + reason, pytrace=False)
    pytest.skip(reason)


class Arm64Root:
    def __init__(self, overlay: OverlayRoot) -> None:
        self.overlay = overlay

    def run(self, argv, timeout: float, env: Dict[str, str]):  # type: ignore[no-untyped-def]
        """``argv`` inside the root, under qemu; returns the completed process (output merged)."""
        import subprocess

        from test_image_debian import _kill_group

        proc = subprocess.Popen(roots.binfmt_argv("arm64", self.overlay.argv(argv)), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
                                stdin=subprocess.DEVNULL)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, _ = proc.communicate()
            raise AssertionError("timed out after %.0f s: %s\n%s" % (timeout, " ".join(argv), out[-3000:]))
        finally:
            _kill_group(proc)
        return subprocess.CompletedProcess(argv, proc.returncode, out, "")


def _env(**extra: str) -> Dict[str, str]:
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8", **extra}


@pytest.fixture(scope="module")
def arm64(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arm64Root]:
    reason = roots.missing_tools("debootstrap", "unshare", "chroot") or roots.foreign_arch_reason("arm64")
    if reason:
        _unavailable(reason)
    release = roots.release_set()
    started = time.monotonic()
    lower = roots.debootstrap_root(SUITE, PACKAGES, python_image=True, timeout=2400, arch="arm64")
    print("\narm64 root: %.1f s (%s)" % (time.monotonic() - started, lower.name))
    state = tmp_path_factory.mktemp("arm64")
    overlay = OverlayRoot(lower, state, roots.roots_dir() / ("pip-cache-debian-%s-arm64" % SUITE))
    folder = "/tmp/release-%s" % uuid.uuid4().hex  # the whole set and its simple index (simple/)
    for path in release["dir"].rglob("*"):
        if path.is_file():
            overlay.put("%s/%s" % (folder, path.relative_to(release["dir"])), path.read_bytes())
    # the tests and what they read, without lambdaric's sources: lambdaric comes from the wheel
    for path in sorted((roots.REPO / "tests").iterdir()):
        if path.is_file() and path.suffix in (".py", ".c", ".json"):
            overlay.put(SUITE_DIR + "/tests/" + path.name, path.read_bytes())
    overlay.put(SUITE_DIR + "/pyproject.toml", (roots.REPO / "pyproject.toml").read_bytes())
    root = Arm64Root(overlay)
    started = time.monotonic()
    done = root.run(["python3", "-m", "pip", "install", "-v", "--no-deps", "--disable-pip-version-check",
                     "--root-user-action=ignore", "--index-url", "file://%s/simple" % folder, "--target", TARGET,
                     "lambdaric"], 900, _env())
    print("pip install under qemu: %.1f s" % (time.monotonic() - started))
    assert done.returncode == 0, done.stdout[-4000:]
    wheel = release["manylinux2014_aarch64"]
    assert wheel.name in done.stdout and "Building wheel" not in done.stdout, done.stdout[-4000:]
    root.wheel = wheel  # type: ignore[attr-defined]
    try:
        yield root
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_root_is_arm64_and_runs_the_wheel(arm64: Arm64Root) -> None:
    """The root's python3 is an aarch64 binary run by qemu; the installed modules are the aarch64
    wheel's own bytes; --version names the native transport and codec; there is no compiler."""
    installed = arm64.overlay.upper / TARGET.lstrip("/") / "lambdaric"
    with zipfile.ZipFile(str(arm64.wheel)) as whl:  # type: ignore[attr-defined]
        for module in ("_native.abi3.so", "_codec.abi3.so"):
            assert (installed / module).read_bytes() == whl.read("lambdaric/" + module), module
    probe = arm64.run(["python3", "-c", "import platform, sys; print(platform.machine(), sys.version_info[:2])"], 300, _env())
    assert probe.stdout.strip() == "aarch64 (3, 11)", probe.stdout
    version = arm64.run(["python3", "-m", "lambdaric", "--version"], 300, _env(PYTHONPATH=TARGET))
    assert version.stdout.endswith(", transport: native, codec: native\n"), version.stdout
    cc = arm64.run(["/bin/sh", "-c", "command -v gcc cc || true"], 60, _env())
    assert cc.stdout.strip() == "", cc.stdout


@pytest.mark.parametrize("transport", sorted(RUNS))
def test_suite_under_qemu(arm64: Arm64Root, transport: str) -> None:
    """This repository's protocol tests, the emulator's boto3 round trip (and, native, the codec's
    differential tests) inside the arm64 root against the wheel's install."""
    started = time.monotonic()
    deselect = " and ".join("not " + name for name in ("awslambdaric",) + HYPOTHESIS)
    argv = ["python3", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", deselect, "--durations=5",
            "--rootdir", SUITE_DIR] + [SUITE_DIR + "/" + name for name in RUNS[transport]]
    done = arm64.run(["/bin/sh", "-c", 'cd "$0" && exec "$@"', SUITE_DIR] + argv, 1800,
                     _env(PYTHONPATH=TARGET, LAMBDARIC_TRANSPORT=transport, HYPOTHESIS_STORAGE_DIRECTORY="/tmp/hyp"))
    seconds = time.monotonic() - started
    print("arm64 suite (%s) under qemu: %.1f s: %s" % (transport, seconds, done.stdout.strip().splitlines()[-1]))
    assert done.returncode == 0, done.stdout[-6000:]
    assert " passed" in done.stdout and " failed" not in done.stdout, done.stdout[-6000:]
