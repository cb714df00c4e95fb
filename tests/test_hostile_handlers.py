"""Hostile handlers through the wire (issue 9): a real ``python -m lambdaric`` process, on
both transports, against the scripted Runtime API, with a handler that does its worst
on the first invoke and answers ``"ok"`` on the next one.

What must hold every time: the failure is posted as the right error (when the process
lives to post it), the runtime serves the next invoke, nothing is lost, and stderr never
gets a Python traceback dump. Where the official client is the reference, it runs the
same handler (``test_differential_wire.both``).

Covered elsewhere, not repeated here: ``sys.exit(0)``/``sys.exit(3)`` (test_runtime_wire
``test_sys_exit_in_handler``), a response just over 6 MB (``test_response_over_limit_...``),
the X-Ray cause dropped at 1 MiB, a generator that raises mid-stream
(test_streaming_handlers), request ids in threads after the invoke (test_logs_wire).
"""
import json
import os
import re
import sys
import textwrap

import pytest

from runtime_api import Event

from lambdaric import protocol
from lambdaric.errors import TRUNCATED, error_body, make_error

#: A Python traceback dump as the interpreter writes it (the runtime's own error *record*
#: also says "Traceback (most recent call last):", but joined by CR, never followed by LF).
TRACEBACK_DUMP = b"Traceback (most recent call last):\n"
OK = b'"ok"'

APP = '''\
import os, sys
{prelude}
def handler(event, context):
    if event.get("hostile"):
{body}
    return "ok"
'''

FILL_MEMORY = """
import resource

def vm_size():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024

def exhaust():
    # a real allocation failure, to the last small block: 128 MB more address space than
    # the process has, filled in 1 MiB, then 4 KiB, then 64-byte pieces (all held by a
    # local, as a leaking handler would), then raised again once nothing is left. A few
    # small pieces are let go first: with none at all, whether the message, the exception
    # and its traceback entries can still be made depends on how the heap happens to be
    # laid out (the handler's own error, not the runtime's); the runtime then reports it
    # with the ~128 MB still held by this frame
    resource.setrlimit(resource.RLIMIT_AS, (vm_size() + (128 << 20), resource.RLIM_INFINITY))
    hog = []
    for size in (1 << 20, 1 << 12, 64):
        try:
            while True:
                hog.append(bytearray(size))
        except MemoryError:
            pass
    del hog[-64:]
    raise MemoryError("nothing left: %d pieces" % len(hog))
"""


def app(body, prelude=""):
    return APP.format(prelude=textwrap.dedent(prelude), body=textwrap.indent(textwrap.dedent(body).strip(), " " * 8))


def run_two(run_runtime, files, **kwargs):
    """The hostile invoke r1, then r2 that must still be answered."""
    events = [Event(b'{"hostile": true}', request_id="r1"), Event(b"{}", request_id="r2")]
    return run_runtime(files, "app.handler", events, expect_posts=2, timeout=30, **kwargs)


def post_for(result, request_id):
    posts = [p for p in result.posts if "/invocation/%s/" % request_id in p.path]
    assert len(posts) == 1, result.describe()
    return posts[0]


def no_traceback_dump(result):
    assert TRACEBACK_DUMP not in result.stderr, result.stderr[-3000:]


# --------------------------------------------------------------------------- the table
#
# (id, prelude, hostile body, expected errorType, check(error, post, result) or None)


def _recursion(error, post, result):
    assert error["errorMessage"] == "maximum recursion depth exceeded"
    assert any("[Previous line repeated" in line for line in error["stackTrace"])


def _memory(error, post, result):
    assert error["errorMessage"].startswith("nothing left: ")
    assert error["stackTrace"][-1].endswith('raise MemoryError("nothing left: %d pieces" % len(hog))\n')


def _surrogates(error, post, result):
    # valid UTF-8 JSON on the wire (the lone surrogates as \\u escapes), the text intact
    assert b"\\ud800" in post.body and b"\\udcff" in post.body
    post.body.decode("utf-8")
    assert error["errorMessage"] == "bad \ud800 and \udcff end"
    assert b"[ERROR] ValueError: bad \\ud800 and \\udcff end\r" in result.stdout  # escaped, not lost


def _ten_mb(error, post, result):
    assert len(post.body) <= protocol.MAX_PAYLOAD
    message = error["errorMessage"]
    assert message.endswith(TRUNCATED) and set(message[: -len(TRUNCATED)]) == {"x"}
    assert len(message) > 5_000_000  # as much as fits, not a token
    assert post.header("Lambda-Runtime-Function-XRay-Error-Cause") is None  # over 1 MiB: dropped
    assert b"[ERROR] ValueError: " + b"x" * (10 << 20) + b"\r" in result.stdout  # the whole of it in the log


def _crlf_type(error, post, result):
    assert post.header("Lambda-Runtime-Function-Error-Type") == "Bad\\r\\nX-Evil: 1"
    assert post.header("X-Evil") is None
    assert b"\r\nX-Evil" not in post.raw


def _cyrillic_type(error, post, result):
    assert post.header("Lambda-Runtime-Function-Error-Type") == "\\u041e\\u0448\\u0438\\u0431\\u043a\\u0430"


def _str_failed(kind):
    def check(error, post, result):
        assert error["errorMessage"] == "<exception str() failed: %s>" % kind
    return check


def _log_on_fd2(error, post, result):
    """fd 1 closed: the record (still in stdout's buffer) and what follows go to fd 2."""
    assert result.stderr.startswith(b"lambdaric: fd 1 (stdout) was closed by the function; stdout now goes to stderr\n")
    assert b"[ERROR] ValueError: after closing fd 1\r" in result.stderr


def _log_on_fd1(text):
    def check(error, post, result):
        assert b"[ERROR] ValueError: %s\r" % text.encode() in result.stdout
    return check


def _cwd(expected):
    """The X-Ray cause names the cwd the handler left (``expected(result)``)."""
    def check(error, post, result):
        cause = json.loads(post.header("Lambda-Runtime-Function-XRay-Error-Cause"))
        assert expected(result, cause["working_directory"]), cause
    return check


def _no_source(error, post, result):
    assert error["stackTrace"] == ['  File "%s", line 7, in handler\n' % os.path.join(result.cwd, "app.py")]


def _message(text):
    def check(error, post, result):
        assert error["errorMessage"] == text
    return check


CASES = [
    ("infinite-recursion", "def down(n):\n    return down(n + 1)\n", "down(0)", "RecursionError", _recursion),
    ("memoryerror-raised", "", "raise MemoryError('told')", "MemoryError", _message("told")),
    ("memoryerror-rlimit-as", FILL_MEMORY, "exhaust()", "MemoryError", _memory),
    ("keyboardinterrupt", "", "raise KeyboardInterrupt('ki')", "KeyboardInterrupt", _message("ki")),
    ("sigint-to-self", "import signal, time\n",
     "os.kill(os.getpid(), signal.SIGINT)\ntime.sleep(5)", "KeyboardInterrupt", _message("")),
    ("baseexception-subclass", "class Quit(BaseException):\n    pass\n", "raise Quit('q')", "Quit", _message("q")),
    ("str-raises", "class E(Exception):\n    def __str__(self):\n        raise RuntimeError('no')\n",
     "raise E()", "E", _str_failed("RuntimeError")),
    ("str-raises-keyboardinterrupt", "class E(Exception):\n    def __str__(self):\n        raise KeyboardInterrupt\n",
     "raise E()", "E", _str_failed("KeyboardInterrupt")),
    ("str-returns-non-str", "class E(Exception):\n    def __str__(self):\n        return 5\n",
     "raise E()", "E", _str_failed("TypeError")),
    ("lone-surrogates", "", "raise ValueError('bad \\ud800 and \\udcff end')", "ValueError", _surrogates),
    ("message-10mb", "", "raise ValueError('x' * (10 << 20))", "ValueError", _ten_mb),
    ("class-name-crlf", "E = type('Bad\\r\\nX-Evil: 1', (Exception,), {})\n", "raise E('m')",
     "Bad\r\nX-Evil: 1", _crlf_type),
    ("class-name-cyrillic", "E = type('\u041e\u0448\u0438\u0431\u043a\u0430', (Exception,), {})\n", "raise E('m')",
     "\u041e\u0448\u0438\u0431\u043a\u0430", _cyrillic_type),
    ("result-7mb", "", "return 'y' * (7 << 20)", "Function.ResponseSizeTooLarge",
     _message("Response payload size (7340034 bytes) exceeded maximum allowed payload size (6291556 bytes).")),
    ("result-nested-too-deep", "",
     "x = []\nfor _ in range(100000):\n    x = [x]\nreturn x", "Runtime.MarshalError",
     _message("Unable to marshal response: maximum recursion depth exceeded while encoding a JSON object")),
    ("closes-sys-stdout", "", "sys.stdout.close()\nraise ValueError('after close')", "ValueError",
     _log_on_fd1("after close")),
    ("sys-stdout-none", "", "sys.stdout = None\nraise ValueError('after none')", "ValueError",
     _log_on_fd1("after none")),
    ("closes-fd-1", "", "os.close(1)\nraise ValueError('after closing fd 1')", "ValueError", _log_on_fd2),
    ("changes-cwd", "", "os.chdir(os.path.dirname(os.getcwd()))\nraise ValueError('moved')", "ValueError",
     _cwd(lambda result, cwd: cwd == os.path.dirname(result.cwd))),
    ("removes-cwd", "import tempfile\n",
     "d = tempfile.mkdtemp()\nos.chdir(d)\nos.rmdir(d)\nraise ValueError('cwd gone')", "ValueError",
     _cwd(lambda result, cwd: cwd.startswith("/tmp") and cwd.endswith(" (deleted)"))),
    ("deletes-own-module", "",
     "os.remove(__file__)\ndel sys.modules[__name__]\nraise ValueError('no source')", "ValueError", _no_source),
]


@pytest.mark.parametrize("prelude, body, error_type, check", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_handler(run_runtime, prelude, body, error_type, check):
    result = run_two(run_runtime, {"app.py": app(body, prelude)})
    error_post = post_for(result, "r1")
    assert error_post.path.endswith("/invocation/r1/error"), result.describe()
    error = json.loads(error_post.body)
    assert list(error) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert (error["errorType"], error["requestId"]) == (error_type, "r1")
    header = error_post.header("Lambda-Runtime-Function-Error-Type")
    assert header == error_type or not protocol.safe_header_value(error_type)
    check(error, error_post, result)
    # and the runtime lives on: r2 answered, back on /next, no traceback dump
    assert post_for(result, "r2").body == OK
    assert not result.exited, result.describe()
    no_traceback_dump(result)


# --------------------------------------------------------------------------- exits


@pytest.mark.parametrize("code, status", [("os._exit(7)", 7), ("os._exit(0)", 0), ("sys.exit('bye')", 1)])
def test_exit_in_handler(run_runtime, code, status):
    """``os._exit(n)`` ends the process at once: nobody is left to post (Lambda itself
    reports ``Runtime.ExitError``), the exit status is n and what the function printed
    just before is not lost from the block buffer (the official client flushes every
    write). ``sys.exit('bye')`` (a message, not a number) is exit status 1, reported."""
    files = {"app.py": app("print('last words')\n%s" % code)}
    result = run_two(run_runtime, files)
    assert result.exited and result.returncode == status, result.describe()
    assert b"last words\n" in result.stdout
    assert not [p for p in result.posts if "/r2/" in p.path]
    if code.startswith("sys.exit"):
        error = json.loads(post_for(result, "r1").body)
        assert error["errorType"] == "Runtime.ExitError"
        assert error["errorMessage"] == "RequestId: r1 Error: Runtime exited with error: exit status 1"
        assert result.stderr.endswith(b"bye\n")  # the interpreter prints a SystemExit message
    else:
        assert not result.posts
    no_traceback_dump(result)


def test_os_exit_in_forked_child_writes_nothing_twice(run_runtime):
    """The flush before ``os._exit`` is the runtime process's only: a forked child that
    calls it (as multiprocessing's do) must not write its copy of the parent's buffer."""
    body = """
        print("parent line")
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        return "forked"
    """
    result = run_two(run_runtime, {"app.py": app(body)})
    assert post_for(result, "r1").body == b'"forked"'
    assert result.stdout.count(b"parent line\n") == 1


# --------------------------------------------------------------------------- threads


def test_thread_still_printing_and_logging_after_its_invoke(run_runtime):
    """A thread started by r1 prints and logs through r1, the idle time and r2, until r3
    joins it: every line arrives once and whole, every invoke is answered."""
    prelude = """
        import logging, threading, time
        log = logging.getLogger("bg")
        worker = []

        def chatter():
            for i in range(3000):
                print("line %05d %s" % (i, "z" * 50))
                if i % 100 == 0:
                    log.warning("record %05d", i)
                if i % 10 == 0:
                    time.sleep(0.001)
    """
    body = """
        worker.append(threading.Thread(target=chatter))
        worker[0].start()
        return "started"
    """
    files = {"app.py": app(body, prelude) + textwrap.dedent(
        """
        def handler2(event, context):
            if event.get("join"):
                worker[0].join()
                return "joined"
            return handler(event, context)
        """)}
    events = [Event(b'{"hostile": true}', request_id="r1"), Event(b"{}", request_id="r2"),
              Event(b'{"join": true}', request_id="r3")]
    result = run_runtime(files, "app.handler2", events, expect_posts=3, timeout=30)
    assert [p.body for p in result.posts] == [b'"started"', OK, b'"joined"']
    lines = result.stdout.split(b"\n")
    printed = [line for line in lines if line.startswith(b"line ")]
    assert printed == [b"line %05d %s" % (i, b"z" * 50) for i in range(3000)]
    records = [line for line in lines if b"\trecord " in line]
    assert [r.rsplit(b"\t", 1)[1] for r in records] == [b"record %05d" % i for i in range(0, 3000, 100)]
    assert all(re.match(rb"\[WARNING\]\t\d{4}-\d\d-\d\dT[\d:.]+Z\t(r\d)?\trecord \d{5}$", r) for r in records)
    assert not result.exited
    no_traceback_dump(result)


# --------------------------------------------------------------------------- against the official client


@pytest.mark.parametrize("body", [
    "raise MemoryError('told')",
    "raise ValueError('x' * (1 << 20))",
    "os.remove(__file__)\nraise ValueError('no source')",
    "x = []\nfor _ in range(100000):\n    x = [x]\nreturn x",
], ids=["memoryerror", "message-1mib", "deleted-source", "nested-result"])
def test_same_posts_as_official(tmp_path, lambdaric_env, body):
    """Where the official client survives the handler, it posts exactly what lambdaric
    does (its KeyboardInterrupt, BaseException, hostile ``__str__``, lone surrogates,
    removed cwd and closed stdout cases end its process with a traceback instead; infinite
    recursion posts the same but for the "[Previous line repeated N more times]" count,
    which depends on how deep each runtime calls the handler)."""
    from test_differential_wire import both, comparable

    events = [Event(b'{"hostile": true}', request_id="r1"), Event(b"{}", request_id="r2")]
    ours, theirs = both(tmp_path, lambdaric_env, {"app.py": app(body)}, "app.handler", events, expect_posts=2)
    assert len(ours.posts) == 2 and comparable(ours) == comparable(theirs)
    no_traceback_dump(ours)


# --------------------------------------------------------------------------- error_body (pure)


def test_error_body_fits_and_says_what_was_cut():
    limit = 100_000
    error = make_error("\u00e9\"" * 300_000, "T", ['  File "a.py", line %d, in f\n    g()\n' % i for i in range(20)], "r")
    body = error_body(error, limit)
    assert len(body) <= limit
    cut = json.loads(body)
    assert cut["errorMessage"].endswith(TRUNCATED) and cut["errorMessage"].startswith("\u00e9\"\u00e9\"")
    assert cut["stackTrace"] == error["stackTrace"] and cut["errorType"] == "T"
    # a trace too long on its own keeps its last frames and says how many went
    error = make_error("m", "T", ['  File "a.py", line %d, in f\n    g()\n' % i for i in range(40_000)], "r")
    cut = json.loads(error_body(error, limit))
    assert cut["errorMessage"] == "m"
    assert re.match(r"  \.\.\. \((\d+) of 40000 frames left out; the whole trace is in the log\)\n$", cut["stackTrace"][0])
    assert cut["stackTrace"][-1] == error["stackTrace"][-1]
    # small errors are untouched, UTF-8 as the official client writes them
    small = make_error("h\u00e9", "T", [], "r")
    assert error_body(small, limit) == '{"errorMessage": "h\u00e9", "errorType": "T", "requestId": "r", "stackTrace": []}'.encode()
