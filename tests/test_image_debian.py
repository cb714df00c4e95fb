"""The Debian slim path: ``pip install`` of lambdaric in a debootstrap bookworm root that looks
like the ``python:*-slim`` images (python3 and pip; no PEP 668 marker), three ways: the sdist with
a C compiler, the sdist without one, and ``pip install lambdaric`` without one from a folder that
holds the whole release set (``images/release/build.py``: the sdist and every wheel).

With the compiler the native module is built during the install, and ``LAMBDARIC_TRANSPORT=native``
works; from the sdist without it the install still succeeds, and lambdaric runs on its pure-Python
transport and says why at DEBUG level; from the release set pip takes the manylinux2014 wheel (no
build) and the native module is there with no compiler. In both, ``python -m lambdaric`` runs inside the root (``unshare`` +
``chroot``, the host's network namespace) against the scripted Runtime API on the host's loopback,
and its built-in emulator answers an invoke made from the host with boto3.

The cached roots (:func:`roots.debootstrap_root`) stay pristine: each test run sees them through an
overlay whose writable layer is a temporary folder. pip's cache is kept under the roots folder (it
keeps downloads where the network sends caching headers); the install time is printed (``-s``).
"""
from __future__ import annotations

import os
import pathlib
import platform
import shutil
import signal
import subprocess
import time
import uuid
from typing import Dict, Iterator, List, Sequence

import pytest

import roots
from emulator_harness import RunningEmulator
from runtime_api import Event, run_runtime

pytestmark = pytest.mark.slow

SUITE = "bookworm"
PYTHON_PACKAGES = ("python3", "python3-pip", "python3-venv")
#: What building the native module needs: cffi's backend comes as a cp311 wheel from PyPI,
#: so no libffi-dev; Python.h from python3-dev; the C library's headers from libc6-dev.
COMPILER_PACKAGES = ("gcc", "libc6-dev", "python3-dev")
APP = "def handler(event, context):\n    return {'echo': event}\n"
ROOT_PATH = "/usr/local/bin:/usr/bin:/bin"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
_TOOLS = {name: shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin") or name for name in ("unshare", "mount")}


class OverlayRoot:
    """A cached root seen through an overlay whose upper layer is ``state``/upper: whatever a
    command inside writes (pip installs, handler files) lands there, never in the cache.

    Each command mounts the overlay (and pip's cache at /root/.cache/pip) in a mount namespace
    of its own, so nothing stays mounted once it ends, however it ends."""

    def __init__(self, lower: pathlib.Path, state: pathlib.Path, pip_cache: pathlib.Path) -> None:
        self.lower, self.state, self.pip_cache = lower, state, pip_cache
        for name in ("upper", "work", "merged"):
            (state / name).mkdir(parents=True, exist_ok=True)
        pip_cache.mkdir(parents=True, exist_ok=True)

    @property
    def upper(self) -> pathlib.Path:
        return self.state / "upper"

    def put(self, path: str, data: bytes) -> None:
        """Write a file into the root (before a command mounts it)."""
        target = self.upper / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    def argv(self, argv: Sequence[str]) -> List[str]:
        mount = _TOOLS["mount"]
        script = (
            'set -e; l="$1"; s="$2"; c="$3"; shift 3; '
            '{mount} -t overlay overlay -o "lowerdir=$l,upperdir=$s/upper,workdir=$s/work" "$s/merged"; '
            '/bin/mkdir -p "$s/merged/root/.cache/pip"; {mount} --bind "$c" "$s/merged/root/.cache/pip"; exec "$@"'
        ).format(mount=mount)
        outer = [_TOOLS["unshare"], "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh",
                 str(self.lower), str(self.state), str(self.pip_cache)]
        return outer + roots.chroot_argv(self.state / "merged", argv)

    def run(self, argv: Sequence[str], timeout: float, env: Dict[str, str]) -> "subprocess.CompletedProcess[str]":
        """Run ``argv`` inside the root; its whole process tree is killed on timeout."""
        proc = subprocess.Popen(self.argv(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env=env, start_new_session=True, stdin=subprocess.DEVNULL)
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, _ = proc.communicate()
            raise AssertionError("timed out after %.0f s: %s\n%s" % (timeout, " ".join(argv), out[-3000:]))
        finally:
            _kill_group(proc)
        return subprocess.CompletedProcess(argv, proc.returncode, out, "")


def lambdaric_version() -> str:
    import lambdaric

    return lambdaric.__version__


def _kill_group(proc: "subprocess.Popen[str]") -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait(10)


def _root_env(**extra: str) -> Dict[str, str]:
    return {"PATH": ROOT_PATH, "HOME": "/root", "LANG": "C.UTF-8", "PIP_CERT": CA_BUNDLE, **extra}


class Installed:
    def __init__(self, root: OverlayRoot, mode: str, result: "subprocess.CompletedProcess[str]", seconds: float):
        self.root, self.mode, self.result, self.seconds = root, mode, result, seconds
        self.compiler = mode == "compiler"
        #: whether the native modules are there: built by the compiler, or the wheel's
        self.native = mode in ("compiler", "wheel")


@pytest.fixture(scope="module")
def sdist(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    return roots.sdist_or_skip(tmp_path_factory.mktemp("sdist"), "debootstrap", "unshare", "chroot")


@pytest.fixture(scope="module", params=["compiler", "no-compiler", "wheel"])
def installed(request: pytest.FixtureRequest, sdist: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """``pip install`` in a bookworm root (once per run): of the sdist, with or without a C compiler;
    or (``wheel``) of ``lambdaric`` from a folder holding the release set, without a compiler."""
    compiler = request.param == "compiler"
    packages = PYTHON_PACKAGES + (COMPILER_PACKAGES if compiler else ())
    lower = roots.debootstrap_root(SUITE, packages, python_image=True)
    state = tmp_path_factory.mktemp("debian-" + request.param)
    root = OverlayRoot(lower, state, roots.roots_dir() / ("pip-cache-debian-" + SUITE))
    # a path of its own: pip caches the wheel it builds from a local sdist by the sdist's URL
    spec = "/tmp/%s/%s" % (uuid.uuid4().hex, sdist.name)
    root.put(spec, sdist.read_bytes())
    specs = [spec]
    if request.param == "wheel":
        release = roots.release_set()
        folder = "/tmp/%s" % uuid.uuid4().hex
        for key, path in release.items():
            if key != "dir":
                root.put("%s/%s" % (folder, path.name), path.read_bytes())
        specs = ["--find-links", folder, "lambdaric==" + lambdaric_version()]
    root.put("/var/task/app.py", APP.encode())
    # the host's trusted certificates (a TLS-inspecting proxy's CA, where there is one), so that
    # pip inside reaches PyPI as pip outside does
    root.put(CA_BUNDLE, pathlib.Path(os.environ.get("PIP_CERT") or CA_BUNDLE).read_bytes())
    argv = ["python3", "-m", "pip", "install", "-v", "--disable-pip-version-check", "--root-user-action=ignore"] + specs
    started = time.monotonic()
    result = root.run(argv, 600, _root_env())
    seconds = time.monotonic() - started
    # the wheel pip built from this sdist is of no use to the next run (another path, other sources)
    root.run(["python3", "-m", "pip", "cache", "remove", "lambdaric"], 60, _root_env())
    print("\npip install in a %s root, %s: %.1f s" % (SUITE, request.param, seconds))
    try:
        yield Installed(root, request.param, result, seconds)
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_pip_install_from_the_sdist(installed: Installed) -> None:
    """With gcc the install builds lambdaric._native; without one it succeeds all the same, with a
    warning, and the module is simply not there; from the release set pip takes the manylinux
    wheel over the sdist beside it, builds nothing, and both native modules are there."""
    log = installed.result.stdout
    assert installed.result.returncode == 0, log[-4000:]
    assert "Successfully installed" in log and "lambdaric-" in log, log[-4000:]
    if installed.mode == "wheel":
        wheel = "lambdaric-%s-cp39-abi3-manylinux2014_%s.whl" % (lambdaric_version(), platform.machine())
        assert "Building wheel for lambdaric" not in log and wheel in log, log[-4000:]
    else:
        assert "Building wheel for lambdaric" in log, "a cached wheel was used: " + log[-4000:]
    root = installed.root
    has_gcc = root.run(["/bin/sh", "-c", "command -v gcc cc x86_64-linux-gnu-gcc || true"], 60, _root_env()).stdout
    probe = root.run(["python3", "-c", "import lambdaric, lambdaric._native; print(lambdaric.__file__)"], 60, _root_env())
    if installed.mode == "wheel":
        assert has_gcc.strip() == "", has_gcc
        assert probe.returncode == 0, probe.stdout
        version = root.run(["python3", "-m", "lambdaric", "--version"], 60, _root_env())
        assert version.stdout.endswith(", transport: native, codec: native\n"), version.stdout
    elif installed.compiler:
        assert "/usr/bin/gcc" in has_gcc, has_gcc
        assert "native module was not built" not in log, log[-4000:]
        assert probe.returncode == 0, probe.stdout
        assert probe.stdout.strip() == "/usr/local/lib/python3.11/dist-packages/lambdaric/__init__.py", probe.stdout
    else:
        assert has_gcc.strip() == "", has_gcc
        assert "lambdaric's native module was not built" in log and "will use its pure-Python transport" in log, log[-4000:]
        assert probe.returncode != 0 and "No module named 'lambdaric._native'" in probe.stdout, probe.stdout


def test_runtime_api_invoke(installed: Installed) -> None:
    """``python -m lambdaric app.handler`` inside the root against the scripted Runtime API on the
    host's loopback: the exact response, on the native transport where it was built (asked for by
    name) and on the pure-Python one, said at DEBUG level with the reason, where it was not."""
    assert installed.result.returncode == 0, installed.result.stdout[-4000:]
    root = installed.root
    env = _root_env(LAMBDA_TASK_ROOT="/var/task", AWS_LAMBDA_LOG_LEVEL="DEBUG",
                    LAMBDARIC_TRANSPORT="native" if installed.native else "auto")
    result = run_runtime({}, "app.handler", [Event(body=b'{"n": 1}', request_id="req-deb")],
                         cmd=root.argv(["python3", "-m", "lambdaric"]), cwd=str(root.upper / "var/task"),
                         env=dict(env, PYTHONPATH=None), timeout=60)  # type: ignore[arg-type]
    post = result.post("response")
    assert post.path == "/2018-06-01/runtime/invocation/req-deb/response", result
    assert post.body == b'{"echo": {"n": 1}}', result
    if installed.native:
        assert b"[DEBUG] transport: native\n" in result.stderr, result
    else:
        assert b"[DEBUG] transport: python (native module unavailable: ModuleNotFoundError: " in result.stderr, result


def test_emulator_invoke_from_the_host(installed: Installed) -> None:
    """Without AWS_LAMBDA_RUNTIME_API lambdaric serves the Invoke API from inside the root; boto3
    on the host invokes it over loopback; SIGTERM ends it cleanly."""
    assert installed.result.returncode == 0, installed.result.stdout[-4000:]
    root = installed.root
    env = _root_env(LAMBDA_TASK_ROOT="/var/task", PYTHONPATH="/var/task")
    with RunningEmulator({}, "app.handler", env=env, cwd=str(root.upper / "var/task"),
                         command=root.argv(["python3", "-m", "lambdaric"])) as emulator:
        answer = emulator.client().invoke(FunctionName="function", Payload=b'{"n": 3}')
        assert answer["StatusCode"] == 200 and "FunctionError" not in answer, answer
        assert answer["Payload"].read() == b'{"echo": {"n": 3}}'
        # SIGTERM to the whole group: unshare (the leader) leaves it to its child, lambdaric,
        # which is PID 1 of the root's PID namespace and must end by itself on it
        os.killpg(emulator.proc.pid, signal.SIGTERM)
        try:
            code = emulator.proc.wait(15)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, (code, emulator.stderr())
