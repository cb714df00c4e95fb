"""The Alpine/musl path (issue 8), proven without an Alpine mirror: lambdaric on a musl-linked CPython.

``images/musl/build-python.sh`` builds CPython, zlib and libffi from Debian's source packages with
``musl-gcc``, then cffi and simplejson from their sdists (cached under ``$LAMBDARIC_ROOTS_DIR``, keyed
by the script). Here that interpreter's own pip installs lambdaric from this checkout with
``--target``, compiling the native module with musl-gcc (a failed native build fails the install:
``LAMBDARIC_NATIVE_REQUIRED=1``), and real ``python -m lambdaric`` processes on it answer the scripted
Runtime API (both transports, the same bytes) and, with no ``AWS_LAMBDA_RUNTIME_API``, serve the
emulator's Invoke API to a client on the host. An install with no working compiler shows the
pure-Python fallback and the DEBUG line that says why.
"""
from __future__ import annotations

import http.client
import json
import os
import pathlib
import platform
import shutil
import signal
import subprocess
import sys
import textwrap
import zipfile
from typing import Dict, List

import pytest

from emulator_harness import RunningEmulator
from runtime_api import Event, run_runtime

pytestmark = pytest.mark.slow

REPO = pathlib.Path(__file__).resolve().parent.parent
BUILD_SCRIPT = REPO / "images" / "musl" / "build-python.sh"
#: A cold build takes 3 to 5 minutes on 2 cores (a few ms when cached); allow for a loaded machine.
BUILD_TIMEOUT = 1800
MACHINE = platform.machine()
MULTIARCH = MACHINE + "-linux-musl"

APP = textwrap.dedent(
    """
    import sysconfig

    def handler(event, context):
        if event.get("fail"):
            raise ValueError("musl says no: %s" % event["fail"])
        return {"echo": event, "libc": sysconfig.get_config_var("MULTIARCH"), "rid": context.aws_request_id}
    """
).lstrip()


def _tail(data: bytes, n: int = 4000) -> str:
    return data[-n:].decode("utf-8", "replace")


@pytest.fixture(scope="module")
def musl_python() -> pathlib.Path:
    """The musl interpreter (built by the script, or its cached build)."""
    if shutil.which("musl-gcc") is None:
        pytest.skip("musl-gcc is not installed (Debian: apt-get install musl-tools)")
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not available: the musl CPython is built from Debian's source packages")
    # Its own process group, so a build that overruns is ended whole (make and compilers too).
    proc = subprocess.Popen(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail("build-python.sh took more than %d s:\n%s" % (BUILD_TIMEOUT, _tail(stderr)))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    proc = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    if proc.returncode == 3:  # a tool or a source is not available here: the script says which
        pytest.skip(_tail(proc.stderr, 600).strip().splitlines()[-1])
    assert proc.returncode == 0, "build-python.sh failed (exit %d):\n%s" % (proc.returncode, _tail(proc.stderr))
    prefix = pathlib.Path(proc.stdout.decode().strip().splitlines()[-1])
    python = prefix / "bin" / "python3"
    assert python.is_file(), proc.stderr.decode()
    return python


def _copy_checkout(dest: pathlib.Path) -> None:
    """What ``pip install`` needs from this checkout, without build products (e.g. the host's
    glibc ``_native*.so``) and without writing into the shared working tree."""
    for name in ("setup.py", "pyproject.toml", "README.md", "MANIFEST.in", "LICENSE"):
        shutil.copy2(REPO / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc", "fuzz*", "*.sh")
    shutil.copytree(REPO / "lambdaric", dest / "lambdaric", ignore=ignore)
    shutil.copytree(REPO / "native", dest / "native", ignore=ignore)


def _pip_install(python: pathlib.Path, base: pathlib.Path, **env_extra: str) -> pathlib.Path:
    """lambdaric from this checkout, installed by ``python``'s own pip into ``base/site`` (``--target``)."""
    src, site = base / "src", base / "site"
    src.mkdir()
    _copy_checkout(src)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LAMBDARIC_", "CC", "CFLAGS", "LDFLAGS"))}
    env.update(env_extra)
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-index", "--no-deps", "--no-build-isolation", "--no-cache-dir",
         "--disable-pip-version-check", "--target", str(site), str(src)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=300, stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, "pip install of lambdaric into the musl interpreter failed:\n" + _tail(proc.stdout)
    return site


@pytest.fixture(scope="module")
def musl_site(musl_python, tmp_path_factory) -> pathlib.Path:
    """lambdaric with its native module compiled by musl-gcc (the CC of the interpreter's sysconfig),
    required to build (``LAMBDARIC_NATIVE_REQUIRED=1``) and warning-free (``-Werror``)."""
    return _pip_install(musl_python, tmp_path_factory.mktemp("musl"), LAMBDARIC_NATIVE_REQUIRED="1",
                        LAMBDARIC_NATIVE_WERROR="1")


def _musl_run(python: pathlib.Path, site: pathlib.Path, code: str) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(site), "LANG": "C.UTF-8"}
    # cwd: not this checkout, whose lambdaric/ (with the host's glibc _native*.so) -c would import first
    proc = subprocess.run([str(python), "-c", code], capture_output=True, env=env, cwd=str(site), timeout=60,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode()


def _elf(path: pathlib.Path) -> Dict[str, List[str]]:
    """The ELF interpreter and NEEDED libraries of ``path`` (readelf, from binutils)."""
    out = subprocess.run(["readelf", "-l", "-d", str(path)], capture_output=True, timeout=30, check=True).stdout.decode()
    interp = [line.split(":", 1)[1].strip(" ]") for line in out.splitlines() if "program interpreter" in line]
    needed = [line.split("[", 1)[1].rstrip("]") for line in out.splitlines() if "(NEEDED)" in line]
    return {"interp": interp, "needed": needed}


def test_interpreter_is_musl_linked(musl_python, musl_site):
    """The interpreter loads musl's loader and no glibc; pip's tag logic (packaging) sees musllinux."""
    if shutil.which("readelf") is None:
        pytest.skip("readelf is not installed (Debian: apt-get install binutils)")
    elf = _elf(musl_python.resolve())
    assert len(elf["interp"]) == 1 and os.path.basename(elf["interp"][0]).startswith("ld-musl-"), elf
    assert not [lib for lib in elf["needed"] if lib.startswith("libc.so.6")], elf
    facts = json.loads(_musl_run(musl_python, musl_site, textwrap.dedent(
        """
        import json, os, sysconfig
        from pip._vendor.packaging import tags
        maps = open("/proc/self/maps").read()
        loader = os.path.realpath("/lib/ld-musl-%s.so.1")  # musl's libc.so is its own loader
        print(json.dumps({
            "multiarch": sysconfig.get_config_var("MULTIARCH"),
            "cc": sysconfig.get_config_var("CC"),
            "tag": str(next(tags.sys_tags())),
            "musl_mapped": loader in maps,
            "glibc_mapped": "libc.so.6" in maps or "/libc-2." in maps,
        }))
        """ % MACHINE
    )))
    assert facts["multiarch"] == MULTIARCH and facts["cc"].split()[0] == "musl-gcc", facts
    assert facts["tag"].startswith("cp311-cp311-musllinux_1_") and facts["tag"].endswith(MACHINE), facts
    assert facts["musl_mapped"] and not facts["glibc_mapped"], facts


def test_native_module_built_with_musl(musl_python, musl_site):
    """The native module and cffi's backend were compiled for this interpreter and link only libc
    (musl's: no libstdc++, no glibc), and lambdaric's native transport loads."""
    if shutil.which("readelf") is None:
        pytest.skip("readelf is not installed (Debian: apt-get install binutils)")
    (native,) = (musl_site / "lambdaric").glob("_native*.so")
    assert _elf(native)["needed"] in ([], ["libc.so"]), _elf(native)
    out = _musl_run(musl_python, musl_site, textwrap.dedent(
        """
        import _cffi_backend, lambdaric, lambdaric._native, lambdaric.transport.native, simplejson
        from simplejson import _speedups
        print(lambdaric.__file__)
        print(lambdaric._native.__file__)
        print(_cffi_backend.__file__)
        """
    )).split()
    assert out[0] == str(musl_site / "lambdaric" / "__init__.py") and out[1] == str(native), out
    assert _elf(pathlib.Path(out[2]))["needed"] in ([], ["libc.so"]), _elf(pathlib.Path(out[2]))


def _invoke_both(python: pathlib.Path, site: pathlib.Path, transport: str):
    events = [
        Event(b'{"x": 1, "s": "h\\u00e9 \xe2\x9c\x93", "f": 1.5, "l": [null, true]}', request_id="musl-ok"),
        Event(b'{"fail": "badly"}', request_id="musl-err"),
    ]
    env = {"PYTHONPATH": str(site), "LAMBDARIC_TRANSPORT": transport, "AWS_LAMBDA_LOG_LEVEL": "DEBUG"}
    return run_runtime({"app.py": APP}, "app.handler", events, cmd=[str(python), "-m", "lambdaric"], env=env,
                       expect_posts=2, timeout=60)


def test_runtime_on_musl_both_transports_same_bytes(musl_python, musl_site):
    """``python -m lambdaric app.handler`` on the musl interpreter: a response and a handler error
    with the exact bytes, on the native and the pure-Python transport alike."""
    results = {t: _invoke_both(musl_python, musl_site, t) for t in ("native", "python")}
    for transport, result in results.items():
        assert not result.timed_out and len(result.posts) == 2, result.describe()
        assert b"[DEBUG] transport: %s\n" % transport.encode() in result.stderr, result.describe()
        ok, err = result.posts
        assert ok.path == "/2018-06-01/runtime/invocation/musl-ok/response", result.describe()
        body = ('{"echo": {"x": 1, "s": "h\u00e9 \u2713", "f": 1.5, "l": [null, true]}, "libc": "%s", '
                '"rid": "musl-ok"}' % MULTIARCH).encode()
        assert ok.body == body
        assert ok.raw.endswith(b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        assert err.path == "/2018-06-01/runtime/invocation/musl-err/error", result.describe()
        path = os.path.join(result.cwd, "app.py")
        expected = {"errorMessage": "musl says no: badly", "errorType": "ValueError", "requestId": "musl-err",
                    "stackTrace": ['  File "%s", line 5, in handler\n    raise ValueError("musl says no: %%s" %% event["fail"])\n' % path]}
        assert err.body == json.dumps(expected).encode()
        assert err.header("Lambda-Runtime-Function-Error-Type") == "ValueError"
        assert b"[ERROR] ValueError: musl says no: badly" in result.stdout
    # The same requests, byte for byte, apart from each run's handler folder and Runtime API port.
    native, python = ([r.raw.replace(res.cwd.encode(), b"<cwd>").replace(res.api.address.encode(), b"<api>")
                       for r in res.posts] for res in results.values())
    assert native == python


def test_emulator_on_musl_serves_invoke_api(musl_python, musl_site):
    """No AWS_LAMBDA_RUNTIME_API: the musl runtime serves the Invoke API; a client on the host invokes it."""
    with RunningEmulator({"app.py": APP}, command=[str(musl_python), "-m", "lambdaric"],
                         env={"PYTHONPATH": str(musl_site)}) as emu:
        host, port = emu.base[len("http://"):].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            conn.request("POST", "/2015-03-31/functions/function/invocations", b'{"via": "emulator"}')
            reply = conn.getresponse()
            status, body = reply.status, reply.read()
        finally:
            conn.close()
        assert status == 200, (status, body, emu.stderr())
        echo = json.loads(body)
        assert body == ('{"echo": {"via": "emulator"}, "libc": "%s", "rid": "%s"}' % (MULTIARCH, echo["rid"])).encode()
    assert emu.proc.returncode is not None


def test_install_without_compiler_falls_back_and_says_why(musl_python, tmp_path):
    """On musl without a working C compiler (Alpine without build-base) ``pip install`` still succeeds,
    and the runtime answers on its pure-Python transport, saying why at DEBUG level."""
    site = _pip_install(musl_python, tmp_path, CC="false")
    assert not list((site / "lambdaric").glob("_native*.so"))
    result = run_runtime({"app.py": APP}, "app.handler", [Event(b'{"n": 1}', request_id="r1")],
                         cmd=[str(musl_python), "-m", "lambdaric"],
                         env={"PYTHONPATH": str(site), "AWS_LAMBDA_LOG_LEVEL": "DEBUG"}, expect_posts=1, timeout=60)
    assert result.post("response").body == ('{"echo": {"n": 1}, "libc": "%s", "rid": "r1"}' % MULTIARCH).encode()
    assert b"lambdaric: [DEBUG] transport: python (native module unavailable: ModuleNotFoundError: " in result.stderr, \
        result.describe()


# ---------------------------------------------------------------------------------- the musllinux wheel
#: What the protocol suite needs in the musl interpreter besides what build-python.sh put there
#: (pytest; requests is one of lambdaric's requirements): pure-Python or musllinux wheels, fetched by
#: the host's pip for the musl interpreter's tags (it has no ssl module to reach PyPI itself).
SUITE_REQUIREMENTS = ("pytest", "requests")


@pytest.fixture(scope="module")
def musl_wheel_site(musl_python, tmp_path_factory):
    """lambdaric installed by the musl interpreter's own pip, by name, from the release set's simple
    index (``file://``; the sdist, the manylinux and the musllinux wheels): ``(site, pip's log, wheel)``."""
    import roots

    release = roots.release_set()
    site = tmp_path_factory.mktemp("musl-wheel") / "site"
    index = (release["dir"] / "simple").as_uri()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "LAMBDARIC_", "CC", "CFLAGS", "LDFLAGS"))}
    proc = subprocess.run(
        [str(musl_python), "-m", "pip", "install", "-v", "--no-deps", "--no-cache-dir",
         "--disable-pip-version-check", "--index-url", index, "--target", str(site), "lambdaric"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, timeout=300, stdin=subprocess.DEVNULL,
    )
    log = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, log[-4000:]
    return site, log, release["musllinux_1_2_" + MACHINE]


def test_pip_takes_the_musllinux_wheel(musl_python, musl_wheel_site):
    """Offered the whole set, the musl interpreter's pip takes the musllinux wheel (not a manylinux one,
    not the sdist: nothing is built), whose modules need musl's libc by its Alpine name and load."""
    site, log, wheel = musl_wheel_site
    assert wheel.name in log and "Building wheel" not in log and "manylinux" not in log.split("Processing")[-1], log[-4000:]
    with zipfile.ZipFile(str(wheel)) as whl:
        for module in ("_native.abi3.so", "_codec.abi3.so"):
            assert (site / "lambdaric" / module).read_bytes() == whl.read("lambdaric/" + module), module
            if shutil.which("readelf"):
                assert _elf(site / "lambdaric" / module)["needed"] == ["libc.musl-%s.so.1" % MACHINE]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(site), "LANG": "C.UTF-8"}
    version = subprocess.run([str(musl_python), "-m", "lambdaric", "--version"], capture_output=True, env=env,
                             cwd=str(site), timeout=60, stdin=subprocess.DEVNULL)
    assert version.stdout.endswith(b", transport: native, codec: native\n"), version


def test_protocol_suite_on_musl_with_the_wheel(musl_python, musl_wheel_site, tmp_path):
    """tests/test_runtime_wire.py run by the musl interpreter (pytest installed into it) against the
    musllinux wheel's install, on both transports."""
    site, _, _ = musl_wheel_site
    wheels, extra = tmp_path / "wheels", tmp_path / "extra"
    fetch = subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--only-binary", ":all:",
         "--platform", "musllinux_1_2_" + MACHINE, "--python-version", "3.11", "--implementation", "cp",
         "--abi", "cp311", "-d", str(wheels)] + list(SUITE_REQUIREMENTS),
        capture_output=True, text=True, timeout=300)
    if fetch.returncode != 0:
        import peers

        peers.missing_peer("pip download %s for musl failed (is PyPI reachable?): %s" % (
            " ".join(SUITE_REQUIREMENTS), fetch.stderr[-600:]))
    install = subprocess.run(
        [str(musl_python), "-m", "pip", "install", "-q", "--no-index", "--disable-pip-version-check", "--find-links",
         str(wheels), "--target", str(extra)] + list(SUITE_REQUIREMENTS), capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    suite = tmp_path / "suite"  # the tests without lambdaric's sources: lambdaric comes from the wheel
    (suite / "tests").mkdir(parents=True)
    for path in (REPO / "tests").glob("*.py"):
        shutil.copy2(path, suite / "tests" / path.name)
    shutil.copy2(REPO / "pyproject.toml", suite / "pyproject.toml")
    for transport in ("native", "python"):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": "%s:%s" % (site, extra),
               "LANG": "C.UTF-8", "HOME": str(tmp_path), "LAMBDARIC_TRANSPORT": transport}
        done = subprocess.run([str(musl_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_runtime_wire.py"],
                              capture_output=True, text=True, cwd=str(suite), env=env, timeout=900, stdin=subprocess.DEVNULL)
        assert done.returncode == 0 and " passed" in done.stdout, (transport, done.stdout[-6000:] + done.stderr[-2000:])
        print("musl protocol suite (%s): %s" % (transport, done.stdout.strip().splitlines()[-1]))
