"""Response streaming: a handler's result sent as it is produced, not buffered.

A handler streams in one of two ways:

* it returns a generator or an async generator (``def handler(event, context): yield ...``);
  each item is ``bytes`` (sent as is), ``str`` (sent UTF-8 encoded) or, first of all, an
  :class:`HttpResponse` (the status, headers and cookies of a Function URL response);
* it is decorated with :func:`streaming_handler` and takes a third argument, a
  :class:`ResponseStream`, and calls ``stream.write(...)`` with the same items
  (``async def`` handlers too; they run on the runtime's event loop).

Each item goes out as one chunk of a ``POST .../response`` in streaming mode the moment
it is produced (empty items are skipped: an empty chunk would end the body). The stream
begins at the first item that puts bytes on the wire; until then nothing has been sent, so
an exception raised before it is a normal function error, posted to ``/error`` exactly as
for a buffered handler. Once the stream has begun, an exception ends it with the error
trailers (``Lambda-Runtime-Function-Error-Type`` and ``-Error-Body``: base64 of the same
error JSON ``/error`` takes) and the same uncaught-error log record.

This module is imported only when a handler streams (or user code touches the public
names), never on the runtime's startup path.
"""
from __future__ import annotations

import sys
from types import GeneratorType

from . import logsink, protocol, streamwire
from .console import RuntimeExit, exit_code, say
from .errors import TRUNCATED, exit_error, json_bytes, report_exception, report_fault
from .faults import MARSHAL_ERROR, RESPONSE_TOO_LARGE, FaultException

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

    from .runtime import Runtime
    from .errors import ErrorReport

#: Content type of a stream whose handler did not choose one.
DEFAULT_CONTENT_TYPE = "application/octet-stream"
#: Content type of a Function URL response that begins with an HTTP integration prelude.
HTTP_INTEGRATION_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
#: What separates the prelude (JSON) from the body.
PRELUDE_DELIMITER = b"\0" * 8


# ResponseStream states.
_NEW, _OPEN, _ENDED, _BROKEN = "new", "open", "ended", "broken"

_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _header_text(what: str, value: object) -> str:
    """A header value or cookie: a str without CR, LF or NUL (they would split or cut the
    HTTP response the platform writes from it)."""
    if type(value) is not str:
        raise TypeError("%s must be a str, not %s" % (what, type(value).__name__))
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError("%s must not contain CR, LF or NUL: %s" % (what, ascii(value[:100])))
    return value


class HttpResponse:
    """The status code, headers and cookies of a streamed Function URL response.

    Yielded (or written) before any data, it makes the response an HTTP integration
    response: content type ``application/vnd.awslambda.http-integration-response``, and
    the body starts with a JSON prelude ``{"statusCode", "headers", "cookies"}`` followed
    by 8 NUL bytes, then the data. Put ``Content-Type`` in ``headers`` to set the body's.
    Values are checked here, where the mistake is made: ``status_code`` an int from 100
    to 599, header names HTTP tokens, values and cookies str without CR/LF/NUL.
    """

    __slots__ = ("status_code", "headers", "cookies")

    def __init__(
        self,
        status_code: int = 200,
        headers: Optional[Mapping[str, str]] = None,
        cookies: Optional[Iterable[str]] = None,
    ) -> None:
        if type(status_code) is not int or not 100 <= status_code <= 599:
            raise ValueError("status_code must be an int from 100 to 599, not %r" % (status_code,))
        checked: Dict[str, str] = {}
        for name, value in (headers or {}).items():
            if type(name) is not str or not name or not _TOKEN.issuperset(name):
                raise ValueError("header name must be a non-empty HTTP token, not %s" % ascii(name))
            checked[name] = _header_text("header %s" % name, value)
        if isinstance(cookies, (str, bytes)):
            raise TypeError("cookies must be a list of str (one Set-Cookie value each), not a single %s"
                            % type(cookies).__name__)
        self.status_code = status_code
        self.headers = checked
        self.cookies = [_header_text("cookie", c) for c in (cookies or ())]

    def prelude(self) -> bytes:
        """The bytes that begin the body: the JSON prelude and the 8-NUL delimiter."""
        obj = {"statusCode": self.status_code, "headers": self.headers, "cookies": self.cookies}
        import simplejson

        return simplejson.dumps(obj, separators=(",", ":")).encode("utf-8") + PRELUDE_DELIMITER

    def __repr__(self) -> str:
        return "HttpResponse(status_code=%r, headers=%r, cookies=%r)" % (self.status_code, self.headers, self.cookies)

    def __eq__(self, other: object) -> bool:
        if type(other) is not HttpResponse:
            return NotImplemented
        return (self.status_code, self.headers, self.cookies) == (other.status_code, other.headers, other.cookies)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass with eq


class ResponseStream:
    """The response of one invoke, sent as it is written (given to a
    :func:`streaming_handler` as its third argument).

    ``write(data)`` sends ``data`` now as one chunk: ``bytes`` (or another contiguous
    buffer) as is, ``str`` UTF-8 encoded; empty data sends nothing. Before the first write,
    ``content_type`` may be set (default ``application/octet-stream``), or an
    :class:`HttpResponse` written to make a Function URL response. After the invoke is over
    the stream refuses writes (RuntimeError), so a late write can never end up in another
    invoke's response. Write from the handler's own thread (or its event loop).
    """

    __slots__ = ("_runtime", "_inv", "_content_type", "_state", "_failure")

    def __init__(self, runtime: Runtime, inv: protocol.Invocation) -> None:
        self._runtime = runtime
        self._inv = inv
        self._content_type = DEFAULT_CONTENT_TYPE
        self._state = _NEW
        self._failure: Optional[BaseException] = None  # what broke or overflowed the stream

    @property
    def content_type(self) -> str:
        return self._content_type

    @content_type.setter
    def content_type(self, value: str) -> None:
        if self._state is not _NEW:
            raise RuntimeError("the content type cannot change: the response stream has begun")
        self._content_type = protocol.check_content_type(value)

    @property
    def started(self) -> bool:
        """Whether anything of the response has been sent."""
        return self._state is not _NEW

    def write(self, data: Any) -> None:
        if type(data) is bytes:
            if not data:
                return
        elif isinstance(data, str):
            if not data:
                return
            data = data.encode("utf-8")
        elif isinstance(data, HttpResponse):
            if self._state is _OPEN:
                raise ValueError("an HttpResponse must come before any data of the response")
            self._begin(HTTP_INTEGRATION_CONTENT_TYPE)
            self._send(data.prelude())
            return
        else:
            try:
                size = memoryview(data).nbytes
            except TypeError:
                raise TypeError(
                    "a streamed response takes bytes, str or lambdaric.HttpResponse, not %s" % type(data).__name__
                ) from None
            if not size:
                return
        if self._state is not _OPEN:
            if self._state is _NEW:
                self._begin(self._content_type)
            else:
                self._refuse()
        self._send(data)

    # ------------------------------------------------------------------ internals

    def _refuse(self) -> None:
        if self._state is _BROKEN:
            raise RuntimeError("the response stream is broken (%s): nothing more can be sent" % self._failure)
        raise RuntimeError("the response stream is closed: its invoke is over")

    def _begin(self, content_type: str) -> None:
        """Send the head (after the invoke's output so far has reached the log)."""
        from .logsink import flush_std_streams
        from .transport import TransportError

        if self._state is not _NEW:
            self._refuse()
        flush_std_streams()
        inv = self._inv
        try:
            self._runtime.client.transport.stream_begin(inv.request_id, content_type, inv.invocation_id)
        except TransportError as exc:
            self._state, self._failure = _BROKEN, exc
            raise
        self._state = _OPEN

    def _send(self, data: Any) -> None:
        from .transport import TransportError

        try:
            self._runtime.client.transport.stream_write(data)
        except TransportError as exc:
            self._state, self._failure = _BROKEN, exc
            raise
        except streamwire.StreamTooLarge as exc:  # nothing sent; the stream stays open for the error
            self._failure = exc
            raise


# ---------------------------------------------------------------------------- the decorator


class StreamingCall:
    """What a :func:`streaming_handler` returns when the runtime calls it: the function and
    its arguments, for :func:`respond` to call with the response stream. The runtime sends
    a result as a stream when its type has ``lambdaric_streamed`` (so it need not import
    this module to know), as it does a generator."""

    __slots__ = ("fn", "event", "context")
    lambdaric_streamed = True

    def __init__(self, fn: Callable[..., Any], event: Any, context: Any) -> None:
        self.fn = fn
        self.event = event
        self.context = context


_CO_GENERATORS = 0x20 | 0x200  # CO_GENERATOR | CO_ASYNC_GENERATOR


def streaming_handler(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Make ``fn(event, context, stream)`` a handler that writes its response to ``stream``
    (a :class:`ResponseStream`) as it goes. ``fn`` may be ``async def``.

    The decorated function called with two arguments (as the runtime calls it) returns a
    :class:`StreamingCall` the runtime completes with the stream; called with a third,
    ``stream``, it is ``fn`` itself, so tests can pass any object with a ``write`` method. A generator function needs no
    decorator (returning a generator streams already) and is refused here.
    """
    if not callable(fn):
        raise TypeError("streaming_handler takes a function, not %s" % type(fn).__name__)
    flags = getattr(getattr(fn, "__code__", None), "co_flags", 0)
    if flags & _CO_GENERATORS:
        raise TypeError(
            "%s is a generator function: it streams what it yields without @streaming_handler"
            % getattr(fn, "__qualname__", fn)
        )

    def handler(event: Any, context: Any, stream: Any = None) -> Any:
        if stream is not None:
            return fn(event, context, stream)
        return StreamingCall(fn, event, context)

    for name in ("__module__", "__name__", "__qualname__", "__doc__"):
        try:
            setattr(handler, name, getattr(fn, name))
        except AttributeError:
            pass
    handler.__wrapped__ = fn  # type: ignore[attr-defined]
    return handler


# ---------------------------------------------------------------------------- the driver


def _close(gen: Any) -> None:
    """Stop a generator the runtime will not pull from again (its ``finally`` blocks run)."""
    try:
        gen.close()
    except BaseException as exc:  # the failure being reported matters more; say this one
        say("closing the response generator raised %s: %s" % (type(exc).__name__, exc))


async def _aclose(agen: Any) -> None:
    try:
        await agen.aclose()
    except BaseException as exc:
        say("closing the response generator raised %s: %s" % (type(exc).__name__, exc))


def _write_failure(exc: BaseException) -> BaseException:
    """What to report when the runtime's own write of a yielded item failed: a bad item
    is the function's marshal error, a stream past the limit its size error."""
    if isinstance(exc, streamwire.StreamTooLarge):
        return exc
    if isinstance(exc, (TypeError, ValueError)):
        return FaultException(MARSHAL_ERROR, "Unable to marshal response: %s" % exc)
    return exc


def _pump(runtime: Runtime, gen: Any, stream: ResponseStream) -> Optional[BaseException]:
    """Send what ``gen`` yields; return the exception that ended it (None when it finished)."""
    write = stream.write
    try:
        item = next(gen)
        while True:
            try:
                write(item)
            except BaseException as exc:
                _close(gen)
                return _write_failure(exc)
            item = next(gen)
    except StopIteration:
        return None
    except BaseException as exc:
        _close(gen)
        return exc


def _call(runtime: Runtime, call: StreamingCall, stream: ResponseStream) -> Optional[BaseException]:
    """Run a @streaming_handler's function with the stream (awaited when ``async def``);
    return the exception that ended it (None when it finished, returning None)."""
    try:
        result = call.fn(call.event, call.context, stream)
        if getattr(type(result), "__await__", None) is not None:
            result = runtime.run_async(result)
        if result is not None:
            raise FaultException(
                MARSHAL_ERROR,
                "Unable to marshal response: a streaming handler writes to its stream and returns None, "
                "not %s" % type(result).__name__,
            )
    except BaseException as exc:
        return exc
    return None


async def _apump(agen: Any, stream: ResponseStream) -> Optional[BaseException]:
    """:func:`_pump` for an async generator, run on the runtime's event loop."""
    write = stream.write
    anext = agen.__anext__
    try:
        item = await anext()
        while True:
            try:
                write(item)
            except BaseException as exc:
                await _aclose(agen)
                return _write_failure(exc)
            item = await anext()
    except StopAsyncIteration:
        return None
    except BaseException as exc:
        await _aclose(agen)
        return exc


def respond(runtime: Runtime, inv: protocol.Invocation, result: Any) -> None:
    """Stream ``result`` (a generator or async generator) as the response to ``inv``.

    Called by :meth:`Runtime.handle <lambdaric.runtime.Runtime.handle>` inside its handler ``try``: an exception raised before anything
    was sent is re-raised, so it is reported on ``/error`` like any handler error. After
    that, every outcome is dealt with here: the end of the stream (with the error trailers
    on failure), its answer (4xx logged, 5xx exits), a broken connection (said, never
    retried), ``sys.exit()`` (reported in the trailers, then the runtime exits).
    """
    stream = ResponseStream(runtime, inv)
    try:
        if type(result) is StreamingCall:
            exc = _call(runtime, result, stream)
        elif type(result) is GeneratorType:
            exc = _pump(runtime, result, stream)
        else:
            exc = runtime.run_async(_apump(result, stream))
        _finish(runtime, inv, stream, exc)
    finally:
        if stream._state is not _BROKEN:
            stream._state = _ENDED


def _finish(runtime: Runtime, inv: protocol.Invocation, stream: ResponseStream, exc: Optional[BaseException]) -> None:
    from .logsink import flush_std_streams
    from .transport import TransportError

    if stream._state is _NEW:
        if exc is not None:
            raise exc  # nothing was sent: a normal function error
        try:
            stream._begin(stream._content_type)  # the handler produced nothing: an empty body
        except TransportError:
            pass
    if stream._state is _BROKEN:
        say("the response stream for %s broke, the rest of the response is lost: %s" % (inv.request_id, stream._failure))
        if exc is not None and exc is not stream._failure:
            logsink.log_uncaught(runtime.client.sink, _report(exc, inv.request_id).error)
        if isinstance(exc, SystemExit):
            _exit_now(exc)
        return
    if exc is None:
        flush_std_streams()  # the invoke's output reaches the log before its end
        trailers: "Sequence[Tuple[str, str]]" = ()
    else:
        report = _report(exc, inv.request_id)
        logsink.log_uncaught(runtime.client.sink, report.error)
        trailers = _trailers(report)
    try:
        status, answer = _end(runtime, trailers)
    except TransportError as error:
        say("the end of the response stream for %s was not delivered: %s" % (inv.request_id, error))
    except protocol.ProtocolError as error:
        runtime.client.invalid_answer("POST /response", error)
    else:
        if status != 202:
            runtime.client.check_answer("POST /response", inv.request_id, status, answer)
    if isinstance(exc, SystemExit):
        _exit_now(exc)


def _exit_now(exc: SystemExit) -> None:
    """Leave the runtime with the code ``sys.exit()`` asked for (its report has been sent).
    As Python does for an uncaught SystemExit, a message given instead of a code is printed."""
    if exc.code is not None and not isinstance(exc.code, int):
        try:
            sys.stderr.write("%s\n" % (exc.code,))
        except Exception:
            pass
    raise RuntimeExit(exit_code(exc))


def _report(exc: BaseException, request_id: str) -> ErrorReport:
    if isinstance(exc, streamwire.StreamTooLarge):
        return report_fault(
            RESPONSE_TOO_LARGE,
            "Response payload size exceeded maximum allowed payload size (%d bytes)." % protocol.MAX_STREAMED,
            request_id,
        )
    if isinstance(exc, SystemExit):
        return exit_error("exit status %d" % exit_code(exc), request_id)
    return report_exception(exc, request_id)


def _trailers(report: ErrorReport) -> List[tuple]:
    """Error trailers to try in order: the whole report; then, when it would not fit in the
    trailers (64 KiB) or its type is not a valid header value, a shortened one (the whole
    report is in the log). The last one always fits."""
    error = report.error
    error_type = error["errorType"]
    safe_type = error_type.encode("ascii", "backslashreplace").decode("ascii") or "Unhandled"
    room = protocol.MAX_STREAM_TRAILERS * 3 // 4 - 200  # JSON bytes that fit once base64-encoded
    short = dict(error, errorType=safe_type, stackTrace=[])
    message = short["errorMessage"]
    if isinstance(message, str) and len(json_bytes(short)) > room:
        short["errorMessage"] = message[: room // 4] + TRUNCATED
    return [(error_type, json_bytes(error)), (safe_type, json_bytes(short)), ("Unhandled", None)]


def _end(runtime: Runtime, trailers: Any) -> Any:
    """``stream_end``, with the first of the candidate trailers the transport accepts (a
    refused value sends nothing and leaves the stream open, see transport.Transport)."""
    end = runtime.client.transport.stream_end
    if not trailers:
        return end()
    for error_type, body in trailers[:-1]:
        try:
            return end(error_type, body)
        except (TypeError, ValueError):
            continue
    return end(*trailers[-1])
