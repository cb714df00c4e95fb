"""Emulator modes with a real runtime that supports them (the official client):
Managed Instances (one runtime, N concurrent invocations) and SnapStart restore."""
import json
import sys

import pytest

from peers import peer_module

from emulator_harness import RunningEmulator, invoke_concurrently

peer_module("boto3", "pip install boto3")
peer_module("awslambdaric", "pip install awslambdaric")

OFFICIAL = "%s -m awslambdaric app.handler" % sys.executable


def test_managed_instances_one_runtime_many_invokes(tmp_path):
    files = {
        "app.py": """
            import os, time
            def handler(event, context):
                start = time.time()
                time.sleep(0.5)
                return {"i": event["i"], "rid": context.aws_request_id, "start": start}
        """
    }
    with RunningEmulator(files, handler=None, args=["--command", OFFICIAL, "--max-concurrency", "4"]) as emu:
        def one(i):
            answer = emu.client().invoke(FunctionName="function", Payload=json.dumps({"i": i}).encode())
            return json.loads(answer["Payload"].read())

        results, elapsed = invoke_concurrently(one, 4)
        assert sorted(results) == [-1, 0, 1, 2, 3] and all(results[i]["i"] == i for i in results)
        assert elapsed < 1.5, "4 invokes of 0.5 s took %.2f s: not served concurrently" % elapsed
        assert emu.stdout().count(b"Init Duration") == 1  # one runtime (one init) served them all


def test_snapstart_restore_sequence(tmp_path):
    pytest.importorskip("snapshot_restore_py", reason="snapshot_restore_py is not installed")
    order = tmp_path / "order.txt"
    files = {
        "app.py": """
            import os
            from snapshot_restore_py import register_after_restore, register_before_snapshot
            def note(what):
                with open(os.environ["ORDER"], "a") as f:
                    f.write(what + "\\n")
            register_before_snapshot(lambda: note("before-snapshot"))
            register_after_restore(lambda: note("after-restore"))
            def handler(event, context):
                note("invoke")
                return "restored"
        """
    }
    with RunningEmulator(files, handler=None, args=["--command", OFFICIAL, "--snapstart"], env={"ORDER": str(order)}) as emu:
        answer = emu.client().invoke(FunctionName="function", Payload=b"{}")
        assert answer["Payload"].read() == b'"restored"'
    assert order.read_text().split() == ["before-snapshot", "after-restore", "invoke"]
