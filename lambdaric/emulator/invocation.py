"""What one invoke is inside the emulator, and how it ended.

Plain values shared by the Invoke API side (which creates invocations and turns outcomes
into HTTP answers) and the sandbox side (which delivers them to a runtime).
"""
from __future__ import annotations

import asyncio
import collections
import enum
import json
import os
import time
import uuid
from typing import Callable, Deque, Dict, FrozenSet, List, Optional, Tuple

#: How much of an invoke's log goes back with ``X-Amz-Log-Type: Tail``.
TAIL_BYTES = 4096
#: Bytes of a streamed response held between the runtime's POST and the caller, at most
#: (plus one piece of the POST, itself at most 1 MiB).
STREAM_BUFFER = 1024 * 1024


def new_trace_id(sampled: bool = False) -> str:
    """An X-Ray trace header like the one Lambda makes when the caller sent none: sampled
    only under active tracing (``--xray-sampled``), where X-Ray SDKs then send segments."""
    return "Root=1-%08x-%s;Parent=%s;Sampled=%d" % (int(time.time()), os.urandom(12).hex(), os.urandom(8).hex(), sampled)


def error_json(error_type: str, message: str) -> bytes:
    """``{"errorMessage": ..., "errorType": ...}``: the shape of platform and Runtime API errors."""
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


class Outcome:
    """How an invocation ended. ``kind`` is one of ``response``, ``error`` (the function
    failed: the body is the error JSON) or ``fault`` (the platform failed it: timeout,
    exit, init error, size; the body is an error JSON too)."""

    __slots__ = ("kind", "body", "content_type", "error_type")

    def __init__(self, kind: str, body: bytes, content_type: str = "application/json", error_type: Optional[str] = None) -> None:
        self.kind = kind
        self.body = body
        self.content_type = content_type
        self.error_type = error_type

    @property
    def failed(self) -> bool:
        return self.kind != "response"

    @classmethod
    def fault(cls, error_type: str, message: str) -> "Outcome":
        return cls("fault", error_json(error_type, message), "application/json", error_type)

    def error_code_and_details(self) -> Tuple[str, str]:
        """``(ErrorCode, ErrorDetails)`` for a streamed ``InvokeComplete``."""
        try:
            obj = json.loads(self.body)
            return obj.get("errorType") or self.error_type or "Unhandled", obj.get("errorMessage", "")
        except Exception:
            return self.error_type or "Unhandled", self.body.decode("utf-8", "replace")


class ChunkChannel:
    """The pieces of a streamed response on their way from the runtime's POST to the caller.

    At most ``limit`` bytes wait in it (one piece more when a single piece is larger):
    ``put`` waits for room, so the runtime's POST is read only as fast as the caller takes
    the events, and a handler writing faster than its caller reads is slowed down, as on
    Lambda, instead of the emulator holding the difference. ``close`` marks the end and
    never waits; ``abandon`` (the caller went away) discards what is held and what comes
    later, so the rest of the POST is read and dropped and the runtime is never stuck.
    """

    def __init__(self, limit: int = STREAM_BUFFER) -> None:
        self.limit = limit
        self._items: Deque[bytes] = collections.deque()
        self._size = 0
        self._closed = False
        self._abandoned = False
        self._readable = asyncio.Event()
        self._room = asyncio.Event()

    async def put(self, data: bytes) -> None:
        """Add a piece, once there is room (or drop it when the caller is gone or the end was
        marked already)."""
        while self._size and self._size + len(data) > self.limit and not (self._closed or self._abandoned):
            self._room.clear()
            await self._room.wait()
        if self._closed or self._abandoned:
            return
        self._items.append(data)
        self._size += len(data)
        self._readable.set()

    async def get(self) -> Optional[bytes]:
        """The next piece, or None after the last one."""
        while not self._items:
            if self._closed or self._abandoned:
                return None
            self._readable.clear()
            await self._readable.wait()
        data = self._items.popleft()
        self._size -= len(data)
        self._room.set()
        return data

    def close(self) -> None:
        """No more pieces: ``get`` returns None once the held ones are taken."""
        self._closed = True
        self._readable.set()
        self._room.set()

    def abandon(self) -> None:
        """The caller is gone: drop what is held and everything put from now on."""
        self._abandoned = True
        self._items.clear()
        self._size = 0
        self._readable.set()
        self._room.set()


class State(enum.Enum):
    """Where an invocation stands with its runtime."""

    QUEUED = "queued"  # offered, waiting for a /next
    DELIVERED = "delivered"  # the runtime has it and owes an answer
    ANSWERED = "answered"  # it answered (or exited, or failed init): later answers are 403
    TIMEDOUT = "timedout"  # its time ran out: later answers are 410


#: The moves an invocation may make; any other is refused (an answer after the timeout
#: leaves it timed out).
TRANSITIONS: Dict[State, FrozenSet[State]] = {
    State.QUEUED: frozenset((State.DELIVERED,)),
    State.DELIVERED: frozenset((State.ANSWERED, State.TIMEDOUT)),
    State.ANSWERED: frozenset(),
    State.TIMEDOUT: frozenset(),
}


class Invocation:
    """One event on its way from a caller to a runtime and back."""

    def __init__(
        self,
        payload: bytes,
        *,
        function_arn: str,
        timeout: float,
        client_context: Optional[str] = None,
        cognito_identity: Optional[str] = None,
        tenant_id: Optional[str] = None,
        trace_id: Optional[str] = None,
        streaming: bool = False,
    ) -> None:
        self.request_id = str(uuid.uuid4())
        self.payload = payload
        self.function_arn = function_arn
        self.timeout = timeout
        self.client_context = client_context
        self.cognito_identity = cognito_identity
        self.tenant_id = tenant_id
        self.trace_id = trace_id or new_trace_id()
        #: the caller sent no trace header: the one above was made here
        self.trace_made = not trace_id
        self.streaming = streaming
        loop = asyncio.get_running_loop()
        self.outcome: "asyncio.Future[Outcome]" = loop.create_future()
        #: chunks of a streamed response for a streaming caller (bounded: see ChunkChannel)
        self.chunks = ChunkChannel()
        self.streamed = False
        self.stream_content_type = "application/octet-stream"
        self.delivered = asyncio.Event()
        self.on_delivery: Optional[Callable[["Invocation"], None]] = None
        self.log = bytearray()
        self.state = State.QUEUED
        self.deadline_ms = 0
        self.delivered_at = 0.0
        self.finished_at = 0.0

    def advance(self, to: State) -> bool:
        """Move to ``to`` when :data:`TRANSITIONS` allows it; False (and no move) otherwise."""
        if to not in TRANSITIONS[self.state]:
            return False
        self.state = to
        return True

    def next_headers(self) -> List[Tuple[str, str]]:
        """Headers of the ``/next`` answer that delivers this invocation."""
        headers = [
            ("Content-Type", "application/json"),
            ("Lambda-Runtime-Aws-Request-Id", self.request_id),
            ("Lambda-Runtime-Deadline-Ms", str(self.deadline_ms)),
            ("Lambda-Runtime-Invoked-Function-Arn", self.function_arn),
            ("Lambda-Runtime-Trace-Id", self.trace_id),
        ]
        for name, value in (
            ("Lambda-Runtime-Client-Context", self.client_context),
            ("Lambda-Runtime-Cognito-Identity", self.cognito_identity),
            ("Lambda-Runtime-Aws-Tenant-Id", self.tenant_id),
        ):
            if value:
                headers.append((name, value))
        return headers

    def finish(self, outcome: Outcome) -> bool:
        """Settle the invocation once; later attempts are ignored (returns False)."""
        if self.outcome.done():
            return False
        self.finished_at = time.monotonic()
        self.outcome.set_result(outcome)
        self.chunks.close()
        return True

    def add_log(self, data: bytes) -> None:
        self.log += data
        if len(self.log) > 4 * TAIL_BYTES:
            del self.log[: len(self.log) - TAIL_BYTES]

    def tail(self) -> bytes:
        return bytes(self.log[-TAIL_BYTES:])


def report_line(inv: Invocation, init_ms: Optional[float], memory_mb: int, max_used_mb: int) -> str:
    """Lambda's ``REPORT`` line (Init Duration only on a cold start)."""
    duration = max((inv.finished_at - inv.delivered_at) * 1000.0, 0.0) if inv.delivered_at else 0.0
    billed = int(-(-(duration + (init_ms or 0.0)) // 1))
    line = "REPORT RequestId: %s\tDuration: %.2f ms\tBilled Duration: %d ms\tMemory Size: %d MB\tMax Memory Used: %d MB\t" % (
        inv.request_id,
        duration,
        max(billed, 1),
        memory_mb,
        max_used_mb,
    )
    if init_ms is not None:
        line += "Init Duration: %.2f ms\t" % init_ms
    return line


def peak_rss_mb(pid: int) -> int:
    """Peak resident memory of a process in MB (``VmHWM``), 0 when unknown."""
    try:
        with open("/proc/%d/status" % pid, "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return -(-int(line.split()[1]) // 1024)
    except (OSError, ValueError, IndexError):
        pass
    return 0

