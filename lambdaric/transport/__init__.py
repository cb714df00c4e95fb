"""Transports: how bytes reach the Runtime API.

Every transport offers the same small interface (:class:`Transport`) and knows nothing
about handlers, logging or what a status code means; those decisions live in the
bootstrap. Two implementations exist or will: :mod:`.python` (pure-Python sockets,
always available) and the native cffi module (when it could be built).
"""
from __future__ import annotations

# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Optional, Tuple

from ..protocol import Invocation

if TYPE_CHECKING:  # pragma: no cover
    from typing import Protocol
else:
    Protocol = object


class TransportError(Exception):
    """The Runtime API could not be reached or the connection broke.

    ``endpoint`` is ``host:port`` and ``call`` what was being done, so the bootstrap can
    print one clear line naming both with the OS error.
    """

    def __init__(self, endpoint: str, call: str, cause: BaseException) -> None:
        super().__init__("%s %s: %s" % (endpoint, call, cause))
        self.endpoint = endpoint
        self.call = call
        self.cause = cause


#: A Runtime API answer to a POST: (status code, body bytes).
Answer = "Tuple[int, bytes]"


class Transport(Protocol):
    """The calls the runtime makes; all block; none retries on its own except
    one immediate reconnect when a kept-alive connection turned out to be closed."""

    name: str

    def next(self) -> Invocation: ...

    def respond(self, request_id: str, body: bytes, content_type: str, invocation_id: Optional[str]) -> Answer: ...

    def fail(
        self,
        request_id: str,
        body: bytes,
        error_type: str,
        xray_cause: Optional[str],
        invocation_id: Optional[str],
    ) -> Answer: ...

    def init_error(self, body: bytes, error_type: str) -> Answer: ...

    def close(self) -> None: ...


def create(address: str, user_agent: str, choice: Optional[str] = None) -> "Transport":
    """The transport for ``address``; ``choice`` is ``LAMBDARIC_TRANSPORT``.

    ``native`` or ``python`` forces one (``native`` fails clearly when the module is not
    built); unset or ``auto`` takes the native one when it imports, else the pure-Python
    one, whose ``fallback_reason`` then says why (the bootstrap logs it at DEBUG level).
    """
    from .python import PythonTransport

    if choice not in (None, "", "python", "auto", "native"):
        raise ValueError("LAMBDARIC_TRANSPORT must be 'python', 'native' or 'auto', not %r" % choice)
    if choice == "python":
        return PythonTransport(address, user_agent)
    try:
        from .native import NativeTransport
    except (ImportError, OSError) as exc:
        if choice == "native":
            raise RuntimeError("LAMBDARIC_TRANSPORT=native, but the native module cannot be loaded: %s" % exc)
        transport = PythonTransport(address, user_agent)
        transport.fallback_reason = "%s: %s" % (type(exc).__name__, exc)
        return transport
    return NativeTransport(address, user_agent)
