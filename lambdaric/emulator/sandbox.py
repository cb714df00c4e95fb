"""A sandbox: one runtime process (:mod:`.process`) and the Runtime API it talks to (:mod:`.runtime_api`).

Each sandbox listens on its own loopback port (as each Lambda execution environment has
its own Runtime API), so a pool of them never mixes up invocations. Here is the timeline of
one invoke: offered to the runtime, delivered within the init timeout (or the runtime is
stopped: ``Runtime.InitTimeout``), answered within the function timeout (or
``Sandbox.Timedout``, and the runtime is reset), or ended by the runtime's exit
(``Runtime.ExitError``).
"""
from __future__ import annotations

import asyncio
import socket
import time
from typing import Any, Callable, Dict, List, Optional, Set

from .. import faults, protocol
from ..console import describe_exit
from . import extensions
from .invocation import Invocation, Outcome, State
from .process import SIGTERM_GRACE, InvalidEntrypoint, RuntimeProcess, SandboxUnavailable, descriptors_left
from .runtime_api import RuntimeAPI

__all__ = ["MIN_INIT_TIMEOUT", "START_FDS", "InvalidEntrypoint", "Sandbox", "SandboxConfig", "SandboxUnavailable"]

#: How long a runtime may take to initialise before its first /next, at least: Lambda's 10 s
#: init limit, which a shorter function timeout does not shorten (a longer one lengthens it:
#: Lambda runs an init that timed out again within the first invoke's timeout).
MIN_INIT_TIMEOUT = 10.0
#: File descriptors that must be free to start a sandbox: its listening socket, the runtime's
#: pipes (and, while it is spawned, the child's ends and exec's error pipe), the runtime's
#: connections to its API, with room to spare. Below this, a runtime might start and then never
#: be reached (its connections left in the backlog: an init timeout 10 s later), so none starts.
START_FDS = 16


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
    """One runtime process and its Runtime API; runs one invocation at a time, or up to
    ``capacity`` at once under Managed Instances (see module docstring)."""

    def __init__(self, config: SandboxConfig, index: int) -> None:
        self.config = config
        self.index = index
        self.server: Optional[asyncio.base_events.Server] = None
        self.address = ""
        self.dead = False
        self.recycle = False  # restart after the current invocation (--watch, an init error)
        self.extensions = extensions.ExtensionsAPI(config.env)
        self.api = RuntimeAPI(config.capacity, config.snapstart, self.extensions, self._on_init_error)
        self.process: Optional[RuntimeProcess] = None
        self._exit_task: Optional["asyncio.Task[None]"] = None

    @property
    def spawned_at(self) -> float:
        return self.api.spawned_at

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
        self.process = RuntimeProcess(self.config.command, env, self.config.cwd, self._on_output)
        self.api.spawned_at = time.monotonic()
        try:
            await self.process.start()
        except Exception:
            self.dead = True
            self.server.close()
            raise
        self._exit_task = asyncio.ensure_future(self._watch_exit(self.process))

    async def _listen(self) -> asyncio.base_events.Server:
        """A listening socket on a free loopback port, made here: ``asyncio.start_server``
        skips an address whose socket cannot be made (EMFILE) and returns a server with no
        sockets at all, which failed later as an IndexError."""
        sock = None
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sock.listen(128)
            return await asyncio.start_server(self.api.on_connection, sock=sock, limit=protocol.MAX_HEAD)
        except OSError as exc:
            if sock is not None:
                sock.close()
            self.dead = True
            raise SandboxUnavailable("cannot open a Runtime API socket: %s" % (exc.strerror or exc)) from None

    async def stop(self, grace: float = SIGTERM_GRACE) -> None:
        """End the runtime (SIGTERM, then SIGKILL after ``grace``) and its Runtime API."""
        self.dead = True
        if self.process is not None:
            await self.process.stop(grace)
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
        if self.process is not None:
            self.process.kill()

    async def _watch_exit(self, process: RuntimeProcess) -> None:
        code = await process.wait()
        self.dead = True
        self.extensions.shutdown()
        how = describe_exit(code)
        self.api.fail_all(lambda inv: Outcome.fault(faults.EXIT_ERROR, faults.exit_message(how, inv.request_id)))
        if self.server is not None:
            self.server.close()

    def _on_output(self, data: bytes) -> None:
        """Forward the runtime's output to ours and keep it for the invoke's log tail."""
        self.config.echo(data)
        self.api.take_output(data)

    def _on_init_error(self) -> None:
        self.recycle = True

    # ------------------------------------------------------------------ invoking

    async def run(self, inv: Invocation, on_start: Callable[[Invocation], None]) -> Outcome:
        """Deliver ``inv`` to the runtime and wait for its outcome, within its timeout."""
        try:
            if self.dead:
                self.api.inflight[inv.request_id] = inv
                inv.finish(Outcome.fault(faults.EXIT_ERROR, "RequestId: %s Error: Runtime exited" % inv.request_id))
                return inv.outcome.result()
            inv.deadline_ms = int((time.time() + inv.timeout) * 1000)
            inv.on_delivery = on_start
            self.api.offer(inv)
            if not await self._delivered(inv):
                return inv.outcome.result()
            try:
                await asyncio.wait_for(asyncio.shield(inv.outcome), inv.timeout)
            except asyncio.TimeoutError:
                inv.advance(State.TIMEDOUT)
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
            self.api.end(inv)

    async def _delivered(self, inv: Invocation) -> bool:
        """Wait until the runtime takes ``inv``: True, or False when it ended first (init
        failed, the runtime died, or it did not reach its first /next in time: init timeout)."""
        init_wait = self.init_wait(inv) if not self.api.saw_next else None
        delivered = asyncio.ensure_future(inv.delivered.wait())
        waits: "Set[asyncio.Future[Any]]" = {delivered, inv.outcome}
        done, _ = await asyncio.wait(waits, timeout=init_wait, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            delivered.cancel()
            self.kill_now()
            inv.finish(Outcome.fault(faults.INIT_TIMEOUT, "RequestId: %s Error: Init timed out after %.2f seconds" % (inv.request_id, init_wait or 0)))
            return False
        if not inv.delivered.is_set():  # init failed or the runtime died before taking it
            delivered.cancel()
            return False
        return True

    def init_wait(self, inv: Invocation) -> float:
        """Seconds this runtime may take to reach its first /next while ``inv`` waits."""
        return max(self.config.init_timeout, inv.timeout)

    def take_init_ms(self) -> Optional[float]:
        return self.api.take_init_ms()

    def max_memory_used_mb(self) -> int:
        return self.process.peak_memory_mb() if self.process is not None else 0
