"""Managed Instances memory (issue 21): lambdaric's process mode with and without
``LAMBDARIC_PRELOAD=1`` and awslambdaric, side by side, in one run, N pollers each.

    python -m benchmarks.managed_memory              # N = 4, 8, 16; writes benchmarks/results/managed_memory.*
    python -m benchmarks.managed_memory --quick      # CI: N = 4, fewer invokes, a generous guard
    python -m benchmarks.managed_memory --n 4,8 --no-write

Every contestant runs the same realistic handler (``benchmarks/lmi_app/app.py``: boto3 clients
and a FastAPI app behind mangum, made at import) against the same Runtime API: a small threaded
HTTP/1.1 server in this module (127.0.0.1 only) that serves any number of keep-alive ``/next``
pollers and records when each connection waits on ``/next``. Figures per contestant and N:

all-polling ms
    spawn of the runtime until N distinct connections are waiting on ``/next``.
PSS, USS, RSS
    after a warm-up (``--invokes`` per worker, N invokes kept in flight, so every poller serves
    some), read from ``/proc/PID/smaps_rollup`` of the runtime process and all its descendants:
    PSS total = sum of ``Pss:``, USS = ``Private_Clean + Private_Dirty`` (summed; shown per
    worker), RSS per worker = the mean ``Rss:`` of the processes holding a ``/next`` connection.
    Then a full GC in each worker (the handler's ``GET /gc/{ms}`` route: N at once, each held,
    so that each worker takes one; ``full_gc_workers`` says how many did), as the issue asks.
replace ms
    SIGKILL of one idle worker (a descendant holding a connection waiting on ``/next``) until N
    connections are waiting again, the killed one's not among them; median of ``REPLACE_KILLS``.
    Then a worker busy in an invoke is killed, and what is posted for that invoke recorded.

Rounds (3; --quick: 1) alternate the contestants, so machine noise hits all alike; figures are
medians over rounds. The goals (issue 21) are ratios of this run, stated at N=16: with preload,
total PSS <= 0.35x without; all-polling time <= 0.5x; without preload, RSS per worker no larger
than awslambdaric's. They are reported, not
enforced: only ``--quick`` guards, on a generous bound (``QUICK_GUARD``), so that CI catches a
regression without flaking on this 2-core VM.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import select
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
RESULTS = os.path.join(HERE, "results")
APP_DIR = os.path.join(HERE, "lmi_app")
HANDLER = "app.handler"

#: name -> (command, extra environment)
CONTESTANTS: Dict[str, Tuple[List[str], Dict[str, str]]] = {
    "lambdaric": ([sys.executable, "-m", "lambdaric", HANDLER], {"LAMBDARIC_CONCURRENCY_MODE": "process"}),
    "lambdaric-preload": (
        [sys.executable, "-m", "lambdaric", HANDLER],
        {"LAMBDARIC_CONCURRENCY_MODE": "process", "LAMBDARIC_PRELOAD": "1"},
    ),
    "awslambdaric": ([sys.executable, "-m", "awslambdaric", HANDLER], {}),
}
FULL_N = (4, 8, 16)
QUICK_N = (4,)
FULL_INVOKES = 100  # per worker, in the warm-up
QUICK_INVOKES = 20
REPLACE_KILLS = 3  # idle workers killed one after another; the median is reported
BUSY_WAIT = 5.0  # s for an answer to the invoke a killed busy worker held
FULL_ROUNDS = 3
STARTUP_TIMEOUT = 120.0  # s for N pollers (16 workers importing boto3 on 2 cores)
INVOKE_TIMEOUT = 60.0  # s without any answer during the warm-up
REPLACE_TIMEOUT = 15.0  # s for a killed worker's replacement (awslambdaric: never)
QUICK_REPLACE_TIMEOUT = 5.0  # the same in --quick (CI time; lambdaric's took 0.4-1.2 s under load)
MAX_CONNECTIONS = 256  # the server refuses more (bounded threads)
MAX_HEAD = 64 * 1024
MAX_BODY = 8 * 1024 * 1024
#: --quick: preload's PSS total at N=4 under this fraction of no preload's (measured 0.50-0.52)
QUICK_GUARD = ("pss total, lambdaric-preload / lambdaric (N=4)", 0.8)
#: the goals of issue 21 (stated at N=16, reported at each N): (name, numerator, denominator, figure, limit)
GOALS = (
    ("pss total, preload / no preload", "lambdaric-preload", "lambdaric", "pss_total_mb", 0.35),
    ("all-polling time, preload / no preload", "lambdaric-preload", "lambdaric", "all_polling_ms", 0.5),
    ("rss per worker, lambdaric / awslambdaric", "lambdaric", "awslambdaric", "rss_worker_mb", 1.0),
)
#: what lmi_app/app.py imports (benchmark-only dependencies)
HANDLER_DEPS = ("boto3", "fastapi", "mangum", "pydantic")
BASE_ENV = {
    # dummy credentials: boto3 must find some, and nothing here contacts AWS
    "AWS_ACCESS_KEY_ID": "x",
    "AWS_SECRET_ACCESS_KEY": "x",
    "AWS_SESSION_TOKEN": "x",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_LAMBDA_FUNCTION_NAME": "lmi-bench",
    "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "2048",
    "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/lmi-bench",
    "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
    "LAMBDA_TASK_ROOT": APP_DIR,
    "_HANDLER": HANDLER,
}


def api_event(i: int, sleep_ms: int = 0, route: str = "sleep") -> bytes:
    """An API Gateway HTTP API (v2) event for the handler's POST route (a new item per invoke),
    or with ``sleep_ms`` for its ``GET /sleep/{ms}`` route (an invoke that is held)."""
    body = json.dumps({"name": "widget-%d" % i, "quantity": 1 + i % 50, "tags": ["bench", "lmi"],
                       "attributes": {"color": "blue", "size": "M"}})
    method, path = ("GET", "/%s/%d" % (route, sleep_ms)) if sleep_ms else ("POST", "/items/%d" % i)
    event = {
        "version": "2.0",
        "routeKey": "%s %s" % (method, path),
        "rawPath": path,
        "rawQueryString": "",
        "headers": {
            "accept": "application/json",
            "content-type": "application/json",
            "content-length": str(len(body)),
            "host": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "user-agent": "lmi-bench",
            "x-forwarded-proto": "https",
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abcdef1234",
            "domainName": "abcdef1234.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "abcdef1234",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.17", "userAgent": "lmi-bench"},
            "requestId": "req-%d" % i,
            "routeKey": "%s %s" % (method, path),
            "stage": "$default",
            "time": "12/Mar/2024:19:03:58 +0000",
            "timeEpoch": 1710270238390,
        },
        "body": None if sleep_ms else body,
        "isBase64Encoded": False,
    }
    return json.dumps(event).encode()


# ------------------------------------------------------------------------- the Runtime API


class _Waiter:
    """A connection blocked on ``/next``: the event given to it and the pipe that wakes it."""

    def __init__(self, conn_id: int) -> None:
        self.conn_id = conn_id
        self.event: Optional[Tuple[str, bytes]] = None
        self.wake_r, self.wake_w = os.pipe()

    def close(self) -> None:
        os.close(self.wake_r)
        os.close(self.wake_w)


class RuntimeAPI:
    """A Runtime API for N concurrent pollers on 127.0.0.1: one thread per keep-alive connection
    (at most ``MAX_CONNECTIONS``), ``/next`` blocks until an event is queued (or its poller hangs
    up: a waiting connection is watched for EOF, so a killed worker stops counting at once).
    Records each connection's first ``/next`` wait, the answers and errors, and the moment the
    number of waiting connections last changed, which the benchmark waits on."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(MAX_CONNECTIONS)
        self.port: int = self.listener.getsockname()[1]
        self.stopped = False
        self.next_conn = 0
        self.epoch = 0  # the first connection id of the current run
        self.conns: Dict[int, socket.socket] = {}
        self.peer_ports: Dict[int, int] = {}  # conn id -> the client's port
        self.threads: List[threading.Thread] = []
        self.queue: List[Tuple[str, bytes]] = []
        self.waiting: Dict[int, _Waiter] = {}
        self.first_wait: Dict[int, float] = {}  # conn id -> monotonic time of its first /next wait
        self.changed = time.monotonic()  # when len(waiting) last changed
        self.answers: Dict[str, Tuple[str, float, int]] = {}  # request id -> (kind, time, conn id)
        self.gc_bodies: Dict[str, bytes] = {}  # the GC invokes' answers (collect_everywhere)
        self.served: Dict[int, int] = {}  # conn id -> events given
        self.given: Dict[str, int] = {}  # request id -> the conn id it was given to
        self.init_errors: List[bytes] = []
        self.unknown: List[str] = []
        self.accepter = threading.Thread(target=self._accept, name="runtime-api", daemon=True)
        self.accepter.start()

    def reset(self) -> None:
        """Forget one run's records (the server is reused by the next runtime): only the
        connections made from now on count."""
        with self.cond:
            self.epoch = self.next_conn
            self.queue.clear()
            self.first_wait.clear()
            self.answers.clear()
            self.gc_bodies.clear()
            self.served.clear()
            self.given.clear()
            self.init_errors.clear()
            self.unknown.clear()

    def close(self) -> None:
        with self.cond:
            self.stopped = True
            for waiter in self.waiting.values():
                os.write(waiter.wake_w, b"x")
            for conn in self.conns.values():
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.cond.notify_all()
        self.listener.close()
        for thread in self.threads + [self.accepter]:
            thread.join(timeout=5)

    # ---- what the benchmark asks

    def submit(self, request_id: str, payload: bytes) -> None:
        with self.cond:
            self.queue.append((request_id, payload))
            self._dispatch()

    def waiting_ids(self) -> Set[int]:
        """The connections of the current run waiting on ``/next``."""
        with self.cond:
            return {c for c in self.waiting if c >= self.epoch}

    def drain(self, timeout: float) -> bool:
        """Wait until no connection is open (the last runtime's all closed); False at timeout."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.conns:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(min(left, 0.2))
            return True

    def wait_for(self, n: int, deadline: float, exclude: Sequence[int] = ()) -> Optional[float]:
        """Block until ``n`` connections wait on ``/next``, none of ``exclude``; the moment
        that became true, or None at ``deadline`` (monotonic)."""
        with self.cond:
            while True:
                current = [c for c in self.waiting if c >= self.epoch]
                if len(current) >= n and not set(exclude) & set(current):
                    return self.changed
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(min(left, 0.5))

    # ---- serving

    def _accept(self) -> None:
        while not self.stopped:
            try:
                sock, addr = self.listener.accept()
            except OSError:
                return
            with self.cond:
                if len(self.conns) >= MAX_CONNECTIONS or self.stopped:
                    sock.close()
                    continue
                conn_id = self.next_conn
                self.next_conn += 1
                self.conns[conn_id] = sock
                self.peer_ports[conn_id] = addr[1]
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(target=self._serve, args=(conn_id, sock), daemon=True)
            self.threads = [t for t in self.threads if t.is_alive()] + [thread]
            thread.start()

    def _serve(self, conn_id: int, sock: socket.socket) -> None:
        buf = bytearray()
        try:
            while not self.stopped:
                request = self._read_request(sock, buf)
                if request is None:
                    return
                method, path, headers, body = request
                if not self._answer(conn_id, sock, method, path, headers, body):
                    return
        except OSError:
            return
        finally:
            with self.cond:
                self.conns.pop(conn_id, None)
                self._unwait(conn_id)
                self.cond.notify_all()
            sock.close()

    def _read_request(self, sock: socket.socket, buf: bytearray) -> Optional[Tuple[str, str, Dict[str, str], bytes]]:
        sock.settimeout(None)  # a poller may stay idle between requests as long as it likes
        while b"\r\n\r\n" not in buf:
            if len(buf) > MAX_HEAD:
                return None
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
            sock.settimeout(30.0)  # once a request began, it must come whole
        end = buf.index(b"\r\n\r\n")
        lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
        del buf[: end + 4]
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return None
        headers: Dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length > MAX_BODY or headers.get("transfer-encoding", "").lower() == "chunked":
            return None  # no runtime here streams; refuse rather than misparse
        while len(buf) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
        body = bytes(buf[:length])
        del buf[:length]
        return parts[0], parts[1], headers, body

    def _answer(self, conn_id: int, sock: socket.socket, method: str, path: str,
                headers: Dict[str, str], body: bytes) -> bool:
        if method == "GET" and path == "/2018-06-01/runtime/invocation/next":
            event = self._next(conn_id, sock)
            if event is None:
                return False
            request_id, payload = event
            head = (
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                "Lambda-Runtime-Aws-Request-Id: %s\r\n"
                "Lambda-Runtime-Deadline-Ms: %d\r\n"
                "Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:lmi-bench\r\n"
                "Lambda-Runtime-Trace-Id: Root=1-65a1b2c3-0123456789abcdef01234567;Sampled=0\r\n"
                "Content-Length: %d\r\n\r\n" % (request_id, int(time.time() * 1000) + 300_000, len(payload))
            )
            sock.sendall(head.encode("latin-1") + payload)
            return True
        prefix = "/2018-06-01/runtime/invocation/"
        if method == "POST" and path.startswith(prefix) and path.endswith(("/response", "/error")):
            request_id, _, kind = path[len(prefix):].rpartition("/")
            if kind == "error":
                kind = "error:" + headers.get("lambda-runtime-function-error-type", "?")
            with self.cond:
                known = request_id not in self.answers
                if known:
                    self.answers[request_id] = (kind, time.monotonic(), conn_id)
                    if request_id.startswith("gc-"):  # (the GC invokes' answers name their worker)
                        self.gc_bodies[request_id] = body[:2000]
                self.cond.notify_all()
            status = "202 Accepted" if known else "403 Forbidden"
        elif method == "POST" and path == "/2018-06-01/runtime/init/error":
            with self.cond:
                self.init_errors.append(body[:2000])
                self.cond.notify_all()
            status = "202 Accepted"
        else:
            with self.cond:
                self.unknown.append("%s %s" % (method, path))
            status = "404 Not Found"
        reply = b'{"status":"OK"}'
        sock.sendall(("HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                      % (status, len(reply))).encode("latin-1") + reply)
        return True

    def _next(self, conn_id: int, sock: socket.socket) -> Optional[Tuple[str, bytes]]:
        """Wait for an event for this connection; None when its poller hung up or we stop."""
        waiter = _Waiter(conn_id)
        with self.cond:
            self.waiting[conn_id] = waiter
            self.first_wait.setdefault(conn_id, time.monotonic())
            self._changed()
            self._dispatch()
        try:
            while True:
                readable, _, _ = select.select([sock.fileno(), waiter.wake_r], [], [], 1.0)
                with self.cond:
                    if waiter.event is not None:
                        self.waiting.pop(conn_id, None)
                        self._changed()
                        self.served[conn_id] = self.served.get(conn_id, 0) + 1
                        self.given[waiter.event[0]] = conn_id
                        return waiter.event
                    if self.stopped:
                        return None
                if sock.fileno() in readable:
                    # EOF: the poller is gone (the finally of _serve unwaits it); bytes: a poller
                    # that sends while it waits on /next is no runtime we serve (and select
                    # would spin on them): hung up on as well
                    return None
        finally:
            with self.cond:
                if self.waiting.get(conn_id) is waiter:
                    self._unwait(conn_id)
                waiter.close()

    def _unwait(self, conn_id: int) -> None:
        """(cond held) Drop a waiting connection; an event given to it goes back to the queue."""
        waiter = self.waiting.pop(conn_id, None)
        if waiter is None:
            return
        if waiter.event is not None:
            self.queue.insert(0, waiter.event)
            waiter.event = None
        self._changed()
        self._dispatch()

    def _dispatch(self) -> None:
        """(cond held) Give queued events to idle waiting connections, first come first served."""
        for waiter in list(self.waiting.values()):
            if not self.queue:
                return
            if waiter.event is None:
                waiter.event = self.queue.pop(0)
                os.write(waiter.wake_w, b"x")

    def _changed(self) -> None:
        self.changed = time.monotonic()
        self.cond.notify_all()


# ------------------------------------------------------------------------ the process tree


def descendants(root: int) -> List[int]:
    """``root`` and every process below it (from /proc/*/stat's parent pids)."""
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: List[int] = []
    todo = [root]
    while todo:
        pid = todo.pop()
        if os.path.exists("/proc/%d" % pid):
            found.append(pid)
            todo.extend(children.get(pid, ()))
    return found


def smaps_rollup(pid: int) -> Dict[str, int]:
    """The kB fields of ``/proc/PID/smaps_rollup`` (empty if the process is gone)."""
    fields: Dict[str, int] = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    fields[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        pass
    return fields


def socket_holders(pids: Sequence[int], server_port: int) -> Dict[int, Set[int]]:
    """pid -> the client ports of its TCP connections to 127.0.0.1:``server_port`` (from
    /proc/net/tcp's inodes and each process's fds)."""
    inode_port: Dict[str, int] = {}
    target = "0100007F:%04X" % server_port
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[2] == target and parts[3] == "01":  # remote = the server, ESTABLISHED
                inode_port[parts[9]] = int(parts[1].split(":")[1], 16)
    held: Dict[int, Set[int]] = {}
    for pid in pids:
        try:
            fds = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if link.startswith("socket:["):
                port = inode_port.get(link[8:-1])
                if port is not None:
                    held.setdefault(pid, set()).add(port)
    return held


def kill_tree(proc: "subprocess.Popen[bytes]") -> None:
    """SIGKILL the runtime's process group and any descendant that left it; reap the runtime."""
    pids = descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


# ------------------------------------------------------------------------------ one run


class Failed(Exception):
    """A run that could not be measured (the reason is reported, the other runs go on)."""


def mb(kb: float) -> float:
    return round(kb / 1024, 1)


def measure(api: RuntimeAPI, name: str, n: int, invokes: int, log_path: str,
            replace_timeout: float = REPLACE_TIMEOUT) -> Dict[str, Any]:
    """Spawn one contestant with N pollers and take its figures (see the module docstring)."""
    command, extra = CONTESTANTS[name]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "LAMBDARIC_", "_LAMBDA", "_HANDLER"))}
    env.update(BASE_ENV)
    env.update(extra)
    env["AWS_LAMBDA_RUNTIME_API"] = "127.0.0.1:%d" % api.port
    env["AWS_LAMBDA_MAX_CONCURRENCY"] = str(n)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, env.get("PYTHONPATH")) if p)
    api.reset()
    with open(log_path, "ab") as log:
        log.write(("\n==== %s N=%d\n" % (name, n)).encode())
        log.flush()
        start = time.monotonic()
        proc = subprocess.Popen(command, cwd=APP_DIR, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, start_new_session=True)
    try:
        if api.wait_for(n, start + STARTUP_TIMEOUT) is None:
            raise Failed("%d of %d pollers waiting after %.0f s (exit %s, init errors %d)"
                         % (len(api.waiting_ids()), n, STARTUP_TIMEOUT, proc.poll(), len(api.init_errors)))
        with api.cond:
            firsts = sorted(api.first_wait.values())
        all_polling = (firsts[n - 1] - start) * 1000
        init = [smaps_rollup(pid) for pid in descendants(proc.pid)]

        warm_s = warm_up(api, n, invokes * n)
        if api.wait_for(n, time.monotonic() + REPLACE_TIMEOUT) is None:
            raise Failed("the pollers did not all come back after the warm-up")
        collected = collect_everywhere(api, n)
        tree = descendants(proc.pid)
        rollups = {pid: smaps_rollup(pid) for pid in tree}
        holders = socket_holders(tree, api.port)
        with api.cond:
            waiting_ports = {api.peer_ports[c] for c in api.waiting if c in api.peer_ports}
            served = dict(api.served)
        workers = [pid for pid, ports in holders.items() if ports & waiting_ports]
        uss = sum(r.get("Private_Clean", 0) + r.get("Private_Dirty", 0) for r in rollups.values())
        init_uss = sum(r.get("Private_Clean", 0) + r.get("Private_Dirty", 0) for r in init)
        rss_workers = [rollups[pid].get("Rss", 0) for pid in workers]
        replaces, posted = replace_times(api, n, proc.pid, replace_timeout)
        return {
            "contestant": name,
            "n": n,
            "all_polling_ms": round(all_polling, 1),
            "init_pss_total_mb": mb(sum(r.get("Pss", 0) for r in init)),
            "init_uss_worker_mb": mb(init_uss / n),
            "pss_total_mb": mb(sum(r.get("Pss", 0) for r in rollups.values())),
            "uss_total_mb": mb(uss),
            "uss_worker_mb": mb(uss / n),
            "rss_worker_mb": mb(statistics.mean(rss_workers)) if rss_workers else None,
            "parent_rss_mb": mb(rollups.get(proc.pid, {}).get("Rss", 0)) if proc.pid not in workers else None,
            "processes": len(tree),
            "worker_processes": len(workers),
            "pollers_per_worker_process": sorted({len(holders[pid] & waiting_ports) for pid in workers}),
            "replace_ms": round(statistics.median(replaces), 1) if replaces else None,
            "replace_ms_all": [round(r, 1) for r in replaces],
            "idle_kill_posts": posted,
            "busy_kill_post": busy_kill(api, proc.pid),
            "warmup_invokes": invokes * n,
            "warmup_s": round(warm_s, 2),
            "full_gc_workers": collected,
            "invokes_per_poller": [min(served.values()), max(served.values())] if served else [],
        }
    finally:
        kill_tree(proc)
        if not api.drain(10.0):
            sys.stderr.write("  (connections of %s N=%d still open 10 s after its kill)\n" % (name, n))


def warm_up(api: RuntimeAPI, n: int, total: int) -> float:
    """``total`` invokes, N kept in flight; each must be answered (not an error) by the handler."""
    start = time.monotonic()
    sent = done = 0
    last = start
    while done < total:
        while sent < total and sent - done < n:
            api.submit("warm-%d" % sent, api_event(sent))
            sent += 1
        with api.cond:
            while len(api.answers) == done:
                if time.monotonic() - last > INVOKE_TIMEOUT:
                    raise Failed("no answer for %.0f s in the warm-up (%d of %d answered)" % (INVOKE_TIMEOUT, done, total))
                api.cond.wait(1.0)
            bad = [(rid, a[0]) for rid, a in api.answers.items() if a[0] != "response"]
            done = len(api.answers)
        if bad:
            raise Failed("warm-up invokes failed: %s" % bad[:3])
        last = time.monotonic()
    return time.monotonic() - start


def collect_everywhere(api: RuntimeAPI, n: int, tries: int = 5) -> int:
    """A full GC in every worker before memory is read: N ``GET /gc/300`` invokes at once (each
    held 0.3 s, so each poller takes one), again for the pids not reached yet (a worker process
    with several pollers, or a poller that came back early); returns how many pids ran one."""
    pids: Set[int] = set()
    for attempt in range(tries):
        ids = ["gc-%d-%d" % (attempt, i) for i in range(n)]
        for rid in ids:
            api.submit(rid, api_event(0, 300, "gc"))
        end = time.monotonic() + INVOKE_TIMEOUT
        with api.cond:
            while not all(rid in api.answers for rid in ids):
                if time.monotonic() > end:
                    raise Failed("no answer to the GC invokes for %.0f s" % INVOKE_TIMEOUT)
                api.cond.wait(1.0)
            answers = [(api.answers[rid][0], api.gc_bodies.get(rid, b"")) for rid in ids]
        for kind, body in answers:
            if kind != "response":
                raise Failed("a GC invoke failed: %s" % kind)
            pids.add(json.loads(json.loads(body)["body"])["pid"])
        if len(pids) >= n:
            break
    if api.wait_for(n, time.monotonic() + REPLACE_TIMEOUT) is None:
        raise Failed("the pollers did not all come back after the GC invokes")
    time.sleep(0.1)
    return len(pids)


def waiting_workers(api: RuntimeAPI, root: int) -> Dict[int, List[int]]:
    """Descendants of ``root`` (not itself) -> the ids of their connections waiting on ``/next``."""
    holders = socket_holders([pid for pid in descendants(root) if pid != root], api.port)
    with api.cond:
        by_port = {api.peer_ports[c]: c for c in api.waiting if c in api.peer_ports}
    out = {pid: [by_port[p] for p in ports if p in by_port] for pid, ports in holders.items()}
    return {pid: conns for pid, conns in out.items() if conns}


def replace_times(api: RuntimeAPI, n: int, root: int, timeout: float) -> Tuple[List[float], List[str]]:
    """SIGKILL an idle worker ``REPLACE_KILLS`` times (a different one each time) and time until
    N connections wait on ``/next`` again, the killed one's not among them (inf: not replaced
    within ``timeout`` s, and no further kill); what was posted meanwhile (nothing expected)."""
    times: List[float] = []
    with api.cond:
        answered = set(api.answers)
    killed: Set[int] = set()
    for _ in range(REPLACE_KILLS):
        victims = {pid: conns for pid, conns in waiting_workers(api, root).items() if pid not in killed}
        if not victims:
            break  # no worker process apart from the runtime itself (a single-process runtime)
        victim = min(victims)
        killed.add(victim)
        start = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        ready = api.wait_for(n, start + timeout, exclude=victims[victim])
        if ready is None:
            times.append(float("inf"))
            break
        times.append((ready - start) * 1000)
        time.sleep(0.3)
    with api.cond:
        posted = [a[0] for rid, a in api.answers.items() if rid not in answered]
        posted += ["init/error"] * len(api.init_errors)
    return times, posted


def busy_kill(api: RuntimeAPI, root: int) -> Optional[str]:
    """SIGKILL a worker in the middle of an invoke (``GET /sleep/3000``); what was posted for
    that invoke within ``BUSY_WAIT`` s ("error:Runtime.ExitError" from lambdaric), else None."""
    request_id = "busy-0"
    api.submit(request_id, api_event(0, sleep_ms=3000))
    deadline = time.monotonic() + 10
    with api.cond:
        while request_id not in api.given and time.monotonic() < deadline:
            api.cond.wait(0.2)
        conn = api.given.get(request_id)
        port = api.peer_ports.get(conn) if conn is not None else None
    if port is None:
        return "not taken"
    time.sleep(0.2)  # in the handler by now
    holders = socket_holders([pid for pid in descendants(root) if pid != root], api.port)
    victims = [pid for pid, ports in holders.items() if port in ports]
    if not victims:
        return "no worker process"
    os.kill(victims[0], signal.SIGKILL)
    deadline = time.monotonic() + BUSY_WAIT
    with api.cond:
        while request_id not in api.answers and time.monotonic() < deadline:
            api.cond.wait(0.2)
        answer = api.answers.get(request_id)
    return answer[0] if answer else None


def aggregate(rounds: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One row from a contestant's rounds at one N: the median of each figure (the first
    round's for the rest), and every round's row."""
    good = [r for r in rounds if "error" not in r]
    if not good:
        return dict(rounds[0], rounds=len(rounds))
    row = dict(good[0])
    for key, value in good[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "n":
            values = [r[key] for r in good if r.get(key) is not None]
            median = statistics.median(values) if values else None
            row[key] = None if median is None else int(median) if isinstance(value, int) else round(median, 1)
    row["rounds"] = len(good)
    row["failed_rounds"] = [r["error"] for r in rounds if "error" in r]
    row["per_round"] = {key: [r.get(key) for r in good] for key in ("all_polling_ms", "pss_total_mb", "rss_worker_mb", "replace_ms")}
    return row


# ------------------------------------------------------------------------------ reporting


def ratios(rows: List[Dict[str, Any]], n: int) -> List[Dict[str, Any]]:
    """The goals' ratios at N (None where a figure is missing)."""
    at = {r["contestant"]: r for r in rows if r["n"] == n and "error" not in r}
    out = []
    for name, num, den, figure, limit in GOALS:
        a, b = at.get(num, {}).get(figure), at.get(den, {}).get(figure)
        value = round(a / b, 3) if a is not None and b else None
        out.append({"name": "%s (N=%d)" % (name, n), "value": value, "limit": limit,
                    "met": None if value is None else value <= limit})
    return out


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and value == float("inf"):
        return "not replaced"
    return "%.1f" % value if isinstance(value, float) else str(value)


def ratio(value: Optional[float]) -> str:
    return "-" if value is None else "%.3f" % value


def table(rows: List[Dict[str, Any]], ns: Sequence[int]) -> str:
    lines = []
    for n in ns:
        lines += ["", "### N = %d" % n, "",
                  "| contestant | PSS total MB | (after init) | USS per worker MB | RSS per worker MB | parent RSS MB "
                  "| all-polling ms | replace ms | processes |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            if r["n"] != n:
                continue
            if "error" in r:
                lines.append("| %s | failed: %s |||||||" % (r["contestant"], r["error"]))
                continue
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["contestant"], fmt(r["pss_total_mb"]), fmt(r["init_pss_total_mb"]), fmt(r["uss_worker_mb"]),
                fmt(r["rss_worker_mb"]), fmt(r["parent_rss_mb"]), fmt(r["all_polling_ms"]), fmt(r["replace_ms"]),
                r["processes"]))
    return "\n".join(lines)


def markdown(rows: List[Dict[str, Any]], ns: Sequence[int], goals: List[Dict[str, Any]], meta: Dict[str, Any]) -> str:
    out = ["# Managed Instances memory (issue 21)", "",
           "`python -m benchmarks.managed_memory%s` on %s (%s, Python %s, %d CPUs), %s, lambdaric at %s%s; "
           "%d warm-up invokes per worker; medians of %d round(s), the contestants alternating; load average "
           "%s before, %s after (other work on the machine moves the times, not the memory)." % (
               meta["args"], meta["machine"], meta["kernel"], meta["python"], meta["cpus"], meta["date"],
               meta["commit"], " (uncommitted: %s)" % ", ".join(u.strip() for u in meta["uncommitted"] if u) if any(meta["uncommitted"]) else "",
               meta["invokes"], meta["rounds"], *meta["loadavg_1min_before_after"]), "",
           "Handler: `benchmarks/lmi_app/app.py` (boto3 s3/dynamodb/sqs/sts clients and FastAPI behind mangum made "
           "at import; each invoke: an API Gateway HTTP API event through mangum to a FastAPI route that validates "
           "a pydantic body and presigns an S3 URL). PSS and USS (`Private_Clean + Private_Dirty`) are summed over "
           "the runtime's whole process tree from `/proc/PID/smaps_rollup` after the warm-up (N invokes in flight; "
           "then a full GC in each worker through the handler's `GET /gc/{ms}` route); *(after init)* is the PSS total when "
           "all N first polled. USS per worker = that sum / N (the parent's share included); RSS per worker = the "
           "mean `Rss:` of the processes holding a `/next` connection; parent = the runtime process itself "
           "(lambdaric's supervisor). all-polling: spawn to N distinct connections waiting on `/next`. replace: "
           "SIGKILL of an idle worker until N connections wait again, the killed one's not among them (median of "
           "%d kills)." % REPLACE_KILLS]
    out.append(table(rows, ns))
    out += ["", "## Goals (issue 21: stated at N=16)", "", "| ratio | measured | goal | met |", "|---|---:|---:|---|"]
    for g in goals:
        out.append("| %s | %s | <= %s | %s |" % (g["name"], ratio(g["value"]), g["limit"],
                                                   {True: "yes", False: "no", None: "-"}[g["met"]]))
    out += ["", "## Per run", ""]
    for r in rows:
        if "error" in r:
            out.append("- %s N=%d: failed: %s" % (r["contestant"], r["n"], r["error"]))
            continue
        out.append("- %s N=%d: %d process(es), %d holding `/next` connections (%s each); USS per worker after "
                   "init %.1f MB; warm-up %d invokes in %.2f s (%s per poller); replace %s ms; posted after the idle "
                   "kills: %s; for an invoke held by a killed worker: %s%s"
                   % (r["contestant"], r["n"], r["processes"], r["worker_processes"],
                      "/".join(map(str, r["pollers_per_worker_process"])), r["init_uss_worker_mb"],
                      r["warmup_invokes"], r["warmup_s"], "-".join(map(str, r["invokes_per_poller"])),
                      " / ".join(", ".join(fmt(x) for x in kills) for kills in r.get("replace_runs", [r["replace_ms_all"]])),
                      ", ".join(r["idle_kill_posts"]) or "nothing", r["busy_kill_post"] or "nothing",
                      "; failed rounds: %s" % r["failed_rounds"] if r.get("failed_rounds") else ""))
    return "\n".join(out) + "\n"


def git(*args: str) -> str:
    """What the runtime measured was (the editable install runs the working tree)."""
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def finite(value: Any) -> Any:
    """JSON without Infinity: a worker never replaced is written "not replaced"."""
    if isinstance(value, float) and value == float("inf"):
        return "not replaced"
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.managed_memory", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI: N=4, %d invokes per worker, one round, guarded" % QUICK_INVOKES)
    parser.add_argument("--n", help="comma-separated N values (default 4,8,16; --quick: 4)")
    parser.add_argument("--invokes", type=int, help="warm-up invokes per worker (default %d; --quick: %d)" % (FULL_INVOKES, QUICK_INVOKES))
    parser.add_argument("--rounds", type=int, help="rounds (default %d; --quick: 1)" % FULL_ROUNDS)
    parser.add_argument("--only", help="comma-separated contestants (default: all)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write benchmarks/results/")
    args = parser.parse_args(argv)
    ns = tuple(int(x) for x in args.n.split(",")) if args.n else (QUICK_N if args.quick else FULL_N)
    if any(not 1 <= n <= 64 for n in ns):
        parser.error("--n: each value from 1 to 64")
    invokes = args.invokes or (QUICK_INVOKES if args.quick else FULL_INVOKES)
    rounds = args.rounds or (1 if args.quick else FULL_ROUNDS)
    names = args.only.split(",") if args.only else list(CONTESTANTS)
    for name in names:
        if name not in CONTESTANTS:
            parser.error("--only: unknown contestant %r (%s)" % (name, ", ".join(CONTESTANTS)))
    missing = [m for m in HANDLER_DEPS if importlib.util.find_spec(m) is None]
    if missing:
        # the repository's rule for peers: skipped, saying so; a failure under CI=true
        print("managed_memory: the handler needs %s (pip install %s): %s"
              % (", ".join(missing), " ".join(missing), "FAILED (CI=true)" if os.environ.get("CI") == "true" else "skipped"))
        return 1 if os.environ.get("CI") == "true" else 0
    if "awslambdaric" in names and importlib.util.find_spec("awslambdaric") is None:
        print("managed_memory: awslambdaric is not installed (pip install awslambdaric): %s"
              % ("FAILED (CI=true)" if os.environ.get("CI") == "true" else "its rows are skipped"))
        if os.environ.get("CI") == "true":
            return 1
        names.remove("awslambdaric")
    log_path = os.path.join(HERE, ".cache", "managed_memory.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    open(log_path, "w").close()
    load_before = os.getloadavg()
    api = RuntimeAPI()
    runs: Dict[Tuple[str, int], List[Dict[str, Any]]] = {}
    try:
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]  # who goes first alternates
            for n in ns:
                for name in order:
                    sys.stderr.write("round %d, %s N=%d ...\n" % (r + 1, name, n))
                    try:
                        row = measure(api, name, n, invokes, log_path,
                                      QUICK_REPLACE_TIMEOUT if args.quick else REPLACE_TIMEOUT)
                    except Failed as exc:
                        row = {"contestant": name, "n": n, "error": str(exc)}
                    runs.setdefault((name, n), []).append(row)
                    sys.stderr.write("  %s\n" % json.dumps(finite(row)))
    finally:
        api.close()
    rows = []
    for n in ns:
        for name in names:
            row = aggregate(runs[(name, n)])
            row["replace_runs"] = [r["replace_ms_all"] for r in runs[(name, n)] if "error" not in r]
            rows.append(row)
    goals = [g for n in ns for g in ratios(rows, n)]
    meta = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": platform.machine(),
            "kernel": platform.release(), "python": platform.python_version(), "cpus": os.cpu_count() or 0,
            "invokes": invokes, "rounds": rounds,
            "loadavg_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)], "ns": list(ns), "args": "".join(" " + a for a in (sys.argv[1:] if argv is None else argv)),
            "log": os.path.relpath(log_path, REPO), "commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted": git("status", "--porcelain", "--", "lambdaric").split("\n")}
    print(table(rows, ns))
    print()
    for g in goals:
        print("%-55s %8s   goal <= %s" % (g["name"], ratio(g["value"]), g["limit"]))
    if not args.no_write:
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, "managed_memory.json"), "w") as f:
            json.dump(finite({"meta": meta, "rows": rows, "goals": goals}), f, indent=1)
            f.write("\n")
        with open(os.path.join(RESULTS, "managed_memory.md"), "w") as f:
            f.write(markdown(rows, ns, goals, meta))
    failed = [r for r in rows if "error" in r or r.get("failed_rounds")]
    if failed:
        print("FAILED runs: %s" % "; ".join("%s N=%d: %s" % (r["contestant"], r["n"], r.get("error") or r["failed_rounds"])
                                            for r in failed))
    if args.quick:
        return 1 if failed or not guard(rows) else 0
    return 0


def guard(rows: List[Dict[str, Any]]) -> bool:
    """--quick's guard: preload must share most of the import (a generous bound)."""
    name, limit = QUICK_GUARD
    at = {r["contestant"]: r for r in rows if r["n"] == 4 and "error" not in r}
    if "lambdaric-preload" not in at or "lambdaric" not in at:
        print("guard %s: not measured (needs N=4 and both lambdaric contestants)" % name)
        return True
    value = float(at["lambdaric-preload"]["pss_total_mb"]) / float(at["lambdaric"]["pss_total_mb"])
    ok = value < limit
    print("guard %s: %.3f (limit %s): %s" % (name, value, limit, "ok" if ok else "FAILED"))
    return ok


if __name__ == "__main__":
    sys.exit(main())
