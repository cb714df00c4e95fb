"""``python -m lambdaric HANDLER`` outside Lambda: serve the function on loopback.

Only loaded when ``AWS_LAMBDA_RUNTIME_API`` is unset, so argparse and asyncio never
weigh on a real cold start.
"""
from __future__ import annotations

import argparse
import asyncio
import errno
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

if TYPE_CHECKING:  # pragma: no cover
    from .console import Console
    from .functions import FunctionSettings
    from .server import Emulator

DEFAULT_LISTEN = "127.0.0.1:8080"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m lambdaric",
        description=(
            "Outside Lambda (AWS_LAMBDA_RUNTIME_API unset): serve HANDLER behind a local emulator of the "
            "Lambda Invoke API, running it in child runtime processes."
        ),
    )
    p.add_argument("handler", nargs="?", help="module.function to serve (default: $_HANDLER)")
    p.add_argument(
        "--listen",
        default=os.environ.get("LAMBDARIC_LISTEN", DEFAULT_LISTEN),
        help="HOST:PORT for the Invoke API (env LAMBDARIC_LISTEN; default %(default)s; "
        "use 0.0.0.0:PORT only if you mean to expose it)",
    )
    p.add_argument(
        "--command",
        default=os.environ.get("LAMBDARIC_RUNTIME_COMMAND"),
        help="run this runtime command instead of lambdaric itself, e.g. 'python -m awslambdaric app.handler'",
    )
    p.add_argument("--function-name", default=os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "function"),
                   help="the name of HANDLER's function (default %(default)s)")
    p.add_argument("--function", dest="function_specs", metavar="NAME=HANDLER", action="append", default=[],
                   help="serve module.function HANDLER as the function NAME too (repeatable); "
                   "functions given names are found by name only (404 for any other)")
    p.add_argument("--functions", dest="functions_file", metavar="FILE",
                   help='serve the functions a JSON file lists: {"functions": {NAME: {"handler": ..., "timeout": ..., '
                   '"memory": ..., "environment": {...}, "concurrency": ..., "tracing": "Active"}}}')
    p.add_argument("--env-file", metavar="FILE",
                   help="variables for the runtimes: a dotenv file (KEY=VALUE lines) or SAM's env.json "
                   '({"Parameters": {...every function...}, "NAME": {...}})')
    p.add_argument("--xray-sampled", action="store_true",
                   help="make the trace header of an invoke sent without one Sampled=1, as active tracing does, "
                   "so X-Ray SDKs send segments (to AWS_XRAY_DAEMON_ADDRESS: set it to a local daemon)")
    p.add_argument("--timeout", type=float, default=float(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "300")),
                   help="seconds before an invoke times out (env AWS_LAMBDA_FUNCTION_TIMEOUT; default %(default)s)")
    p.add_argument("--init-timeout", type=float, default=float(os.environ.get("LAMBDARIC_INIT_TIMEOUT", "10")),
                   help="seconds a runtime may take to initialise, or the timeout when longer, as on Lambda "
                   "(env LAMBDARIC_INIT_TIMEOUT; default %(default)s)")
    p.add_argument("--memory", type=int, default=int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "3008")),
                   help="MB reported as Memory Size (default %(default)s)")
    p.add_argument("--concurrency", type=int, default=int(os.environ.get("LAMBDARIC_CONCURRENCY", "4")),
                   help="most runtime processes serving overlapping invokes (default %(default)s)")
    p.add_argument("--queue", type=int, default=64, help="invokes that may wait for a runtime before 429 (default %(default)s)")
    p.add_argument("--eager", action="store_true", help="start a runtime now instead of on the first invoke")
    p.add_argument(
        "--max-concurrency",
        type=int,
        default=int(os.environ.get("AWS_LAMBDA_MAX_CONCURRENCY", "0") or 0),
        help="emulate Lambda Managed Instances: ONE runtime serving N invokes at once "
        "(env AWS_LAMBDA_MAX_CONCURRENCY, passed on to the runtime)",
    )
    p.add_argument("--snapstart", action="store_true",
                   help="emulate SnapStart: the runtime inits, calls /restore/next and is restored at once")
    p.add_argument("--watch", action="store_true", help="restart the runtimes when files under the working directory change")
    p.add_argument("--durable", action="store_true",
                   help="HANDLER's function and every --function are durable functions: an invoke starts a durable "
                   "execution, kept by AWS's durable execution service run on loopback (docs/durable.md; "
                   "pip install 'lambdaric[durable]')")
    p.add_argument("--skip-time", action="store_true",
                   help="durable functions: waits, retry delays and timers end at once (history keeps the modelled times)")
    p.add_argument("--execution-timeout", type=int, default=86400, metavar="SECONDS",
                   help="durable functions: the execution timeout of those without their own (default %(default)s)")
    from . import web

    web.add_arguments(p)
    return p


def split_listen(value: str) -> "tuple[str, int]":
    host, sep, port = value.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()):
        raise SystemExit("lambdaric: --listen must be HOST:PORT, not %r" % value)
    return host.strip("[]") or "127.0.0.1", int(port)


async def _watch(emulator: "Emulator", root: str, say: Callable[[bytes], None], interval: float = 0.5) -> None:
    """Poll file modification times under ``root``; recycle the runtimes on any change."""

    def snapshot() -> Dict[str, float]:
        seen: Dict[str, float] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".") and d not in ("__pycache__", "node_modules")]
            for name in filenames:
                path = os.path.join(dirpath, name)
                try:
                    seen[path] = os.stat(path).st_mtime
                except OSError:
                    pass
            if len(seen) > 20000:
                break
        return seen

    before = snapshot()
    while True:
        await asyncio.sleep(interval)
        now = snapshot()
        if now != before:
            before = now
            say(b"lambdaric: files changed, restarting the runtimes\n")
            emulator.recycle_all()


class ResourceErrors:
    """The event loop's exception handler: an error for want of resources (asyncio's
    ``socket.accept() out of system resource`` at the file descriptor limit, with its
    traceback, once a second per listening socket while it lasts) becomes one line, repeated
    at most every :attr:`INTERVAL` seconds with a count; anything else goes on to asyncio's
    default handler. The connections wait in the backlog and are accepted (and answered) as
    descriptors come free."""

    INTERVAL = 30.0

    def __init__(self, say: Callable[[bytes], None], default: Callable[[dict], None]) -> None:
        self.say = say
        self.default = default
        self.said_at: Optional[float] = None
        self.unsaid = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        exc = context.get("exception")
        if not (isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)):
            self.default(context)
            return
        now = time.monotonic()
        if self.said_at is not None and now - self.said_at < self.INTERVAL:
            self.unsaid += 1
            return
        more = " (%d more since the last line)" % self.unsaid if self.unsaid else ""
        self.say(
            ("lambdaric: %s: %s; connections wait until descriptors come free%s\n"
             % (context.get("message", "out of resources"), exc.strerror or exc, more)).encode()
        )
        self.said_at, self.unsaid = now, 0


async def serve(args: argparse.Namespace, functions: "List[FunctionSettings]", any_name: bool) -> int:
    """Serve until SIGINT or SIGTERM; then stop the runtimes and write out what the console
    still holds (bounded: see :mod:`.console`)."""
    from .console import Console

    err = Console(2, "stderr")
    out = Console(1, "stdout", notices=err.write)
    try:
        return await _serve(args, functions, any_name, out, err)
    finally:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, out.close)
        await loop.run_in_executor(None, err.close)


async def _serve(args: argparse.Namespace, functions: "List[FunctionSettings]", any_name: bool, out: "Console", err: "Console") -> int:
    from .server import Emulator, EmulatorSettings

    host, port = split_listen(args.listen)
    settings = EmulatorSettings(functions, host=host, port=port, eager=args.eager, any_name=any_name,
                                skip_time=args.skip_time)
    emulator = Emulator(settings, out.write, err.write)
    from .durable_runner import RunnerError

    try:
        await emulator.start()
    except OSError as exc:
        err.write(("lambdaric: cannot listen on %s: %s\n" % (args.listen, exc.strerror or exc)).encode())
        await emulator.close()
        return 1
    except RunnerError as exc:
        err.write(("lambdaric: %s\n" % exc).encode())
        await emulator.close()
        return 1
    bound_host, bound_port = emulator.address
    err.write(banner(functions, any_name, "http://%s:%d" % (bound_host, bound_port)).encode())
    from . import web

    try:
        front = await web.start_front(args, emulator, err.write)
    except web.FrontError as exc:
        err.write(("lambdaric: %s\n" % exc).encode())
        await emulator.close()
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(ResourceErrors(err.write, loop.default_exception_handler))
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    watcher = asyncio.ensure_future(_watch(emulator, os.getcwd(), err.write)) if args.watch else None
    try:
        await stop.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        if front is not None:
            await front.close()
        await emulator.close()
    return 0


def banner(functions: "List[FunctionSettings]", any_name: bool, base: str) -> str:
    """The startup lines: each function's invoke URL (with one function, one line, as before)."""
    lines = []
    for f in functions:
        what = f.handler or " ".join(f.command)
        if len(functions) > 1 or not any_name:
            what = "%s (%s)" % (f.name, what)
        lines.append("lambdaric: serving %s on %s/2015-03-31/functions/%s/invocations" % (what, base, f.name))
    lines[-1] += " (Ctrl-C to stop)"
    return "".join(line + "\n" for line in lines)


def main(argv: List[str]) -> int:
    from .envfile import EnvFileError
    from .function_config import ConfigError, plan_functions

    args = build_parser().parse_args(argv)

    def say(text: str) -> None:
        sys.stderr.write(text + "\n")

    try:
        functions, any_name = plan_functions(args, os.getcwd(), os.environ, say)
    except (ConfigError, EnvFileError) as exc:
        sys.stderr.write("lambdaric: %s\n" % exc)
        return 2
    return asyncio.run(serve(args, functions, any_name))
