"""The ``images/`` Dockerfiles, built and run with Docker, with no image registry.

The bases are made here: Debian bookworm roots made by debootstrap (tests/roots.py) are
``docker import``-ed as a "python:slim"-like image (python3, pip, venv) and a distroless image
(only bookworm's Python 3.11, its standard library and shared libraries: no shell). The Dockerfiles are built exactly
as users build them, with the bases passed as build arguments and pip pointed, through the
``PIP_OPTIONS`` build argument, at a loopback HTTP server holding this checkout's release set
(images/release/build.py: the sdist and the manylinux/musllinux wheels) and pre-downloaded
dependency wheels (``docker build --network=host``; no PyPI during the build). pip takes the
manylinux2014 wheel: no image, and no stage of one, compiles anything.

Each image then runs with ``--network=host``:

- as Lambda runs it, against the scripted Runtime API on 127.0.0.1: the exact bytes of the
  answer, the native transport in use (``[DEBUG] transport: native``), and lambdaric as PID 1
  ending at once on ``docker stop`` (SIGTERM) with status 143;
- with ``AWS_LAMBDA_RUNTIME_API`` unset: the built-in emulator as PID 1 serving the Invoke API
  on a loopback port (``LAMBDARIC_LISTEN``), invoked from here with boto3, and stopping with
  status 0 on ``docker stop``;
- with Lambda's overrides: another ENTRYPOINT, no CMD (``_HANDLER``), another working directory.

Caches: the roots (tests/roots.py), the dependency wheels and the imported base images are
kept, keyed by their inputs (image tags ``lambdaric-test/<base>:<key>``; a stale tag of the
same base is removed when a new one is imported). The function images and containers made
here are removed at the end. Docker is started (and stopped afterwards) when it is not running.
"""
from __future__ import annotations

import hashlib
import http.server
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import roots  # noqa: E402
from runtime_api import Event, RuntimeAPI  # noqa: E402

pytestmark = pytest.mark.slow

DOCKER = "/usr/bin/docker"  # Debian's docker.io client (a newer /usr/local/bin/docker may not talk to it)
IMAGES = roots.REPO / "images"
PREFIX = "lambdaric-test"
SLIM_PACKAGES = ["python3", "python3-pip", "python3-venv"]
#: What ``pip install lambdaric`` needs with no index: the sdist's build requirements and the
#: package's dependencies, as wheels for bookworm's CPython 3.11.
WHEEL_REQUIREMENTS = ["setuptools>=61", "wheel", "cffi>=1.15", "simplejson>=3.18", "requests>=2.28"]
EVENT = b'{"name": "docker"}'
RUN_ID = "%d-%d" % (os.getpid(), int(time.time()))


# --------------------------------------------------------------------------------------------------
# docker


def docker(*args: str, timeout: float = 120.0, check: bool = True, input: Optional[bytes] = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([DOCKER, *args], input=input, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            "docker %s failed (%d):\n%s\n%s"
            % (" ".join(args), proc.returncode, proc.stdout.decode("utf-8", "replace")[-3000:], proc.stderr.decode("utf-8", "replace")[-3000:])
        )
    return proc


def _daemon_up() -> bool:
    try:
        return subprocess.run([DOCKER, "info"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def docker_daemon() -> Iterator[None]:
    """A running Docker daemon: the one there is, or ``dockerd`` started here (no bridge, no
    iptables: containers use the host's network) and stopped at the end."""
    why = roots.missing_tools("debootstrap", "unshare", "chroot", "ldd")
    if why:
        pytest.skip(why)
    if not os.path.exists(DOCKER):
        pytest.skip("%s is not installed (apt-get install docker.io)" % DOCKER)
    if _daemon_up():
        yield
        return
    dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None)
    if dockerd is None:
        pytest.skip("dockerd is not installed (apt-get install docker.io)")
    log = open(roots.roots_dir() / "dockerd.log", "ab")
    proc = subprocess.Popen(
        [dockerd, "--bridge=none", "--iptables=false", "--ip6tables=false"], stdout=log, stderr=log, start_new_session=True
    )
    try:
        end = time.monotonic() + 60
        while not _daemon_up():
            if proc.poll() is not None or time.monotonic() > end:
                pytest.fail("dockerd did not start (rc=%s); see %s" % (proc.poll(), log.name))
            time.sleep(0.5)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


# --------------------------------------------------------------------------------------------------
# base images


def _import_root(root: pathlib.Path, repository: str, key: str, env: Dict[str, str], platform: str = "") -> str:
    """``docker import`` of ``root`` as ``repository:key`` unless that tag exists (the key says
    what went into it); other tags of ``repository`` are removed first: stale bases."""
    tag = "%s:%s" % (repository, key)
    if docker("image", "inspect", tag, check=False).returncode == 0:
        return tag
    stale = docker("images", "--format", "{{.Repository}}:{{.Tag}}", repository).stdout.decode().split()
    for old in stale:
        docker("rmi", old, check=False)
    changes: List[str] = ["--platform", platform] if platform else []
    for name, value in env.items():
        changes += ["--change", "ENV %s=%s" % (name, value)]
    tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "--exclude=./.lambdaric-*", "--exclude=./proc/*", "--exclude=./sys/*", "--exclude=./dev/*", "-cf", "-", "."], stdout=subprocess.PIPE)
    try:
        proc = subprocess.run([DOCKER, "import", *changes, "-", tag], stdin=tar.stdout, capture_output=True, timeout=600)
    finally:
        assert tar.stdout is not None
        tar.stdout.close()
        tar.wait(60)
    assert proc.returncode == 0 and tar.returncode == 0, "docker import %s failed: %s" % (tag, proc.stderr.decode())
    return tag


def _roots_source_key() -> str:
    return hashlib.sha256((roots.REPO / "tests" / "roots.py").read_bytes()).hexdigest()[:12]


@pytest.fixture(scope="module")
def bases(docker_daemon: None) -> Dict[str, str]:
    """Image tags: ``slim`` (like python:3.11-slim) and ``distroless`` (like
    gcr.io/distroless/python3-debian12). No base with a compiler: lambdaric comes as a wheel."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    slim_root = roots.debootstrap_root("bookworm", SLIM_PACKAGES, python_image=True)
    tags = {
        "slim": _import_root(slim_root, PREFIX + "/bookworm-slim", slim_root.name.rsplit("-", 1)[-1], env),
    }
    key = hashlib.sha256(repr((slim_root.name, _roots_source_key())).encode()).hexdigest()[:12]
    tag = "%s/bookworm-distroless:%s" % (PREFIX, key)
    if docker("image", "inspect", tag, check=False).returncode == 0:
        tags["distroless"] = tag
    else:
        dest = pathlib.Path(tempfile.mkdtemp(prefix="lambdaric-distroless-"))
        try:
            roots.distroless_root("/usr/bin/python3.11", src_root=slim_root, dest=dest / "root")
            assert not (dest / "root/bin/sh").exists()
            tags["distroless"] = _import_root(dest / "root", PREFIX + "/bookworm-distroless", key, env)
        finally:
            shutil.rmtree(dest, ignore_errors=True)
    return tags


# --------------------------------------------------------------------------------------------------
# packages, served on loopback to the builds


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="module")
def package_index(docker_daemon: None) -> Iterator[str]:
    """A find-links URL on 127.0.0.1 with this checkout's release set and the dependency wheels."""
    key = hashlib.sha256(repr(WHEEL_REQUIREMENTS).encode()).hexdigest()[:12]
    folders = []
    # x86_64 for the images here, aarch64 for the arm64 build under qemu
    for machine, name in (("x86_64", "wheels-cp311-" + key), ("aarch64", "wheels-cp311-aarch64-" + key)):
        wheels = roots.roots_dir() / name
        folders.append(wheels)
        if (wheels / ".complete").exists():
            continue
        shutil.rmtree(wheels, ignore_errors=True)
        argv = [
            sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary=:all:",
            "--platform", "manylinux2014_" + machine, "--python-version", "3.11", "--implementation", "cp",
            "-d", str(wheels), *WHEEL_REQUIREMENTS,
        ]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            shutil.rmtree(wheels, ignore_errors=True)
            pytest.skip("cannot download the dependency wheels (no package index reachable?): %s" % proc.stderr[-500:])
        (wheels / ".complete").write_text("\n".join(WHEEL_REQUIREMENTS) + "\n")
    served = pathlib.Path(tempfile.mkdtemp(prefix="lambdaric-index-"))
    try:
        for wheel in [w for folder in folders for w in folder.glob("*.whl")]:
            shutil.copy(wheel, served)
        for key, path in roots.release_set().items():
            if key != "dir":
                shutil.copy(path, served)
        handler = lambda *a: _QuietHandler(*a, directory=str(served))  # noqa: E731
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        try:
            yield "http://127.0.0.1:%d/" % server.server_address[1]
        finally:
            server.shutdown()
            server.server_close()
            thread.join(10)
    finally:
        shutil.rmtree(served, ignore_errors=True)


# --------------------------------------------------------------------------------------------------
# function images


def _build(tag: str, kind: str, build_args: Dict[str, str], index: str, platform: str = "") -> float:
    """``docker build`` of ``images/<kind>`` as a user runs it, pip pointed at ``index``."""
    args = ["build", "--network=host", "--no-cache", "--force-rm", "-t", tag] + (["--platform", platform] if platform else [])
    build_args = dict(build_args, PIP_OPTIONS="--no-index --find-links %s" % index)
    for name, value in build_args.items():
        args += ["--build-arg", "%s=%s" % (name, value)]
    started = time.monotonic()
    proc = docker(*args, str(IMAGES / kind), timeout=900, check=False)
    _built_ids.update(re.findall(r"(?m)^ ---> ([0-9a-f]{12})$", proc.stdout.decode()))
    if proc.returncode != 0:
        raise AssertionError("docker build of images/%s failed:\n%s\n%s" % (kind, proc.stdout.decode()[-4000:], proc.stderr.decode()[-2000:]))
    return time.monotonic() - started


#: Image ids the builds printed: the classic builder leaves the build stage of a multi-stage
#: build as an untagged image; those of ours are removed at the end.
_built_ids: "set[str]" = set()


def _remove_images(tag: str) -> None:
    docker("rmi", "-f", tag, check=False)
    dangling = {i[:12] for i in docker("images", "-q", "--no-trunc", "--filter", "dangling=true").stdout.decode().replace("sha256:", "").split()}
    ours = sorted(dangling & _built_ids)  # never a tagged image (the bases are printed too)
    if ours:
        docker("rmi", *ours, check=False)


@pytest.fixture(scope="module", params=["debian-slim", "distroless"])
def image(request: pytest.FixtureRequest, bases: Dict[str, str], package_index: str) -> Iterator[Tuple[str, str]]:
    """(kind, tag) of a function image built from ``images/<kind>/Dockerfile`` on the local bases."""
    kind = request.param
    # distroless/ still has a stage that runs pip (the distroless image has none): the slim base
    build_args = {"BUILD_BASE": bases["slim"], "BASE": bases["distroless"]} if kind == "distroless" else {"BASE": bases["slim"]}
    tag = "%s/fn-%s:%s" % (PREFIX, kind, RUN_ID)
    try:
        took = _build(tag, kind, build_args, package_index)
        size = json.loads(docker("image", "inspect", "--format", "{{json .Size}}", tag).stdout)
        sys.stderr.write("\n%s image built in %.1f s, %.1f MB\n" % (kind, took, size / 1e6))
        yield kind, tag
    finally:
        _remove_images(tag)


class Container:
    """A detached ``docker run --network=host`` container, removed at the end."""

    count = 0

    def __init__(self, tag: str, args: List[str] = (), env: Optional[Dict[str, str]] = None, run_opts: List[str] = ()) -> None:  # type: ignore[assignment]
        Container.count += 1
        self.name = "%s-%s-%d" % (PREFIX, RUN_ID, Container.count)
        opts = ["--network=host", "--name", self.name]
        for key, value in (env or {}).items():
            opts += ["-e", "%s=%s" % (key, value)]
        docker("run", "-d", *opts, *run_opts, tag, *args)

    def logs(self) -> str:
        proc = docker("logs", self.name, check=False)
        return (proc.stdout + proc.stderr).decode("utf-8", "replace")

    def wait_for_log(self, pattern: str, timeout: float = 30.0) -> "re.Match[str]":
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            match = re.search(pattern, self.logs())
            if match:
                return match
            if not self.running():
                break
            time.sleep(0.1)
        raise AssertionError("no %r in the container's output within %.0f s:\n%s" % (pattern, timeout, self.logs()))

    def running(self) -> bool:
        return docker("inspect", "--format", "{{.State.Running}}", self.name, check=False).stdout.strip() == b"true"

    def stop(self, grace: int = 10) -> Tuple[float, int]:
        """``docker stop -t grace``: (seconds it took, the exit code)."""
        started = time.monotonic()
        docker("stop", "-t", str(grace), self.name, timeout=grace + 30)
        took = time.monotonic() - started
        code = int(docker("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout)
        return took, code

    def __enter__(self) -> "Container":
        return self

    def __exit__(self, *exc: object) -> None:
        docker("rm", "-f", self.name, check=False)


LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "test-function",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
    "AWS_LAMBDA_LOG_LEVEL": "DEBUG",
}


# --------------------------------------------------------------------------------------------------
# tests


def test_runtime_in_image_answers_and_ends_on_sigterm_as_pid1(image: Tuple[str, str]) -> None:
    """As Lambda runs the image: the answer's exact bytes, the native transport, and lambdaric
    as PID 1 exiting 143 at once on docker stop."""
    kind, tag = image
    with RuntimeAPI(events=[Event(EVENT, request_id="r-docker-1")], lifetime=120) as api:
        with Container(tag, env=dict(LAMBDA_ENV, AWS_LAMBDA_RUNTIME_API=api.address)) as box:
            (post,) = api.wait_for_posts(1, timeout=30)
            assert post.path == "/2018-06-01/runtime/invocation/r-docker-1/response"
            assert post.body == b'{"message": "hello, docker", "request_id": "r-docker-1"}'
            api.wait_idle(1, timeout=10)
            assert "[DEBUG] transport: native" in box.logs(), box.logs()
            pid = int(docker("inspect", "--format", "{{.State.Pid}}", box.name).stdout)  # the container's PID 1
            assert pathlib.Path("/proc/%d/cmdline" % pid).read_bytes() == b"python3\0-m\0lambdaric\0app.handler\0"
            took, code = box.stop(grace=10)
    sys.stderr.write("\n%s: docker stop of the runtime took %.2f s, exit %d\n" % (kind, took, code))
    assert code == 143, box.logs()
    assert took < 5.0


def test_emulator_in_image_serves_invokes_and_stops_on_sigterm(image: Tuple[str, str]) -> None:
    """With AWS_LAMBDA_RUNTIME_API unset the image serves the Invoke API (here on a loopback
    port of the host's network), boto3 invokes it; docker stop ends it with status 0."""
    import boto3
    from botocore.config import Config

    kind, tag = image
    env = {"LAMBDARIC_LISTEN": "127.0.0.1:0", "AWS_LAMBDA_LOG_LEVEL": "DEBUG"}
    with Container(tag, env=env) as box:
        match = box.wait_for_log(r"serving app\.handler on (http://127\.0\.0\.1:\d+)/2015-03-31/functions/function/invocations")
        client = boto3.client(
            "lambda", endpoint_url=match.group(1), region_name="us-east-1", aws_access_key_id="test",
            aws_secret_access_key="test", config=Config(retries={"max_attempts": 1}, read_timeout=60, connect_timeout=5),
        )
        answer = client.invoke(FunctionName="function", Payload=EVENT)
        body = json.loads(answer["Payload"].read())
        assert answer["StatusCode"] == 200 and "FunctionError" not in answer
        assert body["message"] == "hello, docker" and body["request_id"] == answer["ResponseMetadata"]["RequestId"]
        box.wait_for_log(r"\[DEBUG\] transport: native")
        took, code = box.stop(grace=10)
    sys.stderr.write("\n%s: docker stop of the emulator took %.2f s, exit %d\n" % (kind, took, code))
    assert code == 0
    assert took < 5.0


def test_lambda_overrides_entrypoint_handler_and_workdir(image: Tuple[str, str]) -> None:
    """Lambda's ImageConfig overrides: a new ENTRYPOINT drops the image's CMD, so the handler
    comes from ``_HANDLER``; another WorkingDirectory, with the code found through
    ``LAMBDA_TASK_ROOT``."""
    kind, tag = image
    env = dict(LAMBDA_ENV, _HANDLER="app.handler", LAMBDA_TASK_ROOT="/var/task")
    with RuntimeAPI(events=[Event(EVENT, request_id="r-docker-2")], lifetime=120) as api:
        env["AWS_LAMBDA_RUNTIME_API"] = api.address
        with Container(tag, ["-m", "lambdaric"], env=env, run_opts=["--entrypoint", "python3", "--workdir", "/tmp"]) as box:
            (post,) = api.wait_for_posts(1, timeout=30)
            assert post.path == "/2018-06-01/runtime/invocation/r-docker-2/response", box.logs()
            assert post.body == b'{"message": "hello, docker", "request_id": "r-docker-2"}'


def test_image_holds_the_native_module_and_no_compiler(image: Tuple[str, str]) -> None:
    """The native module came from the manylinux wheel (nothing in the build had a compiler); the
    image has no compiler, and the distroless one has no shell and no pip either."""
    kind, tag = image
    names = _image_files(tag)
    # distroless/ copies a pip --target folder; debian-slim/ installs into the image's Python
    site = "opt/lambdaric/" if kind == "distroless" else r"usr/(local/)?lib/python3[.0-9]*/(dist|site)-packages/"
    assert [n for n in names if re.fullmatch(site + r"lambdaric/__main__\.py", n)], sorted(n for n in names if "lambdaric" in n)[:20]
    for module in ("_native", "_codec"):
        assert [n for n in names if re.fullmatch(site + r"lambdaric/%s\.abi3\.so" % module, n)], module
    tools = r"(gcc|cc|gcc-[0-9]+|x86_64-linux-gnu-gcc(-[0-9]+)?)"
    if kind == "distroless":
        tools = r"(%s|sh|bash|dash|pip[0-9.]*|apt-get|dpkg)" % tools
    found = [n for n in names if re.fullmatch(r"(usr/)?(local/)?s?bin/" + tools, n)]
    assert not found


def _image_files(tag: str) -> "set[str]":
    """The paths in an image's file system (``docker export`` of a container made from it)."""
    name = "%s-%s-export" % (PREFIX, RUN_ID)
    docker("create", "--name", name, tag)
    try:
        with tempfile.TemporaryFile() as out:
            subprocess.run([DOCKER, "export", name], stdout=out, check=True, timeout=120)
            out.seek(0)
            listing = subprocess.run(["tar", "-tf", "-"], stdin=out, capture_output=True, text=True, check=True, timeout=120).stdout
    finally:
        docker("rm", "-f", name, check=False)
    return {line.rstrip("/") for line in listing.split("\n") if line}


# --------------------------------------------------------------------------------------------------
# arm64 (Graviton) under qemu, with Docker's classic builder (no buildx here)


@pytest.fixture(scope="module")
def arm64_emulation() -> Iterator[None]:
    """qemu-user-static registered for arm64 binaries while the module's arm64 tests run: a process
    holds binfmt_misc mounted in its own mount namespace (roots.binfmt_argv), so dockerd's
    containers run arm64 binaries through qemu; nothing is left mounted on the host."""
    reason = roots.foreign_arch_reason("arm64")
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail("arm64 emulation is missing in CI: " + reason, pytrace=False)
        pytest.skip(reason)
    keeper = subprocess.Popen(roots.binfmt_argv("arm64", ["sleep", "3600"]), start_new_session=True,
                              stdin=subprocess.DEVNULL)
    time.sleep(1.0)
    assert keeper.poll() is None, "registering qemu for arm64 failed"
    try:
        yield
    finally:
        os.killpg(keeper.pid, signal.SIGKILL)
        keeper.wait(10)


def test_debian_slim_image_for_arm64_under_qemu(docker_daemon: None, package_index: str, arm64_emulation: None) -> None:
    """``docker build`` of images/debian-slim on an arm64 Debian 12 base (the root of
    tests/test_wheels_arm64.py, ``docker import --platform linux/arm64``): pip under qemu takes
    the manylinux2014_aarch64 wheel, the image's python3 is aarch64, --version says native and
    native, and the runtime answers the scripted Runtime API on the native transport."""
    from test_wheels_arm64 import PACKAGES, SUITE

    root = roots.debootstrap_root(SUITE, PACKAGES, python_image=True, timeout=2400, arch="arm64")
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
    base = _import_root(root, PREFIX + "/bookworm-arm64", root.name.rsplit("-", 1)[-1], env, platform="linux/arm64")
    tag = "%s/fn-debian-slim-arm64:%s" % (PREFIX, RUN_ID)
    try:
        # no --platform: the classic builder then checks each step's image against it, and its WORKDIR
        # step's image is marked linux/amd64 (COPY fails: "does not match the specified platform");
        # the base alone makes it an arm64 build, its RUN steps run under qemu
        took = _build(tag, "debian-slim", {"BASE": base}, package_index)
        sys.stderr.write("\ndebian-slim arm64 image built under qemu in %.1f s\n" % took)
        # (the classic builder labels the result with the host's architecture, amd64, whatever its files
        # are: an image for Lambda's arm64 is built with buildx --platform linux/arm64, images/README.md)
        probe = docker("run", "--rm", "--network=host", "--entrypoint", "python3", tag, "-c",
                       "import platform, subprocess, sys; print(platform.machine()); sys.stdout.flush(); "
                       "subprocess.run([sys.executable, '-m', 'lambdaric', '--version'])", timeout=300)
        machine, version = probe.stdout.decode().strip().split("\n")
        assert machine == "aarch64" and version.endswith("transport: native, codec: native"), probe.stdout
        with RuntimeAPI(events=[Event(EVENT, request_id="r-arm64")], lifetime=300) as api:
            with Container(tag, env=dict(LAMBDA_ENV, AWS_LAMBDA_RUNTIME_API=api.address)) as box:
                (post,) = api.wait_for_posts(1, timeout=120)
                assert post.path == "/2018-06-01/runtime/invocation/r-arm64/response", box.logs()
                assert post.body == b'{"message": "hello, docker", "request_id": "r-arm64"}'
                api.wait_idle(1, timeout=30)
                assert "[DEBUG] transport: native" in box.logs(), box.logs()
                box.stop(grace=10)
    finally:
        _remove_images(tag)
