"""The AWS CLI as a real Invoke API client of the built-in emulator: ``aws lambda invoke
--endpoint-url <emulator>`` for a success, a function error, ``--log-type Tail``, and the
``Event`` and ``DryRun`` invocation types.

The CLI is ``aws`` on PATH, else ``python -m awscli`` when the ``awscli`` package is importable
(``.ci/run`` installs it when it can); the tests skip, saying why, when there is neither or it
does not run. The CLI gets a hermetic environment: fake credentials and region, config and
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
import shutil
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


def _find_cli(env: dict) -> Tuple[Optional[Cli], str]:
    candidates: List[List[str]] = []
    aws = shutil.which("aws")
    if aws:
        candidates.append([aws])
    if importlib.util.find_spec("awscli") is not None:
        candidates.append([sys.executable, "-m", "awscli"])
    if not candidates:
        return None, "no AWS CLI: `aws` is not on PATH and the awscli package is not importable (pip install awscli)"
    failures = []
    for argv in candidates:
        try:
            proc = subprocess.run(argv + ["--version"], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=CLI_TIMEOUT, text=True, errors="replace")
        except (OSError, subprocess.TimeoutExpired) as exc:
            failures.append("%s: %s" % (" ".join(argv), exc))
            continue
        out = (proc.stdout + proc.stderr).strip()
        match = re.search(r"aws-cli/(\d+)\S*", out)
        if proc.returncode == 0 and match:
            fmt = ["--cli-binary-format", "raw-in-base64-out"] if int(match.group(1)) >= 2 else []
            return Cli(argv, match.group(0), fmt), ""
        failures.append("%s --version: exit %s, %r" % (" ".join(argv), proc.returncode, out[-300:]))
    return None, "no working AWS CLI: " + "; ".join(failures)


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("awscli-home"))
    env = _cli_env(tmp)
    found, reason = _find_cli(env)
    if found is None:
        missing_peer(reason)
    return found, env


@pytest.fixture(scope="module")
def emu(cli):  # after cli: no emulator is started when the tests skip
    with RunningEmulator(APP) as running:
        yield running


def aws_invoke(cli, emu, tmp_path, payload: str, *options: str) -> Tuple[dict, bytes]:
    """``aws lambda invoke`` against the emulator; (the CLI's stdout JSON, the output file's bytes)."""
    tool, env = cli
    outfile = tmp_path / "out.json"
    if outfile.exists():
        outfile.unlink()
    argv = tool.argv + [
        "lambda", "invoke",
        "--endpoint-url", emu.base,
        "--function-name", "function",
        "--payload", payload,
        "--output", "json",
        "--cli-connect-timeout", "5",
        "--cli-read-timeout", "30",
    ] + tool.binary_format + list(options) + [str(outfile)]
    proc = subprocess.run(argv, env=env, cwd=str(tmp_path), stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=CLI_TIMEOUT)
    assert proc.returncode == 0, "%s failed (exit %d): %r %r" % (tool.version, proc.returncode, proc.stdout, proc.stderr)
    return json.loads(proc.stdout), outfile.read_bytes()


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


def test_unmarshal_error(cli, emu, tmp_path):
    answer, body = aws_invoke(cli, emu, tmp_path, "not json")
    assert answer == {"StatusCode": 200, "FunctionError": "Unhandled", "ExecutedVersion": "$LATEST"}
    assert json.loads(body)["errorType"] == "Runtime.UnmarshalError"


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
