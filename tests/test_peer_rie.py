"""End-to-end through the official emulator (aws-lambda-rie): a real caller, a real Runtime API.

Each runtime command runs under the emulator as it would in a container image. awslambdaric is
the reference peer (proves the plumbing); lambdaric must give the caller the same answers.
Skipped, with the reason, when the emulator cannot be fetched or a runtime is not installed.
"""
import json
import os
import pathlib
import sys
import textwrap

import pytest

from peers import awslambdaric_available, awslambdaric_skip_reason, rie, start_rie  # noqa: F401  (rie: fixture)

REPO = pathlib.Path(__file__).resolve().parent.parent

APP = textwrap.dedent(
    '''
    def echo(event, context):
        return event


    def inner():
        raise ValueError("boom from handler")


    def boom(event, context):
        inner()
    '''
)


def _runtime_params():
    ric = pytest.param(
        [sys.executable, "-m", "awslambdaric"],
        id="awslambdaric",
        marks=pytest.mark.skipif(not awslambdaric_available(), reason=awslambdaric_skip_reason() or "n/a"),
    )
    lambdaric_main = REPO / "lambdaric" / "__main__.py"
    ours = pytest.param(
        [sys.executable, "-m", "lambdaric"],
        id="lambdaric",
        marks=pytest.mark.skipif(
            not lambdaric_main.exists(), reason="lambdaric/__main__.py does not exist yet"
        ),
    )
    return [ric, ours]


@pytest.fixture(scope="module")
def app_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("rie-app")
    (d / "app.py").write_text(APP, encoding="utf-8")
    return d


@pytest.fixture(params=_runtime_params())
def runtime_cmd(request):
    return list(request.param)


def _env():
    # The runtime process must import this working tree's lambdaric, installed or not.
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {
        "PYTHONPATH": pythonpath,
        "AWS_LAMBDA_FUNCTION_TIMEOUT": "20",  # a hung runtime fails the invoke long before our own timeout
        "AWS_LAMBDA_RUNTIME_API": None,
        "_HANDLER": None,
        "LAMBDA_TASK_ROOT": None,
    }


def test_echo_round_trip(rie, runtime_cmd, app_dir):
    with start_rie(runtime_cmd + ["app.echo"], cwd=app_dir, env=_env(), rie=rie) as emu:
        status, headers, body = emu.invoke({"x": 1}, timeout=60)
        assert status == 200, emu.output()
        assert json.loads(body) == {"x": 1}
        # A second event on the same runtime process: the /next loop goes on.
        status, _, body = emu.invoke({"x": 2, "nested": {"y": [1, "two", None]}}, timeout=60)
        assert status == 200, emu.output()
        assert json.loads(body) == {"x": 2, "nested": {"y": [1, "two", None]}}
    out = emu.output()
    assert out.count("START RequestId: ") == 2, out
    assert out.count("REPORT RequestId: ") == 2, out


def test_handler_error_returns_error_json(rie, runtime_cmd, app_dir):
    with start_rie(runtime_cmd + ["app.boom"], cwd=app_dir, env=_env(), rie=rie) as emu:
        status, _, body = emu.invoke({"x": 1}, timeout=60)
        out = emu.output()
    # The emulator answers 200 even for function errors (no X-Amz-Function-Error header).
    assert status == 200, out
    err = json.loads(body)
    assert list(err)[:4] == ["errorMessage", "errorType", "requestId", "stackTrace"], err
    assert err["errorMessage"] == "boom from handler"
    assert err["errorType"] == "ValueError"
    assert err["requestId"] and err["requestId"] in out
    frames = err["stackTrace"]
    assert len(frames) == 2, frames
    assert frames[0].startswith('  File "%s", line ' % (app_dir / "app.py")) and frames[0].endswith(
        ", in boom\n    inner()\n"
    )
    assert frames[1].endswith(', in inner\n    raise ValueError("boom from handler")\n')
    # The uncaught error is logged to stdout (the emulator turns the record's \r separators into \n).
    assert "[ERROR] ValueError: boom from handler" in out
