"""``lambdaric invoke`` as a user runs it: a real process, against a handler it serves
itself or against a running emulator's URL."""
import json
import os
import subprocess
import sys

import pytest

from emulator_harness import REPO, RunningEmulator

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


def test_unreachable_url_is_a_clear_error(tmp_path):
    out = lambdaric_invoke(["http://127.0.0.1:9/2015-03-31/functions/function/invocations"], str(tmp_path))
    assert out.returncode == 2
    assert out.stderr.startswith(b"lambdaric invoke: ") and b"Traceback" not in out.stderr
