"""Durable functions through the emulator's wire, with the real SDK inside the handlers.

Each handler below runs in a real runtime (``python -m lambdaric``) behind the emulator, with
``aws-durable-execution-sdk-python`` checkpointing to the emulator's port and AWS's durable
execution service (``aws-durable-execution-sdk-python-testing``) run by the emulator as its
child. Both are peers: missing, the tests skip locally and fail under ``CI=true``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from emulator_harness import RunningEmulator, children_of  # noqa: E402
from peers import missing_peer, peer_module  # noqa: E402

peer_module("aws_durable_execution_sdk_python", "pip install 'lambdaric[durable]'")
peer_module("aws_durable_execution_sdk_python_testing", "pip install 'lambdaric[durable]'")

APP = '''
import os, time, json
from aws_durable_execution_sdk_python import durable_execution, DurableContext, CallbackError
from aws_durable_execution_sdk_python.config import CallbackConfig, Duration, StepConfig
from aws_durable_execution_sdk_python.retries import JitterStrategy, RetryStrategyConfig, create_retry_strategy


def mark(name):
    """Count a real run (not a replay) of a step in a file of the working directory."""
    with open(name, "a") as f:
        f.write("x")


@durable_execution
def steps(event, context: DurableContext):
    def flaky(step_ctx):
        mark("flaky")
        if step_ctx.attempt < 3:
            raise RuntimeError("attempt %d fails" % step_ctx.attempt)
        return step_ctx.attempt
    retry = create_retry_strategy(RetryStrategyConfig(
        max_attempts=3, initial_delay=Duration.from_seconds(2), jitter_strategy=JitterStrategy.NONE))
    first = context.step(lambda _: event["n"] + 1, name="first")
    attempts = context.step(flaky, name="flaky", config=StepConfig(retry_strategy=retry))
    return {"first": first, "attempts": attempts}


@durable_execution
def waits(event, context: DurableContext):
    a = context.step(lambda _: 1, name="before")
    context.wait(Duration.from_seconds(event.get("seconds", 2)), name="pause")
    b = context.step(lambda _: 2, name="after")
    return a + b


@durable_execution
def callback(event, context: DurableContext):
    cb = context.create_callback(name="approval", config=CallbackConfig(timeout=Duration.from_seconds(event.get("timeout", 120))))
    try:
        return {"approved": cb.result()}
    except CallbackError as exc:
        return {"callback_error": type(exc).__name__, "message": str(exc)}


@durable_execution
def fanout(event, context: DurableContext):
    doubled = context.map([1, 2, 3], lambda ctx, item, i, items: ctx.step(lambda _: item * 2, name="double"), name="map")
    both = context.parallel([lambda ctx: ctx.step(lambda _: "left", name="l"),
                             lambda ctx: ctx.step(lambda _: "right", name="r")], name="par")
    return {"map": doubled.get_results(), "parallel": both.get_results()}


@durable_execution
def child(event, context: DurableContext):
    def inner(ctx):
        x = ctx.step(lambda _: 20, name="inner-step")
        ctx.wait(Duration.from_seconds(1), name="inner-wait")
        return x + 1
    return {"child": context.run_in_child_context(inner, name="sub")}


@durable_execution
def chain(event, context: DurableContext):
    plain = context.invoke("plain", {"x": 4}, name="call-plain")
    durable = context.invoke("waits", {"seconds": 1}, name="call-waits")
    return {"plain": plain, "durable": durable}


def plain(event, context):
    return {"x2": event["x"] * 2, "arn": context.invoked_function_arn}


@durable_execution
def fails(event, context: DurableContext):
    context.step(lambda _: "ok", name="fine")
    raise ValueError("the order is invalid")


@durable_execution
def crash(event, context: DurableContext):
    context.step(lambda _: mark("before"), name="before")
    def slow(_):
        mark("slow")
        with open("slow.pid", "w") as f:
            f.write(str(os.getpid()))
        if len(open("slow").read()) == 1:
            time.sleep(60)  # the test kills the runtime here, the first time only
        return "finished"
    return context.step(slow, name="slow")


@durable_execution
def poll(event, context: DurableContext):
    from aws_durable_execution_sdk_python.waits import WaitForConditionConfig, WaitForConditionDecision

    def strategy(state, attempt):
        return WaitForConditionDecision.stop_polling() if state >= 3 else WaitForConditionDecision.continue_waiting(Duration.from_seconds(60))
    return context.wait_for_condition(lambda state, ctx: state + 1, WaitForConditionConfig(wait_strategy=strategy, initial_state=0))


@durable_execution
def env(event, context: DurableContext):
    return context.step(lambda _: {k: os.environ.get(k) for k in
                                   ("AWS_ENDPOINT_URL_LAMBDA", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")},
                        name="env")
'''

DURABLE = ("steps", "waits", "callback", "fanout", "child", "chain", "fails", "crash", "env", "poll")
FUNCTIONS = json.dumps({"functions": dict(
    [(name, {"handler": "app." + name, "durable": True, "timeout": 120}) for name in DURABLE]
    + [("plain", {"handler": "app.plain"})]
)})


def start(skip_time: bool, env: dict = None) -> RunningEmulator:  # type: ignore[assignment]
    args = ["--functions", "functions.json"] + (["--skip-time"] if skip_time else [])
    return RunningEmulator({"app.py": APP, "functions.json": FUNCTIONS}, handler=None, args=args, env=env)


@pytest.fixture(scope="module")
def emu():
    with start(skip_time=True, env={"AWS_SESSION_TOKEN": "real-looking-token", "AWS_ACCESS_KEY_ID": "AKIAREALKEY"}) as e:
        yield e


def invoke(emu: RunningEmulator, name: str, event: dict, **kw):  # type: ignore[no-untyped-def]
    r = emu.client().invoke(FunctionName=name, Payload=json.dumps(event).encode(), **kw)
    body = r["Payload"].read()
    return r, json.loads(body) if body else None


def events(emu: RunningEmulator, arn: str) -> list:
    return emu.client().get_durable_execution_history(DurableExecutionArn=arn, IncludeExecutionData=True)["Events"]


def wait_status(emu: RunningEmulator, arn: str, want: str, timeout: float = 30.0) -> dict:
    end = time.monotonic() + timeout
    while True:
        got = emu.client().get_durable_execution(DurableExecutionArn=arn)
        if got["Status"] == want or time.monotonic() > end:
            assert got["Status"] == want, got
            return got
        time.sleep(0.05)


def test_steps_retry_with_next_attempt_delay(emu):
    started = time.monotonic()
    r, result = invoke(emu, "steps", {"n": 41}, DurableExecutionName="retry-1")
    assert r["StatusCode"] == 200 and "FunctionError" not in r, result
    assert result == {"first": 42, "attempts": 3}
    assert time.monotonic() - started < 4.0  # two 2 s retry delays, skipped
    arn = r["DurableExecutionArn"]
    assert arn.startswith("arn:aws:lambda:us-east-1:123456789012:function:steps:$LATEST/durable-execution/retry-1/")
    history = events(emu, arn)
    retries = [e for e in history if e["EventType"] == "StepFailed" or "RetryDetails" in json.dumps(e, default=str)]
    delays = [e[k]["RetryDetails"]["NextAttemptDelaySeconds"] for e in history for k in e
              if isinstance(e[k], dict) and "RetryDetails" in e[k] and "NextAttemptDelaySeconds" in e[k]["RetryDetails"]]
    assert delays[:2] == [2, 4], retries  # the modelled delays, backoff 2.0
    assert open(os.path.join(emu.cwd, "flaky")).read() == "xxx"  # three real attempts, no more
    assert history[-1]["EventType"] == "ExecutionSucceeded"
    # details the service leaves out, filled in from what the emulator saw (docs/durable.md)
    succeeded = [e for e in history if e["EventType"] == "StepSucceeded" and e["Name"] == "flaky"][0]
    assert succeeded["StepSucceededDetails"]["RetryDetails"]["CurrentAttempt"] == 3
    completed = [e["InvocationCompletedDetails"] for e in history if e["EventType"] == "InvocationCompleted"]
    assert len(completed) == 3 and all(c["StartTimestamp"] <= c["EndTimestamp"] and len(c["RequestId"]) == 36 for c in completed)


def test_wait_skipped_keeps_the_modelled_time(emu):
    started = time.monotonic()
    r, result = invoke(emu, "waits", {"seconds": 6 * 3600}, DurableExecutionName="six-hours")
    took = time.monotonic() - started
    assert result == 3 and took < 10.0, took
    history = events(emu, r["DurableExecutionArn"])
    wait = [e for e in history if e["EventType"] == "WaitStarted"][0]
    # the invocations' details are on the service's modelled clock too (the last ends 6 h after the wait began)
    completed = [e for e in history if e["EventType"] == "InvocationCompleted"]
    assert [e["InvocationCompletedDetails"]["EndTimestamp"] for e in completed] == [e["EventTimestamp"] for e in completed]
    assert (completed[-1]["EventTimestamp"] - wait["EventTimestamp"]).total_seconds() >= 6 * 3600
    # Lambda's order: the invocation suspends on the wait, then the wait ends
    assert [e["EventType"] for e in history] == [
        "ExecutionStarted", "StepStarted", "StepSucceeded", "WaitStarted", "InvocationCompleted", "WaitSucceeded",
        "StepStarted", "StepSucceeded", "InvocationCompleted", "ExecutionSucceeded"]
    assert [e["EventId"] for e in history] == list(range(1, len(history) + 1))
    stamps = [e["EventTimestamp"] for e in history]
    assert stamps == sorted(stamps)
    assert wait["WaitStartedDetails"]["Duration"] == 6 * 3600
    assert (wait["WaitStartedDetails"]["ScheduledEndTimestamp"] - wait["EventTimestamp"]).total_seconds() == pytest.approx(6 * 3600, abs=1)


def test_wait_real_time():
    with start(skip_time=False) as emu:
        started = time.monotonic()
        r, result = invoke(emu, "waits", {"seconds": 2})
        took = time.monotonic() - started
    assert result == 3
    assert 2.0 <= took < 8.0, took


def test_event_invoke_answers_202_at_once_with_the_arn(emu):
    started = time.monotonic()
    r = emu.client().invoke(FunctionName="waits", InvocationType="Event", Payload=b'{"seconds": 3600}')
    assert r["StatusCode"] == 202 and time.monotonic() - started < 2.0
    got = wait_status(emu, r["DurableExecutionArn"], "SUCCEEDED")
    assert got["Result"] == "3"


def callback_id(emu: RunningEmulator, arn: str, timeout: float = 20.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for e in events(emu, arn):
            if e["EventType"] == "CallbackStarted":
                return e["CallbackStartedDetails"]["CallbackId"]
        time.sleep(0.05)
    raise AssertionError("no CallbackStarted event")


def test_callback_completed_by_boto3(emu):
    r = emu.client().invoke(FunctionName="callback", InvocationType="Event", Payload=b"{}")
    arn = r["DurableExecutionArn"]
    cid = callback_id(emu, arn)
    started = [e for e in events(emu, arn) if e["EventType"] == "CallbackStarted"][0]
    assert started["CallbackStartedDetails"]["Timeout"] == 120
    emu.client().send_durable_execution_callback_heartbeat(CallbackId=cid)
    emu.client().send_durable_execution_callback_success(CallbackId=cid, Result=b"yes")
    got = wait_status(emu, arn, "SUCCEEDED")
    assert json.loads(got["Result"]) == {"approved": "yes"}


def test_callback_failure_by_boto3(emu):
    r = emu.client().invoke(FunctionName="callback", InvocationType="Event", Payload=b"{}")
    cid = callback_id(emu, r["DurableExecutionArn"])
    emu.client().send_durable_execution_callback_failure(
        CallbackId=cid, Error={"ErrorType": "Rejected", "ErrorMessage": "no budget"})
    got = wait_status(emu, r["DurableExecutionArn"], "SUCCEEDED")
    assert json.loads(got["Result"])["callback_error"] == "CallbackExternalError", got


def _aws_cli(version: int, tmp_path) -> list:  # type: ignore[no-untyped-def]
    if version == 1:
        return [sys.executable, "-m", "awscli"]
    if not os.path.exists("/usr/bin/aws"):
        missing_peer("AWS CLI v2 (/usr/bin/aws) is not installed")
    return ["/usr/bin/aws"]


def _cli_env(tmp_path) -> dict:  # type: ignore[no-untyped-def]
    """The CLI's environment: dummy credentials, and botocore's current Lambda model on
    AWS_DATA_PATH (Debian's CLI v2 predates the durable commands; the model is how any CLI
    learns new ones)."""
    import gzip

    import botocore

    models = tmp_path / "models" / "lambda" / "2015-03-31"
    models.mkdir(parents=True)
    source = os.path.join(os.path.dirname(botocore.__file__), "data", "lambda", "2015-03-31", "service-2.json.gz")
    (models / "service-2.json").write_bytes(gzip.open(source).read())
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1",
               AWS_DATA_PATH=str(tmp_path / "models"), AWS_PAGER="")
    env.pop("AWS_PROFILE", None)
    return env


@pytest.mark.parametrize("version", [1, 2])
def test_callback_completed_by_the_aws_cli(emu, version, tmp_path):
    r = emu.client().invoke(FunctionName="callback", InvocationType="Event", Payload=b"{}")
    cid = callback_id(emu, r["DurableExecutionArn"])
    argv = _aws_cli(version, tmp_path) + ["lambda", "send-durable-execution-callback-success", "--callback-id", cid,
                                          "--result", "cli-v%d" % version, "--endpoint-url", emu.base]
    if version == 2:
        argv += ["--cli-binary-format", "raw-in-base64-out"]
    done = subprocess.run(argv, env=_cli_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    got = wait_status(emu, r["DurableExecutionArn"], "SUCCEEDED")
    assert json.loads(got["Result"]) == {"approved": "cli-v%d" % version}


def test_callback_timeout(emu):
    started = time.monotonic()
    r, result = invoke(emu, "callback", {"timeout": 2})  # (the service runs callback timeouts in real time, even with --skip-time)
    assert result["callback_error"] == "CallbackTimeoutError" or "timed out" in result["message"].lower(), result
    assert time.monotonic() - started < 10.0
    assert any(e["EventType"] == "CallbackTimedOut" for e in events(emu, r["DurableExecutionArn"]))


def test_wait_for_condition_states_are_in_the_history(emu):
    r, result = invoke(emu, "poll", {})
    assert result == 3
    succeeded = [e["StepSucceededDetails"] for e in events(emu, r["DurableExecutionArn"]) if e["EventType"] == "StepSucceeded"]
    assert [d["Result"]["Payload"] for d in succeeded] == ["1", "2", "3"]  # the intermediate ones from the RETRY checkpoints


def test_map_and_parallel(emu):
    r, result = invoke(emu, "fanout", {})
    assert result == {"map": [2, 4, 6], "parallel": ["left", "right"]}, result


def test_child_context(emu):
    r, result = invoke(emu, "child", {})
    assert result == {"child": 21}
    kinds = {(e["EventType"], e.get("SubType")) for e in events(emu, r["DurableExecutionArn"])}
    assert ("ContextStarted", "RunInChildContext") in kinds and ("ContextSucceeded", "RunInChildContext") in kinds, kinds


def test_chained_invokes_between_functions_of_one_emulator(emu):
    r, result = invoke(emu, "chain", {})
    assert "FunctionError" not in r, result
    assert result["plain"]["x2"] == 8
    assert result["plain"]["arn"].endswith(":function:plain")
    assert result["durable"] == 3
    kinds = [e["EventType"] for e in events(emu, r["DurableExecutionArn"])]
    assert kinds.count("ChainedInvokeSucceeded") == 2, kinds
    started = [e for e in events(emu, r["DurableExecutionArn"]) if e["EventType"] == "ChainedInvokeStarted"]
    assert [e["ChainedInvokeStartedDetails"]["ExecutedVersion"] for e in started] == ["$LATEST", "$LATEST"]
    # Lambda's order whatever the race: the invocation suspends (ends), then the chained invoke ends
    history = events(emu, r["DurableExecutionArn"])
    for i, e in enumerate(history):
        if e["EventType"] == "ChainedInvokeSucceeded":
            assert history[i - 1]["EventType"] == "InvocationCompleted", [x["EventType"] for x in history]
    assert [e["EventId"] for e in history] == list(range(1, len(history) + 1))
    # the durable child is an execution of its own, listed under its function with a Lambda ARN
    children = emu.client().list_durable_executions_by_function(FunctionName="waits")["DurableExecutions"]
    assert all(c["DurableExecutionArn"].startswith("arn:aws:lambda:us-east-1:123456789012:function:waits:") for c in children)


def test_failing_execution(emu):
    r, result = invoke(emu, "fails", {}, DurableExecutionName="bad-order")
    assert r["FunctionError"] == "Unhandled"
    assert result["errorType"] == "ValueError" and "the order is invalid" in result["errorMessage"], result
    got = emu.client().get_durable_execution(DurableExecutionArn=r["DurableExecutionArn"])
    assert got["Status"] == "FAILED" and got["Error"]["ErrorType"] == "ValueError"
    listed = emu.client().list_durable_executions_by_function
    assert [e["DurableExecutionName"] for e in listed(FunctionName="fails", Statuses=["FAILED", "STOPPED"])["DurableExecutions"]] == ["bad-order"]
    assert listed(FunctionName="fails", Statuses=["SUCCEEDED"])["DurableExecutions"] == []


def test_stopped_execution():
    with start(skip_time=False) as emu:
        r = emu.client().invoke(FunctionName="waits", InvocationType="Event", Payload=b'{"seconds": 3600}')
        arn = r["DurableExecutionArn"]
        # stopped once it waits: its invocation ended (PENDING) and was recorded; stopped while that
        # invocation was still ending, its InvocationCompleted may follow ExecutionStopped (seen
        # once in ~20 runs), which is not what this test is about
        end = time.monotonic() + 20
        while time.monotonic() < end:
            kinds = [e["EventType"] for e in events(emu, arn)]
            if "WaitStarted" in kinds and "InvocationCompleted" in kinds[kinds.index("WaitStarted"):]:
                break
            time.sleep(0.05)
        stopped = emu.client().stop_durable_execution(DurableExecutionArn=arn, Error={"ErrorMessage": "enough"})
        assert "StopTimestamp" in stopped
        got = wait_status(emu, arn, "STOPPED")
        assert "EndTimestamp" in got
        assert events(emu, arn)[-1]["EventType"] == "ExecutionStopped"


def test_replay_after_the_runtime_is_killed_mid_step(emu):
    client = emu.client()
    r = client.invoke(FunctionName="crash", InvocationType="Event", Payload=b"{}")
    pid_file = os.path.join(emu.cwd, "slow.pid")
    end = time.monotonic() + 20
    while not os.path.exists(pid_file) and time.monotonic() < end:
        time.sleep(0.05)
    os.kill(int(open(pid_file).read()), signal.SIGKILL)  # the runtime, inside step "slow"
    got = wait_status(emu, r["DurableExecutionArn"], "SUCCEEDED", timeout=60)
    assert json.loads(got["Result"]) == "finished"
    # "before" was checkpointed: replayed from its checkpoint, never run again; "slow" had no
    # result checkpointed when its runtime died: it ran again
    assert open(os.path.join(emu.cwd, "before")).read() == "x"
    assert open(os.path.join(emu.cwd, "slow")).read() == "xx"


def test_durable_runtimes_get_the_emulator_and_dummy_credentials(emu):
    r, result = invoke(emu, "env", {})
    assert result["AWS_ENDPOINT_URL_LAMBDA"] == emu.base
    assert result["AWS_ACCESS_KEY_ID"] == "lambdaric-local" and result["AWS_SECRET_ACCESS_KEY"] == "lambdaric-local"
    assert result["AWS_SESSION_TOKEN"] is None


def test_no_process_is_left_after_the_emulator_stops():
    emu = start(skip_time=True)
    try:
        invoke(emu, "waits", {"seconds": 1})
        family = children_of(emu.proc.pid)
        assert len(family) >= 2  # the durable service and a runtime at least
    finally:
        emu.stop()
        emu.__exit__(None, None, None)
    end = time.monotonic() + 5
    while any(os.path.exists("/proc/%d" % pid) and open("/proc/%d/stat" % pid).read().split()[2] != "Z" for pid in family):
        assert time.monotonic() < end, "left running: %s" % family
        time.sleep(0.05)
