"""The emulator's console: where runtime output, START/END/REPORT lines and its own notices go.

Writing them must never hold up serving. A blocking ``write`` to a stdout pipe that nobody
reads (a test fixture's ``stdout=PIPE``) or to a slow terminal used to stop the event loop,
and with it every invoke and every timeout. So a :class:`Console` keeps what waits in a
bounded buffer, written out by a thread of its own; past the bound it drops whole lines,
counts them, and says so once when output flows again (or at exit), on stderr.

Why a thread and not ``O_NONBLOCK`` with ``add_writer`` on fd 1: non-blocking mode belongs
to the open file description, which a terminal shares with the shell that started us (it
would be left non-blocking, for the shell too, if we were killed), and epoll refuses regular
files. A regular file or ``/dev/null`` never waits for a reader, so those are written at
once, in order with the answers, as before.
"""
from __future__ import annotations

import errno
import os
import select
import stat
import threading
import time
from typing import Callable, List, Optional

#: Bytes of console output held for a reader that is behind; past this, lines are dropped.
LIMIT = 1024 * 1024
#: Seconds given at exit to write out what is still held.
EXIT_FLUSH = 2.0
#: Largest single write handed to the OS by the writer thread.
_WRITE_SIZE = 256 * 1024


def _writes_never_wait(fd: int) -> bool:
    """True for a regular file or /dev/null: nothing reads them, so a write never waits on a
    reader and can be done in the caller, in order with everything else."""
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            return True
        null = os.stat(os.devnull)
        return stat.S_ISCHR(st.st_mode) and st.st_rdev == null.st_rdev
    except OSError:
        return False


class Console:
    """One output stream (fd 1 or fd 2) written without ever blocking the caller.

    ``write`` takes bytes from the event loop; a daemon thread writes them to ``fd`` in the
    order given. At most ``limit`` bytes wait: beyond that whole lines are dropped (the rest
    of a line whose start was dropped is dropped too, so no line is printed cut), and the
    count is reported through ``notices`` once the reader has caught up, or by ``close``.
    """

    def __init__(
        self,
        fd: int,
        name: str,
        limit: int = LIMIT,
        notices: Optional[Callable[[bytes], None]] = None,
    ) -> None:
        self.fd = fd
        self.name = name
        self.limit = limit
        self._notices = notices or self.write
        self._direct = _writes_never_wait(fd)
        try:
            self._tty = os.isatty(fd)
        except OSError:
            self._tty = False
        self._cond = threading.Condition()
        self._pending: List[bytes] = []
        self._size = 0
        self._busy = False  # the thread holds data it is writing
        self._open_line = False  # the last byte kept is inside a line
        self._skipping = False  # dropping the rest of a line whose start was dropped
        self._dropped_lines = 0  # not reported yet
        self._dropped_bytes = 0
        self._broken: Optional[str] = None  # why nothing can be written any more
        self._thread: Optional[threading.Thread] = None
        #: totals since the start, for whoever wants figures
        self.total_dropped_lines = 0
        self.total_dropped_bytes = 0

    # ------------------------------------------------------------------ the caller's side

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the stream; never blocks (beyond a short lock)."""
        if not data:
            return
        if self._tty:  # a record kept as one CloudWatch event uses CR between its lines: show them as lines
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._direct:
            self._write_direct(data)
            return
        with self._cond:
            self._take(data)
            if self._pending:
                self._start_thread()
                self._cond.notify()

    def _write_direct(self, data: bytes) -> None:
        try:
            _write_all(self.fd, data)
        except OSError as exc:
            with self._cond:
                self._broken = self._broken or _reason(self.name, exc)
                self._drop(data)

    def _take(self, data: bytes) -> None:
        """Keep what fits in the bound, cut at line ends; count the rest as dropped."""
        if self._broken is not None:
            self._drop(data)
            return
        if self._skipping:
            end = data.find(b"\n")
            if end < 0:
                self._drop(data)
                return
            self._drop(data[: end + 1])
            data = data[end + 1 :]
            self._skipping = False
        room = self.limit - self._size
        if len(data) <= room:
            self._keep(data)
            return
        cut = data.rfind(b"\n", 0, room) + 1
        if cut == 0 and self._open_line:
            # finish the line already begun rather than print half of it (the bound may be
            # passed by one line, at most by another ``limit``)
            cut = data.find(b"\n", 0, self.limit) + 1
        self._keep(data[:cut])
        rest = data[cut:]
        self._drop(rest)
        self._skipping = bool(rest) and not rest.endswith(b"\n")

    def _keep(self, data: bytes) -> None:
        if data:
            self._pending.append(data)
            self._size += len(data)
            self._open_line = not data.endswith(b"\n")

    def _drop(self, data: bytes) -> None:
        self._dropped_lines += data.count(b"\n")
        self._dropped_bytes += len(data)
        self.total_dropped_lines += data.count(b"\n")
        self.total_dropped_bytes += len(data)

    def _start_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lambdaric-console-%s" % self.name, daemon=True)
            self._thread.start()

    # ------------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending:
                    self._cond.wait()
                data = b"".join(self._pending)
                self._pending.clear()
                self._busy = True
            try:
                for at in range(0, len(data), _WRITE_SIZE):
                    _write_all(self.fd, data[at : at + _WRITE_SIZE])
            except OSError as exc:
                with self._cond:
                    self._broken = _reason(self.name, exc)
                    self._drop(data)  # (a part may have gone out: counted as lost, to be safe)
            notice = None
            with self._cond:
                self._size -= len(data)
                self._busy = False
                if not self._pending and self._broken is None:
                    notice = self._take_notice()
                self._cond.notify_all()
            if notice:
                self._notices(notice)

    def _take_notice(self) -> Optional[bytes]:
        """The line reporting what was dropped since the last one (None when nothing was)."""
        lines, size = self._dropped_lines, self._dropped_bytes  # (lines: line ends dropped)
        if not size:
            return None
        self._dropped_lines = self._dropped_bytes = 0
        why = self._broken or "%s was not being read" % self.name
        return ("lambdaric: %d lines (%d bytes) of console output dropped: %s\n" % (lines, size, why)).encode()

    # ------------------------------------------------------------------ exit

    def close(self, timeout: float = EXIT_FLUSH) -> None:
        """Wait up to ``timeout`` for what is held to be written; whatever is still held then
        counts as dropped, and anything dropped and not yet reported is reported."""
        end = time.monotonic() + timeout
        with self._cond:
            while (self._pending or self._busy) and self._broken is None:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            for data in self._pending:
                self._drop(data)
                self._size -= len(data)
            self._pending.clear()
            notice = self._take_notice()
        if notice:
            self._notices(notice)


def _write_all(fd: int, data: bytes) -> None:
    """Write all of ``data``, waiting for room when the descriptor was left non-blocking by
    someone else (then a write would fail with EAGAIN instead of waiting)."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        except InterruptedError:  # pragma: no cover (retried by Python itself since 3.5)
            continue
        view = view[written:]


def _reason(name: str, exc: OSError) -> str:
    if exc.errno in (errno.EPIPE, errno.EBADF, errno.ECONNRESET):
        return "%s is closed" % name
    return "%s cannot be written: %s" % (name, exc.strerror or exc)
