"""A sandbox: one child runtime process and the strict Runtime API it talks to.

Each sandbox listens on its own loopback port (as each Lambda execution environment has
its own Runtime API), so a pool of them never mixes up invocations. The Runtime API side
keeps the real one's state machine: 400 ``InvalidRequestID`` for an id it never gave out,
403 ``InvalidStateTransition`` for a second answer or an init error after ``/next``,
410 for an answer after the timeout, 413 for a buffered response over 6291556 bytes.
The same address serves the Extensions API (:mod:`.extensions`). A runtime is stopped as
Lambda ends a sandbox: SIGTERM, then SIGKILL after a short grace (:data:`SIGTERM_GRACE`), so
its shutdown code (``lambdaric.on_shutdown``) runs locally too.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import os
import re
import signal
import socket
import time
from typing import Any, Callable, Dict, List, Optional, Set

from .. import faults, protocol
from ..console import describe_exit
from . import extensions, http
from .invocation import Invocation, Outcome, error_json, peak_rss_mb

_RUNTIME_PREFIX = "/2018-06-01/runtime/"
_REQUEST_ID = re.compile(r"[A-Za-z0-9-]{1,64}\Z")
_ERROR_TYPE = re.compile(r"[\x21-\x7e]{1,256}\Z")
#: How long a runtime may take to initialise before its first /next, at least: Lambda's 10 s
#: init limit, which a shorter function timeout does not shorten (a longer one lengthens it:
#: Lambda runs an init that timed out again within the first invoke's timeout).
MIN_INIT_TIMEOUT = 10.0
#: errno values of a start that failed for want of resources (the emulator's limits, not the
#: function's fault): descriptors, processes, memory.
_RESOURCE_ERRNOS = frozenset((errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.ENOMEM, errno.ENOBUFS))
#: File descriptors that must be free to start a sandbox: its listening socket, the runtime's
#: pipes (and, while it is spawned, the child's ends and exec's error pipe), the runtime's
#: connections to its API, with room to spare. Below this, a runtime might start and then never
#: be reached (its connections left in the backlog: an init timeout 10 s later), so none starts.
START_FDS = 16


class InvalidEntrypoint(Exception):
    """The runtime command cannot be run: missing, not executable, not a program. The
    function's fault: Lambda answers ``Runtime.InvalidEntrypoint``; the text is Lambda's
    (``fork/exec PATH: no such file or directory``)."""


class SandboxUnavailable(Exception):
    """No sandbox could be made for want of resources (file descriptors, processes,
    memory): a failure of the emulator, not of the function."""
#: Seconds between SIGTERM and SIGKILL when a runtime is stopped: Lambda's share for the
#: runtime when only internal extensions are registered.
SIGTERM_GRACE = 0.5


class SandboxConfig:
    """How to start a runtime: its command, environment and function settings."""

    def __init__(
        self,
        command: List[str],
        env: Dict[str, str],
        cwd: str,
        memory_mb: int,
        echo: Callable[[bytes], None],
        capacity: int = 1,
        snapstart: bool = False,
        init_timeout: float = MIN_INIT_TIMEOUT,
    ) -> None:
        self.command = command
        self.env = env
        self.cwd = cwd
        self.memory_mb = memory_mb
        self.echo = echo
        #: invocations one runtime serves at once: 1, or N with Managed Instances
        self.capacity = capacity
        self.snapstart = snapstart
        #: seconds a runtime may take to reach its first /next (or the invoke's timeout if longer)
        self.init_timeout = init_timeout


class Sandbox:
    """One runtime process; runs one invocation at a time, or up to ``capacity`` at once
    under Managed Instances (see module docstring)."""

    def __init__(self, config: SandboxConfig, index: int) -> None:
        self.config = config
        self.index = index
        self.proc: Optional[asyncio.subprocess.Process] = None
        self.server: Optional[asyncio.base_events.Server] = None
        self.address = ""
        self.dead = False
        self.recycle = False  # restart after the current invocation (--watch)
        self.saw_next = False
        self.spawned_at = 0.0
        self.init_ms: Optional[float] = None  # reported once, with the first invocation
        self.inflight: Dict[str, Invocation] = {}
        self.restored = False
        self._offers: "asyncio.Queue[Invocation]" = asyncio.Queue()
        self._done: Dict[str, str] = {}
        self._init_log = bytearray()
        self._pumps: List["asyncio.Task[None]"] = []
        self._exit_task: Optional["asyncio.Task[None]"] = None
        self.extensions = extensions.ExtensionsAPI(config.env)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Open this sandbox's Runtime API and start the runtime. Raises
        :class:`InvalidEntrypoint` when the command cannot be run and
        :class:`SandboxUnavailable` when the emulator is out of resources."""
        left = descriptors_left()
        if left is not None and left < START_FDS:
            self.dead = True
            raise SandboxUnavailable(
                "cannot start the runtime: %d file descriptors left under the limit (RLIMIT_NOFILE), "
                "it needs %d: Too many open files" % (left, START_FDS)
            )
        self.server = await self._listen()
        port = self.server.sockets[0].getsockname()[1]
        self.address = "127.0.0.1:%d" % port
        env = dict(self.config.env, AWS_LAMBDA_RUNTIME_API=self.address)
        self.spawned_at = time.monotonic()
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.config.command,
                env=env,
                cwd=self.config.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            self.dead = True
            self.server.close()
            raise _start_error(exc, self.config.command, self.config.cwd) from None
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._pumps = [
            asyncio.ensure_future(self._pump(self.proc.stdout)),
            asyncio.ensure_future(self._pump(self.proc.stderr)),
        ]
        self._exit_task = asyncio.ensure_future(self._watch_exit())

    async def _listen(self) -> asyncio.base_events.Server:
        """A listening socket on a free loopback port, made here: ``asyncio.start_server``
        skips an address whose socket cannot be made (EMFILE) and returns a server with no
        sockets at all, which failed later as an IndexError."""
        sock = None
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sock.listen(128)
            return await asyncio.start_server(self._on_connection, sock=sock, limit=protocol.MAX_HEAD)
        except OSError as exc:
            if sock is not None:
                sock.close()
            self.dead = True
            raise SandboxUnavailable("cannot open a Runtime API socket: %s" % (exc.strerror or exc)) from None

    async def stop(self, grace: float = SIGTERM_GRACE) -> None:
        """End the runtime (SIGTERM, then SIGKILL after ``grace``) and its Runtime API."""
        self.dead = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
                try:
                    os.killpg(proc.pid, sig)
                except (ProcessLookupError, PermissionError):
                    break
                try:
                    await asyncio.wait_for(proc.wait(), wait)
                    break
                except asyncio.TimeoutError:
                    continue
        if self._exit_task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._exit_task), 5.0)
            except asyncio.TimeoutError:  # pragma: no cover
                pass
        self.extensions.shutdown()
        if self.server is not None:
            self.server.close()

    def kill_now(self) -> None:
        self.dead = True
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    async def _watch_exit(self) -> None:
        assert self.proc is not None
        code = await self.proc.wait()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        self.dead = True
        self.extensions.shutdown()
        how = describe_exit(code)
        for inv in list(self.inflight.values()):
            inv.finish(Outcome.fault(faults.EXIT_ERROR, faults.exit_message(how, inv.request_id)))
        if self.server is not None:
            self.server.close()

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        """Forward the runtime's output to ours and keep it for the invoke's log tail."""
        while True:
            data = await stream.read(65536)
            if not data:
                return
            self.config.echo(data)
            delivered = [inv for inv in self.inflight.values() if inv.state != "queued"]
            if len(delivered) == 1:  # with several at once (Managed Instances) the owner is unknown
                delivered[0].add_log(data)
            else:
                self._init_log += data
                del self._init_log[: max(len(self._init_log) - 4096, 0)]

    # ------------------------------------------------------------------ invoking

    async def run(self, inv: Invocation, on_start: Callable[[Invocation], None]) -> Outcome:
        """Deliver ``inv`` to the runtime and wait for its outcome, within its timeout."""
        self.inflight[inv.request_id] = inv
        try:
            if self.dead:
                inv.finish(Outcome.fault(faults.EXIT_ERROR, "RequestId: %s Error: Runtime exited" % inv.request_id))
                return inv.outcome.result()
            inv.deadline_ms = int((time.time() + inv.timeout) * 1000)
            inv.on_delivery = on_start
            self._offers.put_nowait(inv)
            init_wait = self.init_wait(inv) if not self.saw_next else None
            delivered = asyncio.ensure_future(inv.delivered.wait())
            waits: "Set[asyncio.Future[Any]]" = {delivered, inv.outcome}
            done, _ = await asyncio.wait(waits, timeout=init_wait, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                delivered.cancel()
                self.kill_now()
                inv.finish(Outcome.fault(faults.INIT_TIMEOUT, "RequestId: %s Error: Init timed out after %.2f seconds" % (inv.request_id, init_wait or 0)))
                return inv.outcome.result()
            if not inv.delivered.is_set():  # init failed or the runtime died before taking it
                delivered.cancel()
                return inv.outcome.result()
            try:
                await asyncio.wait_for(asyncio.shield(inv.outcome), inv.timeout)
            except asyncio.TimeoutError:
                inv.state = "timedout"
                self._done[inv.request_id] = "timedout"
                if self.config.capacity == 1:  # Lambda resets the environment; with several in flight, only this one ends
                    self.kill_now()
                inv.finish(
                    Outcome.fault(
                        faults.SANDBOX_TIMEDOUT, "RequestId: %s Error: Task timed out after %.2f seconds" % (inv.request_id, inv.timeout)
                    )
                )
            await asyncio.sleep(0)  # let the output pumps take what the runtime wrote before answering
            return inv.outcome.result()
        finally:
            if inv.state == "queued":  # never delivered: take the offer back
                kept = []
                while not self._offers.empty():
                    offer = self._offers.get_nowait()
                    if offer is not inv:
                        kept.append(offer)
                for offer in kept:
                    self._offers.put_nowait(offer)
            if inv.state == "delivered":
                inv.state = "answered"
            self._remember(inv.request_id, "timedout" if inv.state == "timedout" else "answered")
            self.inflight.pop(inv.request_id, None)

    def init_wait(self, inv: Invocation) -> float:
        """Seconds this runtime may take to reach its first /next while ``inv`` waits."""
        return max(self.config.init_timeout, inv.timeout)

    def _take_init_log(self) -> bytes:
        data = bytes(self._init_log)
        self._init_log.clear()
        return data

    def take_init_ms(self) -> Optional[float]:
        value, self.init_ms = self.init_ms, None
        return value

    def max_memory_used_mb(self) -> int:
        return peak_rss_mb(self.proc.pid) if self.proc is not None else 0

    def _remember(self, request_id: str, state: str) -> None:
        self._done[request_id] = state
        if len(self._done) > 1000:
            for key in list(self._done)[:500]:
                del self._done[key]

    # ------------------------------------------------------------------ Runtime API

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await http.serve_connection(reader, writer, self._handle, protocol.MAX_PAYLOAD, _error_answer)

    async def _handle(self, req: http.Request, writer: asyncio.StreamWriter) -> None:
        if req.path.startswith(extensions.PREFIX):
            await self.extensions.handle(req, writer)
            return
        if not req.path.startswith(_RUNTIME_PREFIX):
            await _answer(writer, 404, "NotFound", "unknown path %s" % req.path[:200])
            return
        rest = req.path[len(_RUNTIME_PREFIX) :]
        if rest == "invocation/next" and req.method == "GET":
            await self._next(writer)
        elif rest == "init/error" and req.method == "POST":
            await self._init_error(req, writer)
        elif rest == "restore/next" and req.method == "GET":
            await self._restore_next(writer)
        elif rest == "restore/error" and req.method == "POST":
            await self._init_error(req, writer, restore=True)
        elif rest.startswith("invocation/") and req.method == "POST":
            parts = rest.split("/")
            if len(parts) == 3 and parts[2] in ("response", "error"):
                await self._answer_for(parts[1], parts[2], req, writer)
            else:
                await _answer(writer, 404, "NotFound", "unknown path %s" % req.path[:200])
        else:
            await _answer(writer, 404 if req.method in ("GET", "POST") else 405, "NotFound", "unknown path %s" % req.path[:200])

    async def _next(self, writer: asyncio.StreamWriter) -> None:
        busy = [inv for inv in self.inflight.values() if inv.state == "delivered"]
        if busy and self.config.capacity == 1:
            await _answer(writer, 403, "InvalidStateTransition", "/next called before the invocation %s was answered" % busy[0].request_id)
            return
        if not self.saw_next:
            self.saw_next = True
            self.extensions.close_registration()
            self.init_ms = (time.monotonic() - self.spawned_at) * 1000.0
        while True:
            inv = await self._offers.get()
            if not writer.is_closing():
                break
            self._offers.put_nowait(inv)  # this /next was abandoned: another one will take it
            return
        inv.state = "delivered"
        inv.log[:0] = self._take_init_log()
        if inv.on_delivery is not None:
            inv.on_delivery(inv)
        inv.delivered_at = time.monotonic()
        inv.delivered.set()
        self.extensions.on_invoke(inv)
        writer.write(http.response_head(200, inv.next_headers(), len(inv.payload)) + inv.payload)
        await writer.drain()

    async def _restore_next(self, writer: asyncio.StreamWriter) -> None:
        """SnapStart: the snapshot is 'restored' at once; 404 when SnapStart is off."""
        if not self.config.snapstart:
            await _answer(writer, 404, "InvalidStateTransition", "SnapStart is not enabled for this function")
        elif self.saw_next or self.restored:
            await _answer(writer, 403, "InvalidStateTransition", "/restore/next is only valid once, during init")
        else:
            self.restored = True
            await http.send(writer, 200, b"", [("Content-Type", "application/json")])

    async def _init_error(self, req: http.Request, writer: asyncio.StreamWriter, restore: bool = False) -> None:
        body = await req.body_reader.read()
        if self.saw_next or (restore and not self.restored):
            what = "restore error reported outside restore" if restore else "init error reported after /next"
            await _answer(writer, 403, "InvalidStateTransition", what)
            return
        error_type = req.header(protocol.ERROR_TYPE_HEADER) or (faults.AFTER_RESTORE_ERROR if restore else faults.UNKNOWN)
        for inv in list(self.inflight.values()):
            inv.finish(Outcome("error", body or error_json(error_type, "init failed"), "application/json", error_type))
        self.recycle = True
        await _answer(writer, 202)

    async def _answer_for(self, request_id: str, kind: str, req: http.Request, writer: asyncio.StreamWriter) -> None:
        if not _REQUEST_ID.match(request_id):
            await _answer(writer, 400, "InvalidRequestID", "invalid request id")
            return
        inv = self.inflight.get(request_id)
        if inv is None or inv.state != "delivered":
            state = "timedout" if inv is not None and inv.state == "timedout" else self._done.get(request_id)
            if state == "timedout":
                await _answer(writer, 410, "InvokeTimeout", "the invocation %s timed out" % request_id)
            elif state == "answered" or inv is not None:
                await _answer(writer, 403, "InvalidStateTransition", "the invocation %s was answered already" % request_id)
            else:
                await _answer(writer, 400, "InvalidRequestID", "unknown request id %s" % request_id)
            return
        if kind == "error":
            await self._error(inv, req, writer)
            return
        mode = req.header("lambda-runtime-function-response-mode")
        if mode is not None and mode.lower() != "streaming":
            await _answer(writer, 400, "InvalidFunctionResponseMode", "unsupported response mode %r" % mode[:50])
            return
        content_type = req.header("content-type") or "application/json"
        if mode is not None:
            await self._streamed(inv, req, writer, content_type)
            return
        body = await req.body_reader.read()
        if req.body_reader.too_large:
            await _answer(writer, 413, "RequestEntityTooLarge", "Exceeded maximum allowed payload size (%d bytes)." % protocol.MAX_PAYLOAD)
            inv.finish(_too_large(req.body_reader.size))
            return
        inv.state = "answered"
        inv.finish(Outcome("response", body, content_type))
        await _answer(writer, 202)

    async def _error(self, inv: Invocation, req: http.Request, writer: asyncio.StreamWriter) -> None:
        body = await req.body_reader.read()
        error_type = req.header(protocol.ERROR_TYPE_HEADER)
        if error_type is not None and not _ERROR_TYPE.match(error_type):
            await _answer(writer, 400, "InvalidErrorType", "invalid %s header" % protocol.ERROR_TYPE_HEADER)
            return
        if req.body_reader.too_large:
            body = error_json(error_type or "Unhandled", "error body over %d bytes, truncated" % protocol.MAX_PAYLOAD)
        inv.state = "answered"
        inv.finish(Outcome("error", body, "application/json", error_type or "Unhandled"))
        await _answer(writer, 202)

    async def _streamed(self, inv: Invocation, req: http.Request, writer: asyncio.StreamWriter, content_type: str) -> None:
        inv.streamed = True
        inv.stream_content_type = content_type
        parts: List[bytes] = []
        size = 0
        limit = protocol.MAX_STREAMED if inv.streaming else protocol.MAX_PAYLOAD
        while True:
            data = await req.body_reader.next_chunk()
            if data is None:
                break
            size += len(data)
            if size > limit or inv.outcome.done():
                continue
            if inv.streaming:
                await inv.chunks.put(data)  # waits while the caller is behind: backpressure
            else:
                parts.append(data)
        trailers = req.body_reader.trailers
        error_type = trailers.get(protocol.ERROR_TYPE_HEADER.lower())
        inv.state = "answered"
        if size > limit:
            await _answer(writer, 413, "RequestEntityTooLarge", "Exceeded maximum allowed payload size (%d bytes)." % limit)
            inv.finish(_too_large(size))
            return
        if error_type:
            raw = trailers.get("lambda-runtime-function-error-body", "")
            try:
                body = base64.b64decode(raw, validate=True) if raw else b""
            except (binascii.Error, ValueError):
                body = b""
            inv.finish(Outcome("error", body or error_json(error_type, ""), "application/json", error_type))
        else:
            inv.finish(Outcome("response", b"".join(parts), content_type))
        await _answer(writer, 202)


def _too_large(size: int) -> Outcome:
    return Outcome.fault(
        faults.RESPONSE_TOO_LARGE,
        "Response payload size (%d bytes) exceeded maximum allowed payload size (%d bytes)." % (size, protocol.MAX_PAYLOAD),
    )


def _error_answer(status: int, message: str):  # type: ignore[no-untyped-def]
    return error_json("InvalidRequest", message), [("Content-Type", "application/json")]


async def _answer(writer: asyncio.StreamWriter, status: int, error_type: Optional[str] = None, message: str = "") -> None:
    body = b'{"status":"OK"}\n' if error_type is None else error_json(error_type, message)
    await http.send(writer, status, body, [("Content-Type", "application/json")])


def _start_error(exc: OSError, command: List[str], cwd: str) -> Exception:
    """What a failed start of ``command`` means: the emulator out of resources, or a
    command that cannot be run, worded as Lambda words it (Go's ``fork/exec`` errors)."""
    if exc.errno in _RESOURCE_ERRNOS:
        return SandboxUnavailable("cannot start the runtime: %s" % (exc.strerror or exc))
    reason = (exc.strerror or str(exc)).lower()
    if exc.filename is not None and os.path.abspath(str(exc.filename)) == os.path.abspath(cwd):
        return InvalidEntrypoint("chdir %s: %s" % (cwd, reason))
    return InvalidEntrypoint("fork/exec %s: %s" % (command[0] if command else "", reason))


def descriptors_left() -> Optional[int]:
    """File descriptors this process may still open (None when unknown or unlimited)."""
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft == resource.RLIM_INFINITY:
            return None
        return soft - len(os.listdir("/proc/self/fd"))
    except OSError as exc:  # listing needs a descriptor too: none left
        return 0 if exc.errno in (errno.EMFILE, errno.ENFILE) else None
    except (ImportError, ValueError):
        return None
