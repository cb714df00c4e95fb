"""Every error type the runtime (and its emulator) names, once, and the exception that carries one.

A leaf: handler loading, the context, marshalling, error reports, streaming, SnapStart and the
emulator all take their names from here, so a dashboard query on ``errorType`` matches what
any of them sends (docs/runtime-api.md sections 3, 4, 5 and 8).
"""
from __future__ import annotations

# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import List, Optional

# handler resolution (init)
MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
BUILT_IN_MODULE_CONFLICT = "Runtime.BuiltInModuleConflict"
IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
# events in, results out
MARSHAL_ERROR = "Runtime.MarshalError"
UNMARSHAL_ERROR = "Runtime.UnmarshalError"
CONTEXT_ERROR = "Runtime.LambdaContextUnmarshalError"
RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"
# the runtime process
EXIT_ERROR = "Runtime.ExitError"
# SnapStart
BEFORE_SNAPSHOT_ERROR = "Runtime.BeforeSnapshotError"
AFTER_RESTORE_ERROR = "Runtime.AfterRestoreError"
#: a failed ``/restore/next``, as the official client names it
CLIENT_ERROR = "LambdaRuntimeClientError"
# what the platform (the emulator) reports about a runtime
INVALID_ENTRYPOINT = "Runtime.InvalidEntrypoint"
INIT_TIMEOUT = "Runtime.InitTimeout"
UNKNOWN = "Runtime.Unknown"
SANDBOX_TIMEDOUT = "Sandbox.Timedout"


def exit_message(how: str, request_id: "Optional[str]") -> str:
    """The ``Runtime.ExitError`` message for a runtime that exited (``how``: ``exit status 3``,
    ``signal: killed``); with the request it held, it names it as Lambda's does."""
    message = "Runtime exited with error: %s" % how
    return message if request_id is None else "RequestId: %s Error: %s" % (request_id, message)


class FaultException(Exception):
    """A failure the runtime itself diagnoses (``Runtime.*`` error types).

    ``trace`` is the stack trace to report (a list of formatted lines) or None for none.
    """

    def __init__(self, error_type: str, message: str, trace: Optional[List[str]] = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.trace = trace
