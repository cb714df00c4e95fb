"""Which functions to serve: ``--function NAME=HANDLER`` options and the ``--functions`` file.

The file is JSON, the smallest shape that says per function what Lambda's configuration
says (the handler, or a runtime command; timeout; memory; environment; concurrency;
tracing)::

    {"functions": {
        "orders": {"handler": "app.orders", "timeout": 10, "memory": 512,
                   "environment": {"TABLE": "orders"}, "concurrency": 2, "tracing": "Active"},
        "legacy": {"command": ["python", "-m", "awslambdaric", "legacy.handler"]}
    }}

A setting left out takes the command line's (``--timeout``, ``--memory``...). Unknown keys
are errors, not ignored: a misspelt ``"timout"`` would otherwise leave the default in force
unnoticed. Pure parsing; :mod:`.cli` turns specs into running functions.
"""
from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Callable, Dict, List, Mapping, NamedTuple, Optional, Tuple

from .envfile import EnvFile, EnvFileError, parse_env_json, read_env_file
from .environment import function_environment
from .functions import NAME, FunctionSettings

#: Lambda's limits on the settings, checked so that a local run never accepts what a deploy refuses.
MAX_TIMEOUT = 900.0
MIN_MEMORY, MAX_MEMORY = 128, 10240
_KEYS = ("handler", "command", "timeout", "memory", "environment", "concurrency", "max_concurrency", "snapstart", "tracing",
         "durable", "execution_timeout")
#: DurableConfig.ExecutionTimeout's range (seconds): up to 366 days.
MAX_EXECUTION_TIMEOUT = 31622400
#: Credentials every durable function's runtime gets, so that the SDK inside it, whose Lambda
#: client signs its checkpoints, can never reach AWS with the developer's own.
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "lambdaric-local", "AWS_SECRET_ACCESS_KEY": "lambdaric-local"}
TRACING_MODES = ("Active", "PassThrough")


class ConfigError(ValueError):
    """A function specification that cannot be served; ``str()`` is one line saying where and why."""


class FunctionSpec(NamedTuple):
    """One function as the user gave it; None: the command line's setting."""

    name: str
    handler: Optional[str] = None
    command: Optional[List[str]] = None
    timeout: Optional[float] = None
    memory: Optional[int] = None
    environment: Dict[str, str] = {}
    concurrency: Optional[int] = None
    max_concurrency: Optional[int] = None
    snapstart: Optional[bool] = None
    xray_sampled: Optional[bool] = None
    durable: Optional[bool] = None
    execution_timeout: Optional[int] = None


def check_name(name: str, where: str) -> str:
    if not NAME.match(name):
        raise ConfigError("%s: invalid function name %r (1 to 64 letters, digits, - and _)" % (where, name[:80]))
    return name


def parse_function_option(value: str) -> FunctionSpec:
    """``--function NAME=module.function``."""
    name, sep, handler = value.partition("=")
    where = "--function %s" % value[:80]
    if not sep or not handler.strip():
        raise ConfigError("%s: expected NAME=module.function" % where)
    return FunctionSpec(check_name(name.strip(), where), handler=handler.strip())


def read_functions_file(path: str) -> List[FunctionSpec]:
    try:
        with open(path, "rb") as f:
            data = f.read(1024 * 1024 + 1)
    except OSError as exc:
        raise ConfigError("%s: cannot read it: %s" % (path, exc.strerror or exc)) from None
    if len(data) > 1024 * 1024:
        raise ConfigError("%s: larger than 1 MiB: not a functions file" % path)
    try:
        return parse_functions_file(data.decode("utf-8"), path)
    except UnicodeDecodeError as exc:
        raise ConfigError("%s: not UTF-8 text (byte %d)" % (path, exc.start)) from None


def parse_functions_file(text: str, path: str = "<functions>") -> List[FunctionSpec]:
    """The specs a ``--functions`` file gives (see module docstring), in its order."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError("%s:%d:%d: invalid JSON: %s" % (path, exc.lineno, exc.colno, exc.msg)) from None
    except RecursionError:
        raise ConfigError("%s: invalid JSON: nested too deeply" % path) from None
    if not isinstance(obj, dict) or set(obj) != {"functions"} or not isinstance(obj["functions"], dict):
        raise ConfigError('%s: expected {"functions": {NAME: {settings}, ...}}' % path)
    if not obj["functions"]:
        raise ConfigError("%s: no functions in it" % path)
    return [_spec(name, settings, "%s: function %r" % (path, name)) for name, settings in obj["functions"].items()]


def _spec(name: str, settings: object, where: str) -> FunctionSpec:
    check_name(name, where.rpartition(": function ")[0] or where)
    if not isinstance(settings, dict):
        raise ConfigError("%s: its settings must be an object" % where)
    unknown = sorted(set(settings) - set(_KEYS))
    if unknown:
        raise ConfigError("%s: unknown setting %r (known: %s)" % (where, unknown[0], ", ".join(_KEYS)))
    handler = settings.get("handler")
    if handler is not None and (not isinstance(handler, str) or not handler.strip()):
        raise ConfigError("%s: handler must be module.function" % where)
    command = settings.get("command")
    if isinstance(command, str):
        command = shlex.split(command)
    if command is not None and (not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command)):
        raise ConfigError("%s: command must be a string or a non-empty array of strings" % where)
    if handler is None and command is None:
        raise ConfigError("%s: give a handler or a command" % where)
    tracing = settings.get("tracing")
    if tracing is not None and tracing not in TRACING_MODES:
        raise ConfigError("%s: tracing must be Active or PassThrough" % where)
    snapstart = settings.get("snapstart")
    if snapstart is not None and not isinstance(snapstart, bool):
        raise ConfigError("%s: snapstart must be true or false" % where)
    durable = settings.get("durable")
    if durable is not None and not isinstance(durable, bool):
        raise ConfigError("%s: durable must be true or false" % where)
    return FunctionSpec(
        name,
        handler=handler.strip() if handler else None,
        command=command,
        timeout=_number(settings, "timeout", where, 0.001, MAX_TIMEOUT),
        memory=_integer(settings, "memory", where, MIN_MEMORY, MAX_MEMORY),
        environment=_environment(settings.get("environment"), where),
        concurrency=_integer(settings, "concurrency", where, 1, 1000),
        max_concurrency=_integer(settings, "max_concurrency", where, 0, 1000),
        snapstart=snapstart,
        xray_sampled=None if tracing is None else tracing == "Active",
        durable=durable,
        execution_timeout=_integer(settings, "execution_timeout", where, 1, MAX_EXECUTION_TIMEOUT),
    )


def _number(settings: dict, key: str, where: str, low: float, high: float) -> Optional[float]:
    value = settings.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ConfigError("%s: %s must be a number from %g to %g" % (where, key, low, high))
    return float(value)


def _integer(settings: dict, key: str, where: str, low: int, high: int) -> Optional[int]:
    value = settings.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError("%s: %s must be a whole number from %d to %d" % (where, key, low, high))
    return value


def _environment(value: object, where: str) -> Dict[str, str]:
    if value is None:
        return {}
    try:
        return parse_env_json(json.dumps({"Parameters": value}), where + ": environment").common
    except EnvFileError as exc:
        raise ConfigError(str(exc)) from None


#: Lambda's limit on a function's variables, all keys and values together.
LAMBDA_ENV_BYTES = 4096


def plan_functions(
    args: argparse.Namespace, cwd: str, inherited: Mapping[str, str], say: Callable[[str], None]
) -> Tuple[List[FunctionSettings], bool]:
    """The functions the command line asks for, and whether the one function takes every
    name (only a positional HANDLER or ``--command``, none named: as the emulator always
    did). Raises :class:`ConfigError` (or :class:`.envfile.EnvFileError`) for what cannot be
    served; ``say`` gets the warnings (an env file section naming no function served).

    The positional HANDLER (else ``$_HANDLER`` when nothing else is given) is the function
    ``--function-name``; ``--command`` is the runtime command of every function that has no
    command of its own (a custom runtime reads its handler from ``_HANDLER``)."""
    named = [parse_function_option(v) for v in args.function_specs]
    if getattr(args, "durable", False):  # --durable: HANDLER's function and every --function
        named = [spec._replace(durable=True) for spec in named]
    if args.functions_file:
        named += read_functions_file(args.functions_file)
    specs: List[FunctionSpec] = []
    handler = args.handler or (None if named else inherited.get("_HANDLER") or None)
    if handler or (args.command and not named):
        specs.append(FunctionSpec(check_name(args.function_name, "--function-name"), handler=handler,
                                  durable=bool(getattr(args, "durable", False)) or None))
    specs += named
    if not specs:
        raise ConfigError("no handler given (pass module.function, set _HANDLER, give --function NAME=module.function, "
                          "--functions FILE or --command)")
    seen = set()
    for spec in specs:
        if spec.name in seen:
            raise ConfigError("function %r is given twice" % spec.name)
        seen.add(spec.name)
    env_file: Optional[EnvFile] = read_env_file(args.env_file) if args.env_file else None
    if env_file is not None:
        for section in sorted(set(env_file.functions) - seen):
            say("lambdaric: %s: section %r names no function served here (%s): ignored" % (args.env_file, section, ", ".join(sorted(seen))))
    return [_settings(spec, args, cwd, inherited, env_file, say) for spec in specs], not named


def _settings(
    spec: FunctionSpec, args: argparse.Namespace, cwd: str, inherited: Mapping[str, str], env_file: Optional[EnvFile], say: Callable[[str], None]
) -> FunctionSettings:
    if spec.command is not None:
        command = spec.command
    elif args.command:
        command = shlex.split(args.command)
    else:
        assert spec.handler is not None
        command = [sys.executable, "-m", "lambdaric", spec.handler]
    memory = spec.memory if spec.memory is not None else args.memory
    max_concurrency = spec.max_concurrency if spec.max_concurrency is not None else args.max_concurrency
    snapstart = spec.snapstart if spec.snapstart is not None else args.snapstart
    configured = dict(spec.environment)
    if env_file is not None:
        configured.update(env_file.for_function(spec.name))
    size = sum(len(k.encode()) + len(v.encode()) for k, v in configured.items())
    if size > LAMBDA_ENV_BYTES:
        say("lambdaric: function %s: its variables take %d bytes; Lambda refuses more than %d" % (spec.name, size, LAMBDA_ENV_BYTES))
    env = function_environment(
        inherited, name=spec.name, handler=spec.handler, memory_mb=memory, cwd=cwd,
        max_concurrency=max_concurrency, snapstart=snapstart, configured=configured,
    )
    if spec.durable:
        # always dummies (docs/durable.md): a profile or a session token could reach AWS too
        for key in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            env.pop(key, None)
        env.update(DUMMY_CREDENTIALS)
    execution_timeout = spec.execution_timeout or getattr(args, "execution_timeout", None) or 86400
    if not 1 <= execution_timeout <= MAX_EXECUTION_TIMEOUT:
        raise ConfigError("--execution-timeout must be a whole number from 1 to %d" % MAX_EXECUTION_TIMEOUT)
    return FunctionSettings(
        spec.name,
        command,
        env,
        cwd,
        handler=spec.handler,
        memory_mb=memory,
        timeout=spec.timeout if spec.timeout is not None else args.timeout,
        concurrency=spec.concurrency if spec.concurrency is not None else args.concurrency,
        queue_limit=args.queue,
        max_concurrency=max_concurrency,
        snapstart=snapstart,
        init_timeout=args.init_timeout,
        xray_sampled=spec.xray_sampled if spec.xray_sampled is not None else args.xray_sampled,
        durable=bool(spec.durable),
        execution_timeout=execution_timeout,
    )
