"""One event's way, and the one loop: ``/next`` -> handler -> ``/response`` or ``/error``.

:class:`Runtime` loads the handler, turns each invocation into a result (the handler called
with the event and its context, a coroutine awaited) and hands it to the
:class:`~lambdaric.client.RuntimeClient`, which posts it. :meth:`Runtime.serve` is the loop
for every mode: the classic runtime, each thread of the Managed Instances thread modes and
each process worker; what differs between them is configuration (the client's retries, where
coroutines run, whether ``_X_AMZN_TRACE_ID`` is written), not code. Streamed results go to
:mod:`lambdaric.streaming`, a layer over the same client.
"""
from __future__ import annotations

import sys

# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, NoReturn, Optional

    from .client import RuntimeClient

from . import logsink, marshal, protocol
from .console import RuntimeExit, exit_code, say
from .context import LambdaContext, StaticContext
# (imported now, not on the failure paths: a MemoryError must not need an import to be reported)
from .errors import exit_error, report_exception
from .handler import load_handler
from .logsink import flush_std_streams
from .traceenv import TraceEnv


def _generator() -> "Any":
    yield


async def _async_generator() -> "Any":
    yield


#: Handler results sent as a response stream (lambdaric.streaming), checked with one ``in``;
#: a @streaming_handler's result (streaming.StreamingCall) says so itself (``lambdaric_streamed``).
#: (The two types made here as the ``types`` module makes them: importing it costs ~0.15 ms of a
#: cold start where site has not imported it.)
STREAMED_RESULTS = (type(_generator()), type(_async_generator()))
#: Result types that are neither awaited nor streamed, known without a lookup on the type (a
#: missing attribute of a type costs a formatted AttributeError: ~0.15 us each).
PLAIN_RESULTS = frozenset((dict, list, str, int, float, bool, type(None), bytes, tuple))


class Runtime:
    """A handler, the client that posts its results, and the loop between them.

    ``trace_env``: write ``_X_AMZN_TRACE_ID`` per invoke (not under Managed Instances, where
    invokes overlap); ``shared_loop``: an event loop running on its own thread that runs
    every coroutine (the asyncio mode), else one loop kept for this runtime;
    ``survive_exit``: a handler's ``sys.exit()`` (reported) ends only its invoke (the
    thread modes), else the runtime."""

    def __init__(self, client: RuntimeClient, environ: Dict[str, str], trace_env: bool = True,
                 shared_loop: "Any" = None, survive_exit: bool = False) -> None:
        self.client = client
        self.sink = client.sink
        self.environ = environ
        self.static = StaticContext(environ)
        self.trace_env = TraceEnv() if trace_env else None
        self.shared_loop = shared_loop
        self.survive_exit = survive_exit
        self.handler: Optional[Callable[..., Any]] = None
        self._loop: Any = None  # the asyncio loop kept for this runtime, made on first need

    # ------------------------------------------------------------------ init

    def init(self, handler_name: str, load: "Optional[Callable[[], Callable[..., Any]]]" = None) -> None:
        """Load the handler, or get it from ``load`` (a preloaded handler, once the worker's
        after-fork hooks ran: :mod:`lambdaric.preload`); a failure is the init error."""
        try:
            self.handler = load() if load is not None else load_handler(handler_name)
            flush_std_streams()  # init's output reaches the log before the runtime waits on /next
        except Exception as exc:
            self.client.init_failed(report_exception(exc, None))
        except SystemExit as exc:
            self.client.init_failed(exit_error("exit status %d" % exit_code(exc), None))

    # ------------------------------------------------------------------ the loop

    def serve(self, on_take: "Optional[Callable[[protocol.Invocation], None]]" = None,
              on_done: "Optional[Callable[[], None]]" = None) -> "NoReturn":
        """Take invocations and answer them until the runtime must exit (RuntimeExit, or the
        function's SystemExit). ``on_take`` and ``on_done`` tell a supervisor which request
        this poller holds. Where answers are not fatal (Managed Instances), an answer that
        failed (said already) ends only its invoke."""
        next_invocation = self.client.next
        fatal = self.client.answers_fatal
        while True:
            inv = next_invocation()
            if on_take is not None:
                on_take(inv)
            try:
                self.handle(inv)
            except RuntimeExit:
                if fatal:
                    raise
            except SystemExit:
                if not self.survive_exit:
                    raise
            finally:
                if on_done is not None:
                    on_done()

    def handle(self, inv: protocol.Invocation) -> None:
        """One invocation, start to end: its ids set for the logs, its result or error posted."""
        if inv.deadline_problem:
            say(inv.deadline_problem)
        logsink.begin_invoke(inv.request_id, inv.tenant_id, inv.trace_id)
        if self.trace_env is not None:
            self.trace_env.set(inv.trace_id)
        client = self.client
        responded = False
        try:
            try:
                result = self.invoke(inv)
                kind = type(result)
                if kind not in PLAIN_RESULTS and (kind in STREAMED_RESULTS or getattr(kind, "lambdaric_streamed", False)):
                    from .streaming import respond

                    respond(self, inv, result)  # raises only what came before anything was sent
                    return
                body, content_type = marshal.to_response(result)
            except RuntimeExit:  # the runtime's decision (e.g. a stream's 5xx answer), not the function's error
                raise
            except SystemExit as exc:
                client.exited(inv, exc)
                flush_std_streams()
                raise
            except BaseException as exc:  # KeyboardInterrupt, custom BaseExceptions: an error, not an exit
                client.fail(inv, report_exception(exc, inv.request_id))
                return
            client.respond(inv, body, content_type)  # (flushes the invoke's output before posting)
            responded = True
        finally:
            logsink.end_invoke()
            if not responded:
                flush_std_streams()

    def invoke(self, inv: protocol.Invocation) -> "Any":
        """The handler's result for ``inv``: event parsed, context made, a coroutine awaited."""
        context = LambdaContext(inv, self.static, self.sink.context_log)
        event = marshal.parse_event(inv.body, inv.content_type)
        if type(event) is bytearray:
            event = bytes(event)
        result = self.handler(event, context)  # type: ignore[misc]
        if type(result) not in PLAIN_RESULTS and getattr(type(result), "__await__", None) is not None:  # a coroutine
            result = self.run_async(result)
        return result

    def run_async(self, awaitable: "Any") -> "Any":
        """Run a coroutine to its end: on the shared loop (the asyncio mode), with this
        invoke's ids, else on one event loop kept for this runtime."""
        loop = self.shared_loop
        if loop is not None:
            return _run_on_shared_loop(loop, awaitable)
        if self._loop is None:
            import asyncio

            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
        return self._loop.run_until_complete(awaitable)


def _run_on_shared_loop(loop: "Any", awaitable: "Any") -> "Any":
    import asyncio

    ids = logsink.current_ids()

    async def invoke() -> "Any":
        # the task's context is a copy of this thread's already; set them anyway, so the
        # ids never depend on how the loop copies contexts
        logsink.set_ids(ids)
        return await awaitable

    return asyncio.run_coroutine_threadsafe(invoke(), loop).result()


def setup_output(sink: logsink.StreamSink, flusher: bool = True) -> None:
    """What every runtime process does to its output when it starts: ``logging`` gets the
    runtime's handler (:mod:`lambdaric.logs`) when anything imports it, stdout is buffered
    and flushed at the right times (:func:`lambdaric.logsink.setup_output`)."""

    def install(_logging: "Any") -> None:
        from .logs import install as install_handler

        install_handler(sink)

    logsink.when_logging_imported(install)
    logsink.setup_output(flusher)


def sigterm_extension(env: Dict[str, str], address: str) -> None:
    """Register the no-op extension that makes Lambda send SIGTERM (lambdaric.shutdown),
    during init, when asked for or when on_shutdown callbacks were registered. Not under
    SnapStart: its connection would not survive the snapshot."""
    choice = env.get("LAMBDARIC_SIGTERM_EXTENSION")
    if choice == "0" or (not choice and "lambdaric.shutdown" not in sys.modules):
        return
    from . import shutdown

    if not shutdown.wanted(env):
        return
    if env.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
        say("the SIGTERM extension is not registered under SnapStart (it would not survive the snapshot)")
        return
    shutdown.start_extension(address, protocol.user_agent())
