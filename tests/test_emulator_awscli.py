"""The AWS CLI as a real Invoke API client of the built-in emulator: ``aws lambda invoke
--endpoint-url <emulator>`` for a success, a function error, ``--log-type Tail``, the
``Event`` and ``DryRun`` invocation types, an invoke without a payload, and several functions.

Each test runs with both major versions, each called explicitly: v1 is ``python -m awscli``
(the ``awscli`` package, installed from PyPI by ``.ci/run``), v2 is ``/usr/bin/aws`` (Debian's
``awscli`` package, 2.x; ``aws`` on PATH may be either, so it is not used). A missing one skips
its tests, saying why, and fails them under ``CI=true`` (``peers.missing_peer``). The CLI gets a hermetic environment: fake credentials and region, config and
credential files that do not exist, no pager, no instance-metadata look-ups, no proxy for
loopback, one attempt per request. Everything goes to the emulator on 127.0.0.1.

AWS CLI v1 sends ``--payload`` as given (raw bytes); v2 expects base64 unless told
``--cli-binary-format raw-in-base64-out``, an option v1 rejects ("Unknown options"), so the option
is passed to v2 only.
"""
import base64
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from typing import List, NamedTuple, Optional, Tuple

import pytest

from peers import missing_peer

from emulator_harness import RunningEmulator

CLI_TIMEOUT = 60.0  # seconds, per CLI run (a run takes well under a second here)
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

APP = {
    "app.py": """
        def handler(event, context):
            kind = event.get("kind") if isinstance(event, dict) else None
            if kind == "boom":
                raise ValueError("bad thing")
            if kind == "marker":
                with open(event["path"], "w") as f:
                    f.write(context.aws_request_id)
                return None
            print("log line from", context.aws_request_id)
            if kind == "rid":
                return {"rid": context.aws_request_id}
            return event
    """
}


class Cli(NamedTuple):
    argv: List[str]
    version: str
    binary_format: List[str]  # extra options so that --payload is taken as raw bytes


def _cli_env(tmp: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="x",
        AWS_CONFIG_FILE=os.path.join(tmp, "no-such-config"),
        AWS_SHARED_CREDENTIALS_FILE=os.path.join(tmp, "no-such-credentials"),
        AWS_PAGER="",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_MAX_ATTEMPTS="1",
        AWS_RETRY_MODE="standard",
    )
    for key in ("NO_PROXY", "no_proxy"):
        env[key] = ",".join(p for p in (env.get(key), "127.0.0.1", "localhost") if p)
    return env


#: How each major version is run, explicitly.
CLIS = {"v1": [sys.executable, "-m", "awscli"], "v2": ["/usr/bin/aws"]}
INSTALL = {"v1": "pip install awscli", "v2": "apt-get install awscli (Debian 12: 2.9)"}


def _find_cli(kind: str, env: dict) -> Tuple[Optional[Cli], str]:
    argv = CLIS[kind]
    if kind == "v1" and importlib.util.find_spec("awscli") is None:
        return None, "AWS CLI v1 is not importable here (%s)" % INSTALL[kind]
    if kind == "v2" and not os.access(argv[0], os.X_OK):
        return None, "AWS CLI v2 is not installed as %s (%s)" % (argv[0], INSTALL[kind])
    try:
        proc = subprocess.run(argv + ["--version"], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=CLI_TIMEOUT, text=True, errors="replace")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, "%s: %s" % (" ".join(argv), exc)
    out = (proc.stdout + proc.stderr).strip()
    match = re.search(r"aws-cli/(\d+)\S*", out)
    if proc.returncode != 0 or not match:
        return None, "%s --version: exit %s, %r" % (" ".join(argv), proc.returncode, out[-300:])
    if "v%s" % match.group(1) != kind:
        return None, "%s is %s, not %s" % (" ".join(argv), match.group(0), kind)
    fmt = ["--cli-binary-format", "raw-in-base64-out"] if kind == "v2" else []
    return Cli(argv, match.group(0), fmt), ""


@pytest.fixture(scope="module", params=sorted(CLIS))
def cli(request, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("awscli-home"))
    env = _cli_env(tmp)
    found, reason = _find_cli(request.param, env)
    if found is None:
        missing_peer(reason)
    return found, env


@pytest.fixture(scope="module")
def emu(cli):  # after cli: no emulator is started when the tests skip
    with RunningEmulator(APP) as running:
        yield running


def run_aws(cli, emu, tmp_path, payload: Optional[str], *options: str, function: str = "function") -> subprocess.CompletedProcess:
    """``aws lambda invoke`` against the emulator (``payload`` None: no ``--payload``), writing to out.json."""
    tool, env = cli
    outfile = tmp_path / "out.json"
    if outfile.exists():
        outfile.unlink()
    argv = tool.argv + [
        "lambda", "invoke",
        "--endpoint-url", emu.base,
        "--function-name", function,
    ] + (["--payload", payload] if payload is not None else []) + [
        "--output", "json",
        "--cli-connect-timeout", "5",
        "--cli-read-timeout", "30",
    ] + tool.binary_format + list(options) + [str(outfile)]
    return subprocess.run(argv, env=env, cwd=str(tmp_path), stdin=subprocess.DEVNULL, capture_output=True, timeout=CLI_TIMEOUT)


def aws_invoke(cli, emu, tmp_path, payload: Optional[str], *options: str, function: str = "function") -> Tuple[dict, bytes]:
    """``aws lambda invoke`` against the emulator; (the CLI's stdout JSON, the output file's bytes)."""
    proc = run_aws(cli, emu, tmp_path, payload, *options, function=function)
    assert proc.returncode == 0, "%s failed (exit %d): %r %r" % (cli[0].version, proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout), (tmp_path / "out.json").read_bytes()


def test_success(cli, emu, tmp_path):
    event = {"a": 1, "nested": {"b": [1, 2.5, None, True]}, "s": "caf\u00e9"}
    answer, body = aws_invoke(cli, emu, tmp_path, json.dumps(event))
    assert answer == {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
    assert json.loads(body) == event


def test_success_payload_from_file(cli, emu, tmp_path):
    # fileb:// is read as raw bytes by v1 and v2 alike; over 2 KiB on purpose; a qualifier too.
    event = {"blob": "x" * 10000, "n": list(range(100))}
    (tmp_path / "event.json").write_text(json.dumps(event), encoding="utf-8")
    answer, body = aws_invoke(cli, emu, tmp_path, "fileb://event.json", "--qualifier", "7")
    assert answer == {"StatusCode": 200, "ExecutedVersion": "7"}
    assert json.loads(body) == event


def test_function_error(cli, emu, tmp_path):
    answer, body = aws_invoke(cli, emu, tmp_path, json.dumps({"kind": "boom"}))
    assert answer == {"StatusCode": 200, "FunctionError": "Unhandled", "ExecutedVersion": "$LATEST"}
    error = json.loads(body)
    assert list(error) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert (error["errorType"], error["errorMessage"]) == ("ValueError", "bad thing")
    assert re.fullmatch(UUID, error["requestId"])
    assert any("app.py" in frame and "raise ValueError" in frame for frame in error["stackTrace"])


def test_payload_that_is_not_json_is_refused(cli, emu, tmp_path):
    """As Lambda does: 400 InvalidRequestContentException before the function runs (the CLI's
    error line, its exit status), not a Runtime.UnmarshalError from the runtime."""
    tool, _ = cli
    proc = run_aws(cli, emu, tmp_path, "not json")
    assert proc.returncode == (255 if tool.version.startswith("aws-cli/1.") else 254), proc
    assert proc.stderr.strip() == (
        b"An error occurred (InvalidRequestContentException) when calling the Invoke operation (reached max retries: 0): "
        b"Could not parse request body into json: Could not parse payload into json: "
        b"Expecting value: line 1 column 1 (char 0)"), proc.stderr
    assert not (tmp_path / "out.json").exists()


def test_log_tail(cli, emu, tmp_path):
    answer, body = aws_invoke(cli, emu, tmp_path, json.dumps({"kind": "rid"}), "--log-type", "Tail")
    assert answer["StatusCode"] == 200 and "FunctionError" not in answer
    rid = json.loads(body)["rid"]
    log = base64.b64decode(answer["LogResult"]).decode()
    lines = log.splitlines()
    assert lines[0] == "START RequestId: %s Version: $LATEST" % rid, log
    assert "log line from %s" % rid in lines, log
    assert "END RequestId: %s" % rid in lines, log
    report = [ln for ln in lines if ln.startswith("REPORT RequestId: %s\t" % rid)]
    assert len(report) == 1, log
    assert re.search(r"\tDuration: [\d.]+ ms\tBilled Duration: \d+ ms\tMemory Size: \d+ MB\tMax Memory Used: \d+ MB",
                     report[0]), report[0]


def test_event_invocation(cli, emu, tmp_path):
    marker = tmp_path / "event-marker.txt"
    answer, body = aws_invoke(cli, emu, tmp_path, json.dumps({"kind": "marker", "path": str(marker)}),
                              "--invocation-type", "Event")
    assert answer == {"StatusCode": 202}
    assert body == b""
    deadline = time.monotonic() + 10
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.exists(), "the Event invocation did not run the handler within 10 s"
    deadline = time.monotonic() + 5
    while not re.fullmatch(UUID, marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)  # written but perhaps not yet flushed
    assert re.fullmatch(UUID, marker.read_text())


def test_dry_run(cli, emu, tmp_path):
    marker = tmp_path / "dry-run-marker.txt"
    answer, body = aws_invoke(cli, emu, tmp_path, json.dumps({"kind": "marker", "path": str(marker)}),
                              "--invocation-type", "DryRun")
    assert answer == {"StatusCode": 204}
    assert body == b""
    # A DryRun only validates: the handler must not have run. A synchronous invoke after it has
    # gone through the same emulator, so a stray run would have started by then.
    answer, _ = aws_invoke(cli, emu, tmp_path, json.dumps({"kind": "rid"}))
    assert answer["StatusCode"] == 200
    assert not marker.exists()


def test_the_readme_example(cli, emu, tmp_path):
    """README's line, as written, on v2; v1 rejects --cli-binary-format (which is why v1's
    tests leave it out), so the README's line is for v2, the CLI AWS installs today."""
    tool, env = cli
    argv = tool.argv + ["lambda", "invoke", "--cli-binary-format", "raw-in-base64-out", "--endpoint-url", emu.base,
                        "--function-name", "function", "--payload", '{"name": "x"}', "out.json"]
    proc = subprocess.run(argv, env=env, cwd=str(tmp_path), stdin=subprocess.DEVNULL, capture_output=True, timeout=CLI_TIMEOUT)
    if tool.version.startswith("aws-cli/1."):
        assert proc.returncode == 255 and b"Unknown options: --cli-binary-format" in proc.stderr, proc
        return
    assert proc.returncode == 0, proc
    assert json.loads(proc.stdout) == {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
    assert json.loads((tmp_path / "out.json").read_bytes()) == {"name": "x"}


def test_no_payload_is_the_event_empty_object(cli, emu, tmp_path):
    """Without --payload the CLI sends no body; Lambda hands the function {} (docs/emulator.md)."""
    answer, body = aws_invoke(cli, emu, tmp_path, None)
    assert answer == {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
    assert body == b"{}"


SEVERAL = {
    "app.py": """
        def handler(event, context):
            return {"name": context.function_name, "arn": context.invoked_function_arn}
    """
}


def test_several_functions(cli, tmp_path):
    tool, _ = cli
    with RunningEmulator(SEVERAL, handler=None, args=["--function", "orders=app.handler", "--function", "thumbs=app.handler"]) as emu:
        for name, arn in (("orders", "orders"), ("thumbs", "thumbs"), ("arn:aws:lambda:us-east-1:123456789012:function:thumbs:7", "thumbs:7")):
            answer, body = aws_invoke(cli, emu, tmp_path, "{}", function=name)
            assert json.loads(body) == {"name": arn.split(":")[0], "arn": "arn:aws:lambda:us-east-1:123456789012:function:" + arn}
        proc = run_aws(cli, emu, tmp_path, "{}", function="nosuch")
    # v2 exits 254 on a service error, v1 255
    assert proc.returncode == (255 if tool.version.startswith("aws-cli/1.") else 254), proc
    assert proc.stderr.strip() == (
        b"An error occurred (ResourceNotFoundException) when calling the Invoke operation (reached max retries: 0): "
        b"Function not found: arn:aws:lambda:us-east-1:123456789012:function:nosuch"), proc.stderr
