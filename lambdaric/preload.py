"""Preload for the Managed Instances process mode (``LAMBDARIC_PRELOAD=1``): import once, fork N.

Without it the supervisor forks its N workers before the handler is imported and every
worker pays the whole import (boto3, pydantic, a web framework: 50-60 MB each). With it the
supervisor imports the handler once, collects and freezes the garbage collector's
generations (``gc.freeze()``: later collections in the workers never write to the
inherited objects' headers, so their pages stay shared copy-on-write), and forks the
workers from that state; a worker that dies is forked again from it, in milliseconds.

What a fork does not carry over is what this module deals with, in each worker, before its
first ``/next``:

- lambdaric's own state: a new connection to the Runtime API (the supervisor's is closed
  before any fork), the invoke ids in the log sink cleared, the flusher thread and the
  SIGTERM handler set up again (the concurrency module does this);
- an asyncio event loop made at import (mangum and others make one): its epoll descriptor
  and wake-up socket pair would be shared by every worker, which then steal each other's
  wake-ups and hang. Each worker gets a new loop as the current one (:func:`reset_in_worker`);
  the inherited one is kept, never closed (closing it would unregister descriptors from the
  epoll instance the other processes share);
- threads: only the forking thread exists in a worker. A thread alive in the supervisor at
  fork time is named in a warning (:func:`threads_alive`), since whatever it was doing (and
  any lock it held) is frozen in every worker;
- the function's own resources, through ``after_fork`` hooks
  (:func:`lambdaric.register_after_fork`), run in each worker after lambdaric's reset, in
  registration order. ``os.register_at_fork`` callbacks run as for any ``os.fork()``.

The rules for connection pools (documented in the README): create clients at import, but
do not use them before the fork (a keep-alive connection opened in the supervisor would be
one socket shared by every worker: interleaved requests, answers read by the wrong
worker), or re-create them in an after-fork hook.
"""
from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, List, Tuple

#: The environment variable that turns preload on (``1``) or off (``0``, unset).
ENV_VAR = "LAMBDARIC_PRELOAD"

_hooks: "List[Tuple[Callable[..., Any], Tuple[Any, ...], Dict[str, Any]]]" = []
#: Loops made before the fork, replaced in this worker: referenced so that they are never
#: closed here (see the module docstring).
_inherited_loops: "List[Any]" = []


def enabled(environ: "Dict[str, str]") -> bool:
    """Whether ``LAMBDARIC_PRELOAD`` asks for preload; ValueError with a clear message."""
    raw = environ.get(ENV_VAR, "")
    value = raw.strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError("%s must be 1 or 0, not %r" % (ENV_VAR, raw[:50]))


def register_after_fork(func: "Callable[..., Any]", *args: "Any", **kwargs: "Any") -> "Callable[..., Any]":
    """Run ``func(*args, **kwargs)`` in each worker right after it is forked from the
    preloaded supervisor (first registered first); returns ``func`` (a decorator). Without
    preload, workers import the handler themselves and the hooks never run."""
    _hooks.append((func, args, kwargs))
    return func


def run_after_fork_hooks() -> int:
    """Run the registered hooks in order; an exception propagates (the worker's init
    failed). Returns how many ran."""
    for func, args, kwargs in _hooks:
        func(*args, **kwargs)
    return len(_hooks)


def freeze() -> None:
    """After the import, before the first fork: collect the import's garbage, then move
    every object to the permanent generation, so that the workers' collections neither
    visit nor write to them (their pages stay shared)."""
    import gc

    gc.collect()
    gc.freeze()


def threads_alive() -> "List[str]":
    """Names of the threads other than this one that are alive now (threads started with
    ``threading``; a bare ``_thread`` cannot be listed)."""
    threading = sys.modules.get("threading")
    if threading is None:
        return []
    me = threading.current_thread()
    return [t.name for t in threading.enumerate() if t is not me and t.is_alive()]


def reset_in_worker() -> bool:
    """In a worker, before any user code runs: when asyncio was imported, make a new event
    loop this thread's current one (returns True then). The loop it replaces, inherited
    from the import, is kept referenced: dropped, it would be closed here, unregistering
    descriptors from the epoll instance other processes share."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return False
    import warnings

    policy = asyncio.get_event_loop_policy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            _inherited_loops.append(policy.get_event_loop())
        except RuntimeError:  # none set, and the policy makes none here
            pass
    policy.set_event_loop(asyncio.new_event_loop())
    return True
