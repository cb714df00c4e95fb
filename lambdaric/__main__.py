"""``python -m lambdaric HANDLER``: the container ENTRYPOINT.

Imports only what starting the runtime needs; argparse and the emulator are loaded only
when asked for, because this is the cold-start path of every function.
"""
from __future__ import annotations

import os
import sys
# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import List, Optional

USAGE = """\
usage: python -m lambdaric [--version] [--help] HANDLER
       python -m lambdaric invoke [--help] ...
       python -m lambdaric executions list|show|history|callback|stop ...
       python -m lambdaric event list|NAME

Run an AWS Lambda function handler over the Lambda Runtime API.
With AWS_LAMBDA_RUNTIME_API unset, serve it locally behind the built-in
emulator instead (see `python -m lambdaric --help` there).

  HANDLER    module.function to call for each event, e.g. app.handler
             (the module part may use / for folders: src/app.handler).
             Defaults to $_HANDLER when not given.

environment:
  AWS_LAMBDA_RUNTIME_API          host:port of the Runtime API (set by Lambda)
  LAMBDA_TASK_ROOT                code folder, put on sys.path with the cwd
  LAMBDARIC_TRANSPORT             python | native (default: native when built)
  LAMBDARIC_MALLOC_TUNE           0: no glibc malloc tuning (native transport)
  LAMBDARIC_ANSWER_TIMEOUT        seconds per answer once begun (10; 0: none)
  LAMBDARIC_RETRY_DELAYS          seconds between retries (0.05,0.1,...,1.6)
  AWS_LAMBDA_LOG_FORMAT           Text (default) | JSON
  AWS_LAMBDA_LOG_LEVEL            TRACE DEBUG INFO WARN ERROR FATAL
  AWS_LAMBDA_MAX_CONCURRENCY      N: Managed Instances, N invokes at once
  LAMBDARIC_CONCURRENCY_MODE      process (default) | thread | asyncio
  LAMBDARIC_SIGTERM_EXTENSION     1|0: SIGTERM extension (default: on_shutdown)
  AWS_LAMBDA_INITIALIZATION_TYPE  snap-start: SnapStart hooks (set by Lambda)
"""


def _setup_sys_path(environ: "os._Environ[str]") -> None:
    """Put LAMBDA_TASK_ROOT (if set) and the working directory first on sys.path."""
    cwd = os.getcwd()
    wanted = [p for p in (environ.get("LAMBDA_TASK_ROOT"), cwd) if p]
    for path in reversed(wanted):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] == "invoke":
        from .invoke import main as invoke_main

        return invoke_main(args[1:])
    if args and args[0] == "executions":
        from .executions import main as executions_main

        return executions_main(args[1:])
    if args and args[0] == "event":
        from .events.cli import main as event_main

        return event_main(args[1:])
    if not os.environ.get("AWS_LAMBDA_RUNTIME_API") and not (args and args[0] in ("-V", "--version")):
        # Outside Lambda: serve the function behind the built-in emulator.
        from .emulator.cli import main as emulate

        return emulate(args)
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0
    if args and args[0] in ("-V", "--version"):
        from . import __version__
        from .marshal import describe as codec
        from .transport import describe

        transport = describe(os.environ.get("LAMBDARIC_TRANSPORT"))
        sys.stdout.write("lambdaric %s (Python %s), transport: %s, codec: %s\n"
                         % (__version__, sys.version.split()[0], transport, codec()))
        return 0
    if args and args[0].startswith("-"):
        sys.stderr.write("lambdaric: unknown option %s\n%s" % (args[0], USAGE))
        return 2
    handler = args[0] if args else os.environ.get("_HANDLER", "")
    if not handler:
        sys.stderr.write("lambdaric: no handler given (pass module.function or set _HANDLER)\n%s" % USAGE)
        return 2
    _setup_sys_path(os.environ)
    from .bootstrap import run

    try:
        return run(handler)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
