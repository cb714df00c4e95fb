"""The emulator: the Lambda Invoke API on loopback, in front of each function's pool of sandboxes.

Faithful to Lambda where the official emulator is not: function errors carry
``X-Amz-Function-Error: Unhandled``; Event and DryRun invocations are honoured; oversized
payloads get 413 instead of being truncated; overlapping invokes are served by a pool of
runtimes (queued with a bound, then 429); the trace header is forwarded. Several functions
may be served at once, found by the name in the path (:mod:`.functions`).
"""
from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from typing import Awaitable, Callable, List, Optional, Tuple

from .. import faults, protocol
from . import http
from .invocation import Invocation, Outcome, report_line
from .functions import ACCOUNT, REGION, Function, Functions, FunctionSettings
from .invocation import new_trace_id
from .invoke_api import InvokeRequest, Refused, check_payload, parse_function, parse_invoke, route
from .durable_api import DurableFront, Invoked
from .durable_runner import Runner, function_configs
from .pool import TooManyRequests
from .sandbox import InvalidEntrypoint, Sandbox, SandboxUnavailable

class EmulatorSettings:
    """Everything the emulator needs to know, decided once by the CLI: where it listens and
    the functions it serves (see :mod:`.functions`)."""

    def __init__(
        self,
        functions: List[FunctionSettings],
        host: str = "127.0.0.1",
        port: int = 8080,
        eager: bool = False,
        region: str = REGION,
        account: str = ACCOUNT,
        any_name: bool = False,
        skip_time: bool = False,
    ) -> None:
        self.functions = functions
        self.host = host
        self.port = port
        self.eager = eager
        self.region = region
        self.account = account
        #: one function served takes every name in the path (see :mod:`.functions`)
        self.any_name = any_name
        #: durable functions: timers end at once (docs/durable.md)
        self.skip_time = skip_time


class Emulator:
    """The Invoke API server and the functions behind it, each with its pool (see module docstring)."""

    def __init__(
        self, settings: EmulatorSettings, out: Callable[[bytes], None], err: Optional[Callable[[bytes], None]] = None
    ) -> None:
        """``out`` takes the console output (the runtimes' and START/END/REPORT lines), ``err``
        the emulator's own notices; neither may block (see :mod:`.console`)."""
        self.settings = settings
        self.out = out
        self.err = err or _stderr_notice
        self.functions = Functions(
            [Function(f, out) for f in settings.functions], settings.region, settings.account, settings.any_name
        )
        self.server: Optional[asyncio.base_events.Server] = None
        self.background: "set[asyncio.Task[Outcome]]" = set()
        #: the durable execution service and its Lambda API, when a function is durable
        self.runner: Optional[Runner] = None
        self.durable: Optional[DurableFront] = None

    @property
    def address(self) -> Tuple[str, int]:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[:2]

    async def start(self) -> None:
        self.server = await asyncio.start_server(
            self._on_connection, self.settings.host, self.settings.port, limit=protocol.MAX_HEAD
        )
        await self._start_durable()
        if self.settings.eager:
            await asyncio.gather(*(f.pool.warm() for f in self.functions))

    async def _start_durable(self) -> None:
        """With a durable function served: start the durable execution service on loopback and
        point the durable runtimes' Lambda client at this port (raises :class:`RunnerError`)."""
        durable = {f.name: f.settings.execution_timeout for f in self.functions if f.settings.durable}
        if not durable:
            return
        own = "http://127.0.0.1:%d" % self.address[1]
        others = [f.name for f in self.functions if not f.settings.durable]
        timeout = max(f.settings.timeout for f in self.functions)
        self.runner = Runner(own, function_configs(durable, others), self.settings.skip_time, self.settings.region, timeout, self.err)
        await self.runner.start()
        self.durable = DurableFront(self.runner.base, self.settings.region, self.settings.account, self.settings.skip_time)
        for function in self.functions:
            if function.settings.durable:
                # the sandboxes share this dict: every runtime started from now on gets it
                function.settings.env["AWS_ENDPOINT_URL_LAMBDA"] = own

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for task in list(self.background):
            task.cancel()
        await asyncio.gather(*(f.pool.close() for f in self.functions))
        if self.runner is not None:
            await self.runner.stop()

    # ------------------------------------------------------------------ the functions

    def function_names(self) -> List[str]:
        """The names of the functions served, in the order they were given."""
        return self.functions.names()

    def function(self, name: str) -> Function:
        """The function ``name`` (with one unnamed function served: that one, whatever the
        name); raises Lambda's 404 :class:`Refused` for a name not served."""
        return self.functions.get(name)

    def arn(self, name: str, qualifier: Optional[str] = None) -> str:
        """The function ARN an invoke of ``name`` carries (``context.invoked_function_arn``)."""
        return self.functions.arn(name, qualifier)

    def recycle_all(self) -> None:
        """Restart every function's runtimes (idle ones now, busy ones when their invokes end)."""
        for function in self.functions:
            function.pool.recycle_all()

    # ------------------------------------------------------------------ HTTP

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await http.serve_connection(reader, writer, self._handle, protocol.MAX_PAYLOAD, _error_answer)

    async def _handle(self, req: http.Request, writer: asyncio.StreamWriter) -> None:
        """One Invoke API request: checked (:mod:`.invoke_api`), then run as its type asks."""
        if req.path.startswith("/2025-12-01/"):
            await self._durable_route(req, writer)
            return
        where = route(req.method, req.path)
        if isinstance(where, Refused):
            await _refuse(writer, where)
            return
        try:
            payload = await req.body_reader.read()
        except http.BadRequest as exc:  # a malformed or cut body: say so, then the connection closes
            body, headers = _error_answer(exc.status, str(exc))
            await http.send(writer, exc.status, body, headers + [("X-Amzn-RequestId", _request_id()), ("Connection", "close")])
            raise
        parsed = parse_invoke(where, req.query_params(), req.headers, req.body_reader.too_large)
        if isinstance(parsed, Refused):
            await _refuse(writer, parsed)
            return
        try:
            function = self.functions.find(parsed.function)
        except Refused as exc:
            await _refuse(writer, exc)
            return
        refused = check_payload(payload)
        if refused is not None:
            await _refuse(writer, refused)
            return
        if parsed.invocation_type == "DryRun":
            await http.send(writer, 204, b"", [("X-Amzn-RequestId", _request_id())])
            return
        execution_name = req.headers.get("x-amz-durable-execution-name")
        from_runner = req.headers.get(RUNNER_MARKER) == "true"
        execution: Optional[str] = None  # the service's ARN of the execution this invocation serves
        if function.settings.durable and self.durable is not None:
            if from_runner:  # the service (re-)invoking the handler with the durable envelope
                payload, execution = await self.durable.envelope(payload)
            elif parsed.streaming:
                await _refuse(writer, Refused(400, "InvalidParameterValueException",
                                              "Durable functions cannot be invoked with response streaming"))
                return
            else:
                answer = await self.durable.start(function.name, execution_name, payload or b"{}",
                                                  parsed.invocation_type == "RequestResponse", function.settings.execution_timeout)
                await http.send(writer, answer.status, answer.body, answer.headers + [("X-Amzn-RequestId", _request_id())])
                return
        elif execution_name is not None:
            await _refuse(writer, Refused(400, "InvalidParameterValueException",
                                          "Function %s is not a durable function: X-Amz-Durable-Execution-Name is only for durable functions"
                                          % function.name))
            return
        inv = Invocation(
            # No body is an empty event: Lambda hands such an invoke {} (docs/emulator.md)
            payload or b"{}",
            function_arn=self.functions.arn(parsed.name, parsed.qualifier),
            timeout=function.settings.timeout,
            client_context=parsed.client_context,
            cognito_identity=parsed.cognito_identity,
            tenant_id=parsed.tenant_id,
            trace_id=parsed.trace_id,
            streaming=parsed.streaming,
        )
        if parsed.invocation_type == "Event":
            self._in_background(self._invoke(function, inv), inv, say_throttled=True)
            await http.send(writer, 202, b"", [("X-Amzn-RequestId", inv.request_id)])
        elif parsed.streaming:
            await self._respond_streaming(function, inv, writer, parsed.tail)
        else:
            started = time.time()
            await self._respond(function, inv, parsed, writer)
            if execution is not None and self.durable is not None and inv.outcome.done():
                outcome = inv.outcome.result()
                failure = None
                if outcome.failed:
                    code, message = outcome.error_code_and_details()
                    failure = {"ErrorType": code, "ErrorMessage": message}
                self.durable.invoked(execution, Invoked(started, time.time(), inv.request_id, failure))

    async def _durable_route(self, req: http.Request, writer: asyncio.StreamWriter) -> None:
        """A durable route of the Lambda API (``/2025-12-01/``): answered by :mod:`.durable_api`."""
        from .durable_api import error

        try:
            body = await req.body_reader.read()
        except http.BadRequest as exc:
            answer_body, headers = _error_answer(exc.status, str(exc))
            await http.send(writer, exc.status, answer_body, headers + [("X-Amzn-RequestId", _request_id()), ("Connection", "close")])
            raise
        if req.body_reader.too_large:
            answer = error(413, "RequestTooLargeException", "Request must be smaller than %d bytes" % protocol.MAX_PAYLOAD)
        elif self.durable is None:
            answer = error(404, "ResourceNotFoundException", "No durable function is served here (start the emulator with --durable)")
        else:
            function_name = None
            parts = req.path.split("/")
            if len(parts) == 5 and parts[2] == "functions":
                ref = parse_function(parts[3])
                try:
                    if ref is None:
                        raise Refused(400, "InvalidParameterValueException", "Invalid function name %r" % parts[3][:200])
                    function_name = self.functions.find(ref).name
                except Refused as exc:
                    await _refuse(writer, exc)
                    return
            answer = await self.durable.handle(req.method, req.path, req.query, body, req.headers.get("content-type"), function_name)
        await http.send(writer, answer.status, answer.body, answer.headers + [("X-Amzn-RequestId", _request_id())])

    async def _respond(self, function: Function, inv: Invocation, parsed: InvokeRequest, writer: asyncio.StreamWriter) -> None:
        """A RequestResponse invoke: run it, answer with its payload (or its error JSON)."""
        try:
            outcome = await self._invoke(function, inv)
        except Refused as exc:
            await _refuse(writer, exc, inv.request_id)
            return
        headers = [
            ("Content-Type", outcome.content_type if not outcome.failed else "application/json"),
            ("X-Amzn-RequestId", inv.request_id),
            ("X-Amz-Executed-Version", parsed.executed_version),
        ]
        if outcome.failed:
            headers.append(("X-Amz-Function-Error", "Unhandled"))
        if parsed.tail:
            headers.append(("X-Amz-Log-Result", base64.b64encode(inv.tail()).decode("ascii")))
        await http.send(writer, 200, outcome.body, headers)

    async def _respond_streaming(self, function: Function, inv: Invocation, writer: asyncio.StreamWriter, tail: bool) -> None:
        from . import eventstream

        task = self._in_background(self._invoke(function, inv), inv)
        try:
            # wait for the first chunk or the end before committing to a 200
            first = asyncio.ensure_future(inv.chunks.get())
            await asyncio.wait({task, first}, return_when=asyncio.FIRST_COMPLETED)
            refused = task.exception() if task.done() else None
            if isinstance(refused, Refused):
                first.cancel()
                await _refuse(writer, refused, inv.request_id)
                return
            # As Lambda: the body is an event stream; Content-Type is the function's stream type
            # (botocore reports it as ResponseStreamContentType).
            content_type = inv.stream_content_type
            if task.done() and not inv.streamed and task.exception() is None:
                content_type = task.result().content_type
            headers = [
                ("Content-Type", content_type),
                ("X-Amzn-RequestId", inv.request_id),
                ("X-Amz-Executed-Version", "$LATEST"),
            ]
            writer.write(http.response_head(200, headers, None))
            data = await first
            while data is not None:
                await _send_payload(writer, data)  # (drains: the next piece is taken when the caller has this one)
                data = await inv.chunks.get()
            outcome = await task
            if not inv.streamed and outcome.kind == "response" and outcome.body:
                await _send_payload(writer, outcome.body)
            code = details = None
            if outcome.failed:
                code, details = outcome.error_code_and_details()
            log = base64.b64encode(inv.tail()).decode("ascii") if tail else None
            writer.write(http.chunk(eventstream.invoke_complete(code, details, log)) + b"0\r\n\r\n")
            await writer.drain()
        finally:
            # the caller is gone (or answered): the rest of the runtime's stream is read and dropped
            inv.chunks.abandon()

    def _in_background(self, work: Awaitable[Outcome], inv: Invocation, say_throttled: bool = False) -> "asyncio.Task[Outcome]":
        """Run an invoke as a task kept until it ends. Its refusal is taken here, never left as
        a "Task exception was never retrieved" traceback; with ``say_throttled`` (an Event
        invoke: its caller had its 202 already) a throttled one is said in one line."""
        task = asyncio.ensure_future(work)
        self.background.add(task)

        def done(task: "asyncio.Task[Outcome]") -> None:
            self.background.discard(task)
            exc = None if task.cancelled() else task.exception()
            if say_throttled and isinstance(exc, TooManyRequests):
                self._say("lambdaric: RequestId: %s (Event) was not run: every runtime busy and the queue full" % inv.request_id)

        task.add_done_callback(done)
        return task

    # ------------------------------------------------------------------ invoking

    async def invoke(self, function: str, inv: Invocation) -> Outcome:
        """Run ``inv`` on function ``function``'s runtimes and return how it ended: the one
        entry point for every front (the Invoke API here, the HTTP front). The function's
        settings apply: its timeout replaces ``inv.timeout``. It raises :class:`Refused` when
        the emulator cannot run it (no such function: 404; full: 429; failed: 500)."""
        target = self.functions.get(function)
        inv.timeout = target.settings.timeout
        return await self._invoke(target, inv)

    async def _invoke(self, function: Function, inv: Invocation) -> Outcome:
        """Run ``inv`` on a sandbox and return how it ended. A runtime that cannot start or
        ends before taking the invoke gives Lambda's error outcome and a console line; the
        emulator itself failing (or full) raises :class:`Refused`."""
        if function.settings.xray_sampled and inv.trace_made:
            inv.trace_id = new_trace_id(sampled=True)  # active tracing: Lambda samples the invoke
        pool = function.pool
        try:
            sandbox = await pool.acquire()
        except InvalidEntrypoint as exc:
            # Lambda's answer for an entrypoint it cannot exec: 200, X-Amz-Function-Error:
            # Unhandled, errorType Runtime.InvalidEntrypoint (a function error: the image is
            # wrong, the service is fine)
            inv.finish(Outcome.fault(faults.INVALID_ENTRYPOINT, "RequestId: %s Error: %s" % (inv.request_id, exc)))
            self._never_delivered(function, inv, None)
            return inv.outcome.result()
        except SandboxUnavailable as exc:
            # the emulator out of descriptors, processes or memory: the service failed, not the
            # function, so Lambda's 500 ServiceException (which callers retry), not a function error
            self._say("lambdaric: RequestId: %s: %s; answered 500 ServiceException" % (inv.request_id, exc))
            raise Refused(500, "ServiceException", "Lambda emulator could not start a runtime: %s" % exc) from None
        try:
            outcome = await sandbox.run(inv, self._on_start)
        except Exception as exc:  # pragma: no cover (a defect of ours: still an answer)
            inv.finish(Outcome.fault(faults.UNKNOWN, "RequestId: %s Error: %s" % (inv.request_id, exc)))
            outcome = inv.outcome.result()
        finally:
            pool.release(sandbox)
        if inv.delivered_at:
            if outcome.kind == "fault" and outcome.error_type == faults.SANDBOX_TIMEDOUT:
                self._line(inv, "%s %s Task timed out after %.2f seconds" % (_utc_now(), inv.request_id, inv.timeout))
            self._line(inv, "END RequestId: %s" % inv.request_id)
            self._line(inv, report_line(inv, sandbox.take_init_ms(), function.settings.memory_mb, sandbox.max_memory_used_mb()))
        else:
            self._never_delivered(function, inv, sandbox)
        return outcome

    def _never_delivered(self, function: Function, inv: Invocation, sandbox: Optional[Sandbox]) -> None:
        """Say why an invoke failed before its runtime took it: the runtime could not start,
        exited or timed out during init. (An init error the runtime reported itself was
        logged by the runtime.)"""
        outcome = inv.outcome.result()
        if outcome.kind != "fault":
            return
        if outcome.error_type == faults.INIT_TIMEOUT and sandbox is not None:
            init_ms = (time.monotonic() - sandbox.spawned_at) * 1000.0
            self._line(inv, "INIT_REPORT Init Duration: %.2f ms\tPhase: init\tStatus: timeout" % init_ms)
            self._line(inv, _init_timeout_reason(sandbox.init_wait(inv), function.settings.init_timeout, inv.timeout))
            return
        error_type, message = outcome.error_code_and_details()
        self._line(inv, "%s (%s)" % (message, error_type))

    def _on_start(self, inv: Invocation) -> None:
        self._line(inv, "START RequestId: %s Version: $LATEST" % inv.request_id)

    def _line(self, inv: Invocation, text: str) -> None:
        """A line of the invoke's log: on the console and in its log tail."""
        data = (text + "\n").encode("utf-8")
        inv.add_log(data)
        self.out(data)

    def _say(self, text: str) -> None:
        """One line of the emulator's own, on stderr."""
        self.err((text + "\n").encode("utf-8", "replace"))


def _init_timeout_reason(waited: float, init_timeout: float, timeout: float) -> str:
    """The console line for an init timeout: what happened, and why ``--timeout`` did not
    make it shorter (Lambda gives init 10 s whatever the function timeout; a longer function
    timeout lengthens it, as Lambda runs a timed-out init again within the first invoke)."""
    text = (
        "lambdaric: the runtime did not ask for an invoke (GET /next) within %.2f s of starting: "
        "%s, runtime stopped. Init may take %g s (--init-timeout, LAMBDARIC_INIT_TIMEOUT) "
        "or the function timeout when longer, as on Lambda" % (waited, faults.INIT_TIMEOUT, init_timeout)
    )
    if timeout < init_timeout:
        text += "; --timeout %g does not shorten it" % timeout
    return text


async def _send_payload(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Forward one piece of a streamed response as PayloadChunk events of at most
    ``eventstream.MAX_CHUNK`` bytes each. A runtime may send a single chunk of many MiB
    (a stream may reach ``protocol.MAX_STREAMED``); one event that size would be refused by
    the codec past ``MAX_MESSAGE`` and, below it, arrive as one lump the client must hold.
    Draining after each event bounds what waits in the transport for a slow client."""
    from . import eventstream

    for event in eventstream.payload_chunks(data):
        writer.write(http.chunk(event))
        await writer.drain()


#: The header the durable execution service sends when it invokes a handler with the durable
#: envelope (as its own re-invocation, not a caller's invoke that would start an execution).
RUNNER_MARKER = "x-dex-handler-invoke"


def _request_id() -> str:
    import uuid

    return str(uuid.uuid4())


def _utc_now() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (int(now * 1000) % 1000)


def _error_answer(status: int, message: str) -> Tuple[bytes, List[Tuple[str, str]]]:
    error_type = {413: "RequestTooLargeException", 431: "RequestTooLargeException"}.get(status, "InvalidRequestContentException")
    return json.dumps({"Type": "User", "message": message}).encode(), [
        ("Content-Type", "application/json"),
        ("X-Amzn-ErrorType", error_type),
    ]


async def _refuse(writer: asyncio.StreamWriter, exc: Refused, request_id: Optional[str] = None) -> None:
    """Answer an invoke that was not run in Lambda's API error shape (``Type`` is ``Service``
    for the service's own failures, 5xx), under its own request id (the one its console line
    gives; a new one for a request refused before it became an invoke)."""
    body = json.dumps({"Type": "Service" if exc.status >= 500 else "User", "message": exc.message}).encode()
    headers = [("Content-Type", "application/json"), ("X-Amzn-ErrorType", exc.error_type), ("X-Amzn-RequestId", request_id or _request_id())]
    await http.send(writer, exc.status, body, headers + exc.headers)


def _stderr_notice(data: bytes) -> None:
    """The emulator's own notices when no console was given (a blocking write: for embedding)."""
    try:
        sys.stderr.buffer.write(data)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass

