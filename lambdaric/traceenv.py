"""``_X_AMZN_TRACE_ID`` for each invoke, without growing the C environment.

Lambda gives every invoke a new X-Ray trace header, and the runtime must put it in the
environment: the X-Ray SDK and OpenTelemetry read ``os.environ`` / ``os.getenv``, native
code and child processes read the C environment. ``os.environ[name] = value`` calls
setenv(3), and glibc never frees the string it replaces (a ``getenv()`` pointer to it may
still be held), so a warm sandbox grew by ~140 bytes per invoke (~140 MB per million).

Instead the variable points at one of two buffers owned here: putenv(3) keeps the pointer
it is given rather than copying, so each invoke writes ``NAME=value`` into the buffer that
is not in the environment and swaps it in. A ``getenv()`` result from the previous invoke
stays intact until the next one (POSIX lets any later environment change invalidate it).
``os.environ``'s own mapping is then updated without a second setenv.

putenv comes from lambdaric's native module when it is built, else from libc through
ctypes (loaded on the first traced invoke, never during init); where neither works, or
``os.environ`` is not CPython's mapping, the plain ``os.environ`` assignment is used (it
leaks on glibc, as before). musl frees replaced values itself, but the same path serves it.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, List, Optional, Tuple

NAME = "_X_AMZN_TRACE_ID"
#: Smallest buffer; a trace header is ~100 bytes (with Lineage, a few hundred).
MIN_BUFFER = 256


def native_putenv() -> "Tuple[Callable[[int], Any], Callable[[Any, int, bytes, int], int]]":
    from ._native import ffi, lib  # ImportError when the module was not built

    return (lambda size: ffi.new("char[]", size)), lib.lr_putenv_copy


def ctypes_putenv() -> "Tuple[Callable[[int], Any], Callable[[Any, int, bytes, int], int]]":
    import ctypes

    libc = ctypes.CDLL(None)
    putenv = libc.putenv
    putenv.argtypes = (ctypes.c_void_p,)
    putenv.restype = ctypes.c_int

    def copy_and_put(buf: "Any", size: int, raw: bytes, n: int) -> int:
        ctypes.memmove(buf, raw, n)
        return putenv(ctypes.addressof(buf))

    return ctypes.create_string_buffer, copy_and_put


#: Where putenv comes from, in order of preference: (name, a function giving (alloc, put)):
#: ``alloc(size)`` a buffer, ``put(buf, size, raw, len(raw))`` copies ``NAME=value\0`` into it
#: and puts it in the environment (0 on success; lr_putenv_copy refuses what does not fit).
BACKENDS = (("native", native_putenv), ("ctypes", ctypes_putenv))


class TraceEnv:
    """Writes the current invoke's trace header into the environment (see module docstring)."""

    def __init__(self, backends: "Any" = BACKENDS) -> None:
        self.environ: "Any" = os.environ  # os._Environ: encodekey and encodevalue give bytes
        self.backends = backends
        self.backend = ""  # "native", "ctypes" or "setenv", once the first value was written
        self._alloc: "Optional[Callable[[int], Any]]" = None
        self._put: "Optional[Callable[[Any, int, bytes, int], int]]" = None
        self._data: "Optional[Dict[bytes, bytes]]" = None  # os.environ's mapping, when it is a dict
        self._key = b""  # NAME as os.environ's mapping keys it
        self._buffers: "List[Any]" = [None, None]
        self._sizes = [0, 0]
        self._turn = 0
        #: buffers replaced by larger ones: kept, as a pointer to them may still be held
        self._retired: "List[Any]" = []

    def set(self, value: "Optional[str]") -> None:
        """``value`` as the variable (None or "": removed, as when an invoke has no trace)."""
        if not value:
            self.environ.pop(NAME, None)  # unsetenv frees nothing: the buffers stay ours
            return
        if not self.backend:
            self._choose()
        data = self._data
        if data is None or self.environ._data is not data:
            self.environ[NAME] = value
            return
        encoded = self.environ.encodevalue(value)
        raw = self._key + b"=" + encoded + b"\0"
        self._turn ^= 1
        turn = self._turn
        if len(raw) > self._sizes[turn]:
            self._grow(turn, len(raw))
        if self._put(self._buffers[turn], self._sizes[turn], raw, len(raw)) == 0:  # type: ignore[misc]
            data[self._key] = encoded
        else:
            self.environ[NAME] = value

    def _grow(self, turn: int, need: int) -> None:
        assert self._alloc is not None
        size = max(MIN_BUFFER, self._sizes[turn])
        while size < need:
            size *= 2
        if self._buffers[turn] is not None:
            self._retired.append(self._buffers[turn])
        self._buffers[turn] = self._alloc(size)
        self._sizes[turn] = size

    def _choose(self) -> None:
        for backend, make in self.backends:
            try:
                self._alloc, self._put = make()
            except (ImportError, OSError, AttributeError):
                continue
            self.backend = backend
            data = getattr(self.environ, "_data", None)
            if type(data) is dict:  # (else: os.environ is not CPython's mapping; plain assignment)
                self._data = data
                self._key = self.environ.encodekey(NAME)
            return
        self.backend = "setenv"
