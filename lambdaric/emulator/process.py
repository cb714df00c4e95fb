"""A runtime's child process: start it, pump its output, wait for its exit, stop it.

Kept apart from the Runtime API it talks to (:mod:`.runtime_api`) so each can be read alone.
The runtime runs in a session of its own, so stopping it also ends what it started. It is
stopped as Lambda ends a sandbox: SIGTERM, then SIGKILL after a short grace
(:data:`SIGTERM_GRACE`), so its shutdown code (``lambdaric.on_shutdown``) runs locally too.
"""
from __future__ import annotations

import asyncio
import errno
import os
import signal
from typing import Callable, Dict, List, Optional

from .invocation import peak_rss_mb

#: Seconds between SIGTERM and SIGKILL when a runtime is stopped: Lambda's share for the
#: runtime when only internal extensions are registered.
SIGTERM_GRACE = 0.5
#: errno values of a start that failed for want of resources (the emulator's limits, not the
#: function's fault): descriptors, processes, memory.
_RESOURCE_ERRNOS = frozenset((errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.ENOMEM, errno.ENOBUFS))


class InvalidEntrypoint(Exception):
    """The runtime command cannot be run: missing, not executable, not a program. The
    function's fault: Lambda answers ``Runtime.InvalidEntrypoint``; the text is Lambda's
    (``fork/exec PATH: no such file or directory``)."""


class SandboxUnavailable(Exception):
    """No sandbox could be made for want of resources (file descriptors, processes,
    memory): a failure of the emulator, not of the function."""


class RuntimeProcess:
    """One runtime process; every piece of its stdout and stderr goes to ``on_output``."""

    def __init__(self, command: List[str], env: Dict[str, str], cwd: str, on_output: Callable[[bytes], None]) -> None:
        self.command = command
        self.env = env
        self.cwd = cwd
        self.on_output = on_output
        self.proc: Optional[asyncio.subprocess.Process] = None
        self._pumps: List["asyncio.Task[None]"] = []

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        """Start it; raises :class:`InvalidEntrypoint` or :class:`SandboxUnavailable`."""
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command,
                env=self.env,
                cwd=self.cwd,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise start_error(exc, self.command, self.cwd) from None
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._pumps = [asyncio.ensure_future(self._pump(self.proc.stdout)), asyncio.ensure_future(self._pump(self.proc.stderr))]

    async def wait(self) -> int:
        """Its exit code (-signal when a signal ended it), once all its output was read."""
        assert self.proc is not None
        code = await self.proc.wait()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        return code

    async def stop(self, grace: float = SIGTERM_GRACE) -> None:
        """SIGTERM its session, then SIGKILL after ``grace`` seconds."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                return
            try:
                await asyncio.wait_for(proc.wait(), wait)
                return
            except asyncio.TimeoutError:
                continue

    def kill(self) -> None:
        """SIGKILL its session now (a timeout or an init timeout: Lambda resets the environment)."""
        if self.running:
            assert self.proc is not None
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def peak_memory_mb(self) -> int:
        return peak_rss_mb(self.proc.pid) if self.proc is not None else 0

    async def _pump(self, stream: asyncio.StreamReader) -> None:
        while True:
            data = await stream.read(65536)
            if not data:
                return
            self.on_output(data)


def start_error(exc: OSError, command: List[str], cwd: str) -> Exception:
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
