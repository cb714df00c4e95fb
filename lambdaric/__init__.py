"""lambdaric: a Python Runtime Interface Client for AWS Lambda container images.

Importing the package must stay cheap: it is on the cold-start path of every
function, so this module defines only the version and thin functions that import
their module when called (SnapStart hooks: lambdaric.snapstart).
"""

__version__ = "0.1.0"

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - typing costs ~3 ms of every cold start
    from typing import Any, Callable


def register_before_snapshot(func: "Callable[..., Any]", *args: "Any", **kwargs: "Any") -> "Callable[..., Any]":
    """SnapStart: run ``func(*args, **kwargs)`` before the snapshot (last registered first);
    returns ``func``, so it works as a decorator. See :mod:`lambdaric.snapstart`."""
    from .snapstart import register_before_snapshot as register

    return register(func, *args, **kwargs)


def register_after_restore(func: "Callable[..., Any]", *args: "Any", **kwargs: "Any") -> "Callable[..., Any]":
    """SnapStart: run ``func(*args, **kwargs)`` after the restore (first registered first);
    returns ``func``. See :mod:`lambdaric.snapstart`."""
    from .snapstart import register_after_restore as register

    return register(func, *args, **kwargs)


def register_after_fork(func: "Callable[..., Any]", *args: "Any", **kwargs: "Any") -> "Callable[..., Any]":
    """Managed Instances preload (``LAMBDARIC_PRELOAD=1``): run ``func(*args, **kwargs)`` in
    each worker forked from the preloaded supervisor, before its first invoke (first
    registered first); returns ``func``. Re-create connection pools used during import
    here. See :mod:`lambdaric.preload`."""
    from .preload import register_after_fork as register

    return register(func, *args, **kwargs)


def on_shutdown(fn: "Callable[[], Any]") -> "Callable[[], Any]":
    """Run ``fn()`` once when the runtime shuts down (SIGTERM, or a normal exit); newest
    first; returns ``fn``, so it works as a decorator. Registered during init, it also has
    Lambda send SIGTERM (a no-op extension). See :mod:`lambdaric.shutdown`."""
    from .shutdown import on_shutdown as register

    return register(fn)


def streaming_handler(fn: "Callable[..., Any]") -> "Callable[..., Any]":
    """Response streaming: ``fn(event, context, stream)`` writes its response to ``stream``
    (a ``lambdaric.ResponseStream``) as it goes. See :mod:`lambdaric.streaming`."""
    from .streaming import streaming_handler as decorate

    return decorate(fn)


#: Public names whose module is imported on first use (``lambdaric.HttpResponse``): attribute -> module.
_LAZY = {"HttpResponse": "streaming", "ResponseStream": "streaming"}


def __getattr__(name: str) -> "Any":
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError("module 'lambdaric' has no attribute %r" % name)
    import importlib

    return getattr(importlib.import_module("." + module, __name__), name)
