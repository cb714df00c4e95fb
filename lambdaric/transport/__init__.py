"""Transports: how bytes reach the Runtime API; this module is their factory.

Every transport offers the same small interface (:class:`~.base.Transport`) and knows
nothing about handlers, logging or what a status code means; those decisions live in the
runtime. Two implementations: :mod:`.python` (pure-Python sockets, always available) and
:mod:`.native` (the cffi module, when it could be built). Both import only :mod:`.base`,
which this module re-exports; this module imports them only when asked to make one.
"""
from __future__ import annotations

# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Optional

    from .base import Answer  # noqa: F401  (re-exported for annotations)

from .base import (  # noqa: F401  (the interface, re-exported)
    ANSWER_TIMEOUT,
    STREAM_CHUNK,
    STREAM_END,
    STREAM_HEAD,
    Transport,
    TransportError,
    no_stream_open,
    stream_open,
)


def create(address: str, user_agent: str, choice: Optional[str] = None) -> "Transport":
    """The transport for ``address``; ``choice`` is ``LAMBDARIC_TRANSPORT``.

    ``native`` or ``python`` forces one (``native`` fails clearly when the module is not
    built); unset or ``auto`` takes the native one when it imports, else the pure-Python
    one, whose ``fallback_reason`` then says why (the bootstrap logs it at DEBUG level).
    """
    if choice not in (None, "", "python", "auto", "native"):
        raise ValueError("LAMBDARIC_TRANSPORT must be 'python', 'native' or 'auto', not %r" % choice)
    bound = answer_timeout()
    # (the pure-Python transport is imported only when it is the one made: it costs the
    # socket module, which the native transport does without)
    if choice == "python":
        from .python import PythonTransport

        return PythonTransport(address, user_agent, bound)
    exc = _native_import_error()
    if exc is not None:
        if choice == "native":
            raise RuntimeError("LAMBDARIC_TRANSPORT=native, but the native module cannot be loaded: %s" % exc)
        from .python import PythonTransport

        transport = PythonTransport(address, user_agent, bound)
        transport.fallback_reason = _reason(exc)
        return transport
    from .native import NativeTransport

    return NativeTransport(address, user_agent, bound)


def _native_import_error() -> Optional[Exception]:
    """Why the native transport cannot be loaded here (the module not built, cffi's backend or a
    shared library missing), or None when it can."""
    try:
        from . import native  # noqa: F401
    except (ImportError, OSError) as exc:
        return exc
    return None


def _reason(exc: Exception) -> str:
    return "%s: %s" % (type(exc).__name__, exc)


def answer_timeout() -> float:
    """``LAMBDARIC_ANSWER_TIMEOUT``: seconds an answer may take once its first byte came
    (default :data:`.base.ANSWER_TIMEOUT`; 0: no bound). See :class:`.base.AnswerStalled`."""
    import os

    text = os.environ.get("LAMBDARIC_ANSWER_TIMEOUT", "")
    if not text:
        return ANSWER_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < 86400:  # (NaN fails too)
        raise ValueError("LAMBDARIC_ANSWER_TIMEOUT must be a number of seconds, 0 for no bound, not %r" % text[:50])
    return value


def describe(choice: Optional[str] = None) -> str:
    """Which transport ``LAMBDARIC_TRANSPORT=choice`` gives here, in the words of the
    ``[DEBUG] transport:`` line: ``native``, or ``python (why)``.

    For ``python -m lambdaric --version``: one ``RUN`` line in a Dockerfile shows whether the
    image got the native module, without a Runtime API to talk to.
    """
    if choice == "python":
        return "python (LAMBDARIC_TRANSPORT=python)"
    exc = _native_import_error()
    return "native" if exc is None else "python (native module unavailable: %s)" % _reason(exc)
