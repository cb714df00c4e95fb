"""``python -m lambdaric event list|NAME``: print the sample events' names, or one event's JSON.

The JSON goes to stdout as shipped, so it can be piped or saved and edited
(``python -m lambdaric event s3 > s3.json``), then sent with ``lambdaric invoke HANDLER @s3.json``.
"""
from __future__ import annotations

import sys

from . import DESCRIPTIONS, UnknownEvent, names, text

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import IO, List, Optional

USAGE = """\
usage: python -m lambdaric event list
       python -m lambdaric event NAME

Print the names of the sample events (list), or the JSON of one of them (NAME).
Send one to a handler with `python -m lambdaric invoke HANDLER --event NAME`.
"""


def listing() -> str:
    """One line per event: its name, padded, then what it is."""
    width = max(len(n) for n in names())
    return "".join("%-*s  %s\n" % (width, n, DESCRIPTIONS[n]) for n in names())


def main(argv: "List[str]", out: "Optional[IO[str]]" = None, err: "Optional[IO[str]]" = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if len(argv) != 1:
        err.write(USAGE if not argv else "lambdaric event: give one name (or list)\n" + USAGE)
        return 2
    arg = argv[0]
    if arg in ("-h", "--help"):
        out.write(USAGE + "\nsample events:\n" + listing())
        return 0
    if arg.lower() in ("list", "--list"):
        out.write(listing())
        return 0
    try:
        out.write(text(arg))
    except UnknownEvent:
        err.write("lambdaric event: no sample event named %r; one of:\n%s" % (arg, listing()))
        return 2
    return 0
