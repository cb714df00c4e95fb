"""AWS's durable execution service (``dex-local-runner``), run by the emulator as a child.

The checkpoint service of durable functions is AWS's own, from
``aws-durable-execution-sdk-python-testing`` (the one the SAM CLI runs): it keeps the
executions, checks checkpoints, runs timers and callbacks, and re-invokes the function through
the emulator's Invoke API. Running it unchanged gives its fidelity for free; what the emulator
adds is the Lambda API in front of it (:mod:`.durable_api`). Its own default is to listen on
0.0.0.0: here it is always given 127.0.0.1 and a free port, runs in a session of its own, and
is stopped (SIGTERM, then SIGKILL of its group) when the emulator closes.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import time
import urllib.request
from typing import Callable, Dict, List, Optional

#: The runner's CLI, started with the emulator's own interpreter (it needs Python 3.11+).
_LAUNCH = "import sys; from aws_durable_execution_sdk_python_testing.cli import main; sys.exit(main())"
#: Variables of the emulator's environment the runner does not get (credentials, profiles,
#: endpoints: it talks to the emulator only).
_NOT_INHERITED = frozenset((
    "AWS_LAMBDA_RUNTIME_API", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_LAMBDA",
))
#: Seconds the runner may take to answer its health route after it starts.
START_TIMEOUT = 30.0


class RunnerError(Exception):
    """The durable service could not be started; ``str()`` says why in one line."""


def runner_available() -> Optional[str]:
    """None when the runner can be imported, else why not (the ``durable`` extra is missing)."""
    import importlib.util

    try:
        found = importlib.util.find_spec("aws_durable_execution_sdk_python_testing") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return "aws-durable-execution-sdk-python-testing is not installed (pip install 'lambdaric[durable]')"
    return None


def function_configs(durable: Dict[str, int], others: List[str]) -> str:
    """The runner's ``--function-configs``: every function served, in Lambda's configuration
    shape (a durable one carries its ``DurableConfig``), so a chained invoke of any of them
    is allowed and one of another name fails as on Lambda."""
    configs: Dict[str, object] = {name: {} for name in others}
    for name, timeout in durable.items():
        configs[name] = {"DurableConfig": {"ExecutionTimeout": timeout, "RetentionPeriodInDays": 1}}
    return json.dumps(configs)


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the emulator dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG), so no runner outlives an emulator that could not stop it."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):  # not Linux: the emulator's close() still stops it
        pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Runner:
    """One ``dex-local-runner start-server`` child on loopback."""

    def __init__(self, lambda_endpoint: str, configs: str, skip_time: bool, region: str, invocation_timeout: float,
                 say: Optional[Callable[[bytes], None]] = None) -> None:
        """``say`` takes the runner's own output (its warnings and errors), line by line."""
        self.say = say
        self.reader: "Optional[asyncio.Task[None]]" = None
        self.lambda_endpoint = lambda_endpoint
        self.configs = configs
        self.skip_time = skip_time
        self.region = region
        self.invocation_timeout = invocation_timeout
        self.proc: Optional[asyncio.subprocess.Process] = None
        self.port = 0

    @property
    def base(self) -> str:
        return "http://127.0.0.1:%d" % self.port

    async def start(self) -> None:
        """Start it and wait until it answers (three ports tried: another process may take
        the free one between the check and the runner's bind)."""
        why = runner_available()
        if why:
            raise RunnerError(why)
        last = ""
        for _ in range(3):
            self.port = _free_port()
            argv = [
                sys.executable, "-c", _LAUNCH, "start-server",
                "--host", "127.0.0.1", "--port", str(self.port),
                "--lambda-endpoint", self.lambda_endpoint,
                "--local-runner-endpoint", self.base,
                "--local-runner-region", self.region,
                "--log-level", "WARNING",
                "--invocation-timeout", str(max(int(self.invocation_timeout + 0.999), 1)),
                "--function-configs", self.configs,
                "--skip-time" if self.skip_time else "--no-skip-time",
            ]
            env = {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}
            # its Lambda client signs its invokes of the emulator: dummies, never real credentials
            env.update(AWS_ACCESS_KEY_ID="lambdaric-local", AWS_SECRET_ACCESS_KEY="lambdaric-local", AWS_DEFAULT_REGION=self.region)
            self.proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
                env=env, start_new_session=True, preexec_fn=_die_with_parent,
            )
            self.reader = asyncio.ensure_future(self._relay(self.proc.stdout))
            if await self._wait_healthy():
                return
            last = "exit status %s" % self.proc.returncode if self.proc.returncode is not None else "no answer"
            await self.stop()
        raise RunnerError("the durable execution service did not start (%s)" % last)

    async def _relay(self, stream: Optional[asyncio.StreamReader]) -> None:
        """The runner's output, each line prefixed as the emulator's own (never left unread:
        a full pipe would stop the runner)."""
        while stream is not None:
            try:
                line = await stream.readline()
            except (ValueError, ConnectionError):  # a line over the limit: the rest of it is dropped
                continue
            if not line:
                return
            if self.say is not None:
                self.say(b"lambdaric: durable service: " + line.rstrip(b"\n")[:4000] + b"\n")

    async def _wait_healthy(self) -> bool:
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end and self.proc.returncode is None:
            if await loop.run_in_executor(None, self._healthy):
                return True
            await asyncio.sleep(0.05)
        return False

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base + "/health", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    async def stop(self) -> None:
        """SIGTERM its session, give it 3 s, then SIGKILL what is left of it."""
        proc, self.proc = self.proc, None
        reader, self.reader = self.reader, None
        if proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                await asyncio.wait_for(proc.wait(), 3.0)
                if sig == signal.SIGTERM:
                    try:  # its own children, if any, go too
                        os.killpg(proc.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                break
            except asyncio.TimeoutError:
                continue
        if reader is not None:
            try:
                await asyncio.wait_for(reader, 1.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                pass
