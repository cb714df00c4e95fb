"""SnapStart: the before-snapshot / restore / after-restore sequence (docs/runtime-api.md section 8).

With ``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``, after the handler imported cleanly,
:func:`restore` runs the before-snapshot hooks (last registered first), waits on
``GET /restore/next`` (Lambda snapshots the process during that wait, and the answer comes
in every restored copy), then runs the after-restore hooks (first registered first);
the invoke loop follows. Failures end the runtime with the exit codes Lambda expects:

* a before-snapshot hook raises, or ``/restore/next`` fails: ``POST /init/error`` with
  ``Lambda-Runtime-Function-Error-Type: Runtime.BeforeSnapshotError``, exit 64;
* an after-restore hook raises: ``POST /restore/error`` with
  ``Runtime.AfterRestoreError``, exit 65.

The error body is the usual error JSON of the exception (its own class name as
``errorType``), and it is logged as an uncaught error, as the official client does.

Hooks come from one registry. Functions register them with the ``snapshot_restore_py``
package (what AWS documents) or with ``lambdaric.register_before_snapshot`` /
``register_after_restore``; when ``snapshot_restore_py`` is installed, lambdaric's
functions add to its registry, so hooks registered through either keep the one order
they were registered in (and run under the official client too). Without it, lambdaric
keeps the hooks itself; at restore time its own hooks come after the package's.

``/restore/next`` answering 404 means the Runtime API has no SnapStart (a local emulator
such as ``aws-lambda-rie``; Lambda never does this when it set ``snap-start``): the
runtime says so on stderr and carries on as if restored at once, after-restore hooks
included, where the official client fails with exit 64.

This module is imported only when a function registers a hook through lambdaric or runs
with SnapStart on: nothing of it is on the cold-start path of other functions.
"""
from __future__ import annotations

import sys
# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, List, NoReturn, Optional, Tuple

    from .client import RuntimeClient
    from .errors import ErrorReport
    from .runtime import Runtime

    Hook = Tuple[Callable[..., Any], Tuple[Any, ...], Dict[str, Any]]

EXIT_BEFORE_SNAPSHOT = 64
EXIT_AFTER_RESTORE = 65
PACKAGE = "snapshot_restore_py"

# Hooks registered through lambdaric while snapshot_restore_py is not installed.
_before_snapshot: List[Hook] = []
_after_restore: List[Hook] = []


# ---------------------------------------------------------------------- registering


def register_before_snapshot(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
    """Run ``func(*args, **kwargs)`` before the snapshot is taken; returns ``func``, so it
    also works as a decorator. Hooks run last registered first."""
    _register("register_before_snapshot", _before_snapshot, func, args, kwargs)
    return func


def register_after_restore(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
    """Run ``func(*args, **kwargs)`` after the snapshot is restored, before the first
    invoke; returns ``func``. Hooks run first registered first."""
    _register("register_after_restore", _after_restore, func, args, kwargs)
    return func


def _register(name: str, own: List[Hook], func: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> None:
    if not callable(func):
        raise TypeError("%s needs a callable, not %s" % (name, type(func).__name__))
    try:
        import snapshot_restore_py as package
    except ImportError:
        package = None
    register = getattr(package, name, None)
    if register is None:
        own.append((func, args, kwargs))
    else:
        register(func, *args, **kwargs)


def hooks(before_snapshot: bool) -> List[Hook]:
    """The hooks in registration order: ``snapshot_restore_py``'s (only when the function
    imported it: nothing else could have registered there), then lambdaric's own."""
    found: List[Hook] = []
    package = sys.modules.get(PACKAGE)
    if package is not None:
        getter_name = "get_before_snapshot" if before_snapshot else "get_after_restore"
        getter = getattr(package, getter_name, None)
        if getter is None:
            raise RuntimeError("%s has no %s(): its hooks cannot be found" % (PACKAGE, getter_name))
        found.extend(_as_hook(entry) for entry in getter())
    found.extend(_before_snapshot if before_snapshot else _after_restore)
    return found


def _as_hook(entry: Any) -> Hook:
    """A registry entry of ``snapshot_restore_py``: ``(func, args, kwargs)``, or a bare callable."""
    if callable(entry):
        return entry, (), {}
    if isinstance(entry, (tuple, list)) and len(entry) == 3 and callable(entry[0]):
        return entry[0], tuple(entry[1]), dict(entry[2])
    raise TypeError("%s registry entry %r is neither a callable nor (func, args, kwargs)" % (PACKAGE, entry))


# ---------------------------------------------------------------------- the sequence


def restore(runtime: Runtime) -> None:
    """Before-snapshot hooks, ``/restore/next``, after-restore hooks; returns when the
    invoke loop may start, else ends the runtime (RuntimeExit 64 or 65)."""
    from .console import say
    from .faults import AFTER_RESTORE_ERROR
    from .logsink import flush_std_streams

    client = runtime.client
    failure = _run_hooks(runtime, before_snapshot=True)
    if failure is not None:
        _before_snapshot_failed(client, failure)
    flush_std_streams()  # what the hooks wrote goes out before the snapshot, not in every restored copy
    status, body = _restore_next(client)
    if status == 404:
        say(
            "AWS_LAMBDA_INITIALIZATION_TYPE is snap-start, but the Runtime API at %s has no SnapStart "
            "(GET /restore/next answered 404: %s); carrying on as if restored at once"
            % (client.address, _text(body))
        )
    elif status != 200:
        _before_snapshot_failed(client, _client_error("Reason: '%s'. Response body: '%s'" % (status, _text(body))))
    failure = _run_hooks(runtime, before_snapshot=False)
    if failure is not None:
        client.report_and_exit(failure, "POST /restore/error", client.transport.restore_error, AFTER_RESTORE_ERROR,
                               EXIT_AFTER_RESTORE)
    flush_std_streams()


def _run_hooks(runtime: Runtime, before_snapshot: bool) -> Optional[ErrorReport]:
    """Run one kind of hooks; the report of the first that raised (the rest do not run).

    Anything a hook raises counts, ``SystemExit`` and ``KeyboardInterrupt`` included, as
    with the official client. A hook that returns an awaitable (an ``async def``) is
    awaited on the runtime's event loop (the official client drops it unawaited)."""
    from .errors import report_exception

    try:
        found = hooks(before_snapshot)
        for func, args, kwargs in reversed(found) if before_snapshot else found:
            result = func(*args, **kwargs)
            if getattr(type(result), "__await__", None) is not None:
                runtime.run_async(result)
    except BaseException as exc:
        return report_exception(exc, None)
    return None


def _restore_next(client: RuntimeClient) -> Tuple[int, bytes]:
    """``GET /restore/next`` with the runtime's retries; a Runtime API that cannot be reached
    or answers garbage (the reason is on stderr already) is a before-snapshot failure."""
    from .console import RuntimeExit

    try:
        return client.call("GET /restore/next", client.transport.restore_next)
    except RuntimeExit:
        _before_snapshot_failed(client, _client_error("Reason: no valid answer from the Runtime API at %s." % client.address))


def _client_error(reason: str) -> ErrorReport:
    from .errors import report_fault
    from .faults import CLIENT_ERROR

    return report_fault(CLIENT_ERROR, "Request to Lambda Runtime '%s' endpoint failed. %s" % (_restore_next_path(), reason),
                        None)


def _before_snapshot_failed(client: RuntimeClient, report: ErrorReport) -> NoReturn:
    from .faults import BEFORE_SNAPSHOT_ERROR

    client.report_and_exit(report, "POST /init/error", client.transport.init_error, BEFORE_SNAPSHOT_ERROR,
                           EXIT_BEFORE_SNAPSHOT)


def _restore_next_path() -> str:
    from .protocol import RESTORE_NEXT_PATH

    return RESTORE_NEXT_PATH


def _text(body: bytes) -> str:
    return body[:1000].decode("utf-8", "replace")
