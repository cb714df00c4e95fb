"""``lambdaric invoke`` as a user runs it: a real process, against a handler it serves
itself or against a running emulator's URL."""
import base64
import json
import os
import subprocess
import sys

import pytest

from emulator_harness import REPO, RunningEmulator
from scripted_http import LoopbackServer, http_answer

from lambdaric.emulator.eventstream import encode_message, invoke_complete, payload_chunk

pytest.importorskip("requests", reason="requests is not installed")

APP = {
    "app.py": """
        def handler(event, context):
            print("hello from the log")
            if isinstance(event, dict) and event.get("fail"):
                raise RuntimeError("asked to fail")
            cc = context.client_context
            return {"event": event, "custom": cc.custom if cc else None, "tenant": context.tenant_id}
    """
}


def lambdaric_invoke(args, cwd, stdin=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_LAMBDA_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "lambdaric", "invoke"] + args, cwd=cwd, env=env, input=stdin, capture_output=True, timeout=60
    )


@pytest.fixture
def app_dir(tmp_path):
    (tmp_path / "app.py").write_text(
        "def handler(event, context):\n"
        "    print('hello from the log')\n"
        "    if isinstance(event, dict) and event.get('fail'):\n"
        "        raise RuntimeError('asked to fail')\n"
        "    return {'event': event}\n"
    )
    return tmp_path


def test_handler_mode_inline_event_and_tail(app_dir):
    out = lambdaric_invoke(["app.handler", '{"a": 1}', "--tail"], app_dir)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"event": {"a": 1}}
    assert b"hello from the log" in out.stderr and b"REPORT RequestId: " in out.stderr


def test_handler_mode_file_and_stdin(app_dir):
    (app_dir / "event.json").write_text('{"from": "file"}')
    out = lambdaric_invoke(["app.handler", "@event.json"], app_dir)
    assert json.loads(out.stdout) == {"event": {"from": "file"}}
    out = lambdaric_invoke(["app.handler", "-"], app_dir, stdin=b'{"from": "stdin"}')
    assert json.loads(out.stdout) == {"event": {"from": "stdin"}}


def test_function_error_exit_status(app_dir):
    out = lambdaric_invoke(["app.handler", '{"fail": true}'], app_dir)
    assert out.returncode == 1
    assert json.loads(out.stdout)["errorMessage"] == "asked to fail"


def test_url_mode_against_a_running_emulator(tmp_path):
    with RunningEmulator(APP) as emu:
        out = lambdaric_invoke([emu.url(), '{"b": 2}', "--client-context", '{"custom": {"k": "v"}}', "--tenant-id", "t9"], str(tmp_path))
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {"event": {"b": 2}, "custom": {"k": "v"}, "tenant": "t9"}
        out = lambdaric_invoke([emu.base, "{}", "--type", "DryRun"], str(tmp_path))
        assert out.returncode == 0 and out.stdout == b""
        out = lambdaric_invoke([emu.base, "{}", "--type", "Event"], str(tmp_path))
        assert out.returncode == 0 and out.stdout == b""


def test_options_between_target_and_event(tmp_path):
    """Options may stand anywhere, as users type them: between TARGET and EVENT too."""
    with RunningEmulator(APP) as emu:
        out = lambdaric_invoke([emu.url(), "--tenant-id", "t1", '{"b": 3}', "--tail"], str(tmp_path))
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout) == {"event": {"b": 3}, "custom": None, "tenant": "t1"}
        assert b"hello from the log" in out.stderr


def test_a_lone_event_goes_to_the_default_url(tmp_path):
    """`lambdaric invoke @event.json` (no target) sends the file to the default URL, where
    `docker run -p 8080:8080 ...` serves; it was taken for a handler name."""
    import socket

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8080)) == 0:
            pytest.skip("127.0.0.1:8080 is in use here: the default URL cannot be served by this test")
    (tmp_path / "event.json").write_text('{"from": "file"}')
    with RunningEmulator(APP, args=["--listen", "127.0.0.1:8080"]) as emu:
        assert emu.base == "http://127.0.0.1:8080"
        for event, stdin in (("@event.json", None), ("-", b'{"from": "file"}'), ('{"from": "file"}', None)):
            out = lambdaric_invoke([event], str(tmp_path), stdin=stdin)
            assert out.returncode == 0, out.stderr
            assert json.loads(out.stdout) == {"event": {"from": "file"}, "custom": None, "tenant": None}


def test_unreachable_url_is_a_clear_error(tmp_path):
    out = lambdaric_invoke(["http://127.0.0.1:9/2015-03-31/functions/function/invocations"], str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.startswith(b"lambdaric invoke: ") and b"Traceback" not in out.stderr


# --------------------------------------------------------------------------- --stream against a scripted server

@pytest.fixture(scope="module")
def scripted():
    srv = LoopbackServer()
    yield srv
    srv.close()


STREAM_URL = "http://127.0.0.1:%d/2021-11-15/functions/function/response-streaming-invocations"
_ERROR = encode_message([(":message-type", "error"), (":error-code", "ServiceException"), (":error-message", "went wrong")], b"")
_CORRUPT = payload_chunk(b"abc")[:-1] + bytes([payload_chunk(b"abc")[-1] ^ 0xFF])


@pytest.mark.parametrize(
    "answer, status, stdout, stderr",
    [
        # the control: a complete stream is a success, output exactly the chunks
        (http_answer([payload_chunk(b"one "), payload_chunk(b"two"), invoke_complete()]), 0, b"one two", b""),
        (http_answer([payload_chunk(b"one "), invoke_complete("Runtime.Boom", "it broke")]), 1, b"one ", b"lambdaric invoke: Runtime.Boom: it broke\n"),
        # the HTTP body ends cleanly, the event stream does not
        (http_answer([payload_chunk(b"one ")]), 2, b"one ", b"ended without InvokeComplete"),
        (http_answer([payload_chunk(b"one "), invoke_complete()[:20]]), 2, b"one ", b"ended inside an event (20 bytes of it received, and no InvokeComplete)"),
        (http_answer([payload_chunk(b"never printed")[:-3]]), 2, b"", b"ended inside an event"),
        (http_answer([payload_chunk(b"one "), invoke_complete(), payload_chunk(b"more")[:9]]), 2, b"one ", b"ended inside an event (9 bytes of it received)"),
        (http_answer([payload_chunk(b"one "), invoke_complete(), payload_chunk(b"late")]), 2, b"one ", b"goes on after InvokeComplete"),
        (http_answer([payload_chunk(b"one ")], framing="content-length"), 2, b"one ", b"ended without InvokeComplete"),
        (http_answer([]), 2, b"", b"ended without InvokeComplete"),
        # broken events
        (http_answer([payload_chunk(b"one "), _CORRUPT]), 2, b"one ", b"malformed response stream: message CRC mismatch"),
        (http_answer([payload_chunk(b"one "), _ERROR]), 2, b"one ", b"ended with an error: ServiceException: went wrong"),
        (http_answer([encode_message([(":event-type", "InvokeComplete"), (":message-type", "event")], b"[1]")]), 2, b"", b"InvokeComplete is not a JSON object"),
        # the connection drops inside an HTTP chunk (no terminating 0-chunk)
        (http_answer([payload_chunk(b"one "), invoke_complete()])[:2] + [b"400\r\n" + payload_chunk(b"x")], 2, b"one ",
         b"lambdaric invoke: the connection broke inside the response stream: Connection broken: IncompleteRead("),
        # (with Content-Length framing requests' iter_content(None) reads to the end before it yields)
        (http_answer([payload_chunk(b"one "), invoke_complete()], framing="content-length")[:2] + [b"xyz"], 2, b"",
         b"lambdaric invoke: the connection broke inside the response stream: "),
    ],
    ids=["complete", "function-error", "no-invoke-complete", "partial-invoke-complete", "partial-first-event",
         "partial-after-complete", "event-after-complete", "content-length-no-complete", "empty-body", "crc", "error-message",
         "complete-not-object", "connection-cut-mid-chunk", "connection-cut-short-of-content-length"],
)
def test_stream_that_breaks_off_is_a_clear_failure(scripted, tmp_path, answer, status, stdout, stderr):
    scripted.answers.put(answer)
    out = lambdaric_invoke([STREAM_URL % scripted.port, "{}", "--stream"], str(tmp_path))
    assert scripted.requests[-1][0] == "POST /2021-11-15/functions/function/response-streaming-invocations HTTP/1.1"
    assert (out.returncode, out.stdout) == (status, stdout), out.stderr
    assert stderr in out.stderr and b"Traceback" not in out.stderr
    if status == 2:
        assert out.stderr.startswith(b"lambdaric invoke: ") and out.stderr.count(b"\n") == 1
    elif status == 0:
        assert out.stderr == b""


def test_large_event_in_many_small_pieces(scripted, tmp_path):
    """A 16 MiB event arriving in 1 KiB HTTP chunks prints whole (joining every piece onto
    what came before made this quadratic: about 128 GB of copying)."""
    payload = bytes(range(256)) * (1 << 16)
    event = payload_chunk(payload)
    pieces = [event[i : i + 1024] for i in range(0, len(event), 1024)]
    scripted.answers.put(http_answer(pieces + [invoke_complete()]))
    out = lambdaric_invoke([STREAM_URL % scripted.port, "{}", "--stream"], str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert out.stdout == payload


def test_event_reader_yields_whole_events_however_cut_and_counts_a_cut_last_one():
    """The reading half of the streamed answer alone: events split across pieces arrive whole,
    in order; the bytes of an event the stream ended inside are left over (printing says so)."""
    from lambdaric.invoke import EventReader

    data = payload_chunk(b"a") + payload_chunk(b"bc" * 100) + invoke_complete()
    tail = payload_chunk(b"cut")[:7]
    reader = EventReader(iter([data[i : i + 3] for i in range(0, len(data), 3)] + [tail]))
    messages = list(reader)
    assert [m.header(":event-type") for m in messages] == ["PayloadChunk", "PayloadChunk", "InvokeComplete"]
    assert messages[1].payload == b"bc" * 100 and reader.leftover == 7


def test_invoke_without_requests_says_what_to_install(tmp_path):
    """An image installed with --no-deps has no requests: the runtime never needs it, and
    ``lambdaric invoke`` says so in one line instead of a traceback."""
    (tmp_path / "requests").mkdir()
    (tmp_path / "requests" / "__init__.py").write_text("raise ImportError('No module named requests')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    out = subprocess.run([sys.executable, "-m", "lambdaric", "invoke", "http://127.0.0.1:9/x", "{}"],
                         capture_output=True, env=env, timeout=30)
    assert (out.returncode, out.stdout) == (2, b"")
    assert out.stderr == b"lambdaric invoke needs requests (pip install requests): No module named requests\n"


# --------------------------------------------------------------------------- --tail, --function (issue 19)

MULTI_LINE_APP = {
    "app.py": """
        import logging

        def handler(event, context):
            logging.getLogger().warning("first line\\nsecond line\\nthird line")
            return {"name": context.function_name}
    """
}


def test_tail_prints_every_line_of_a_multi_line_record(tmp_path):
    """A multi-line log record reaches the tail with its lines joined by \\r (one CloudWatch
    event, as on Lambda; API clients get exactly that), which a terminal would overwrite down
    to the last line; ``--tail`` prints each on a line of its own, indented."""
    with RunningEmulator(MULTI_LINE_APP) as emu:
        raw = base64.b64decode(emu.client().invoke(FunctionName="function", LogType="Tail")["LogResult"])
        assert b"first line\rsecond line\rthird line\n" in raw  # X-Amz-Log-Result unchanged
        out = lambdaric_invoke([emu.url(), "--tail"], str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert b"\r" not in out.stderr
    lines = out.stderr.decode().splitlines()
    first = [i for i, line in enumerate(lines) if line.endswith("first line")]
    assert len(first) == 1 and lines[first[0]].startswith("[WARNING]\t"), lines
    assert lines[first[0] + 1 : first[0] + 3] == ["    second line", "    third line"], lines


@pytest.mark.parametrize("text, readable", [
    ("a\rb\rc\n", "a\n    b\n    c\n"),
    ("one\r\ntwo\n", "one\ntwo\n"),  # a record's own \r\n ending is a plain line end
    ("plain\n", "plain\n"),
    ("", ""),
    ("cut in the mid\r", "cut in the mid\n    "),  # the 4 KB tail may end inside a record
])
def test_readable_tail(text, readable):
    from lambdaric.invoke import readable_tail

    assert readable_tail(text) == readable


def test_function_option_names_the_function_of_a_multi_function_emulator(tmp_path):
    with RunningEmulator(MULTI_LINE_APP, handler=None, args=["--function", "one=app.handler", "--function", "two=app.handler"]) as emu:
        for name in ("one", "two"):
            out = lambdaric_invoke([emu.base, "--function", name], str(tmp_path))
            assert (out.returncode, json.loads(out.stdout)) == (0, {"name": name}), out.stderr
        out = lambdaric_invoke([emu.url("one"), "--function", "two"], str(tmp_path))  # replaces the URL's name
        assert json.loads(out.stdout) == {"name": "two"}
        out = lambdaric_invoke([emu.base, "--function", "three"], str(tmp_path))
        assert out.returncode == 2
        assert out.stderr == (b"lambdaric invoke: 404 ResourceNotFoundException: {\"Type\": \"User\", \"message\": "
                              b"\"Function not found: arn:aws:lambda:us-east-1:123456789012:function:three\"}\n")


def test_handler_mode_serves_under_the_function_name(tmp_path):
    files = MULTI_LINE_APP["app.py"]
    import textwrap

    (tmp_path / "app.py").write_text(textwrap.dedent(files).lstrip())
    out = lambdaric_invoke(["app.handler", "--function", "orders"], str(tmp_path))
    assert (out.returncode, json.loads(out.stdout)) == (0, {"name": "orders"}), out.stderr


def test_help(tmp_path):
    """``--help`` is parsed by parse_intermixed_args, which hides positional defaults meanwhile:
    a ``%(default)s`` in a positional's help raised KeyError there."""
    out = lambdaric_invoke(["--help"], str(tmp_path))
    assert out.returncode == 0 and out.stderr == b"", out.stderr
    text = b" ".join(out.stdout.split())  # as wrapped to the terminal's width
    assert b"--function FUNCTION" in text and b"invoke URL, or module.function to serve (default: http" in text
