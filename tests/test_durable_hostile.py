"""Durable functions when things go wrong around them: the emulator killed outright, a runtime
that dies mid-invoke, and overlapping invokes under one execution name."""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from emulator_harness import RunningEmulator, children_of  # noqa: E402
from peers import peer_module  # noqa: E402

peer_module("aws_durable_execution_sdk_python", "pip install 'lambdaric[durable]'")
peer_module("aws_durable_execution_sdk_python_testing", "pip install 'lambdaric[durable]'")

APP = '''
from aws_durable_execution_sdk_python import durable_execution, DurableContext
from aws_durable_execution_sdk_python.config import Duration


@durable_execution
def handler(event, context: DurableContext):
    a = context.step(lambda _: 1, name="one")
    context.wait(Duration.from_seconds(event.get("wait", 1)), name="pause")
    return a + context.step(lambda _: 1, name="two")
'''


def alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_the_service_dies_with_an_emulator_killed_outright():
    with RunningEmulator({"app.py": APP}, args=["--durable", "--skip-time"]) as emu:
        r = emu.client().invoke(FunctionName="function", Payload=b"{}")
        assert json.loads(r["Payload"].read()) == 2
        family = children_of(emu.proc.pid)
        assert family
        emu.proc.send_signal(signal.SIGKILL)  # no chance to stop its children
        emu.proc.wait(5)
        end = time.monotonic() + 10
        while [p for p in family if alive(p)] and time.monotonic() < end:
            time.sleep(0.05)
        assert not [p for p in family if alive(p)], "left running after SIGKILL of the emulator"


def test_overlapping_invokes_with_one_name_make_one_execution():
    with RunningEmulator({"app.py": APP}, args=["--durable", "--skip-time"]) as emu:
        arns, results = [], []

        def one() -> None:
            r = emu.client().invoke(FunctionName="function", Payload=b'{"wait": 2}', DurableExecutionName="once")
            arns.append(r["DurableExecutionArn"])
            results.append(json.loads(r["Payload"].read()))

        threads = [threading.Thread(target=one) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(set(arns)) == 1 and results == [2] * 8
        listed = emu.client().list_durable_executions_by_function(FunctionName="function")["DurableExecutions"]
        assert [e["DurableExecutionName"] for e in listed] == ["once"]


def test_an_emulator_that_cannot_start_the_service_says_so(tmp_path):
    """The durable extra missing (here: its package hidden): one line, exit status 1."""
    (tmp_path / "aws_durable_execution_sdk_python_testing").mkdir()
    (tmp_path / "aws_durable_execution_sdk_python_testing" / "__init__.py").write_text("raise ImportError('hidden')\n")
    (tmp_path / "aws_durable_execution_sdk_python_testing" / "cli.py").write_text("raise ImportError('hidden')\n")
    import subprocess

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]))
    (tmp_path / "app.py").write_text(APP)
    done = subprocess.run([sys.executable, "-m", "lambdaric", "app.handler", "--durable", "--listen", "127.0.0.1:0"],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done
    assert "durable execution service did not start" in done.stderr, done.stderr
