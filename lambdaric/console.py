"""The runtime's own voice and its ways out: one line on stderr, exit codes, signals.

A leaf (it imports nothing of lambdaric), so every layer can say why it stops in the same
words: the runtime, the Managed Instances supervisor, streaming, SnapStart, shutdown.
"""
from __future__ import annotations

import os
import sys

# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import NoReturn, Tuple


def say(message: str) -> None:
    """One line from the runtime itself, on stderr (never mixed into the function's stdout)."""
    try:
        sys.stderr.write("lambdaric: %s\n" % message)
        sys.stderr.flush()
    except Exception:  # pragma: no cover - a closed stderr must not hide the real problem
        pass


class RuntimeExit(Exception):
    """Leave the runtime with this exit code (the reason has been said already)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def exit_code(exc: SystemExit) -> int:
    """The status ``sys.exit(code)`` asks for, as Python computes it (a message: 1)."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1


def os_error_text(exc: BaseException) -> str:
    """``[Errno 111] Connection refused``: an OSError without its repr noise."""
    if isinstance(exc, OSError) and exc.strerror:
        return "[Errno %s] %s" % (exc.errno, exc.strerror) if exc.errno else exc.strerror
    return str(exc) or type(exc).__name__


#: Lambda's words for the signals a runtime dies of (``signal: killed``).
SIGNAL_NAMES = {
    1: "hangup", 2: "interrupt", 3: "quit", 4: "illegal instruction", 6: "aborted", 7: "bus error",
    8: "floating point exception", 9: "killed", 11: "segmentation fault", 13: "broken pipe", 15: "terminated",
}


def describe_status(status: int) -> "Tuple[int, str]":
    """A wait status as (exit code or -signal, Lambda's words: ``exit status 3``, ``signal: killed``)."""
    code = os.waitstatus_to_exitcode(status)
    return code, describe_exit(code)


def describe_exit(code: int) -> str:
    """An exit code (-signal for a death by signal, as ``subprocess`` gives it) in Lambda's words."""
    if code >= 0:
        return "exit status %d" % code
    return "signal: %s" % SIGNAL_NAMES.get(-code, "signal %d" % -code)


def die_of(signum: int) -> "NoReturn":
    """End this process with ``signum`` as its status (flush first: nothing here does). As
    PID 1 (a container without an init) a process cannot die of a signal it sends itself
    (the kernel drops it), so it exits with the status a shell would show, 128 + signum."""
    import _signal
    import time

    if os.getpid() == 1:
        os._exit(128 + signum)
    _signal.signal(signum, _signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    time.sleep(1.0)  # pragma: no cover - the signal is delivered before this ends
    os._exit(128 + signum)  # pragma: no cover
