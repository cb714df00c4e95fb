"""The ``context`` object handed to handlers (docs/runtime-api.md section 7).

Field names and types follow the official client (``memory_limit_in_mb`` stays a str)
because user code reads them. The JSON headers are parsed here so that a malformed
value becomes ``Runtime.LambdaContextUnmarshalError`` for that invoke only.
"""
from __future__ import annotations

import time
# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any, Callable, Dict, Optional

from .faults import CONTEXT_ERROR, FaultException
from .marshal import loads as _json_loads
from .protocol import Invocation

_W3C_KEYS = ("traceparent", "tracestate", "baggage")


class CognitoIdentity:
    """``context.identity``: always present, fields None when the invoke carried none."""

    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, identity_id: Optional[str] = None, pool_id: Optional[str] = None) -> None:
        self.cognito_identity_id = identity_id
        self.cognito_identity_pool_id = pool_id

    def __repr__(self) -> str:
        return "CognitoIdentity([cognito_identity_id=%s,cognito_identity_pool_id=%s])" % (
            self.cognito_identity_id,
            self.cognito_identity_pool_id,
        )


class Client:
    """``context.client_context.client``: the mobile SDK's app description."""

    __slots__ = ("installation_id", "app_title", "app_version_name", "app_version_code", "app_package_name")

    def __init__(self, data: Dict[str, Any]) -> None:
        self.installation_id = data.get("installation_id")
        self.app_title = data.get("app_title")
        self.app_version_name = data.get("app_version_name")
        self.app_version_code = data.get("app_version_code")
        self.app_package_name = data.get("app_package_name")

    def __repr__(self) -> str:
        return (
            "Client([installation_id=%s,app_title=%s,app_version_name=%s,app_version_code=%s,app_package_name=%s])"
            % (self.installation_id, self.app_title, self.app_version_name, self.app_version_code, self.app_package_name)
        )


class ClientContext:
    """``context.client_context``: ``client``, ``custom`` and ``env`` of the caller."""

    __slots__ = ("custom", "env", "client")

    def __init__(self, data: Dict[str, Any]) -> None:
        client = data.get("client")
        self.client = Client(client) if isinstance(client, dict) else None
        self.custom = data.get("custom")
        self.env = data.get("env")

    def __repr__(self) -> str:
        return "ClientContext([custom=%s,env=%s,client=%s])" % (self.custom, self.env, self.client)


def _parse_json_header(value: Optional[str], what: str) -> Any:
    if value is None:
        return None
    try:
        return _json_loads(value)
    except Exception:
        pass
    import json  # only on failure: the official client's messages are the stdlib parser's

    try:
        return json.loads(value)
    except Exception as exc:
        raise FaultException(CONTEXT_ERROR, "Unable to parse %s JSON: %s" % (what, exc), None)


#: The W3C context of an invoke without a client context (never handed out: w3c() copies it).
_NO_W3C: Dict[str, str] = {}


def _pop_w3c(data: Any) -> Dict[str, str]:
    """Take the ``w3c`` entry out of a client-context dict (top level or ``custom``)."""
    found: Dict[str, str] = {}
    if not isinstance(data, dict):
        return found
    for holder in (data, data.get("custom")):
        if isinstance(holder, dict) and "w3c" in holder:
            w3c = holder.pop("w3c")
            if isinstance(w3c, dict):
                for key in _W3C_KEYS:
                    value = w3c.get(key)
                    if isinstance(value, str):
                        found[key] = value
    return found


class LambdaContext:
    """What a handler gets as its second argument.

    Static fields (function name, memory, log group...) are read from the environment
    once at startup and shared; per-invoke fields come from the ``/next`` headers.
    """

    __slots__ = (
        "aws_request_id",
        "invoked_function_arn",
        "tenant_id",
        "identity",
        "client_context",
        "_w3c",
        "_deadline_ms",
        "_log",
        "function_name",
        "function_version",
        "memory_limit_in_mb",
        "log_group_name",
        "log_stream_name",
    )

    def __init__(self, invocation: Invocation, static: "StaticContext", log: Callable[[str], None]) -> None:
        self.aws_request_id = invocation.request_id
        self.invoked_function_arn = invocation.function_arn
        self.tenant_id = invocation.tenant_id
        self._deadline_ms = invocation.deadline_ms
        self._log = log
        self.function_name = static.function_name
        self.function_version = static.function_version
        self.memory_limit_in_mb = static.memory_limit_in_mb
        self.log_group_name = static.log_group_name
        self.log_stream_name = static.log_stream_name

        if invocation.cognito_identity is None:  # (the common case, without the calls)
            self.identity = CognitoIdentity()
        else:
            identity = _parse_json_header(invocation.cognito_identity, "Cognito Identity")
            if isinstance(identity, dict):
                self.identity = CognitoIdentity(identity.get("cognitoIdentityId"), identity.get("cognitoIdentityPoolId"))
            else:
                self.identity = CognitoIdentity()
        if invocation.client_context is None:
            self._w3c = _NO_W3C
            self.client_context = None
        else:
            client_context = _parse_json_header(invocation.client_context, "Client Context")
            self._w3c = _pop_w3c(client_context)
            self.client_context = ClientContext(client_context) if isinstance(client_context, dict) else None

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the deadline, never negative."""
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def log(self, msg: str) -> None:
        """Write ``msg`` to the function's log, like ``print`` without a newline."""
        self._log(str(msg))

    def w3c(self) -> Dict[str, str]:
        """W3C trace context (``traceparent``, ``tracestate``, ``baggage``) passed by the caller."""
        return dict(self._w3c)

    def __repr__(self) -> str:
        return (
            "LambdaContext([aws_request_id=%s,log_group_name=%s,log_stream_name=%s,function_name=%s,"
            "memory_limit_in_mb=%s,function_version=%s,invoked_function_arn=%s,client_context=%s,identity=%s,tenant_id=%s])"
            % (
                self.aws_request_id,
                self.log_group_name,
                self.log_stream_name,
                self.function_name,
                self.memory_limit_in_mb,
                self.function_version,
                self.invoked_function_arn,
                self.client_context,
                self.identity,
                self.tenant_id,
            )
        )


class StaticContext:
    """Context fields that never change in a process, read once from the environment."""

    __slots__ = ("function_name", "function_version", "memory_limit_in_mb", "log_group_name", "log_stream_name")

    def __init__(self, environ: Dict[str, str]) -> None:
        self.function_name = environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
