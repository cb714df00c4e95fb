"""The environment a function's runtime starts with: what Lambda sets, over the emulator's own.

Lambda gives every execution environment a fixed set of variables; a handler (or an SDK
inside it: the X-Ray SDK, Powertools, boto3) reads them, so a local run that lacks one
behaves differently from the cloud. Container images get no ``AWS_EXECUTION_ENV`` (only
Lambda's managed runtimes set it), so none is set here either. Pure: unit-testable alone.
"""
from __future__ import annotations

import os
import time
from typing import Dict, Mapping, Optional

#: Where Lambda's X-Ray daemon listens (UDP), and so where X-Ray SDKs send segments.
XRAY_DAEMON_ADDRESS = "169.254.79.129:2000"


def initialization_type(max_concurrency: int, snapstart: bool) -> str:
    """``AWS_LAMBDA_INITIALIZATION_TYPE`` for the emulator's mode."""
    if snapstart:
        return "snap-start"
    return "lambda-managed-instances" if max_concurrency else "on-demand"


def function_environment(
    inherited: Mapping[str, str],
    *,
    name: str,
    handler: Optional[str],
    memory_mb: int,
    cwd: str,
    region: str = "us-east-1",
    max_concurrency: int = 0,
    snapstart: bool = False,
    configured: Optional[Mapping[str, str]] = None,
) -> Dict[str, str]:
    """The runtime's environment, in three layers, each over the one before:

    1. ``inherited`` (the emulator's environment: PATH, credentials, the developer's
       ``AWS_REGION``...) and Lambda's defaults where it has none (region, task root, X-Ray);
    2. what Lambda derives from the function itself (name, memory, version, log group and
       stream, handler, initialization type, ``TZ=:UTC``): always this function's, since an
       inherited value could belong to one function at most;
    3. ``configured``: the variables the user gave this function (``--functions`` file,
       ``--env-file``), which win, as a function's configuration does.
    """
    env = dict(inherited)
    env.pop("AWS_LAMBDA_RUNTIME_API", None)  # each sandbox sets its own
    for key, value in (
        ("AWS_REGION", region),
        ("AWS_DEFAULT_REGION", region),
        ("LAMBDA_TASK_ROOT", cwd),
        ("AWS_XRAY_DAEMON_ADDRESS", XRAY_DAEMON_ADDRESS),
        ("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR"),
    ):
        env.setdefault(key, value)
    env.update(
        AWS_LAMBDA_FUNCTION_NAME=name,
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(memory_mb),
        AWS_LAMBDA_LOG_GROUP_NAME="/aws/lambda/" + name,
        AWS_LAMBDA_LOG_STREAM_NAME=time.strftime("%Y/%m/%d/", time.gmtime()) + "[$LATEST]" + os.urandom(16).hex(),
        AWS_LAMBDA_INITIALIZATION_TYPE=initialization_type(max_concurrency, snapstart),
        TZ=":UTC",
    )
    if handler:
        env["_HANDLER"] = handler
    if max_concurrency:
        env["AWS_LAMBDA_MAX_CONCURRENCY"] = str(max_concurrency)
    else:
        env.pop("AWS_LAMBDA_MAX_CONCURRENCY", None)
    env.update(configured or {})
    # the daemon's host and port apart, as Lambda gives them too, from the address in force
    host, _, port = env["AWS_XRAY_DAEMON_ADDRESS"].rpartition(":")
    if not (configured and "_AWS_XRAY_DAEMON_ADDRESS" in configured):
        env["_AWS_XRAY_DAEMON_ADDRESS"] = host
    if not (configured and "_AWS_XRAY_DAEMON_PORT" in configured):
        env["_AWS_XRAY_DAEMON_PORT"] = port
    return env
