"""``lambdaric invoke``: send one event to a Lambda Invoke API and print the answer.

The target is an invoke URL (our emulator, the official one, anything speaking the API)
or a handler: then an emulator is started for it on a free loopback port, invoked once
and stopped. The payload goes to stdout (streamed responses chunk by chunk, as they
arrive); the function's log and the emulator's lines go to stderr. Exit status: 0 on
success, 1 when the function failed, 2 when the invoke itself could not be made or its
answer broke off (a response stream that ends without ``InvokeComplete``, inside an event,
or malformed: what was printed may be incomplete and the outcome is unknown).

Built on ``requests``, which is imported here only, never by the runtime.
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import threading
import time
from typing import IO, TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Tuple

if TYPE_CHECKING:  # pragma: no cover
    import requests

    from .emulator.eventstream import Message

DEFAULT_URL = "http://127.0.0.1:8080/2015-03-31/functions/function/invocations"
_BANNER = re.compile(r"serving .* on (http://\S+)/2015-03-31/functions/")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lambdaric invoke",
        description="Invoke a Lambda function once: at an invoke URL, or a handler served by a temporary local emulator.",
    )
    # (no %(default)s in a positional's help: parse_intermixed_args hides positional defaults while it
    # parses, and --help met then raised KeyError: 'default')
    p.add_argument("target", nargs="?", default=DEFAULT_URL, help="invoke URL, or module.function to serve (default: %s)" % DEFAULT_URL)
    p.add_argument("event", nargs="?", help="the event: inline JSON, @file, or - for stdin (default: {})")
    p.add_argument("--event", dest="sample", metavar="NAME", choices=sample_names(),
                   help="send the sample event NAME instead of EVENT: %s (`python -m lambdaric event list` says what each is)" % ", ".join(sample_names()))
    p.add_argument("--type", default="RequestResponse", choices=["RequestResponse", "Event", "DryRun"], help="invocation type")
    p.add_argument("--tail", action="store_true",
                   help="print the decoded log tail (X-Amz-Log-Type: Tail) on stderr, the lines of a multi-line record indented")
    p.add_argument("--stream", action="store_true", help="use InvokeWithResponseStream and print chunks as they come")
    p.add_argument("--function", help="the function to invoke: its name in the URL (replacing the one a full URL "
                   "has), or the name a handler is served under (default: function)")
    p.add_argument("--client-context", help="client context JSON (sent base64-encoded)")
    p.add_argument("--tenant-id", help="tenant id (X-Amz-Tenant-Id)")
    p.add_argument("--durable", metavar="NAME",
                   help="start a durable execution named NAME (X-Amz-Durable-Execution-Name; a handler is served with "
                   "--durable): its ARN goes to stderr, or to stdout with --type Event, which returns at once")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the answer (default %(default)s)")
    return p


def sample_names() -> List[str]:
    """The sample events --event takes (lambdaric.events holds them; only this CLI loads it)."""
    from .events import names

    return names()


def read_event(spec: str) -> bytes:
    """A value given on the command line: ``-`` (stdin), ``@file``, or the text itself."""
    if spec == "-":
        return sys.stdin.buffer.read()
    if spec.startswith("@"):
        with open(spec[1:], "rb") as f:
            return f.read()
    return spec.encode("utf-8")


def invoke_url(base_or_url: str, function: Optional[str], stream: bool) -> str:
    """A full invoke URL from what the user gave (full URL, or just ``http://host:port``);
    ``function`` replaces the name a full URL has."""
    url = base_or_url.rstrip("/")
    if function is not None:
        name = function
        url = re.sub(r"(/functions/)[^/]+(/(response-streaming-)?invocations)$", lambda m: m.group(1) + name + m.group(2), url)
    function = function or "function"
    if "/functions/" in url:
        if stream:
            url = re.sub(r"/2015-03-31/functions/([^/]+)/invocations$", r"/2021-11-15/functions/\1/response-streaming-invocations", url)
        return url
    if stream:
        return "%s/2021-11-15/functions/%s/response-streaming-invocations" % (url, function)
    return "%s/2015-03-31/functions/%s/invocations" % (url, function)


class LocalEmulator:
    """An emulator serving one handler on a free loopback port, for one invoke."""

    def __init__(self, handler: str, quiet: bool = False, function: Optional[str] = None, durable: bool = False) -> None:
        env = {k: v for k, v in os.environ.items() if k != "AWS_LAMBDA_RUNTIME_API"}
        name = ["--function-name", function] if function else []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lambdaric", handler, "--listen", "127.0.0.1:0"] + name + (["--durable"] if durable else []),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if quiet else sys.stderr.fileno(),
            stderr=subprocess.PIPE,
        )
        self.base = self._read_banner(30.0)

    def _read_banner(self, timeout: float) -> str:
        assert self.proc.stderr is not None
        found: List[str] = []

        def read() -> None:
            assert self.proc.stderr is not None
            for raw in iter(self.proc.stderr.readline, b""):
                line = raw.decode("utf-8", "replace")
                match = _BANNER.search(line)
                if match and not found:
                    found.append(match.group(1))
                else:
                    sys.stderr.write(line)

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        end = time.monotonic() + timeout
        while not found and time.monotonic() < end and self.proc.poll() is None:
            time.sleep(0.01)
        if not found:
            self.close()
            raise RuntimeError("the local emulator did not start")
        return found[0]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class BrokenStream(RuntimeError):
    """An InvokeWithResponseStream answer that did not end with its ``InvokeComplete``
    event. Lambda always sends one, last; without it the output printed so far may be cut
    short and whether the function failed is unknown, so the invoke must not pass as a
    success (boto3 itself drops a trailing partial event without a word)."""


def _write(out: IO[bytes], data: bytes) -> None:
    out.write(data)
    out.flush()


def run(args: argparse.Namespace, out: IO[bytes]) -> int:
    try:
        import requests
    except ImportError as exc:  # an image installed without it (the runtime never needs it)
        sys.stderr.write("lambdaric invoke needs requests (pip install requests): %s\n" % exc)
        return 2

    if args.sample:
        from .events import text

        event = text(args.sample).encode("utf-8")
    else:
        event = read_event("{}" if args.event is None else args.event)
    headers = {"X-Amz-Invocation-Type": args.type, "Content-Type": "application/json"}
    if args.tail:
        headers["X-Amz-Log-Type"] = "Tail"
    if args.client_context:
        headers["X-Amz-Client-Context"] = base64.b64encode(args.client_context.encode("utf-8")).decode("ascii")
    if args.tenant_id:
        headers["X-Amz-Tenant-Id"] = args.tenant_id
    if args.durable:
        headers["X-Amz-Durable-Execution-Name"] = args.durable
    emulator: Optional[LocalEmulator] = None
    target = args.target
    try:
        if not re.match(r"https?://", target):
            # the tail shows the log
            emulator = LocalEmulator(target, quiet=args.tail, function=args.function, durable=bool(args.durable))
            target = emulator.base
        url = invoke_url(target, args.function, args.stream)
        response = requests.post(url, data=event, headers=headers, stream=args.stream, timeout=(10, args.timeout))
        if response.status_code >= 400:
            sys.stderr.write("lambdaric invoke: %d %s: %s\n" % (response.status_code, response.headers.get("X-Amzn-ErrorType", ""), response.text[:2000]))
            return 2
        if args.durable:
            print_execution_arn(response.headers.get("X-Amz-Durable-Execution-Arn"), args.type, out)
        if args.stream and "/response-streaming-invocations" in url:
            failed, log = _print_stream(response, out)
        else:
            _write(out, response.content + (b"\n" if response.content and not response.content.endswith(b"\n") else b""))
            failed = bool(response.headers.get("X-Amz-Function-Error"))
            log = response.headers.get("X-Amz-Log-Result")
        if args.tail and log:
            sys.stderr.write(readable_tail(base64.b64decode(log).decode("utf-8", "replace")))
        return 1 if failed else 0
    except (requests.RequestException, RuntimeError, OSError) as exc:
        sys.stderr.write("lambdaric invoke: %s\n" % exc)
        return 2
    finally:
        if emulator is not None:
            emulator.close()


def print_execution_arn(arn: Optional[str], invocation_type: str, out: IO[bytes]) -> None:
    """The started execution's ARN: on stdout for an ``Event`` invoke, whose answer has no
    payload (a script captures the ARN), on stderr otherwise (stdout stays the result)."""
    if not arn:
        sys.stderr.write("lambdaric invoke: the answer names no durable execution (no X-Amz-Durable-Execution-Arn)\n")
    elif invocation_type == "Event":
        _write(out, arn.encode("utf-8") + b"\n")
    else:
        sys.stderr.write("durable execution: %s\n" % arn)


def readable_tail(text: str) -> str:
    """The log tail for reading: a multi-line record (a traceback, a logged text of several
    lines) has its lines joined by ``\r`` so that CloudWatch keeps it one event, and a terminal
    shows only its last line; here each goes on a line of its own, indented under the first.
    (``X-Amz-Log-Result`` itself is never changed: API clients get Lambda's bytes.)"""
    return re.sub(r"\r(?!\n)", "\n    ", text).replace("\r\n", "\n")


#: The prelude of an event-stream message: total length, headers length, prelude CRC.
_PRELUDE = 12


class EventReader:
    """The messages of an event-stream answer, decoded as its pieces arrive. Raises
    :class:`BrokenStream` when the connection breaks or the bytes are no event stream; once
    the stream ended, ``leftover`` counts the bytes of a last event that was cut short."""

    def __init__(self, pieces: Iterator[bytes]) -> None:
        self.pieces = pieces
        self.leftover = 0

    def __iter__(self) -> Iterator["Message"]:
        import requests

        from .emulator.eventstream import EventStreamError, decode_messages

        pending: List[bytes] = []  # pieces received but not decoded yet (joined once enough have come)
        have = 0
        need = _PRELUDE  # bytes needed before decoding is worth trying: a prelude, then the whole event
        while True:
            try:
                piece = next(self.pieces)
            except StopIteration:
                break
            except requests.RequestException as exc:  # the connection broke inside the body
                raise BrokenStream("the connection broke inside the response stream: %s" % _reason(exc)) from None
            pending.append(piece)
            have += len(piece)
            if have < need:
                continue
            try:
                messages, rest = decode_messages(b"".join(pending))
            except EventStreamError as exc:
                raise BrokenStream("malformed response stream: %s" % exc) from None
            # Join again only once the next event can be whole: joining every piece onto what came
            # before was quadratic for a large event arriving in many small pieces.
            pending, have = ([rest] if rest else []), len(rest)
            need = int.from_bytes(rest[:4], "big") if len(rest) >= _PRELUDE else _PRELUDE
            yield from messages
        self.leftover = have


def _print_stream(response: "requests.Response", out: IO[bytes]) -> Tuple[bool, Optional[str]]:
    """Print the PayloadChunk events of an event-stream answer as they arrive; return
    (function failed, base64 log tail) from its ``InvokeComplete``. Raises
    :class:`BrokenStream` when the stream is malformed, carries an error message, goes on
    after ``InvokeComplete`` or ends without it (with or without a partial event)."""
    events = EventReader(response.iter_content(chunk_size=None))
    done: Optional[Dict[str, Any]] = None  # the InvokeComplete object
    for message in events:
        if done is not None:
            raise BrokenStream("the response stream goes on after InvokeComplete")
        done = _print_event(message, out)
    if events.leftover:
        raise BrokenStream(
            "the response stream ended inside an event (%d bytes of it received%s): the output may be incomplete"
            % (events.leftover, "" if done is not None else ", and no InvokeComplete")
        )
    if done is None:
        raise BrokenStream("the response stream ended without InvokeComplete: the output may be incomplete and the outcome is unknown")
    return bool(done.get("ErrorCode")), done.get("LogResult")


def _print_event(message: "Message", out: IO[bytes]) -> Optional[Dict[str, Any]]:
    """Print one event: a PayloadChunk's bytes on ``out``, an InvokeComplete's error on stderr.
    Returns the InvokeComplete object (None for any other event); raises :class:`BrokenStream`
    for an error message or an InvokeComplete that is no JSON object."""
    kind = message.header(":message-type")
    if kind in ("error", "exception"):  # protocol-level, as botocore raises them
        code = str(message.header(":error-code") or message.header(":exception-type") or "unknown")
        text = str(message.header(":error-message") or message.payload.decode("utf-8", "replace"))
        raise BrokenStream("the response stream ended with an %s: %s: %s" % (kind, code, text))
    event_type = message.header(":event-type")
    if event_type == "PayloadChunk":
        _write(out, message.payload)
        return None
    if event_type != "InvokeComplete":
        return None
    try:
        done = json.loads(message.payload or b"{}")
    except ValueError:
        done = None
    if not isinstance(done, dict):
        raise BrokenStream("InvokeComplete is not a JSON object: %r" % message.payload[:200])
    if done.get("ErrorCode"):
        sys.stderr.write("lambdaric invoke: %s: %s\n" % (done.get("ErrorCode"), done.get("ErrorDetails", "")))
    return done


def _reason(exc: BaseException) -> str:
    """The innermost message of a requests/urllib3 error, which nests the real one in its
    args (``('Connection broken: IncompleteRead(...)', IncompleteRead(...))``)."""
    while exc.args and isinstance(exc.args[0], BaseException):
        exc = exc.args[0]
    return str(exc.args[0]) if exc.args and isinstance(exc.args[0], str) else str(exc)


def _looks_like_event(value: str) -> bool:
    """An event, not a target: a target is a URL or ``module.function`` and never starts so."""
    return value == "-" or value.startswith(("@", "{", "[", '"')) or value in ("null", "true", "false")


def main(argv: List[str]) -> int:
    parser = build_parser()
    # options may stand anywhere, also between TARGET and EVENT
    args = parser.parse_intermixed_args(argv)
    if args.event is None and args.target is not DEFAULT_URL and _looks_like_event(args.target):
        # one positional that is plainly an event (`@file`, `-`, inline JSON): the default target gets it
        args.target, args.event = DEFAULT_URL, args.target
    if args.sample and args.event is not None:
        parser.error("give the event either as EVENT or as --event NAME, not both")
    if args.durable is not None and args.stream:
        parser.error("--durable and --stream do not go together (a durable function's result is not streamed)")
    if args.durable is not None and args.type == "Event" and not re.match(r"https?://", args.target):
        parser.error("--durable with --type Event needs a running emulator's URL: the one started for a handler "
                     "would be stopped as soon as the invoke returns")
    return run(args, sys.stdout.buffer)
