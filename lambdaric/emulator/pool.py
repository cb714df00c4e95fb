"""A function's runtimes: up to ``size`` sandboxes made on demand, then a bounded queue, then 429.

Each function of the emulator has its own pool, as each Lambda function has its own
execution environments: a busy function never takes another's runtimes.
"""
from __future__ import annotations

import asyncio
from typing import Dict, List

from .invoke_api import Refused
from .sandbox import Sandbox, SandboxConfig


class TooManyRequests(Refused):
    """Every runtime is busy and the queue is full: 429, as Lambda throttles."""

    def __init__(self) -> None:
        super().__init__(429, "TooManyRequestsException", "Rate Exceeded.", [("Retry-After", "1")])


class Pool:
    """Up to ``size`` sandboxes, made on demand, each serving ``config.capacity`` invocations
    at once; invocations beyond that wait in a queue of at most ``queue_limit`` (then
    :class:`TooManyRequests`)."""

    def __init__(self, config: SandboxConfig, size: int, queue_limit: int) -> None:
        self.config = config
        self.size = max(1, size)
        self.queue_limit = queue_limit
        self.sandboxes: List[Sandbox] = []
        self._active: Dict[Sandbox, int] = {}
        self._waiters: List["asyncio.Future[None]"] = []
        self._made = 0

    def _usable(self, sandbox: Sandbox) -> bool:
        return not sandbox.dead and not sandbox.recycle

    async def acquire(self) -> Sandbox:
        while True:
            for sandbox in list(self.sandboxes):
                if not self._usable(sandbox):
                    if self._active.get(sandbox, 0) == 0:
                        await self._retire(sandbox)
                    continue
                if self._active[sandbox] < self.config.capacity:
                    self._active[sandbox] += 1
                    return sandbox
            if len([s for s in self.sandboxes if self._usable(s)]) < self.size and len(self.sandboxes) < 2 * self.size:
                sandbox = await self._make()
                self._active[sandbox] += 1
                return sandbox
            if len(self._waiters) >= self.queue_limit:
                raise TooManyRequests()
            waiter: "asyncio.Future[None]" = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def release(self, sandbox: Sandbox) -> None:
        if sandbox in self._active:
            self._active[sandbox] -= 1
            if self._active[sandbox] == 0 and not self._usable(sandbox):
                asyncio.ensure_future(self._retire(sandbox))
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
                break

    async def _make(self) -> Sandbox:
        self._made += 1
        sandbox = Sandbox(self.config, self._made)
        self.sandboxes.append(sandbox)
        self._active[sandbox] = 0
        try:
            await sandbox.start()
        except Exception:
            self._forget(sandbox)
            raise
        return sandbox

    def _forget(self, sandbox: Sandbox) -> None:
        if sandbox in self.sandboxes:
            self.sandboxes.remove(sandbox)
        self._active.pop(sandbox, None)

    async def _retire(self, sandbox: Sandbox) -> None:
        self._forget(sandbox)
        await sandbox.stop()
        self.release(sandbox)  # a place came free: wake a waiter

    async def warm(self) -> None:
        """Eager init: start one sandbox now rather than on the first invoke."""
        await self._make()

    def recycle_all(self) -> None:
        """Restart every runtime: idle ones now, busy ones when their invokes end."""
        for sandbox in list(self.sandboxes):
            sandbox.recycle = True
            if self._active.get(sandbox, 0) == 0:
                asyncio.ensure_future(self._retire(sandbox))

    async def close(self) -> None:
        await asyncio.gather(*(s.stop() for s in list(self.sandboxes)), return_exceptions=True)
        self.sandboxes.clear()
        self._active.clear()
