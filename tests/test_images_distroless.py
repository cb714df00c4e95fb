"""lambdaric embedded in distroless roots: every Python from 3.9 to 3.14, no shell, no pip.

Each root holds only an interpreter, its standard library and the shared libraries they load
(:func:`roots.distroless_root`); lambdaric is put in with ``pip install --target`` of the release
set's manylinux2014 wheel (``images/release/build.py``) by the same Python version outside the root,
as images/distroless/Dockerfile copies it from a stage that only runs pip: no compiler anywhere,
and the native modules are the wheel's own bytes. 3.9 to 3.13 come from pyenv here; 3.14 from a
Debian sid root made with debootstrap (python3.14 and pip, no compiler). The runtime
runs under ``unshare`` + ``chroot`` in the host's network namespace, against the scripted Runtime
API and behind its own emulator, on both transports.
"""
from __future__ import annotations

import json
import os
import pathlib
import platform
import shutil
import zipfile
import signal
import subprocess
from typing import Dict, Tuple

import pytest

import roots
from emulator_harness import RunningEmulator
from runtime_api import Event, run_runtime

pytestmark = pytest.mark.slow

VERSIONS = ("3.9", "3.10", "3.11", "3.12", "3.13", "3.14")
#: The sid root that supplies CPython 3.14 and the pip that installs the wheel for it (no compiler).
SID_PACKAGES = ("python3.14", "python3-pip")
#: The wheel of the release set for this machine.
PLATFORM = "manylinux2014_" + platform.machine()
TARGET = "/opt/lambdaric"

APP = """\
import sys
import lambdaric.transport


def handler(event, context):
    return {"echo": event, "python": "%d.%d" % sys.version_info[:2], "request_id": context.aws_request_id}


def fails(event, context):
    raise ValueError("no good: %s" % event["n"])
"""

_built: Dict[str, pathlib.Path] = {}


@pytest.fixture(scope="module")
def wheel() -> pathlib.Path:
    """The release set's manylinux2014 wheel for this machine."""
    reason = roots.missing_tools("unshare", "chroot", "ldd")
    if reason:
        pytest.skip(reason)
    return roots.release_set()[PLATFORM]


def _python_for(version: str) -> Tuple[str, pathlib.Path]:
    """(interpreter path, the root it lives in) for ``version``."""
    if version == "3.14":
        reason = roots.missing_tools("debootstrap")
        if reason:
            pytest.skip(reason)
        return "/usr/bin/python3.14", roots.debootstrap_root("sid", SID_PACKAGES)
    python = roots.pyenv_pythons((version,))[version]
    if python is None:
        pytest.skip("pyenv has no Python %s here (pyenv install %s)" % (version, version))
    return python, pathlib.Path("/")


def distroless(version: str, wheel: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The distroless root for ``version`` with lambdaric in /opt/lambdaric (built once per run)."""
    if version not in _built:
        python, src_root = _python_for(version)
        root = roots.distroless_root(python, src_root, dest=tmp_path_factory.mktemp("distroless-" + version))
        spec = str(wheel)
        if src_root != pathlib.Path("/"):  # pip runs inside the sid root: the wheel must be there
            shutil.copy(wheel, src_root / "tmp" / wheel.name)
            spec = "/tmp/" + wheel.name
        roots.install_target(root, python, spec, TARGET, src_root=src_root)
        (root / "var/task/app.py").write_text(APP)
        _built[version] = root
    return _built[version]


def _env(transport: str, **extra: str) -> Dict[str, str]:
    return {
        "PATH": "/usr/bin",
        "PYTHONPATH": TARGET,
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDARIC_TRANSPORT": transport,
        "AWS_LAMBDA_LOG_LEVEL": "DEBUG",
        **extra,
    }


def _runtime(root: pathlib.Path, handler: str, events: list, env: Dict[str, str], **kw):  # type: ignore[no-untyped-def]
    return run_runtime(
        {}, handler, events, cmd=roots.chroot_argv(root, ["/usr/bin/python3", "-m", "lambdaric"]),
        cwd=str(root / "var/task"), env=dict(env, HOME="/tmp"), timeout=60, **kw
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_root_is_distroless(version: str, wheel: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No shell, no pip, no compiler, no C++ runtime: what lambdaric needs is the interpreter."""
    root = distroless(version, wheel, tmp_path_factory)
    names = {p.name for p in root.rglob("*")}
    assert not (root / "bin/sh").exists() and "sh" not in names and "bash" not in names
    assert not [n for n in names if n.startswith(("gcc", "cc1", "libstdc++"))]
    assert "pip" not in {p.name for p in root.rglob("pip") if p.is_dir()}
    with zipfile.ZipFile(str(wheel)) as wheel:  # the wheel's modules, as they are: nothing was compiled
        for module in ("lambdaric/_native.abi3.so", "lambdaric/_codec.abi3.so"):
            assert (root / TARGET.lstrip("/") / module).read_bytes() == wheel.read(module), module
    assert (root / ".lambdaric-python").read_text().strip() == version


@pytest.mark.parametrize("transport", ["native", "python"])
@pytest.mark.parametrize("version", VERSIONS)
def test_invokes_in_distroless(version: str, transport: str, wheel: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = distroless(version, wheel, tmp_path_factory)
    result = _runtime(
        root, "app.handler", [Event(b'{"n": 1}', request_id="r-1"), Event(b'{"n": 2}', request_id="r-2")], _env(transport)
    )
    posts = result.posts
    assert [p.path for p in posts] == ["/2018-06-01/runtime/invocation/r-%d/response" % i for i in (1, 2)], result.stderr
    expected = b'{"echo": {"n": %d}, "python": "%s", "request_id": "r-%d"}'
    assert [p.body for p in posts] == [expected % (i, version.encode(), i) for i in (1, 2)]
    assert b"lambdaric: [DEBUG] transport: %s\n" % transport.encode() in result.stderr
    if transport == "native":  # what a Dockerfile's `RUN python3 -m lambdaric --version` shows
        out = subprocess.run(roots.chroot_argv(root, ["/usr/bin/python3", "-m", "lambdaric", "--version"]),
                             env=_env("auto"), capture_output=True, timeout=60)
        assert out.stdout.endswith(b"), transport: native, codec: native\n") and b"(Python %s." % version.encode() in out.stdout, out


@pytest.mark.parametrize("version", VERSIONS)
def test_error_shape_in_distroless(version: str, wheel: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    root = distroless(version, wheel, tmp_path_factory)
    result = _runtime(root, "app.fails", [Event(b'{"n": 7}', request_id="e-1")], _env("native"))
    (post,) = result.posts
    assert post.path == "/2018-06-01/runtime/invocation/e-1/error"
    body = json.loads(post.body)
    assert (body["errorType"], body["errorMessage"]) == ("ValueError", "no good: 7")
    assert body["stackTrace"] and 'File "/var/task/app.py"' in body["stackTrace"][-1]
    assert post.header("Lambda-Runtime-Function-Error-Type") == "ValueError"


@pytest.mark.parametrize("version", VERSIONS)
def test_emulator_in_distroless(version: str, wheel: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No AWS_LAMBDA_RUNTIME_API: the emulator serves the Invoke API from inside the root."""
    root = distroless(version, wheel, tmp_path_factory)
    command = roots.chroot_argv(root, ["/usr/bin/python3", "-m", "lambdaric"])
    env = _env("auto", HOME="/tmp")
    with RunningEmulator({}, "app.handler", env=env, cwd=str(root / "var/task"), command=command) as emulator:
        answer = emulator.client().invoke(FunctionName="function", Payload=b'{"n": 3}')
        payload = json.loads(answer["Payload"].read())
        assert answer["StatusCode"] == 200 and "FunctionError" not in answer
        assert payload["echo"] == {"n": 3} and payload["python"] == version
        # the emulator is PID 1 of the root's PID namespace (unshare blocks SIGTERM while it waits)
        os.killpg(emulator.proc.pid, signal.SIGTERM)
        assert emulator.proc.wait(15) == 0, emulator.stderr()


def test_says_why_it_falls_back(wheel: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """A root whose native module cannot load (here: cffi's backend missing, as when a build stage's
    files are copied without it) runs on the pure-Python transport and says why; asked for the
    native transport it refuses to start, in one line."""
    python, src_root = _python_for("3.11")
    root = roots.distroless_root(python, src_root, dest=tmp_path_factory.mktemp("distroless-nobackend"))
    target = roots.install_target(root, python, str(wheel), TARGET)
    for backend in target.glob("_cffi_backend*.so"):
        backend.unlink()
    (root / "var/task/app.py").write_text(APP)
    result = _runtime(root, "app.handler", [Event(b'{"n": 1}', request_id="f-1")], _env("auto"))
    assert [p.body for p in result.posts] == [b'{"echo": {"n": 1}, "python": "3.11", "request_id": "f-1"}']
    assert b"lambdaric: [DEBUG] transport: python (native module unavailable: " in result.stderr
    assert b"_cffi_backend" in result.stderr
    version = subprocess.run(roots.chroot_argv(root, ["/usr/bin/python3", "-m", "lambdaric", "--version"]),
                             env=_env("auto"), capture_output=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith(b"lambdaric "), version
    assert b"transport: python (native module unavailable: ModuleNotFoundError: No module named '_cffi_backend')" in version.stdout
    forced = _runtime(root, "app.handler", [Event(b'{"n": 1}', request_id="f-2")], _env("native"), expect_posts=0)
    assert forced.exited and forced.returncode == 2 and forced.posts == []
    lines = [line for line in forced.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and b"_cffi_backend" in lines[0], forced.stderr
