"""Startup: the environment read, the transport and log sink made, the handler loaded, then
the loop (:meth:`lambdaric.runtime.Runtime.serve`) until the runtime must exit.

Managed Instances (``AWS_LAMBDA_MAX_CONCURRENCY``) start in :mod:`lambdaric.concurrency`,
SnapStart's restore in :mod:`lambdaric.snapstart`; both are imported only when used.
"""
from __future__ import annotations

import os
import sys

# typing is imported only by type checkers: it costs ~3 ms of every cold start.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Dict, Optional

from . import logsink
from .client import RuntimeClient, retries
from .console import RuntimeExit, say
from .logsink import flush_std_streams
from .protocol import user_agent
from .runtime import Runtime, setup_output, sigterm_extension
from .transport import create


def run(handler_name: str, environ: Optional[Dict[str, str]] = None) -> int:
    """Run the runtime until it must exit; returns the exit code."""
    env = dict(os.environ if environ is None else environ)
    address = env["AWS_LAMBDA_RUNTIME_API"]
    if env.get("AWS_LAMBDA_MAX_CONCURRENCY", "0") not in ("", "0"):
        from .concurrency import run_managed_instances  # Lambda Managed Instances: N pollers

        return run_managed_instances(handler_name, env)
    try:
        transport = create(address, user_agent(), env.get("LAMBDARIC_TRANSPORT"))
        next_retry, post_retry = retries(env)
    except (ValueError, RuntimeError) as exc:
        say(str(exc))
        return 2
    sink = logsink.StreamSink(logsink.LogConfig(env), telemetry_fd=logsink.telemetry_fd_from(env))
    setup_output(sink)
    if sink.config.level == "DEBUG":
        reason = getattr(transport, "fallback_reason", None)
        say("[DEBUG] transport: %s%s" % (transport.name, " (native module unavailable: %s)" % reason if reason else ""))
    runtime = Runtime(RuntimeClient(transport, sink, next_retry, post_retry), env)
    try:
        runtime.init(handler_name)
        sigterm_extension(env, address)
        if env.get("AWS_LAMBDA_INITIALIZATION_TYPE") == "snap-start":
            from .snapstart import restore

            restore(runtime)  # hooks and /restore/next (lambdaric.snapstart); exits 64/65 on failure
        runtime.serve()
    except RuntimeExit as exc:
        return exc.code
    finally:
        shutdown = sys.modules.get("lambdaric.shutdown")
        if shutdown is not None:  # on_shutdown callbacks on a normal exit (SIGTERM: logsink)
            shutdown.run_callbacks()
        flush_std_streams()
