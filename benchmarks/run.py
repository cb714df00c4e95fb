"""lambdaric against awslambdaric, side by side, in one run, against the same C Runtime API stub.

    python -m benchmarks            # full run: all workloads, writes benchmarks/results/
    python -m benchmarks --quick    # CI: the API Gateway workload and cold start, guarded ratios

Runtimes: lambdaric (each transport available), awslambdaric (from PyPI, in this interpreter
or a venv the benchmark makes), two reference loops (benchmarks/minimal_loop.py: a minimal
pure-Python runtime loop over http.client with the stdlib's json, and the same with orjson,
a benchmark-only dependency: skipped, saying so, when it is not installed), the C floor (a
minimal C client doing the same loop) and, for cold start, a bare interpreter that only opens
the socket and sends the request.
Rounds alternate the runtimes so that machine noise hits all of them alike; figures are
medians over rounds. Guards compare ratios measured in the same run, never absolute times.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
CACHE = os.path.join(HERE, ".cache")
sys.path.insert(0, HERE)

import events  # noqa: E402

#: workload -> (event factory, handler, floor mode, content type)
WORKLOADS = {
    "empty": (lambda: b"{}", "handlers.empty", "fixed"),
    "apigw-1.7KB": (events.apigw_v2, "handlers.apigw", "fixed"),
    "ddb-100KB-echo": (events.dynamodb_batch, "handlers.echo", "echo"),
    "1MB-echo": (lambda: events.blob(1 << 20), "handlers.echo", "echo"),
    "5MB-echo": (lambda: events.blob(5 << 20), "handlers.echo", "echo"),
    # batches (issue 16): the handler answers {"batchItemFailures": []}
    "sqs-10x100KB": (events.sqs_batch, "handlers.batch", "fixed"),
    "kinesis-100": (events.kinesis_batch, "handlers.batch", "fixed"),
    "ddb-stream-1MB": (lambda: events.dynamodb_batch(1_000_000), "handlers.batch", "fixed"),
    "error": (lambda: b"{}", "handlers.error", "error"),
}
GUARD_WORKLOAD = "apigw-1.7KB"
#: the workloads of --quick: the small event and the ~100 KB echo (the codec's guard)
QUICK_WORKLOADS = (GUARD_WORKLOAD, "ddb-100KB-echo")
#: the reference loops (benchmarks/minimal_loop.py)
ORJSON_LOOP = "python-orjson-loop"
JSON_LOOP = "python-json-loop"
_event_cache: Dict[str, bytes] = {}


def event_of(workload: str) -> bytes:
    """The workload's event bytes (made once per run)."""
    if workload not in _event_cache:
        _event_cache[workload] = WORKLOADS[workload][0]()
    return _event_cache[workload]
#: guarded ratios for --quick: (name, limit)
GUARDS = (
    # the pure-Python transport is the fallback where the native module cannot be built:
    # a looser tripwire (its ratio moves with the kernel's share of the loop on this VM)
    ("cpu per invoke, lambdaric Python transport / awslambdaric (%s)" % GUARD_WORKLOAD, 0.9),
    ("cold start, lambdaric / awslambdaric", 1.0),
    # the default transport wherever the module is built
    ("cpu per invoke, lambdaric-native / awslambdaric (%s)" % GUARD_WORKLOAD, 0.8),
    # measured 0.83-0.98 across runs on this VM: 1.05 leaves room for its noise, and still
    # trips if the native transport stops paying for itself
    ("cpu per invoke, lambdaric-native / lambdaric Python transport (%s)" % GUARD_WORKLOAD, 1.05),
)
#: guards against the reference loops and the codec (issue 16): (name, workload, runtime, reference, limit).
#: Measured on this 2-core VM (2026-12-02, full runs and --quick): ~100 KB echo 1.21-1.30x the orjson
#: loop and 0.24-0.26x awslambdaric; API Gateway 1.9x the orjson loop (the runtime's own work per
#: invoke: context, headers, logging; the codec is 3.6 us of it); limits leave room for the noise.
CODEC_GUARDS = (
    ("cpu per invoke, lambdaric-native / orjson loop (ddb-100KB-echo)", "ddb-100KB-echo", "lambdaric-native", ORJSON_LOOP, 1.6),
    ("cpu per invoke, lambdaric-native / awslambdaric (ddb-100KB-echo)", "ddb-100KB-echo", "lambdaric-native", "awslambdaric", 0.4),
    # measured 1.07-1.16 (was 1.28-1.46 before the per-invoke work was trimmed): 1.5 leaves room for noise
    ("cpu per invoke, lambdaric-native / orjson loop (%s)" % GUARD_WORKLOAD, GUARD_WORKLOAD, "lambdaric-native", ORJSON_LOOP, 1.5),
)
#: cold start of the default runtime over a bare interpreter (measured 1.03-1.10x)
COLD_GUARD = ("cold start, lambdaric-native / bare interpreter", 1.25)
#: imports the runtime path adds, native transport, over awslambdaric's (measured ~0.28; a ratio,
#: as this VM's speed moves the milliseconds by 2x over a day)
IMPORT_GUARD = ("imports on the runtime path, lambdaric-native / awslambdaric", 0.5)


# --------------------------------------------------------------------------- building


def build_c(name: str) -> str:
    """Compile benchmarks/NAME.c once into the cache (seconds, -O2); again when it or a
    benchmarks/*.h it may include (stub_io.h) is newer than the binary."""
    os.makedirs(CACHE, exist_ok=True)
    src = os.path.join(HERE, name + ".c")
    out = os.path.join(CACHE, name)
    newest = max(os.path.getmtime(p) for p in [src] + glob.glob(os.path.join(HERE, "*.h")))
    if not os.path.exists(out) or os.path.getmtime(out) < newest:
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, "-O2", "-std=c99", "-Wall", "-Wextra", "-o", out, src], check=True)
    return out


def find_awslambdaric_python() -> Tuple[Optional[str], str]:
    """An interpreter that can run awslambdaric: this one, or a venv made for the benchmark."""
    probe = [sys.executable, "-c", "import awslambdaric, importlib.metadata as m; print(m.version('awslambdaric'))"]
    done = subprocess.run(probe, capture_output=True, text=True)
    if done.returncode == 0:
        return sys.executable, done.stdout.strip()
    venv = os.path.join(CACHE, "venv-awslambdaric")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
        install = subprocess.run([python, "-m", "pip", "install", "-q", "awslambdaric"], capture_output=True, text=True, timeout=600)
        if install.returncode != 0:
            shutil.rmtree(venv, ignore_errors=True)
            return None, "pip install awslambdaric failed: %s" % install.stderr.strip().splitlines()[-1:]
    done = subprocess.run([python] + probe[1:], capture_output=True, text=True)
    return (python, done.stdout.strip()) if done.returncode == 0 else (None, done.stderr.strip()[-300:])


def bench_env() -> Dict[str, str]:
    """The environment of every measured process: no test-only Python flags (byte-code
    writing off, unbuffered output) that Lambda does not set and that skew both sides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAMBDARIC_", "_HANDLER", "PYTHON"))}
    env["PYTHONPATH"] = REPO
    env["AWS_LAMBDA_FUNCTION_NAME"] = "bench"
    env["AWS_LAMBDA_FUNCTION_VERSION"] = "$LATEST"
    env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = "1024"
    return env


class Runtime:
    def __init__(self, name: str, argv_for, env_extra: Optional[Dict[str, str]] = None, note: str = "") -> None:  # type: ignore[no-untyped-def]
        self.name = name
        self.argv_for = argv_for  # (handler, floor_mode) -> argv
        self.env_extra = env_extra or {}
        self.note = note


def runtimes(with_native: bool = True) -> Tuple[List[Runtime], List[str], Optional[str]]:
    skipped: List[str] = []
    found: List[Runtime] = [
        Runtime("lambdaric", lambda h, m: [sys.executable, "-m", "lambdaric", h], {"LAMBDARIC_TRANSPORT": "python"}, "pure-Python transport"),
    ]
    if with_native:
        probe = subprocess.run([sys.executable, "-c", "import lambdaric._native"], env=bench_env(), capture_output=True)
        if probe.returncode == 0:
            found.append(Runtime("lambdaric-native", lambda h, m: [sys.executable, "-m", "lambdaric", h], {"LAMBDARIC_TRANSPORT": "native"}))
        else:
            skipped.append("lambdaric-native: the native module is not built in this checkout")
    official, version = find_awslambdaric_python()
    if official:
        found.append(Runtime("awslambdaric", lambda h, m, p=official: [p, "-m", "awslambdaric", h], note="awslambdaric " + version))
    else:
        skipped.append("awslambdaric: " + version)
    loop = os.path.join(HERE, "minimal_loop.py")
    found.append(Runtime(JSON_LOOP, lambda h, m: [sys.executable, loop, h, "json"], note="minimal loop, stdlib json"))
    probe = subprocess.run([sys.executable, "-c", "import orjson"], env=bench_env(), capture_output=True)
    if probe.returncode == 0:
        found.append(Runtime(ORJSON_LOOP, lambda h, m: [sys.executable, loop, h, "orjson"], note="minimal loop, orjson"))
    else:
        skipped.append("%s: orjson is not installed (pip install orjson: a benchmark-only dependency)" % ORJSON_LOOP)
    floor = build_c("floor")
    found.append(Runtime("c-floor", lambda h, m: [floor, m], note="minimal C client"))
    return found, skipped, official


# --------------------------------------------------------------------------- measuring


def proc_cpu_ns(pid: int) -> int:
    """CPU time of a process in ns (schedstat: exact; falls back to clock ticks)."""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))


def proc_mem_kb(pid: int, key: str) -> int:
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Stub:
    """The C Runtime API stub for one measured run."""

    def __init__(self, stub: str, event: bytes, warmup: int, count: int, tmp: str) -> None:
        event_file = os.path.join(tmp, "event.json")
        with open(event_file, "wb") as f:
            f.write(event)
        port_file = os.path.join(tmp, "port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        self.proc = subprocess.Popen(
            [stub, port_file, event_file, "application/json", str(warmup), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 10
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the stub did not start")
            time.sleep(0.001)
        self.address = "127.0.0.1:" + open(port_file).read().strip()

    def line(self, timeout: float = 300.0) -> str:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the stub ended early")
        return line.strip()

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("GO\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def measure_loop(rt: Runtime, workload: str, stub: str, warmup: int, count: int, strace: bool = False) -> Dict[str, float]:
    factory, handler, floor_mode = WORKLOADS[workload]
    with tempfile.TemporaryDirectory(prefix="lambdaric-bench-") as tmp:
        s = Stub(stub, event_of(workload), warmup, count, tmp)
        env = dict(bench_env(), AWS_LAMBDA_RUNTIME_API=s.address, **rt.env_extra)
        child = subprocess.Popen(rt.argv_for(handler, floor_mode), cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        tracer = None
        try:
            ready = s.line()
            assert ready.startswith("READY"), ready
            idle_rss = proc_mem_kb(child.pid, "VmRSS")
            cpu0 = proc_cpu_ns(child.pid)
            if strace:
                out = os.path.join(tmp, "strace.txt")
                tracer = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(child.pid)], stderr=subprocess.DEVNULL)
                time.sleep(0.3)
            t0 = time.monotonic()
            s.go()
            done = s.line().split()
            wall = time.monotonic() - t0
            cpu1 = proc_cpu_ns(child.pid)
            peak_rss = proc_mem_kb(child.pid, "VmHWM")
            syscalls = None
            if tracer is not None:
                tracer.send_signal(2)
                tracer.wait(10)
                syscalls = _strace_total(out) / count
        finally:
            child.kill()
            child.wait()
            s.close()
    assert done[0] == "DONE", done
    n = int(done[1])
    result = {
        "cpu_us": (cpu1 - cpu0) / n / 1000.0,
        "p50_us": int(done[2]) / 1000.0,
        "p99_us": int(done[3]) / 1000.0,
        "mean_us": int(done[4]) / 1000.0,
        "per_s": n / wall,
        "idle_rss_mb": idle_rss / 1024.0,
        "peak_rss_mb": peak_rss / 1024.0,
        "stub_cpu_us": int(done[5]) / (warmup + n),
    }
    if syscalls is not None:
        result["syscalls"] = syscalls
    return result


def measure_print_writes(rt: Runtime, stub: str) -> float:
    """write() calls on fd 1 during one invoke of a handler that prints 100 lines."""
    with tempfile.TemporaryDirectory(prefix="lambdaric-bench-") as tmp:
        s = Stub(stub, b"{}", 0, 1, tmp)
        trace = os.path.join(tmp, "trace")
        env = dict(bench_env(), AWS_LAMBDA_RUNTIME_API=s.address, **rt.env_extra)
        argv = ["strace", "-f", "-qq", "-e", "trace=write", "-o", trace] + rt.argv_for("handlers.prints", "fixed")
        child = subprocess.Popen(argv, cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            assert s.line().startswith("READY")
            s.go()
            assert s.line().startswith("DONE")
            time.sleep(0.3)
        finally:
            child.kill()
            child.wait()
            s.close()
        with open(trace) as f:
            return float(sum(1 for line in f if re.search(r"write\(1, ", line)))


def _strace_total(path: str) -> float:
    with open(path) as f:
        for line in f:
            if line.strip().endswith("total"):
                # "% time  seconds  usecs/call  calls  [errors]  total"
                return float(line.split()[3])
    return float("nan")


def measure_cold_start(argv: List[str], stub: str, env_extra: Dict[str, str], runs: int) -> float:
    """Median ms from spawn to the first GET /next (both clocks CLOCK_MONOTONIC)."""
    samples = []
    with tempfile.TemporaryDirectory(prefix="lambdaric-bench-") as tmp:
        for _ in range(runs):
            s = Stub(stub, b"{}", 0, 0, tmp)
            env = dict(bench_env(), AWS_LAMBDA_RUNTIME_API=s.address, **env_extra)
            spawned = time.monotonic_ns()
            child = subprocess.Popen(argv, cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                ready = s.line().split()
                samples.append((int(ready[1]) - spawned) / 1e6)
            finally:
                child.kill()
                child.wait()
                s.close()
    return statistics.median(samples)


BARE = (
    "import os, socket\n"
    "h, p = os.environ['AWS_LAMBDA_RUNTIME_API'].rsplit(':', 1)\n"
    "s = socket.create_connection((h, int(p)))\n"
    "s.sendall(b'GET /2018-06-01/runtime/invocation/next HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n')\n"
    "s.recv(1)\n"
)


def import_ms(python: str, module: str, runs: int = 7) -> float:
    """Median ms of imports that ``import module`` adds over a bare interpreter (-X importtime)."""

    def total(code: str) -> float:
        done = subprocess.run([python, "-X", "importtime", "-c", code], env=bench_env(), capture_output=True, text=True)
        us = 0
        for line in done.stderr.splitlines():
            m = re.match(r"import time:\s+\d+ \|\s+(\d+) \| (\S.*)$", line)
            if m and not m.group(2).startswith(" "):
                us += int(m.group(1))
        return us / 1000.0

    return statistics.median(total("import " + module) - total("pass") for _ in range(runs))


# --------------------------------------------------------------------------- reporting


def ratio(a: Optional[float], b: Optional[float]) -> str:
    return "%.2fx" % (a / b) if a and b else "-"


def write_results(report: dict, plot: bool) -> List[str]:
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "results.json"), "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    lines = ["# Benchmark results", "", "Machine: %s" % report["machine"], "Date: %s" % report["date"], ""]
    lines += ["Skipped: " + "; ".join(report["skipped"]), ""] if report["skipped"] else []
    lines += ["## Invoke loop (medians over %d alternating rounds; %d invokes each)" % (report["rounds"], report["count"]), ""]
    lines += ["| workload | runtime | CPU us/invoke | wall p50 us | wall p99 us | invokes/s | idle RSS MB | peak RSS MB | syscalls/invoke | CPU vs awslambdaric | CPU vs orjson loop | CPU vs lambdaric (Python transport) | CPU vs C floor | wall p50 vs C floor |"]
    lines += ["|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for workload, per in report["loop"].items():
        ref = per.get("awslambdaric", {}).get("cpu_us")
        fast = per.get(ORJSON_LOOP, {}).get("cpu_us")
        floor = per.get("c-floor", {}).get("cpu_us")
        floor_p50 = per.get("c-floor", {}).get("p50_us")
        own = per.get("lambdaric", {}).get("cpu_us")
        for name, r in per.items():
            lines.append(
                "| %s | %s | %.1f | %.1f | %.1f | %.0f | %.1f | %.1f | %s | %s | %s | %s | %s | %s |"
                % (workload, name, r["cpu_us"], r["p50_us"], r["p99_us"], r["per_s"], r["idle_rss_mb"], r["peak_rss_mb"],
                   "%.1f" % r["syscalls"] if "syscalls" in r else "-", ratio(r["cpu_us"], ref), ratio(r["cpu_us"], fast),
                   ratio(r["cpu_us"], own), ratio(r["cpu_us"], floor), ratio(r["p50_us"], floor_p50))
            )
        stub_cost = max(r["stub_cpu_us"] for r in per.values())
        lines.append("| %s | (stub) | %.1f | | | | | | | | | | | |" % (workload, stub_cost))
    lines += ["", "## Cold start: spawn to first GET /next (median of %d)" % report["cold_runs"], "", "| runtime | ms | vs awslambdaric | vs bare interpreter |", "|---|---|---|---|"]
    cold = report["cold_start_ms"]
    for name, ms in cold.items():
        lines.append("| %s | %.1f | %s | %s |" % (name, ms, ratio(ms, cold.get("awslambdaric")), ratio(ms, cold.get("bare-python"))))
    lines += ["", "## Import time added over a bare interpreter (-X importtime, median)", "", "| module | ms |", "|---|---|"]
    for name, ms in report["import_ms"].items():
        lines.append("| %s | %.1f |" % (name, ms))
    if report.get("print_writes"):
        lines += ["", "## stdout write() syscalls for one invoke calling print() 100 times (strace)", "", "| runtime | writes |", "|---|---|"]
        for name, n in report["print_writes"].items():
            lines.append("| %s | %d |" % (name, n))
    lines += ["", "## Guards", ""]
    for name, (value, limit, ok) in report["guards"].items():
        lines.append("- %s: %.2f (limit %.2f) %s" % (name, value, limit, "ok" if ok else "REGRESSED"))
    text = "\n".join(lines) + "\n"
    with open(os.path.join(RESULTS, "results.md"), "w") as f:
        f.write(text)
    written = ["results.json", "results.md"]
    if plot:
        try:
            _plot(report)
            written.append("results.png")
        except ImportError:
            print("matplotlib is not installed: no plot (pip install matplotlib)")
    return written


def _plot(report: dict) -> None:
    # (benchmarks/ is on sys.path for events and handlers, and its packaging.py would shadow the
    # packaging distribution matplotlib imports)
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    finally:
        sys.path[:] = saved

    workloads = list(report["loop"])
    order = ["lambdaric-native", "lambdaric", "awslambdaric", JSON_LOOP, ORJSON_LOOP, "c-floor"]
    names = sorted({n for per in report["loop"].values() for n in per}, key=order.index)
    fig, axes = plt.subplots(1, 2, figsize=(15, 5.2))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        cpu = [report["loop"][w].get(name, {}).get("cpu_us", 0) for w in workloads]
        p50 = [report["loop"][w].get(name, {}).get("p50_us", 0) for w in workloads]
        xs = [k + i * width for k in range(len(workloads))]
        axes[0].bar(xs, cpu, width, label=name)
        axes[1].bar(xs, p50, width, label=name)
    for ax, title in zip(axes, ("client CPU per invoke (us, log)", "wall per invoke p50 (us, log)")):
        ax.set_xticks([k + 0.4 - width / 2 for k in range(len(workloads))])
        ax.set_xticklabels(workloads, rotation=20, fontsize=8)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.suptitle("lambdaric vs awslambdaric, minimal Python loops (json, orjson) and a C floor (%s)" % report["date"])
    fig.tight_layout()
    fig.savefig(os.path.join(RESULTS, "results.png"), dpi=110)


# --------------------------------------------------------------------------- main


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="CI mode: the API Gateway and 100 KB echo workloads and cold start, guards enforced")
    p.add_argument("--rounds", type=int, default=None)
    p.add_argument("--count", type=int, default=None, help="timed invokes per measurement")
    p.add_argument("--cold-runs", type=int, default=None, help="cold-start samples per runtime (default 15, 25 with --quick)")
    p.add_argument("--workloads", default=None, help="comma-separated subset of: " + ", ".join(WORKLOADS))
    p.add_argument("--strace", action="store_true", help="also count syscalls per invoke with strace -c")
    p.add_argument("--no-write", action="store_true", help="print only; do not write benchmarks/results/")
    p.add_argument("--no-retry", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    rounds = args.rounds or (7 if args.quick else 3)  # quick: 7 rounds steady the medians on a noisy VM
    args.cold_runs = args.cold_runs or (25 if args.quick else 15)
    count = args.count or (2000 if args.quick else 4000)
    workloads = args.workloads.split(",") if args.workloads else (list(QUICK_WORKLOADS) if args.quick else list(WORKLOADS))
    stub = build_c("stub")
    found, skipped, official = runtimes()
    print("runtimes: %s" % ", ".join("%s (%s)" % (r.name, r.note) if r.note else r.name for r in found))
    for s in skipped:
        print("skipped: " + s)
    # warm byte-code caches so cold start measures what a built image has
    for rt in found:
        if rt.name in ("lambdaric", "lambdaric-native", "awslambdaric"):
            subprocess.run(rt.argv_for("handlers.empty", "fixed")[:-1] + ["--version"], env=bench_env(), capture_output=True)
    subprocess.run([sys.executable, "-c", "import lambdaric.bootstrap, lambdaric.transport.python, handlers"], cwd=HERE, env=bench_env())
    subprocess.run([sys.executable, "-c", "import lambdaric.transport.native"], cwd=HERE, env=bench_env(), capture_output=True)
    if official:
        subprocess.run([official, "-c", "import awslambdaric.bootstrap"], env=bench_env())
    loop: Dict[str, Dict[str, List[Dict[str, float]]]] = {w: {} for w in workloads}
    for rnd in range(rounds):
        order = found[rnd % len(found):] + found[: rnd % len(found)]
        for workload in workloads:
            size = len(event_of(workload))
            n = max(count // (40 if size > (4 << 20) else 8 if size > (512 << 10) else 2 if size > (64 << 10) else 1), 50)
            for rt in order:
                r = measure_loop(rt, workload, stub, max(n // 10, 20), n)
                loop[workload].setdefault(rt.name, []).append(r)
                print("round %d %-15s %-17s cpu %8.1f us  p50 %8.1f us  p99 %8.1f us" % (rnd + 1, workload, rt.name, r["cpu_us"], r["p50_us"], r["p99_us"]))
    summary = {
        w: {name: {k: statistics.median(r[k] for r in rs if k in r) for k in rs[0]} for name, rs in per.items()}
        for w, per in loop.items()
    }
    prints: Dict[str, float] = {}
    if args.strace and shutil.which("strace"):
        # stdout write() syscalls for one invoke that calls print() 100 times
        for rt in found:
            if rt.name in ("lambdaric", "lambdaric-native", "awslambdaric"):
                prints[rt.name] = measure_print_writes(rt, stub)
    if args.strace and shutil.which("strace"):
        # a separate pass: strace slows what it traces, so its runs never count for timings
        for workload in workloads:
            n = 200 if len(event_of(workload)) < (512 << 10) else 20
            for rt in found:
                summary[workload][rt.name]["syscalls"] = measure_loop(rt, workload, stub, 20, n, strace=True)["syscalls"]
    cold: Dict[str, float] = {}
    cold_argv = {
        "lambdaric": ([sys.executable, "-m", "lambdaric", "handlers.empty"], {"LAMBDARIC_TRANSPORT": "python"}),
        "bare-python": ([sys.executable, "-c", BARE], {}),
    }
    if any(r.name == "lambdaric-native" for r in found):
        cold_argv["lambdaric-native"] = ([sys.executable, "-m", "lambdaric", "handlers.empty"], {"LAMBDARIC_TRANSPORT": "native"})
    if official:
        cold_argv["awslambdaric"] = ([official, "-m", "awslambdaric", "handlers.empty"], {})
    samples: Dict[str, List[float]] = {k: [] for k in cold_argv}
    for _ in range(args.cold_runs):  # one sample of each in turn: noise hits all alike
        for name, (argv_, extra) in cold_argv.items():
            samples[name].append(measure_cold_start(argv_, stub, extra, 1))
    cold = {k: statistics.median(v) for k, v in samples.items()}
    imports = {"lambdaric (runtime path)": import_ms(sys.executable, "lambdaric.bootstrap, lambdaric.transport.python")}
    if any(r.name == "lambdaric-native" for r in found):
        imports["lambdaric (runtime path, native transport)"] = import_ms(sys.executable, "lambdaric.bootstrap, lambdaric.transport.native")
    if official:
        imports["awslambdaric (runtime path)"] = import_ms(official, "awslambdaric.bootstrap")
    guards = {}
    ref = summary.get(GUARD_WORKLOAD, {})
    if "awslambdaric" in ref and "lambdaric" in ref:
        value = ref["lambdaric"]["cpu_us"] / ref["awslambdaric"]["cpu_us"]
        guards[GUARDS[0][0]] = (value, GUARDS[0][1], value < GUARDS[0][1])
    if "awslambdaric" in cold:
        value = cold["lambdaric"] / cold["awslambdaric"]
        guards[GUARDS[1][0]] = (value, GUARDS[1][1], value < GUARDS[1][1])
    if "lambdaric-native" in ref:
        for (name, limit), other in zip(GUARDS[2:], ("awslambdaric", "lambdaric")):
            if other in ref:
                value = ref["lambdaric-native"]["cpu_us"] / ref[other]["cpu_us"]
                guards[name] = (value, limit, value < limit)
    for name, workload, ours, other, limit in CODEC_GUARDS:
        per = summary.get(workload, {})
        if ours in per and other in per:
            value = per[ours]["cpu_us"] / per[other]["cpu_us"]
            guards[name] = (value, limit, value < limit)
    if "lambdaric-native" in cold and "bare-python" in cold:
        value = cold["lambdaric-native"] / cold["bare-python"]
        guards[COLD_GUARD[0]] = (value, COLD_GUARD[1], value < COLD_GUARD[1])
    native_imports = imports.get("lambdaric (runtime path, native transport)")
    official_imports = imports.get("awslambdaric (runtime path)")
    if native_imports is not None and official_imports:
        value = native_imports / official_imports
        guards[IMPORT_GUARD[0]] = (value, IMPORT_GUARD[1], value < IMPORT_GUARD[1])
    report = {
        "machine": "%s, %d cores, %s, Python %s" % (platform.platform(), os.cpu_count() or 0, platform.processor() or platform.machine(), platform.python_version()),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "rounds": rounds,
        "count": count,
        "cold_runs": args.cold_runs,
        "skipped": skipped,
        "loop": summary,
        "cold_start_ms": cold,
        "import_ms": imports,
        "print_writes": prints,
        "guards": guards,
        "quick": args.quick,
    }
    print()
    for name, (value, limit, ok) in guards.items():
        print("guard: %s = %.2f (limit %.2f): %s" % (name, value, limit, "ok" if ok else "REGRESSED"))
    for name, ms in cold.items():
        print("cold start %-18s %6.1f ms" % (name, ms))
    for name, ms in imports.items():
        print("import %-28s %6.1f ms" % (name, ms))
    failed = [name for name, (_, _, ok) in guards.items() if not ok]
    if failed and args.quick and not args.no_retry:
        # A real regression fails twice; one noisy moment on a shared machine does not.
        print("guard tripped (%s): measuring once more" % "; ".join(failed))
        again = main(list(argv or sys.argv[1:]) + ["--no-retry", "--no-write"])
        return again
    if not args.no_write:
        written = write_results(report, plot=not args.quick)
        print("wrote " + ", ".join(os.path.join("benchmarks/results", w) for w in written))
    if not official:
        print("awslambdaric is not available: no guard could be checked")
        return 0
    return 0 if all(ok for _, _, ok in guards.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
