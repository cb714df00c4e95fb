"""Log records through the wire, compared with the official client where it is right and
checked against the contract where it is wrong.

Each case runs the same handler under lambdaric and (when installed) ``awslambdaric``,
in the same working directory, reading stdout and the ``_LAMBDA_TELEMETRY_LOG_FD`` pipe;
timestamps are masked. The documented differences are asserted on their own, never
hidden: inner line breaks of a record on stdout become ``\\r``; records the official client
cannot write (it fails the invoke instead) are written.
"""
import calendar
import json
import os
import re
import struct
import sys
import textwrap
import threading
import time

import pytest

from runtime_api import Event, run_runtime

TS_TEXT = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
TS_JSON = re.compile(rb'"timestamp": "\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z"')
OFFICIAL_ENV = {"AWS_EXECUTION_ENV": "AWS_Lambda_python3.12"}


def mask(data):
    data = TS_JSON.sub(b'"timestamp": "<ts>"', TS_TEXT.sub(b"<ts>", data))
    return re.sub(rb"object at 0x[0-9a-f]+", b"object at <addr>", data)


class Frame:
    def __init__(self, kind, micros, body):
        self.kind, self.micros, self.body = kind, micros, body

    def __repr__(self):
        return "Frame(%s, %r)" % (hex(self.kind), mask(self.body))

    def key(self):
        return (self.kind, mask(self.body))


def parse_frames(data):
    frames = []
    while data:
        assert len(data) >= 16, "truncated frame header: %r" % data
        kind, length, micros = struct.unpack(">IIQ", data[:16])
        assert len(data) >= 16 + length, "truncated frame"
        frames.append(Frame(kind, micros, data[16 : 16 + length]))
        data = data[16 + length :]
    return frames


def run(tmp_path, lambdaric_env, app, handler="app.handler", events=None, env=None, official=False, telemetry=True, **kwargs):
    """One runtime in ``tmp_path/same`` (both clients see the same paths); returns (result, frames)."""
    cwd = tmp_path / "same"
    cwd.mkdir(exist_ok=True)
    env = dict(OFFICIAL_ENV, **(env or {}))
    if not official:
        env.update(lambdaric_env)
    fds = ()
    chunks = []
    if telemetry:
        r, w = os.pipe()
        env["_LAMBDA_TELEMETRY_LOG_FD"] = str(w)
        fds = (w,)

        def drain():
            while True:
                chunk = os.read(r, 65536)
                if not chunk:
                    return
                chunks.append(chunk)

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
    cmd = [sys.executable, "-m", "awslambdaric"] if official else None
    files = {"app.py": textwrap.dedent(app).lstrip()}
    try:
        result = run_runtime(files, handler, events or [Event(b"{}", "r1")], env=env, cmd=cmd, cwd=str(cwd),
                             pass_fds=fds, timeout=20, **kwargs)
    finally:
        if telemetry:
            os.close(w)
    frames = None
    if telemetry:
        reader.join(10)
        os.close(r)
        frames = parse_frames(b"".join(chunks))
    return result, frames


def official_available():
    import importlib.util

    return importlib.util.find_spec("awslambdaric") is not None


def both(tmp_path, lambdaric_env, app, **kwargs):
    """(ours, theirs); theirs is None when awslambdaric is not installed."""
    ours = run(tmp_path, lambdaric_env, app, **kwargs)
    theirs = run(tmp_path, lambdaric_env, app, official=True, **kwargs) if official_available() else None
    return ours, theirs


# --------------------------------------------------------------------------- JSON fields

JSON_APP = """
    import decimal, logging
    log = logging.getLogger("x")
    RESERVED = ["timestamp", "level", "logger", "requestId", "location", "errorType", "errorMessage",
                "stackTrace", "aws_request_id", "tenant_id"]

    def handler(event, context):
        logging.addLevelName(25, "NOTICE")
        for level in (1, 15, 25, 35, 60):
            log.log(level, "at %d", level)
        for key in RESERVED:
            log.warning("reserved " + key, extra={key: "from extra"})
        log.warning("tenant from extra", extra={"tenantId": "T-extra"})
        log.warning({"a": "%s"}, "z")
        log.warning({1: "int key", "d": decimal.Decimal("2.5")})
        log.warning("values", extra={"d": decimal.Decimal("1.10"), "b": b"by", "s": {1}, "inf": float("inf"),
                                     "nested": {"k": [1, None]}, "none": None, "u": "h\\u00e9llo"})
        log.warning("no traceback", exc_info=(ValueError, ValueError("v"), None))
        try:
            try:
                {}["k"]
            except KeyError as e:
                raise RuntimeError("wrapped") from e
        except RuntimeError:
            log.exception("chained")
        return 1
"""


def test_json_records_match_official(tmp_path, lambdaric_env):
    env = {"AWS_LAMBDA_LOG_FORMAT": "JSON", "AWS_LAMBDA_LOG_LEVEL": "NOTSET"}
    (ours, ours_frames), theirs = both(tmp_path, lambdaric_env, JSON_APP, env=env)
    assert ours.posts[0].body == b"1", ours
    records = [json.loads(f.body) for f in ours_frames]
    by_message = {r["message"] if isinstance(r["message"], str) else json.dumps(r["message"]): r for r in records}
    # level: the standard name at or below the record's level
    assert [by_message["at %d" % n]["level"] for n in (1, 15, 25, 35, 60)] == ["NOTSET", "DEBUG", "INFO", "WARNING", "CRITICAL"]
    assert [hex(f.kind) for f in ours_frames[:5]] == ["0xa55a0002", "0xa55a000a", "0xa55a000e", "0xa55a0012", "0xa55a001a"]
    # extra keys that would pass for the runtime's own are not taken
    for key in ("timestamp", "level", "logger", "requestId", "location", "errorType", "errorMessage", "stackTrace"):
        record = by_message["reserved " + key]
        assert list(record) == ["timestamp", "level", "message", "logger", "requestId"] and record["requestId"] == "r1", record
    assert by_message["tenant from extra"]["tenantId"] == "T-extra"  # the invoke has none
    assert by_message["{'a': 'z'}"]["logger"] == "x"  # a dict used as a template is text
    assert by_message['{"1": "int key", "d": "2.5"}']["message"] == {"1": "int key", "d": "2.5"}
    values = by_message["values"]
    assert {k: values[k] for k in ("d", "b", "s", "nested", "u")} == {"d": "1.10", "b": "b'by'", "s": "{1}", "nested": {"k": [1, None]}, "u": "h\u00e9llo"}
    assert "none" not in values and b'"inf": Infinity' in ours_frames[[r["message"] for r in records].index("values")].body
    assert by_message["no traceback"]["stackTrace"] == [] and by_message["no traceback"]["location"].endswith("app.py:handler:17")
    chained = by_message["chained"]
    assert list(chained) == ["timestamp", "level", "message", "logger", "stackTrace", "errorType", "errorMessage", "requestId", "location"]
    assert (chained["errorType"], chained["errorMessage"]) == ("RuntimeError", "wrapped")
    if theirs is not None:
        assert [f.key() for f in ours_frames] == [f.key() for f in theirs[1]]


def test_json_records_with_tenant_match_official(tmp_path, lambdaric_env):
    app = """
        import logging
        def handler(event, context):
            logging.getLogger("t").warning("with tenant", extra={"tenantId": "ignored", "k": 1})
            logging.getLogger("t").error("boom", exc_info=True)  # outside an except block
            return 1
    """
    events = [Event(b"{}", "r1", headers={"Lambda-Runtime-Aws-Tenant-Id": "tenant-1"})]
    ours, frames = run(tmp_path, lambdaric_env, app, events=events, env={"AWS_LAMBDA_LOG_FORMAT": "JSON"})
    first, second = [json.loads(f.body) for f in frames]
    assert first == {"timestamp": first["timestamp"], "level": "WARNING", "message": "with tenant", "logger": "t",
                     "requestId": "r1", "tenantId": "tenant-1", "k": 1}
    # exc_info=True with no exception: a plain record (the official client fails the invoke here)
    assert list(second) == ["timestamp", "level", "message", "logger", "requestId", "tenantId"]
    assert ours.posts[0].path.endswith("/response")
    if official_available():
        theirs, their_frames = run(tmp_path, lambdaric_env, app, events=events, env={"AWS_LAMBDA_LOG_FORMAT": "JSON"}, official=True)
        assert their_frames[0].key() == frames[0].key()
        assert theirs.posts[0].path.endswith("/error")  # the documented difference


def test_unencodable_json_message_is_still_written(tmp_path, lambdaric_env):
    app = """
        import logging
        def handler(event, context):
            loop = []
            loop.append(loop)
            logging.getLogger("u").warning({(1, 2): "tuple key"}, extra={"loop": {"self": loop}, "ok": 1})
            return 1
    """
    result, frames = run(tmp_path, lambdaric_env, app, env={"AWS_LAMBDA_LOG_FORMAT": "JSON"})
    assert result.posts[0].body == b"1" and b"Logging error" not in result.stderr
    (record,) = [json.loads(f.body) for f in frames]
    assert record["message"] == "{(1, 2): 'tuple key'}" and record["loop"] == "{'self': [[...]]}" and record["ok"] == 1


# --------------------------------------------------------------------------- frame levels

LEVELS_APP = """
    import logging
    log = logging.getLogger()
    log.warning("at init")

    def handler(event, context):
        for name in ("debug", "info", "warning", "error", "critical"):
            getattr(log, name)("a %s record", name)
        context.log("raw\\n")
        return 1
"""


@pytest.mark.parametrize("level", [None, "", "INFO", "WARN", "FATAL", "bogus", "TRACE"])
@pytest.mark.parametrize("fmt", ["text", "JSON"])
def test_frames_by_log_level_match_official(tmp_path, lambdaric_env, fmt, level):
    env = {"AWS_LAMBDA_LOG_FORMAT": fmt}
    if level is not None:
        env["AWS_LAMBDA_LOG_LEVEL"] = level
    (ours, frames), theirs = both(tmp_path, lambdaric_env, LEVELS_APP, env=env)
    kinds = {mask(f.body).split(b"\t")[0] if fmt == "text" else json.loads(f.body).get("level"): f.kind for f in frames}
    if fmt == "text":
        # text records carry their level only when AWS_LAMBDA_LOG_LEVEL is set (to anything)
        leveled = bool(level)
        assert kinds[b"[CRITICAL]"] == (0xA55A001B if leveled else 0xA55A0003)
        assert kinds[b"raw\n"] == 0xA55A0003  # context.log: unleveled text
    else:
        assert kinds["CRITICAL"] == 0xA55A001A and kinds["INFO"] == 0xA55A000E  # context.log is an INFO record
    assert ours.stdout == b""
    if theirs is not None:
        their_frames = theirs[1]
        if fmt == "JSON":  # documented: context.log is a JSON record here, raw text there
            frames = [f for f in frames if b'"message": "raw"' not in f.body]
            their_frames = [f for f in their_frames if f.body != b"raw\n"]
        assert [f.key() for f in frames] == [f.key() for f in their_frames]


def test_frame_timestamp_is_the_record_time(tmp_path, lambdaric_env):
    _, frames = run(tmp_path, lambdaric_env, LEVELS_APP, env={"AWS_LAMBDA_LOG_LEVEL": "DEBUG"})
    records = [f for f in frames if f.body.startswith(b"[")]
    assert len(records) == 6
    for frame in records:
        stamp = TS_TEXT.search(frame.body).group().decode()
        seconds = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
        assert frame.micros // 1000 == seconds * 1000 + int(stamp[20:23]), (frame, frame.micros)


# --------------------------------------------------------------------------- errors and init failures

ERROR_APP = """
    import logging
    logging.getLogger().warning("at init")

    def handler(event, context):
        raise ValueError("first line\\nsecond line")
"""


@pytest.mark.parametrize("fmt", ["text", "JSON"])
def test_uncaught_error_records(tmp_path, lambdaric_env, fmt):
    env = {"AWS_LAMBDA_LOG_FORMAT": fmt}
    ours, theirs = both(tmp_path, lambdaric_env, ERROR_APP, env=env, telemetry=False)
    ours_fd, theirs_fd = both(tmp_path, lambdaric_env, ERROR_APP, env=env)
    out = mask(ours[0].stdout)
    if fmt == "text":
        # on stdout, one line per record: the message's own line break too
        assert out.count(b"\n") == 2, out
        assert b"\n[ERROR] ValueError: first line\rsecond line\rTraceback (most recent call last):\r\xc2\xa0\xc2\xa0File " in out
        last = ours_fd[1][-1]
        assert last.kind == 0xA55A0017 and last.body.startswith(b"[ERROR] ValueError: first line\nsecond line\nTraceback")
    else:
        error = json.loads(out.splitlines()[-1])
        assert list(error) == ["timestamp", "level", "errorMessage", "errorType", "requestId", "stackTrace"]
        assert (error["level"], error["errorMessage"], error["requestId"]) == ("ERROR", "first line\nsecond line", "r1")
        last = ours_fd[1][-1]
        assert last.kind == 0xA55A0016 and last.body.endswith(b"]}")  # no newline in that frame, as the official's
    if theirs is not None:
        normal = (lambda b: b.replace(b"\r", b"\n")) if fmt == "text" else (lambda b: b)
        assert normal(out) == normal(mask(theirs[0].stdout))
        assert [f.key() for f in ours_fd[1]] == [f.key() for f in theirs_fd[1]]


INIT_FAILURES = {
    "missing handler": ("x = 1\n", "app.nothere"),
    "raises at import": ("raise ValueError('boom at import')\n", "app.handler"),
}


@pytest.mark.parametrize("case", sorted(INIT_FAILURES))
@pytest.mark.parametrize("level", [None, "INFO", "ERROR"])
@pytest.mark.parametrize("fmt", ["text", "JSON"])
@pytest.mark.parametrize("telemetry", [False, True], ids=["stdout", "fd"])
def test_init_failure_records_match_official(tmp_path, lambdaric_env, case, level, fmt, telemetry):
    app, handler = INIT_FAILURES[case]
    env = {"AWS_LAMBDA_LOG_FORMAT": fmt}
    if level:
        env["AWS_LAMBDA_LOG_LEVEL"] = level
    (ours, frames), theirs = both(tmp_path, lambdaric_env, app, handler=handler, env=env, telemetry=telemetry)
    assert ours.exited and ours.returncode == 1 and ours.posts[0].path.endswith("/init/error")
    records = [f.body for f in frames] if telemetry else mask(ours.stdout).split(b"\n")[:-1]
    warned = level != "ERROR"  # the warning is a WARNING record of the root logger
    assert len(records) == 1 + warned, records
    if warned:
        warning = records[0]
        if fmt == "text":
            assert mask(warning).startswith(b"[WARNING]\t<ts>\t\tLAMBDA_WARNING: Unhandled exception. ") and warning.endswith(b"\r\n" if telemetry else b"\r")
        else:
            assert json.loads(warning)["message"].startswith("LAMBDA_WARNING: Unhandled exception. ")
    if telemetry:
        text_warning = 0xA55A0013 if level else 0xA55A0003
        assert [f.kind for f in frames] == ([text_warning if fmt == "text" else 0xA55A0012] if warned else []) + [
            0xA55A0017 if fmt == "text" else 0xA55A0016
        ]
    if theirs is not None:
        assert mask(ours.stdout) == mask(theirs[0].stdout)
        if telemetry:
            assert [f.key() for f in frames] == [f.key() for f in theirs[1]]


def test_unusable_telemetry_fd_falls_back_to_stdout(tmp_path, lambdaric_env):
    app = """
        import logging, os
        def handler(event, context):
            logging.getLogger().warning("still logged")
            return os.environ.get("_LAMBDA_TELEMETRY_LOG_FD")
    """
    result, _ = run(tmp_path, lambdaric_env, app, env={"_LAMBDA_TELEMETRY_LOG_FD": "not-a-fd"}, telemetry=False)
    assert result.posts[0].body == b"null"
    assert b"[WARNING]\t<ts>\tr1\tstill logged\n" in mask(result.stdout)
    assert b"ignoring _LAMBDA_TELEMETRY_LOG_FD='not-a-fd'" in result.stderr
