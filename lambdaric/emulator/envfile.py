"""``--env-file``: variables for the functions' runtimes, from a dotenv file or SAM's ``env.json``.

The two shapes are told apart by content (a JSON object starts with ``{``; a dotenv line
never does), so one option takes either. Pure parsing, no environment is touched: the CLI
merges the result into each function's environment (:mod:`.environment`). Every error
names the file and line, because a variable silently dropped or mangled shows up much later
as a handler misbehaving.

dotenv: ``KEY=VALUE`` lines, ``export KEY=VALUE``, blank lines and ``#`` comments; a value
may be single-quoted (taken literally), double-quoted (``\\n``, ``\\t``, ``\\r``, ``\\"``,
``\\\\`` escapes; may span lines) or bare (trimmed, a `` #`` starts a comment). No
``${VAR}`` expansion: what is written is what the function gets.

``env.json``: ``{"Parameters": {KEY: VALUE}, "NAME": {KEY: VALUE}}``: ``Parameters`` for every
function, ``NAME`` for the function named so (it wins over ``Parameters``). Values are
strings, numbers or booleans (``true``/``false``, as JSON writes them).
"""
from __future__ import annotations

import json
import re
from typing import Dict, List, NamedTuple, Tuple

#: The most an env file may hold: far beyond any real one (Lambda allows 4 KB of variables per
#: function); a larger file is a wrong path, not configuration.
MAX_FILE_BYTES = 1024 * 1024
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}
#: The section of ``env.json`` that applies to every function.
COMMON = "Parameters"


class EnvFileError(ValueError):
    """A file that cannot be used; ``str()`` is one line: ``path:line: what is wrong``."""


class EnvFile(NamedTuple):
    """What an env file sets: ``common`` for every function, ``functions`` by function name."""

    common: Dict[str, str]
    functions: Dict[str, Dict[str, str]]

    def for_function(self, name: str) -> Dict[str, str]:
        """The variables function ``name`` gets: the common ones, then its own over them."""
        return dict(self.common, **self.functions.get(name, {}))


def read_env_file(path: str) -> EnvFile:
    """Read and parse ``path`` (see module docstring); raises :class:`EnvFileError`."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise EnvFileError("%s: cannot read it: %s" % (path, exc.strerror or exc)) from None
    if len(data) > MAX_FILE_BYTES:
        raise EnvFileError("%s: larger than %d bytes: not an env file" % (path, MAX_FILE_BYTES))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise EnvFileError("%s:%d: not UTF-8 text (byte 0x%02x)" % (path, line, data[exc.start])) from None
    return parse_env_file(text, path)


def parse_env_file(text: str, path: str = "<env>") -> EnvFile:
    """Either shape, told apart by the first character that is not blank."""
    if text.startswith("\ufeff"):  # a byte-order mark some editors write
        text = text[1:]
    if text.lstrip().startswith("{"):
        return parse_env_json(text, path)
    return EnvFile(parse_dotenv(text, path), {})


def parse_env_json(text: str, path: str = "<env>") -> EnvFile:
    """SAM's ``env.json`` shape (see module docstring)."""
    try:
        obj = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise EnvFileError("%s:%d:%d: invalid JSON: %s" % (path, exc.lineno, exc.colno, exc.msg)) from None
    except ValueError as exc:  # a duplicate key, from _no_duplicates
        raise EnvFileError("%s: %s" % (path, exc)) from None
    except RecursionError:
        raise EnvFileError("%s: invalid JSON: nested too deeply" % path) from None
    if not isinstance(obj, dict):
        raise EnvFileError("%s: the top level must be an object of sections" % path)
    common: Dict[str, str] = {}
    functions: Dict[str, Dict[str, str]] = {}
    for section, values in obj.items():
        where = "%s: %r" % (path, section)
        if not isinstance(values, dict):
            raise EnvFileError("%s must be an object of VARIABLE: value, not %s" % (where, _kind(values)))
        variables = {}
        for key, value in values.items():
            _check_key(key, where)
            variables[key] = _json_value(value, "%s, %s" % (where, key))
        if section == COMMON:
            common = variables
        else:
            functions[section] = variables
    return EnvFile(common, functions)


def parse_dotenv(text: str, path: str = "<env>") -> Dict[str, str]:
    """dotenv lines (see module docstring) -> variables; a later line wins over an earlier one."""
    found: Dict[str, str] = {}
    lines = text.splitlines()
    number = 0
    while number < len(lines):
        line = lines[number]
        number += 1
        where = "%s:%d" % (path, number)
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export ") or stripped.startswith("export\t"):
            stripped = stripped[len("export"):].lstrip()
        key, sep, rest = stripped.partition("=")
        key = key.rstrip()
        if not sep:
            raise EnvFileError("%s: expected KEY=VALUE, got %r" % (where, _short(stripped)))
        _check_key(key, where)
        rest = rest.lstrip()
        if rest[:1] in ("'", '"'):
            value, number = _quoted(rest, lines, number, where)
        else:
            value = re.split(r"\s#", rest, maxsplit=1)[0].strip()
        if "\x00" in value:
            raise EnvFileError("%s: the value of %s holds a NUL character, which no environment can" % (where, key))
        found[key] = value
    return found


def _quoted(rest: str, lines: List[str], number: int, where: str) -> Tuple[str, int]:
    """A quoted value starting at ``rest`` (line ``number``, counted from 1), perhaps running
    on over the next lines; returns it and the number of the line it ends on."""
    quote = rest[0]
    text = rest[1:]
    out: List[str] = []
    while True:
        i = 0
        while i < len(text):
            ch = text[i]
            if ch == quote:
                after = text[i + 1:].strip()
                if after and not after.startswith("#"):
                    raise EnvFileError("%s: unexpected text after the closing quote: %r" % (where, _short(after)))
                return "".join(out), number
            if ch == "\\" and quote == '"' and i + 1 < len(text):
                nxt = text[i + 1]
                out.append(_ESCAPES.get(nxt, "\\" + nxt))
                i += 2
                continue
            out.append(ch)
            i += 1
        if number >= len(lines):
            raise EnvFileError("%s: the %s-quoted value is never closed" % (where, "double" if quote == '"' else "single"))
        out.append("\n")
        text = lines[number]
        number += 1


def _check_key(key: object, where: str) -> None:
    if not isinstance(key, str) or not _KEY.match(key):
        raise EnvFileError("%s: invalid variable name %r (letters, digits and _, not starting with a digit)" % (where, _short(str(key))))


def _json_value(value: object, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        if "\x00" in value:
            raise EnvFileError("%s: the value holds a NUL character, which no environment can" % where)
        return value
    raise EnvFileError("%s: the value must be a string, number or boolean, not %s" % (where, _kind(value)))


def _no_duplicates(pairs: List[Tuple[str, object]]) -> Dict[str, object]:
    seen: Dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError("%r is given twice in one object" % key)
        seen[key] = value
    return seen


def _kind(value: object) -> str:
    return {dict: "an object", list: "an array", type(None): "null"}.get(type(value), type(value).__name__)


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."

