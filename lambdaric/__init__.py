"""lambdaric: a Python Runtime Interface Client for AWS Lambda container images.

Importing the package must stay cheap: it is on the cold-start path of every
function, so this module defines only the version and thin functions that import
their module when called (SnapStart hooks: lambdaric.snapstart).
"""

__version__ = "0.1.0"


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
