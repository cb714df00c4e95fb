"""Lambda Managed Instances: one runtime serving N invokes at once (``AWS_LAMBDA_MAX_CONCURRENCY=N``).

Lambda refuses an invoke when no poller of the environment is waiting on ``/next``, so the
runtime keeps N pollers, each with its own connection to the Runtime API and its own
blocking ``/next`` loop. ``LAMBDARIC_CONCURRENCY_MODE`` picks how they run:

``process`` (the default, as the managed Python runtime)
    A supervisor forks N workers *before* the handler is imported; each worker imports it,
    connects and polls. Forking before the import is deliberate: whatever the function
    opens at import time (database connections, sockets, threads) then belongs to one
    worker and is never shared by processes that would corrupt each other's streams, and
    a replacement worker starts from the same clean state as the first ones. The
    supervisor is single-threaded and never runs user code. It knows which request each
    worker holds (a shared memory slot per worker: no syscall per invoke), so when a
    worker dies mid-invoke (``os._exit``, a signal, a segfault) it posts
    ``Runtime.ExitError`` for that request and forks a replacement. A slot whose workers
    die ``DEATHS_PER_SLOT`` times within ``DEATH_WINDOW`` seconds is given up; the
    supervisor exits non-zero when no worker is left. SIGTERM (and SIGINT) is forwarded
    to every worker and the supervisor waits for them, then dies of the same signal.
    Workers kill themselves if the supervisor disappears (no orphans).
``thread``
    One process imports the handler once; N threads poll, each with its own transport.
    For handlers that release the GIL (I/O) and share state on purpose.
``asyncio``
    As ``thread``, but coroutine results of ``async def`` handlers run on ONE event loop
    shared by all pollers (so loop-bound clients made at import work), many invokes in
    flight in one process. The loop is the main thread's event loop during init (a module
    may ``run_until_complete`` on it), then runs on its own thread. Sync handlers run on
    the poller threads.

In every mode: no ``_X_AMZN_TRACE_ID`` writes (one process-wide variable cannot hold N
trace ids; request, tenant and trace ids live in contextvars, see :func:`current_trace_id`),
``/next`` failures back off and retry (5 tries, 0.1 s doubling, as the official client)
before a poller gives up, a failed POST is logged and the poller carries on, and only one
``/init/error`` is posted (a 403 for it means another poller got further: not an error).
With ``_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET`` set, each worker process connects two
stream sockets to that unix socket and puts them on fd 1 and fd 2 (in the thread modes the
one process does it once).

Graceful shutdown (:mod:`lambdaric.shutdown`) works in every mode. The no-op extension that
has Lambda send SIGTERM is registered once per execution environment, before any poller's
first ``/next`` (which closes the registration): in the thread modes by the one process
after init; in process mode by the first worker whose init succeeded (the supervisor never
imports the handler, so only a worker knows whether it used ``on_shutdown``), while the
other workers wait for it before their first ``/next`` (:meth:`Supervisor.sigterm_extension`).
On SIGTERM each process that imported the handler runs its ``on_shutdown`` callbacks once:
every worker (the supervisor forwards the signal), or the one process.

This module is imported only when ``AWS_LAMBDA_MAX_CONCURRENCY`` is set.
"""
from __future__ import annotations

import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, List, Optional, Tuple

from . import logsink, marshal, protocol
from .client import RuntimeClient, retries
from .console import RuntimeExit, describe_status, die_of, exit_code, os_error_text, say
from .errors import exit_error
from .logsink import flush_std_streams
from .protocol import user_agent
from .runtime import Runtime, setup_output, sigterm_extension
from .transport import TransportError, create

MODES = ("process", "thread", "asyncio")
#: A worker slot is given up when its workers died this many times ...
DEATHS_PER_SLOT = 5
#: ... within this many seconds.
DEATH_WINDOW = 60.0
#: The unix socket each worker connects its stdout and stderr to (Managed Instances).
LOG_SOCKET_VAR = "_LAMBDA_TELEMETRY_LOG_FD_PROVIDER_SOCKET"
#: Seconds a worker waits for another one to register the SIGTERM extension before its
#: first ``/next`` (more than the register call's own timeout, 2 s).
EXTENSION_WAIT = 3.0
#: Standard modules nearly every function imports (the SDK among them: boto3 needs ssl, http.client
#: and email): imported once by the supervisor before it forks, without preload, so that their memory
#: is shared by the workers instead of copied into each. They open nothing and start no thread.
#: ``LAMBDARIC_SHARED_IMPORTS``: another comma-separated list, or 0 for none.
SHARED_IMPORTS = ("re", "typing", "enum", "json", "logging", "decimal", "datetime", "traceback", "threading",
                  "base64", "hashlib", "uuid", "socket", "urllib.parse", "ssl", "http.client", "email.parser")

def current_trace_id() -> "Optional[str]":
    """The X-Ray trace header of the invoke this code runs for (``_X_AMZN_TRACE_ID`` is not
    written under Managed Instances, where invokes overlap)."""
    return logsink.trace_id_var.get()


# ---------------------------------------------------------------------------------- settings


def max_concurrency(raw: str) -> int:
    """``AWS_LAMBDA_MAX_CONCURRENCY`` as a number of pollers; ValueError with a clear message."""
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or int(text) < 1 or int(text) > 4096:
        raise ValueError("AWS_LAMBDA_MAX_CONCURRENCY must be a whole number from 1 to 4096, not %r" % raw[:50])
    return int(text)


def concurrency_mode(environ: "Dict[str, str]") -> str:
    mode = (environ.get("LAMBDARIC_CONCURRENCY_MODE") or "process").strip().lower()
    if mode not in MODES:
        raise ValueError(
            "LAMBDARIC_CONCURRENCY_MODE must be one of %s, not %r" % (", ".join(MODES), environ["LAMBDARIC_CONCURRENCY_MODE"][:50])
        )
    return mode


def run_managed_instances(handler_name: str, env: "Dict[str, str]") -> int:
    """Serve with ``AWS_LAMBDA_MAX_CONCURRENCY`` pollers (any value >= 1: the Managed
    Instances behaviour does not depend on N); returns the exit code."""
    try:
        n = max_concurrency(env["AWS_LAMBDA_MAX_CONCURRENCY"])
        mode = concurrency_mode(env)
    except ValueError as exc:
        say(str(exc))
        return 2
    log_socket = env.pop(LOG_SOCKET_VAR, None)
    os.environ.pop(LOG_SOCKET_VAR, None)  # the function's own subprocesses must not connect to it
    telemetry_fd = logsink.telemetry_fd_from(env)
    if mode == "process":
        preload = False
        if env.get("LAMBDARIC_PRELOAD"):
            from .preload import enabled

            try:
                preload = enabled(env)
            except ValueError as exc:
                say(str(exc))
                return 2
        return Supervisor(handler_name, env, n, log_socket, telemetry_fd, preload).run()
    return run_threads(handler_name, env, n, mode, log_socket, telemetry_fd)


def redirect_output(path: str) -> None:
    """Connect two stream sockets to the unix socket ``path`` and put them on fd 1 and 2.
    On failure, say why and keep the current stdout and stderr (never lose the output)."""
    import _socket

    flush_std_streams()
    socks = []
    try:
        for _ in (1, 2):
            sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
            socks.append(sock)
            sock.connect(path)
        os.dup2(socks[0].fileno(), 1)
        os.dup2(socks[1].fileno(), 2)
    except OSError as exc:
        say("cannot connect stdout and stderr to %s=%s: %s; keeping them as they are" % (LOG_SOCKET_VAR, path, os_error_text(exc)))
    finally:
        for sock in socks:
            sock.close()


# ---------------------------------------------------------------------------------- one poller


def _make_runtime(env: "Dict[str, str]", sink: "logsink.StreamSink", shared_loop: "Any" = None,
                  survive_exit: bool = False, init_token: "Optional[Callable[[], bool]]" = None) -> Runtime:
    """A poller's runtime with its own transport (connection): transports hold per-connection
    state and are never shared between pollers. Managed Instances' rules: ``/next`` retried
    as the official client does, a failed answer said and the poller carries on, no
    ``_X_AMZN_TRACE_ID`` writes, at most one ``/init/error`` among pollers (``init_token``)."""
    next_retry, post_retry = retries(env, managed=True)
    transport = create(env["AWS_LAMBDA_RUNTIME_API"], user_agent(), env.get("LAMBDARIC_TRANSPORT"))
    client = RuntimeClient(transport, sink, next_retry, post_retry, init_token)
    return Runtime(client, env, trace_env=False, shared_loop=shared_loop, survive_exit=survive_exit)


# ---------------------------------------------------------------------------------- thread modes


def run_threads(handler_name: str, env: "Dict[str, str]", n: int, mode: str,
                log_socket: "Optional[str]", telemetry_fd: "Optional[int]") -> int:
    """``thread`` and ``asyncio`` modes: init once, then N poller threads; the main thread
    waits (and runs signal handlers). A poller that gives up ends the process."""
    import threading

    if log_socket:
        redirect_output(log_socket)
    sink = logsink.StreamSink(logsink.LogConfig(env), telemetry_fd=telemetry_fd)
    try:
        first = _make_runtime(env, sink, survive_exit=True)
    except (ValueError, RuntimeError) as exc:
        say(str(exc))
        return 2
    setup_output(sink)
    if n > 1:
        logsink.overlapping_invokes()  # no process-wide request id: it would name another invoke
    loop = None
    if mode == "asyncio":
        import asyncio

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)  # the module may use it during init
        first.shared_loop = loop
    try:
        first.init(handler_name)
    except RuntimeExit as exc:
        return exc.code
    sigterm_extension(env, env["AWS_LAMBDA_RUNTIME_API"])  # once, before any poller's /next
    if loop is not None:
        threading.Thread(target=loop.run_forever, name="lambdaric-asyncio", daemon=True).start()
    ended: "List[int]" = []
    done = threading.Event()

    def poller(runtime: Runtime) -> None:
        code = 1
        try:
            runtime.serve()
        except RuntimeExit as exc:
            code = exc.code
        except BaseException as exc:  # pragma: no cover - a bug: say it, end the process
            say("poller failed: %s: %s" % (type(exc).__name__, exc))
        ended.append(code)
        done.set()

    runtimes = [first] + [_make_runtime(env, sink, shared_loop=loop, survive_exit=True) for _ in range(n - 1)]
    for i, runtime in enumerate(runtimes):
        runtime.handler = first.handler
        threading.Thread(target=poller, args=(runtime,), name="lambdaric-poller-%d" % i, daemon=True).start()
    done.wait()
    flush_std_streams()
    return ended[0]


# ---------------------------------------------------------------------------------- process mode

_STARTING, _READY, _BUSY, _INIT_REPORTED = 0, 1, 2, 3
_SLOT = 1024  # bytes per worker: state, length (2 bytes), request id NUL invocation id

class RestartPolicy:
    """Whether a worker slot whose worker died gets another one: yes, unless it died
    ``limit`` times within ``window`` seconds (a crash loop; the slot is given up). Pure:
    the caller says when each death happened."""

    def __init__(self, n: int, limit: int = DEATHS_PER_SLOT, window: float = DEATH_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self.deaths: "List[List[float]]" = [[] for _ in range(n)]

    def restart(self, index: int, now: float) -> bool:
        """Record a death of slot ``index`` at ``now``; True when the slot gets a new worker."""
        recent = [t for t in self.deaths[index] if now - t < self.window] + [now]
        self.deaths[index] = recent
        return len(recent) < self.limit

    def recent(self, index: int) -> int:
        return len(self.deaths[index])


class Slots:
    """Which request each worker holds, in memory shared with the supervisor: written by the
    worker around each invoke (two slice stores, no syscall), read by the supervisor when
    the worker has died."""

    def __init__(self, n: int) -> None:
        import mmap

        self.map = mmap.mmap(-1, n * _SLOT)  # anonymous, MAP_SHARED: survives fork

    def state(self, index: int) -> int:
        return self.map[index * _SLOT]

    def set_state(self, index: int, state: int) -> None:
        self.map[index * _SLOT] = state

    def hold(self, index: int, inv: "protocol.Invocation") -> None:
        data = inv.request_id.encode("latin-1")
        if inv.invocation_id:
            extra = b"\0" + inv.invocation_id.encode("latin-1", "replace")
            if len(data) + len(extra) <= _SLOT - 3:
                data += extra
        at = index * _SLOT
        self.map[at + 3 : at + 3 + len(data)] = data
        self.map[at + 1 : at + 3] = len(data).to_bytes(2, "big")
        self.map[at] = _BUSY  # last: the supervisor never sees a half-written id as held

    def held(self, index: int) -> "Optional[Tuple[str, Optional[str]]]":
        at = index * _SLOT
        if self.map[at] != _BUSY:
            return None
        size = int.from_bytes(self.map[at + 1 : at + 3], "big")
        request_id, _, invocation_id = bytes(self.map[at + 3 : at + 3 + size]).partition(b"\0")
        return request_id.decode("latin-1"), invocation_id.decode("latin-1") or None


class Supervisor:
    """The parent of the process mode (see module docstring)."""

    def __init__(self, handler_name: str, env: "Dict[str, str]", n: int,
                 log_socket: "Optional[str]", telemetry_fd: "Optional[int]", preload: bool = False) -> None:
        self.handler_name = handler_name
        #: LAMBDARIC_PRELOAD: the handler is imported here, once, and the workers forked from it
        self.preload = preload
        self.handler: "Optional[Callable[..., Any]]" = None  # the preloaded handler
        self.sink: "Optional[logsink.StreamSink]" = None  # the preloading supervisor's, inherited
        self.threads_said = False
        self.worker_signals: "Dict[int, Any]" = {}  # signal -> the handler a worker starts with
        self.env = env
        self.n = n
        self.log_socket = log_socket
        self.telemetry_fd = telemetry_fd
        self.slots = Slots(n)
        self.pids: "Dict[int, int]" = {}  # pid -> slot
        self.restarts = RestartPolicy(n)
        self.parent = os.getpid()
        self.stopping = 0  # the signal being forwarded, once one came
        self.ending = False  # init failed: the workers are being stopped
        self.ever_ready = False
        self.exit_code = 0
        # one byte: the worker that reads it posts /init/error, the others stay quiet
        self.token_r, token_w = os.pipe()
        os.write(token_w, b"x")
        os.close(token_w)
        os.set_blocking(self.token_r, False)
        # held open by the supervisor only: EOF tells a worker that it is gone
        self.life_r, self.life_w = os.pipe()
        # the SIGTERM extension: one byte for the worker that registers it, a shared flag
        # set once it has (or has decided not to)
        self.extension_r, extension_w = os.pipe()
        os.write(extension_w, b"x")
        os.close(extension_w)
        os.set_blocking(self.extension_r, False)
        import mmap

        self.extension_done = mmap.mmap(-1, 1)

    # ---- running

    def run(self) -> int:
        import _signal

        if self.preload:
            code = self._preload()
            if code is not None:
                return code
        else:
            import_shared(self.env)
            import gc

            gc.freeze()  # the workers' collections then never write to (and so copy) the supervisor's objects
        for signum in (_signal.SIGTERM, _signal.SIGINT):
            _signal.signal(signum, self._on_signal)
        for index in range(self.n):
            self.start(index)
        while self.pids:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:  # pragma: no cover - no child left that we knew of
                break
            slot: "Optional[int]" = self.pids.pop(pid, None)
            if slot is not None:  # else: an orphan reparented to us (we are PID 1): reaped
                self.on_death(slot, status)
        flush_std_streams()
        if self.stopping:
            die_of(self.stopping)
        return self.exit_code

    def _preload(self) -> "Optional[int]":
        """Import the handler here, once, as a worker would (its init error posted, once),
        then freeze the GC generations for the forks; None when it worked, else the exit
        code. The connection used is closed: no worker may inherit it."""
        from .preload import freeze

        if self.log_socket:
            redirect_output(self.log_socket)
        sink = logsink.StreamSink(logsink.LogConfig(self.env), telemetry_fd=self.telemetry_fd)
        try:
            runtime = _make_runtime(self.env, sink, init_token=self._take_token)
        except (ValueError, RuntimeError) as exc:
            say(str(exc))
            return 2
        setup_output(sink, flusher=False)
        try:
            runtime.init(self.handler_name)
        except RuntimeExit as exc:
            return exc.code
        finally:
            runtime.client.transport.close()
        self.sink, self.handler = sink, runtime.handler
        import _signal

        # what the function (or lambdaric, for it) installed at import: the workers get these back
        for signum in (_signal.SIGTERM, _signal.SIGINT):
            handler = _signal.getsignal(signum)
            if handler is not None:  # (None: installed outside Python; the default then)
                self.worker_signals[signum] = handler
        freeze()
        return None

    def start(self, index: int) -> None:
        self.slots.set_state(index, _STARTING)
        if self.preload and not self.threads_said:
            from .preload import threads_alive

            alive = threads_alive()
            if alive:
                self.threads_said = True
                say("LAMBDARIC_PRELOAD: thread(s) %s alive in the supervisor when it forks the workers: "
                    "they do not exist in the workers, and a lock one of them holds stays held there; "
                    "start threads in an after-fork hook (lambdaric.register_after_fork)" % ", ".join(alive))
        flush_std_streams()  # or the child would write our buffered output again
        pid = os.fork()
        if pid == 0:
            self._child(index)  # never returns
        self.pids[pid] = index
        if self.stopping:  # the signal came while forking
            _kill(pid, self.stopping)

    def _on_signal(self, signum: int, _frame: "Any") -> None:
        if os.getpid() != self.parent:  # a worker before it reset its handlers: as SIG_DFL
            flush_std_streams()
            die_of(signum)
        self.stopping = signum
        for pid in list(self.pids):
            _kill(pid, signum)

    def on_death(self, index: int, status: int) -> None:
        code, how = describe_status(status)
        state = self.slots.state(index)
        held = self.slots.held(index)
        self.slots.set_state(index, _STARTING)
        self.ever_ready = self.ever_ready or state in (_READY, _BUSY) or any(
            self.slots.state(i) in (_READY, _BUSY) for i in self.pids.values()
        )
        if held is not None:
            self.report(held[0], held[1], how)
        if self.stopping or self.ending:
            return
        if not self.ever_ready:
            # init failed: not replaced; once the worker that posted /init/error is done,
            # the environment cannot start (the others may still be importing): end them
            self.exit_code = code if code > 0 else 1
            if state != _INIT_REPORTED and code != 1:  # not an init error it logged: say how it ended
                say("worker %d ended during init (%s); not replaced" % (index, how))
            if state == _INIT_REPORTED:
                self.ending = True
                for pid in list(self.pids):
                    _kill(pid, 15)
            return
        if not self.restarts.restart(index, time.monotonic()):
            left = len(self.pids)
            say("worker %d ended (%s): %d deaths within %d s, not replaced; %d worker(s) left"
                % (index, how, self.restarts.recent(index), int(self.restarts.window), left))
            if not left:
                self.exit_code = code if code > 0 else 1
            return
        say("worker %d ended (%s)%s; starting another" % (index, how, " holding %s" % held[0] if held else ""))
        self.start(index)

    def report(self, request_id: str, invocation_id: "Optional[str]", how: str) -> None:
        """Post Runtime.ExitError for the request a dead worker held (one attempt: a worker
        that died during a shutdown must not hold the supervisor up). The error record is
        logged first, so it comes with the invoke's log, except during a shutdown by signal:
        a worker then often dies between posting its answer and marking its slot free (the
        signal interrupts its wait for the 202), so the record is logged only if the error is
        accepted, and a 403 (answered already) is not an error."""
        report = exit_error(how, request_id)
        sink = logsink.StreamSink(logsink.LogConfig(self.env), telemetry_fd=self.telemetry_fd)
        if not self.stopping:
            logsink.log_uncaught(sink, report.error)
        cause = marshal.dumps_ascii(report.xray_cause())
        transport = None
        status = 0
        try:
            transport = create(self.env["AWS_LAMBDA_RUNTIME_API"], user_agent(), self.env.get("LAMBDARIC_TRANSPORT"))
            status, answer = transport.fail(
                request_id, report.body(), report.error_type,
                cause if len(cause) < protocol.MAX_XRAY_CAUSE else None, invocation_id,
            )
            if status != 202 and not (self.stopping and status == 403):
                say("POST /error for %s answered %d: %s" % (request_id, status, protocol.error_message_from_body(answer)))
        except (TransportError, protocol.ProtocolError, ValueError, RuntimeError) as exc:
            say("POST /error for %s failed: %s" % (request_id, exc))
        finally:
            if transport is not None:
                transport.close()  # no connection of ours may be inherited by the next worker
        if self.stopping and status != 403:
            logsink.log_uncaught(sink, report.error)

    # ---- a worker

    def _child(self, index: int) -> None:
        code = 1
        try:
            import _signal

            _signal.signal(_signal.SIGTERM, self.worker_signals.get(_signal.SIGTERM, _signal.SIG_DFL))
            _signal.signal(_signal.SIGINT, self.worker_signals.get(_signal.SIGINT, _signal.default_int_handler))
            os.close(self.life_w)
            code = self._serve(index)
        except SystemExit as exc:
            code = exit_code(exc)
        except BaseException as exc:  # pragma: no cover - a bug: say it
            say("worker %d failed: %s: %s" % (index, type(exc).__name__, exc))
        finally:
            try:
                import atexit

                atexit._run_exitfuncs()  # the function's atexit hooks, as at a normal exit
            finally:
                flush_std_streams()
                os._exit(code)

    def _serve(self, index: int) -> int:
        _watch_parent(self.life_r)
        if self.log_socket:
            redirect_output(self.log_socket)
        env = self.env
        sink = self.sink or logsink.StreamSink(logsink.LogConfig(env), telemetry_fd=self.telemetry_fd)
        try:
            runtime = _make_runtime(env, sink, init_token=self._take_token)
        except (ValueError, RuntimeError) as exc:
            say(str(exc))
            return 2
        setup_output(sink)
        slots = self.slots
        try:
            runtime.init(self.handler_name, self._after_fork if self.handler is not None else None)
        except RuntimeExit as exc:
            if runtime.client.init_reported:
                slots.set_state(index, _INIT_REPORTED)
            return exc.code
        self.sigterm_extension()
        slots.set_state(index, _READY)
        try:
            runtime.serve(lambda inv: slots.hold(index, inv), lambda: slots.set_state(index, _READY))
        except RuntimeExit as exc:
            return exc.code
        return 0  # pragma: no cover - poll never returns

    def _after_fork(self) -> "Callable[..., Any]":
        """A worker forked from the preloaded supervisor: reset what the fork carried over
        that must not be shared, run the function's after-fork hooks, hand over the handler."""
        from .preload import reset_in_worker, run_after_fork_hooks

        logsink.end_invoke()
        reset_in_worker()
        run_after_fork_hooks()
        assert self.handler is not None
        return self.handler

    def _take_token(self, fd: "Optional[int]" = None) -> bool:
        try:
            return os.read(self.token_r if fd is None else fd, 1) == b"x"
        except BlockingIOError:
            return False

    def sigterm_extension(self) -> None:
        """In a worker whose init succeeded, before its first ``/next``: the first such worker
        registers the SIGTERM extension when wanted (on_shutdown used, or
        LAMBDARIC_SIGTERM_EXTENSION=1); the others wait until it is done, as their ``/next``
        would close the registration. The extension's connection lives in that worker."""
        if self._take_token(self.extension_r):
            try:
                sigterm_extension(self.env, self.env["AWS_LAMBDA_RUNTIME_API"])
            finally:
                self.extension_done[0] = 1
            return
        end = time.monotonic() + EXTENSION_WAIT
        while not self.extension_done[0] and time.monotonic() < end:
            time.sleep(0.002)


def import_shared(env: "Dict[str, str]") -> "List[str]":
    """Import :data:`SHARED_IMPORTS` (or ``LAMBDARIC_SHARED_IMPORTS``) here, before the forks;
    returns the names imported. One that fails to import is skipped: a worker meets it again."""
    import importlib

    raw = env.get("LAMBDARIC_SHARED_IMPORTS")
    names = SHARED_IMPORTS if raw is None else tuple(n.strip() for n in raw.split(",") if n.strip() not in ("", "0"))
    done = []
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # (an ImportError, or a module that fails): left to the workers
            continue
        done.append(name)
    return done


def _watch_parent(life_r: int) -> None:
    """In a worker: when the supervisor is gone (EOF on the pipe only it writes to), end:
    SIGTERM first (the function's handler, the log flush), SIGKILL 2 s later."""
    import _thread

    def watch() -> None:
        while True:
            try:
                if not os.read(life_r, 1):
                    break
            except InterruptedError:  # pragma: no cover
                continue
            except OSError:
                break
        flush_std_streams()
        _kill(os.getpid(), 15)
        time.sleep(2.0)
        _kill(os.getpid(), 9)

    _thread.start_new_thread(watch, ())


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass
