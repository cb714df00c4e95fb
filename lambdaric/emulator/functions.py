"""The functions one emulator serves, and which of them an invoke names.

Each :class:`Function` has its own settings (timeout, memory, environment, command) and its
own :class:`.pool.Pool` of runtimes, as each Lambda function has its own execution
environments. :class:`Functions` finds the function an invoke path names: a name, a partial
or a full ARN, as Lambda reads them; an unknown name is Lambda's 404
``ResourceNotFoundException``.

One function served without a name of its own (``python -m lambdaric app.handler``) takes
every name, as the emulator always did (``any_name``): a client may keep calling it by its
deployed name or ARN. Functions given names (``--function NAME=...``, ``--functions FILE``)
are found by name only.
"""
from __future__ import annotations

import re
from typing import Callable, Dict, Iterator, List, Optional

from .invoke_api import FunctionRef, Refused
from .pool import Pool
from .sandbox import MIN_INIT_TIMEOUT, SandboxConfig

#: The fake account of every ARN the emulator makes (the one AWS documentation and the sample events use).
ACCOUNT = "123456789012"
REGION = "us-east-1"
#: A function name as CreateFunction takes it.
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


class FunctionSettings:
    """One function's configuration, decided once by the CLI."""

    def __init__(
        self,
        name: str,
        command: List[str],
        env: Dict[str, str],
        cwd: str,
        handler: Optional[str] = None,
        memory_mb: int = 3008,
        timeout: float = 300.0,
        concurrency: int = 4,
        queue_limit: int = 64,
        max_concurrency: int = 0,
        snapstart: bool = False,
        init_timeout: float = MIN_INIT_TIMEOUT,
        xray_sampled: bool = False,
        durable: bool = False,
        execution_timeout: int = 86400,
    ) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.cwd = cwd
        #: what the banner names (the command when there is no handler)
        self.handler = handler
        self.memory_mb = memory_mb
        self.timeout = timeout
        self.concurrency = concurrency
        self.queue_limit = queue_limit
        #: Managed Instances: one runtime serving this many invocations at once (0: off)
        self.max_concurrency = max_concurrency
        self.snapstart = snapstart
        #: seconds a runtime may take to reach its first /next (the function timeout if longer)
        self.init_timeout = init_timeout
        #: a trace header made for an invoke that came without one says Sampled=1 (active tracing)
        self.xray_sampled = xray_sampled
        #: a durable function: an invoke starts a durable execution (docs/durable.md)
        self.durable = durable
        #: its DurableConfig.ExecutionTimeout (seconds)
        self.execution_timeout = execution_timeout


class Function:
    """A function served: its settings and its runtimes."""

    def __init__(self, settings: FunctionSettings, echo: Callable[[bytes], None]) -> None:
        self.settings = settings
        config = SandboxConfig(
            settings.command,
            settings.env,
            settings.cwd,
            settings.memory_mb,
            echo,
            capacity=max(settings.max_concurrency, 1),
            snapstart=settings.snapstart,
            init_timeout=settings.init_timeout,
        )
        self.pool = Pool(config, 1 if settings.max_concurrency else settings.concurrency, settings.queue_limit)

    @property
    def name(self) -> str:
        return self.settings.name


class Functions:
    """The functions by name, and the rules that find one from an invoke (module docstring)."""

    def __init__(self, functions: List[Function], region: str = REGION, account: str = ACCOUNT, any_name: bool = False) -> None:
        if not functions:
            raise ValueError("an emulator serves at least one function")
        self.by_name: Dict[str, Function] = {}
        for function in functions:
            if function.name in self.by_name:
                raise ValueError("function %r is given twice" % function.name)
            self.by_name[function.name] = function
        self.region = region
        self.account = account
        self.any_name = any_name and len(functions) == 1

    def __iter__(self) -> Iterator[Function]:
        return iter(self.by_name.values())

    def names(self) -> List[str]:
        return list(self.by_name)

    def arn(self, name: str, qualifier: Optional[str] = None) -> str:
        arn = "arn:aws:lambda:%s:%s:function:%s" % (self.region, self.account, name)
        return arn + ":" + qualifier if qualifier else arn

    def get(self, name: str) -> Function:
        """The function called ``name``; raises Lambda's 404 :class:`Refused` when none is."""
        function = self.by_name.get(name)
        if function is None:
            if self.any_name:
                return next(iter(self.by_name.values()))
            raise not_found(self.arn(name))
        return function

    def find(self, ref: FunctionRef) -> Function:
        """The function an invoke path names (an ARN's region and account must be ours, unless
        every name is taken); raises Lambda's 404 :class:`Refused` otherwise."""
        if not self.any_name:
            if ref.region is not None and ref.region != self.region:
                raise Refused(404, "ResourceNotFoundException",
                              "Functions from '%s' are not reachable in this region ('%s')" % (ref.region, self.region))
            if ref.account is not None and ref.account != self.account:
                raise not_found("arn:aws:lambda:%s:%s:function:%s" % (ref.region or self.region, ref.account, ref.name))
        return self.get(ref.name)


def not_found(arn: str) -> Refused:
    """Lambda's answer for a function that does not exist (no qualifier in the ARN it names)."""
    return Refused(404, "ResourceNotFoundException", "Function not found: %s" % arn)
