"""Locate and run the real peers that tests compare lambdaric against.

Peers (black-box use only; nothing of theirs is copied into this repository):

* ``aws-lambda-rie``: the official Runtime Interface Emulator. It is a static Go binary that ships
  inside the ``aws-sam-cli`` wheel on PyPI (``samcli/local/rapid/aws-lambda-rie-x86_64`` or
  ``-arm64``). :func:`rie_binary` fetches that wheel with ``pip download --no-deps``, extracts the
  binary into a cache folder and returns its path, or ``None`` (see :func:`rie_skip_reason`) when it
  cannot be had, e.g. without network. The binary is never committed.
* ``awslambdaric``: the official Python client, when it is installed (``pip install awslambdaric``).

Cache folder: ``$LAMBDARIC_TEST_CACHE`` or ``~/.cache/lambdaric-tests/``. The download is done once
and guarded by a file lock, so parallel test processes (pytest-xdist, several CI jobs) do not race.

Environment knobs:

* ``LAMBDARIC_RIE``: path of an ``aws-lambda-rie`` binary to use as is (no download).
* ``LAMBDARIC_RIE_SAM_SPEC``: the pip requirement to download (default :data:`SAM_SPEC`, the version
  whose behaviour ``docs/runtime-api.md`` describes).
* ``LAMBDARIC_NO_PEER_DOWNLOAD=1``: never download; use only what is cached already.

Running the emulator: :func:`start_rie` starts it on loopback only (its own default is
``0.0.0.0:8080``) with both of its ports picked free: the invoke port
(``--runtime-interface-emulator-address``) and the Runtime API port (``--runtime-api-address``,
default ``127.0.0.1:9001``), so parallel runs do not conflict. The runtime gets the latter in
``AWS_LAMBDA_RUNTIME_API``.

Fixtures (wire them with ``from peers import rie, awslambdaric_peer`` in conftest.py, or
``pytest_plugins``): ``rie`` (session) gives the binary's path or skips with the reason;
``awslambdaric_peer`` (session) gives awslambdaric's version or skips.
"""
from __future__ import annotations

import contextlib
import errno
import http.client
import json
import os
import pathlib
import platform
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from typing import Dict, Iterator, List, Mapping, Optional, Tuple, Union

import pytest

try:  # POSIX only; the emulator is a Linux binary anyway.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

#: The aws-sam-cli release the notes were taken with; override with $LAMBDARIC_RIE_SAM_SPEC.
SAM_SPEC = "aws-sam-cli==1.170.0"
#: Bound on ``pip download`` (seconds).
PIP_TIMEOUT = 300
#: After a failed download, other processes reuse the failure for this long instead of retrying.
NEGATIVE_CACHE_SECONDS = 120
#: The only invoke path the official emulator serves.
INVOKE_PATH = "/2015-03-31/functions/function/invocations"

_ARCH_MEMBER = {
    "x86_64": "aws-lambda-rie-x86_64",
    "amd64": "aws-lambda-rie-x86_64",
    "aarch64": "aws-lambda-rie-arm64",  # the wheel names the arm build "arm64"
    "arm64": "aws-lambda-rie-arm64",
}

PathLike = Union[str, "os.PathLike[str]"]


# --------------------------------------------------------------------------------------------
# Cache and lock


def cache_dir() -> pathlib.Path:
    """The per-user cache folder for peer binaries (created on demand)."""
    env = os.environ.get("LAMBDARIC_TEST_CACHE")
    base = pathlib.Path(env).expanduser() if env else pathlib.Path.home() / ".cache" / "lambdaric-tests"
    return base


@contextlib.contextmanager
def _file_lock(path: pathlib.Path, timeout: float) -> Iterator[None]:
    """Exclusive advisory lock on *path*, waiting at most *timeout* seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        if fcntl is None:  # pragma: no cover
            yield
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise TimeoutError("timed out after %.0f s waiting for lock %s" % (timeout, path))
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


# --------------------------------------------------------------------------------------------
# aws-lambda-rie


def rie_member_name(machine: Optional[str] = None) -> Optional[str]:
    """File name of the emulator build for this CPU inside the wheel, or None if there is none."""
    return _ARCH_MEMBER.get((machine or platform.machine()).lower())


_rie_lock = threading.Lock()
_rie_result: Optional[Tuple[Optional[pathlib.Path], str]] = None


def _usable(path: pathlib.Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK) and path.stat().st_size > 1_000_000


def _fetch_rie() -> Tuple[Optional[pathlib.Path], str]:
    override = os.environ.get("LAMBDARIC_RIE")
    if override:
        p = pathlib.Path(override).expanduser()
        if _usable(p):
            return p, ""
        return None, "LAMBDARIC_RIE=%s is not an executable emulator binary" % override
    if not sys.platform.startswith("linux"):
        return None, "aws-lambda-rie is a Linux binary (platform is %s)" % sys.platform
    member = rie_member_name()
    if member is None:
        return None, "no aws-lambda-rie build for CPU %r" % platform.machine()

    spec = os.environ.get("LAMBDARIC_RIE_SAM_SPEC", SAM_SPEC)
    cache = cache_dir()
    tag = spec.replace("==", "-").replace("/", "_").replace(" ", "")
    target = cache / "rie" / tag / member
    failure_marker = cache / "rie" / (tag + ".failed")
    if _usable(target):  # fast path, no lock needed: the binary is only ever renamed into place
        return target, ""
    try:
        lock_cm = _file_lock(cache / "rie.lock", timeout=PIP_TIMEOUT + 60)
        with lock_cm:
            if _usable(target):  # another process fetched it while we waited
                return target, ""
            if failure_marker.exists() and time.time() - failure_marker.stat().st_mtime < NEGATIVE_CACHE_SECONDS:
                return None, failure_marker.read_text(encoding="utf-8", errors="replace").strip()
            if os.environ.get("LAMBDARIC_NO_PEER_DOWNLOAD"):
                return None, "aws-lambda-rie not cached in %s and LAMBDARIC_NO_PEER_DOWNLOAD is set" % target.parent
            path, reason = _download_rie(spec, member, target)
            if path is None:
                failure_marker.parent.mkdir(parents=True, exist_ok=True)
                failure_marker.write_text(reason + "\n", encoding="utf-8")
            else:
                with contextlib.suppress(OSError):
                    failure_marker.unlink()
            return path, reason
    except (OSError, TimeoutError) as exc:
        return None, "cannot prepare aws-lambda-rie cache in %s: %s" % (cache, exc)


def _download_rie(spec: str, member: str, target: pathlib.Path) -> Tuple[Optional[pathlib.Path], str]:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="download-", dir=str(target.parent.parent)) as tmp:
        cmd = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--no-input", "--retries", "1", "--timeout", "30",
            "-d", tmp, spec,
        ]
        try:
            proc = subprocess.run(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                timeout=PIP_TIMEOUT, text=True, errors="replace",
            )
        except subprocess.TimeoutExpired:
            return None, "pip download %s timed out after %d s" % (spec, PIP_TIMEOUT)
        except OSError as exc:
            return None, "cannot run pip: %s" % exc
        if proc.returncode != 0:
            return None, "pip download %s failed: %s" % (spec, _last_line(proc.stdout) or "exit %d" % proc.returncode)
        wheels = sorted(pathlib.Path(tmp).glob("aws_sam_cli-*.whl"))
        if not wheels:
            return None, "pip download %s produced no aws_sam_cli wheel" % spec
        name = "samcli/local/rapid/" + member
        try:
            with zipfile.ZipFile(str(wheels[-1])) as zf:
                try:
                    info = zf.getinfo(name)
                except KeyError:
                    return None, "%s has no %s" % (wheels[-1].name, name)
                partial = target.with_name(target.name + ".part%d" % os.getpid())
                with zf.open(info) as src, open(partial, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        except (zipfile.BadZipFile, OSError) as exc:
            return None, "cannot extract %s from %s: %s" % (name, wheels[-1].name, exc)
        os.chmod(partial, os.stat(partial).st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        os.replace(partial, target)  # atomic: readers never see a half-written binary
        (target.parent / "SOURCE").write_text("%s\n%s\n" % (wheels[-1].name, name), encoding="utf-8")
    return target, ""


def _rie() -> Tuple[Optional[pathlib.Path], str]:
    global _rie_result
    with _rie_lock:
        if _rie_result is None:
            _rie_result = _fetch_rie()
        return _rie_result


def rie_binary() -> Optional[pathlib.Path]:
    """Path of the ``aws-lambda-rie`` binary (downloaded and cached on first use), or None."""
    return _rie()[0]


def rie_skip_reason() -> str:
    """Why :func:`rie_binary` returned None ("" when it did not)."""
    return _rie()[1]


# --------------------------------------------------------------------------------------------
# awslambdaric


def awslambdaric_version(python: Optional[str] = None) -> Optional[str]:
    """Version of awslambdaric importable by *python* (default: this interpreter), or None.

    Checked in a subprocess: importing it must work (its native ``runtime_client`` extension
    included), and the check must not import it into the test process.
    """
    code = (
        "import awslambdaric.bootstrap, importlib.metadata as m; "
        "print(m.version('awslambdaric'))"
    )
    try:
        out = subprocess.run(
            [python or sys.executable, "-c", code], stdin=subprocess.DEVNULL, capture_output=True,
            text=True, timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


_ric_cache: Dict[str, Optional[str]] = {}


def awslambdaric_available() -> bool:
    if sys.executable not in _ric_cache:
        _ric_cache[sys.executable] = awslambdaric_version()
    return _ric_cache[sys.executable] is not None


def awslambdaric_skip_reason() -> str:
    if awslambdaric_available():
        return ""
    return "awslambdaric is not importable by %s (pip install awslambdaric)" % sys.executable


# --------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="session")
def rie() -> pathlib.Path:
    """Path of the aws-lambda-rie binary; skips the test with the reason when unavailable."""
    path = rie_binary()
    if path is None:
        missing_peer("aws-lambda-rie unavailable: " + rie_skip_reason())
    return path


def missing_peer(reason: str) -> None:
    """A real peer is not here: skip, saying why, except in CI (``CI=true``), where every
    peer can be installed from the package registries, so its absence fails the test
    instead of hiding the tests that need it."""
    if os.environ.get("CI") == "true":
        pytest.fail("a real peer is missing in CI: " + reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def peer_module(name: str, install: str):  # type: ignore[no-untyped-def]
    """The real peer's module ``name`` (e.g. ``aws_xray_sdk.core``), or :func:`missing_peer`."""
    try:
        return __import__(name, fromlist=["_"])
    except ImportError as exc:
        missing_peer("%s is not installed (%s): %s" % (name, install, exc))


@pytest.fixture(scope="session")
def awslambdaric_peer() -> str:
    """awslambdaric's version; skips the test when it is not installed."""
    if not awslambdaric_available():
        missing_peer(awslambdaric_skip_reason())
    return _ric_cache[sys.executable] or ""


# --------------------------------------------------------------------------------------------
# Running the emulator


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _proc_table() -> Dict[int, Tuple[int, int]]:
    """pid -> (ppid, session id) for every process visible in /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry, "rb") as f:
                data = f.read()
        except OSError:
            continue
        # comm may hold spaces and parentheses: split after the last ')'
        fields = data[data.rfind(b")") + 2:].split()
        try:
            table[int(entry)] = (int(fields[1]), int(fields[3]))
        except (IndexError, ValueError):
            continue
    return table


def _family(root: int, reaped: bool = False) -> List[int]:
    """*root*'s descendants, plus every process in the session *root* leads (it was started with
    setsid). The emulator puts the runtime into a process group of its own, so killing the
    emulator's group alone would orphan the runtime. When *root* was already reaped and its pid
    is in use again, the pid is someone else's: nothing is returned rather than a stranger's
    session."""
    if not os.path.isdir("/proc"):
        return []
    table = _proc_table()
    if reaped and root in table:
        return []
    found = {pid for pid, (_, sid) in table.items() if sid == root}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, _) in table.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                frontier.append(pid)
    found.discard(root)
    return sorted(found)


def _signal_all(pids: List[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


class RieProcess:
    """A running emulator started by :func:`start_rie`."""

    def __init__(self, proc: subprocess.Popen, port: int, runtime_api_port: int, log_path: pathlib.Path):
        self.proc = proc
        self.host = "127.0.0.1"
        self.port = port
        self.runtime_api_port = runtime_api_port
        #: What the runtime gets in AWS_LAMBDA_RUNTIME_API.
        self.runtime_api = "127.0.0.1:%d" % runtime_api_port
        self.url = "http://127.0.0.1:%d%s" % (port, INVOKE_PATH)
        self.log_path = log_path
        self._final_output: Optional[str] = None

    def output(self) -> str:
        """Everything the emulator and the runtime wrote to stdout and stderr so far (still
        available after the ``with start_rie(...)`` block ended)."""
        if self._final_output is not None:
            return self._final_output
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def invoke(
        self,
        payload: Union[bytes, str, object] = b"{}",
        headers: Optional[Mapping[str, str]] = None,
        timeout: float = 30.0,
    ) -> Tuple[int, Dict[str, str], bytes]:
        """POST *payload* to the invoke URL; returns (status, headers with lower-case names, body).

        bytes/str are sent as they are, anything else as JSON.
        """
        if isinstance(payload, str):
            body = payload.encode("utf-8")
        elif isinstance(payload, (bytes, bytearray)):
            body = bytes(payload)
        else:
            body = json.dumps(payload).encode("utf-8")
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            conn.request("POST", INVOKE_PATH, body=body, headers=dict(headers or {}))
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def stop(self, grace: float = 3.0) -> None:
        """SIGTERM the emulator's process group, then SIGKILL whatever is left of its session."""
        proc = self.proc
        family = _family(proc.pid, reaped=proc.returncode is not None)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # The emulator SIGKILLs its runtime on SIGTERM; anything still there (a runtime of its own
        # process group, a grandchild, or everything when the emulator hung) is killed now.
        family = sorted(set(family) | set(_family(proc.pid, reaped=proc.returncode is not None)))
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        _signal_all(family, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


@contextlib.contextmanager
def start_rie(
    cmd: List[str],
    cwd: Optional[PathLike] = None,
    env: Optional[Mapping[str, Optional[str]]] = None,
    port: Optional[int] = None,
    *,
    rie: Optional[PathLike] = None,
    runtime_api_port: Optional[int] = None,
    log_dir: Optional[PathLike] = None,
    start_timeout: float = 10.0,
    inherit_env: bool = True,
    log_level: Optional[str] = None,
) -> Iterator[RieProcess]:
    """Run ``aws-lambda-rie`` on 127.0.0.1 with *cmd* as the runtime; yield a :class:`RieProcess`.

    *env* is laid over ``os.environ`` (a value of None removes the variable) unless
    *inherit_env* is false, in which case it is the whole environment. The emulator passes its
    environment on to the runtime, adding its own variables (``AWS_LAMBDA_RUNTIME_API``,
    ``AWS_LAMBDA_FUNCTION_NAME`` ...); ``AWS_LAMBDA_FUNCTION_TIMEOUT`` (seconds) set here is the
    invoke timeout (default 300). *port* (the invoke port) and *runtime_api_port* are picked
    free when not given. *log_level* (``--log-level``: debug, info, warn, error ...) silences the
    emulator's own ``(rapid)`` lines; START/END/REPORT and the runtime's output are printed at
    every level. The emulator starts the runtime only on the first invoke, so readiness here
    means the invoke port accepts connections. Overlapping invokes crash the emulator: invoke
    one at a time. On exit the emulator and everything it started are killed.
    """
    binary = pathlib.Path(rie) if rie is not None else rie_binary()
    if binary is None:
        raise RuntimeError("aws-lambda-rie unavailable: " + rie_skip_reason())
    if not cmd:
        raise ValueError("cmd must name the runtime to run")
    full_env: Dict[str, str] = dict(os.environ) if inherit_env else {}
    # Never let an outer Runtime API leak in; the emulator sets its own.
    full_env.pop("AWS_LAMBDA_RUNTIME_API", None)
    for key, value in (env or {}).items():
        if value is None:
            full_env.pop(key, None)
        else:
            full_env[key] = value

    own_dir = None
    if log_dir is None:
        own_dir = tempfile.mkdtemp(prefix="lambdaric-rie-")
        log_dir = own_dir
    attempts = 1 if port is not None and runtime_api_port is not None else 3
    rp: Optional[RieProcess] = None
    try:
        for attempt in range(attempts):
            p = port if port is not None else free_port()
            rp_port = runtime_api_port if runtime_api_port is not None else free_port()
            while rp_port == p:
                rp_port = free_port()
            log_path = pathlib.Path(log_dir) / ("rie-%d-%d.log" % (p, attempt))
            argv = [
                str(binary),
                "--runtime-interface-emulator-address", "127.0.0.1:%d" % p,
                "--runtime-api-address", "127.0.0.1:%d" % rp_port,
            ]
            if log_level:
                argv += ["--log-level", log_level]
            argv += [str(c) for c in cmd]
            with open(log_path, "wb") as log:
                proc = subprocess.Popen(
                    argv, cwd=None if cwd is None else str(cwd), env=full_env,
                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    start_new_session=True,  # own session + process group: nothing escapes stop()
                )
            rp = RieProcess(proc, p, rp_port, log_path)
            deadline = time.monotonic() + start_timeout
            while proc.poll() is None and time.monotonic() < deadline:
                if _port_open("127.0.0.1", p):
                    break
                time.sleep(0.02)
            if proc.poll() is None and _port_open("127.0.0.1", p):
                break
            out = rp.output()
            rp.stop()
            rp = None
            if "address already in use" in out and attempt + 1 < attempts:
                continue  # lost a race for a free port: try others
            raise RuntimeError(
                "aws-lambda-rie did not accept connections on 127.0.0.1:%d within %.0f s "
                "(exit code %s); output:\n%s" % (p, start_timeout, proc.poll(), out[-4000:])
            )
        assert rp is not None
        yield rp
    finally:
        if rp is not None:
            rp.stop()
            rp._final_output = rp.output()
        if own_dir is not None:
            shutil.rmtree(own_dir, ignore_errors=True)
