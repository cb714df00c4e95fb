"""``lambdaric invoke --durable`` and ``lambdaric executions`` as a user runs them: real
processes against a real emulator serving a durable function (``--durable --skip-time``) with
the real AWS Durable Execution SDK inside."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any, Dict, Iterator, List

import pytest

from emulator_harness import REPO, RunningEmulator
from peers import peer_module

APP = {
    "app.py": """
        from aws_durable_execution_sdk_python.config import Duration
        from aws_durable_execution_sdk_python.context import DurableContext, StepContext, durable_step
        from aws_durable_execution_sdk_python.execution import durable_execution


        @durable_step
        def double(step: StepContext, n: int) -> int:
            return n * 2


        @durable_execution
        def handler(event, context: DurableContext):
            n = context.step(double(event.get("n", 1)), name="double")
            if event.get("fail"):
                raise ValueError("asked to fail")
            context.wait(Duration.from_hours(6), name="six-hours")
            if event.get("callback"):
                return {"n": n, "answer": context.create_callback(name="approval").result()}
            return {"n": n}
    """
}


def run_cli(args: List[str], cwd: str = REPO, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_LAMBDA_", "LAMBDARIC_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "lambdaric"] + args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


def durable_peers() -> None:
    """The SDK in the handler and AWS's durable service the emulator runs (lambdaric[durable])."""
    peer_module("aws_durable_execution_sdk_python", "pip install 'lambdaric[durable]'")
    peer_module("aws_durable_execution_sdk_python_testing", "pip install 'lambdaric[durable]'")


@pytest.fixture(scope="module")
def emulator() -> Iterator[RunningEmulator]:
    durable_peers()
    with RunningEmulator(APP, args=["--durable", "--skip-time"]) as running:
        yield running


def executions(emulator: RunningEmulator, *args: str) -> subprocess.CompletedProcess:
    return run_cli(["executions", "--endpoint-url", emulator.base] + list(args))


def wait_for(emulator: RunningEmulator, name: str, status: str, timeout: float = 30) -> Dict[str, Any]:
    """The execution ``name`` once it is in ``status`` (polled with the CLI's --json)."""
    end = time.monotonic() + timeout
    while True:
        out = executions(emulator, "show", name, "--json")
        shown: Dict[str, Any] = json.loads(out.stdout) if out.returncode == 0 else {}
        if shown.get("Status") == status or time.monotonic() > end:
            assert shown.get("Status") == status, (out.stdout, out.stderr)
            return shown
        time.sleep(0.2)


def callback_id(emulator: RunningEmulator, name: str, timeout: float = 30) -> str:
    end = time.monotonic() + timeout
    while True:
        out = executions(emulator, "history", name, "--json")
        for event in json.loads(out.stdout)["Events"] if out.returncode == 0 else []:
            if event["EventType"] == "CallbackStarted":
                return str(event["CallbackStartedDetails"]["CallbackId"])
        assert time.monotonic() < end, (out.stdout, out.stderr)
        time.sleep(0.2)


def test_invoke_durable_prints_the_arn_and_the_result(emulator: RunningEmulator) -> None:
    out = run_cli(["invoke", emulator.base, "--durable", "cli-sync", '{"n": 21}'])
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"n": 42}
    arn = re.search(r"^durable execution: (arn:aws:lambda:\S+)$", out.stderr, re.M)
    assert arn and "cli-sync" in arn.group(1), out.stderr
    shown = json.loads(executions(emulator, "show", arn.group(1), "--json").stdout)
    assert shown["Status"] == "SUCCEEDED" and json.loads(shown["Result"]) == {"n": 42}


def test_invoke_durable_event_returns_at_once_with_the_arn_on_stdout(emulator: RunningEmulator) -> None:
    started = time.monotonic()
    out = run_cli(["invoke", emulator.base, "--durable", "cli-async", "--type", "Event", '{"n": 1, "callback": true}'])
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - started < 15
    assert re.fullmatch(r"arn:aws:lambda:\S+cli-async\S*\n", out.stdout), out.stdout
    wait_for(emulator, "cli-async", "RUNNING")  # waiting for its callback
    executions(emulator, "stop", "cli-async")


def test_a_reused_name_is_the_same_execution_or_lambdas_error(emulator: RunningEmulator) -> None:
    """Lambda's rule (botocore's documentation of DurableExecutionName): the same name with the
    same payload returns the existing execution; with another payload it is
    DurableExecutionAlreadyStartedException."""
    first = run_cli(["invoke", emulator.base, "--durable", "cli-twice", '{"n": 1}'])
    assert first.returncode == 0, first.stderr
    same = run_cli(["invoke", emulator.base, "--durable", "cli-twice", '{"n": 1}'])
    assert same.returncode == 0, same.stderr
    arn = re.compile(r"^durable execution: (\S+)$", re.M)
    assert arn.search(first.stderr).group(1) == arn.search(same.stderr).group(1)  # type: ignore[union-attr]
    other = run_cli(["invoke", emulator.base, "--durable", "cli-twice", '{"n": 2}'])
    assert other.returncode == 2
    assert "DurableExecutionAlreadyStartedException" in other.stderr, other.stderr


def test_list_show_and_history_read_as_text(emulator: RunningEmulator) -> None:
    assert run_cli(["invoke", emulator.base, "--durable", "cli-view", '{"n": 5}']).returncode == 0
    listed = executions(emulator, "list")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["NAME", "STATUS", "STARTED", "ENDED", "DURATION"]
    row = next(r for r in rows if r.startswith("cli-view "))
    assert " SUCCEEDED " in row
    shown = executions(emulator, "show", "cli-view")
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^status +SUCCEEDED$", shown.stdout, re.M)
    assert re.search(r'^input +\{"n": ?5\}$', shown.stdout, re.M), shown.stdout
    assert re.search(r'^result +\{"n": ?10\}$', shown.stdout, re.M), shown.stdout
    history = executions(emulator, "history", "cli-view")
    assert history.returncode == 0, history.stderr
    lines = history.stdout.splitlines()
    kinds = [line.split()[1] for line in lines]
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionSucceeded", history.stdout
    assert kinds.index("StepStarted") < kinds.index("StepSucceeded") < kinds.index("WaitStarted") < kinds.index("WaitSucceeded")
    step = next(line for line in lines if " StepSucceeded " in line)
    assert " double " in step and "result 10" in step, history.stdout
    wait = next(line for line in lines if " WaitStarted " in line)
    assert " six-hours " in wait and "wait 6h00m" in wait, history.stdout  # the modelled time, though skipped
    assert all(re.match(r"\+\S+ ", line) for line in lines)


def test_a_failed_execution_reads_with_its_error_and_lists_by_status(emulator: RunningEmulator) -> None:
    out = run_cli(["invoke", emulator.base, "--durable", "cli-fails", '{"fail": true}'])
    assert out.returncode in (0, 1), out.stderr
    history = executions(emulator, "history", "cli-fails").stdout
    last = history.splitlines()[-1]
    assert " ExecutionFailed " in last and "ValueError: asked to fail" in last, history
    shown = executions(emulator, "show", "cli-fails").stdout
    assert re.search(r"^status +FAILED$", shown, re.M) and re.search(r"^error +ValueError: asked to fail$", shown, re.M), shown
    failed = executions(emulator, "list", "--status", "FAILED").stdout
    assert "cli-fails " in failed and " SUCCEEDED " not in failed, failed


def test_a_callback_result_from_a_file(emulator: RunningEmulator, tmp_path: Any) -> None:
    assert run_cli(["invoke", emulator.base, "--durable", "cli-file", "--type", "Event", '{"callback": true}']).returncode == 0
    (tmp_path / "answer.json").write_text('{"ok": true}')
    sent = executions(emulator, "callback", "success", callback_id(emulator, "cli-file"), "--result", "@%s" % (tmp_path / "answer.json"))
    assert sent.returncode == 0, sent.stderr
    assert json.loads(wait_for(emulator, "cli-file", "SUCCEEDED")["Result"]) == {"n": 2, "answer": '{"ok": true}'}
    missing = executions(emulator, "callback", "success", "x", "--result", "@%s" % (tmp_path / "none.json"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "none.json" in missing.stderr


def test_json_is_the_api_answer(emulator: RunningEmulator) -> None:
    assert run_cli(["invoke", emulator.base, "--durable", "cli-json", "{}"]).returncode == 0
    listed = json.loads(executions(emulator, "list", "function", "--json").stdout)
    assert any(e["DurableExecutionName"] == "cli-json" and e["Status"] == "SUCCEEDED" for e in listed["DurableExecutions"])
    history = json.loads(executions(emulator, "--json", "history", "cli-json").stdout)
    assert [e["EventId"] for e in history["Events"]] == list(range(1, len(history["Events"]) + 1))


@pytest.mark.parametrize("outcome", ["success", "failure"])
def test_callbacks_complete_a_waiting_execution(emulator: RunningEmulator, outcome: str) -> None:
    name = "cli-callback-" + outcome
    assert run_cli(["invoke", emulator.base, "--durable", name, "--type", "Event", '{"n": 2, "callback": true}']).returncode == 0
    cid = callback_id(emulator, name)
    beat = executions(emulator, "callback", "heartbeat", cid)
    assert beat.returncode == 0 and "heartbeat sent" in beat.stdout, beat.stderr
    if outcome == "success":
        sent = executions(emulator, "callback", "success", cid, "--result", "approved")
        assert sent.returncode == 0, sent.stderr
        shown = wait_for(emulator, name, "SUCCEEDED")
        # (the SDK hands a callback's result over as sent, a string, without a serdes of the callback's)
        assert json.loads(shown["Result"]) == {"n": 4, "answer": "approved"}
    else:
        sent = executions(emulator, "callback", "failure", cid, "--error-type", "Rejected", "--error-message", "no")
        assert sent.returncode == 0, sent.stderr
        wait_for(emulator, name, "FAILED")
        shown_text = executions(emulator, "show", name).stdout
        assert re.search(r"^error +\S", shown_text, re.M), shown_text
    again = executions(emulator, "callback", "success", cid)
    assert again.returncode == 1 and len(again.stderr.splitlines()) == 1, again.stderr


def test_stop_a_running_execution(emulator: RunningEmulator) -> None:
    assert run_cli(["invoke", emulator.base, "--durable", "cli-stop", "--type", "Event", '{"callback": true}']).returncode == 0
    callback_id(emulator, "cli-stop")
    stopped = executions(emulator, "stop", "cli-stop", "--error-message", "enough")
    assert stopped.returncode == 0 and stopped.stdout.startswith("stopped arn:aws:lambda:"), stopped.stderr
    wait_for(emulator, "cli-stop", "STOPPED")


def test_api_errors_are_one_line_and_exit_1(emulator: RunningEmulator) -> None:
    unknown = executions(emulator, "show", "no-such-execution")
    assert unknown.returncode == 1 and unknown.stderr.count("\n") == 1, unknown.stderr
    assert "no durable execution named 'no-such-execution'" in unknown.stderr
    bad_arn = executions(emulator, "history", "arn:aws:lambda:us-east-1:123456789012:function:function:$LATEST/durable-execution/x/y")
    assert bad_arn.returncode == 1 and bad_arn.stderr.count("\n") == 1, bad_arn.stderr
    assert re.match(r"lambdaric executions: \w+Exception \(4\d\d\): ", bad_arn.stderr), bad_arn.stderr
    bad_callback = executions(emulator, "callback", "success", "bm90LWEtY2FsbGJhY2s=", "--result", "1")
    assert bad_callback.returncode == 1 and bad_callback.stderr.count("\n") == 1, bad_callback.stderr
    assert re.match(r"lambdaric executions: \w+Exception \(4\d\d\): ", bad_callback.stderr), bad_callback.stderr


def test_an_unreachable_endpoint_is_one_line_and_exit_2() -> None:
    out = run_cli(["executions", "--endpoint-url", "http://127.0.0.1:9", "list"])
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "Could not connect to the endpoint URL" in out.stderr


def test_invoke_durable_serves_a_handler_itself(tmp_path: Any) -> None:
    durable_peers()
    (tmp_path / "app.py").write_text(
        "from aws_durable_execution_sdk_python.execution import durable_execution\n"
        "@durable_execution\n"
        "def handler(event, context):\n"
        "    return {'n': context.step(lambda step: event['n'] * 2, name='double')}\n")
    out = run_cli(["invoke", "app.handler", "--durable", "one-off", '{"n": 3}'], cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"n": 6}
    assert "durable execution: arn:aws:lambda:" in out.stderr


def test_usage_mistakes_say_so() -> None:
    out = run_cli(["invoke", "app.handler", "--durable", "x", "--type", "Event"])
    assert out.returncode == 2 and "needs a running emulator's URL" in out.stderr
    out = run_cli(["invoke", "--durable", "x", "--stream"])
    assert out.returncode == 2 and "--stream" in out.stderr
    out = run_cli(["executions", "callback", "maybe", "id"])
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_the_timeline_of_a_retried_step_and_a_long_wait() -> None:
    """history_text alone, on events as boto3 gives them: relative times, each attempt's own time,
    retries, the modelled wait, errors."""
    import datetime

    from lambdaric.executions import history_text, seconds

    t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)

    def at(s: float) -> datetime.datetime:
        return t0 + datetime.timedelta(seconds=s)

    error = {"Payload": {"ErrorType": "RuntimeError", "ErrorMessage": "attempt 1 failed"}}
    events = [
        {"EventType": "ExecutionStarted", "EventId": 1, "Id": "x", "Name": "e", "EventTimestamp": at(0),
         "ExecutionStartedDetails": {"Input": {"Payload": '{"a": 1}'}, "ExecutionTimeout": 86400}},
        {"EventType": "StepStarted", "SubType": "Step", "EventId": 2, "Id": "s", "Name": "flaky", "EventTimestamp": at(0.1)},
        {"EventType": "StepFailed", "SubType": "Step", "EventId": 3, "Id": "s", "Name": "flaky", "EventTimestamp": at(0.35),
         "StepFailedDetails": {"Error": error, "RetryDetails": {"CurrentAttempt": 1, "NextAttemptDelaySeconds": 30}}},
        {"EventType": "StepStarted", "SubType": "Step", "EventId": 4, "Id": "s", "Name": "flaky", "EventTimestamp": at(30.4)},
        {"EventType": "StepSucceeded", "SubType": "Step", "EventId": 5, "Id": "s", "Name": "flaky", "EventTimestamp": at(30.45),
         "StepSucceededDetails": {"Result": {"Payload": '"ok"'}, "RetryDetails": {"CurrentAttempt": 2}}},
        {"EventType": "WaitStarted", "SubType": "Wait", "EventId": 6, "Id": "w", "EventTimestamp": at(31),
         "WaitStartedDetails": {"Duration": 21600, "ScheduledEndTimestamp": at(21631)}},
        {"EventType": "InvocationCompleted", "EventId": 7, "EventTimestamp": at(31.1),
         "InvocationCompletedDetails": {"StartTimestamp": at(30.3), "EndTimestamp": at(31.1), "RequestId": "r-2"}},
        {"EventType": "WaitSucceeded", "SubType": "Wait", "EventId": 8, "Id": "w", "EventTimestamp": at(21631),
         "WaitSucceededDetails": {"Duration": 21600}},
    ]
    lines = history_text(events).splitlines()
    assert lines[0].split()[:3] == ["+0ms", "ExecutionStarted", "e"] and 'input {"a": 1}' in lines[0] and "timeout 24h00m" in lines[0]
    assert lines[2].split()[:4] == ["+350ms", "StepFailed", "Step", "flaky"]
    assert "after 250ms  attempt 1  retry in 30s  RuntimeError: attempt 1 failed" in lines[2]
    assert "after 50ms  attempt 2  result \"ok\"" in lines[4]
    assert "#w " in lines[5] and "wait 6h00m  until 2026-01-01 06:00:31.000Z" in lines[5]
    assert "invocation 800ms  request r-2" in lines[6]
    assert lines[7].startswith("+6h00m ") and "after 6h00m" in lines[7]
    assert [seconds(v) for v in (0.0004, 2.5, 61, 3600 * 50)] == ["0ms", "2.5s", "1m01s", "2d02h"]
