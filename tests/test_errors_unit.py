"""Error shapes (docs/runtime-api.md section 5) as pure functions."""
import os

from lambdaric.errors import FaultException, error_log_lines, make_error, report_exception, safe_str


def _boom():
    raise ValueError("bad thing")


def test_make_error_key_order_and_defaults():
    err = make_error(None, None, None, None)
    assert list(err) == ["errorMessage", "errorType", "requestId", "stackTrace"]
    assert err == {"errorMessage": "", "errorType": "", "requestId": "", "stackTrace": []}


def test_report_exception_user_frames_and_xray():
    try:
        _boom()
    except ValueError as exc:
        report = report_exception(exc, "r1")
    assert report.error["errorType"] == "ValueError" and report.error["requestId"] == "r1"
    assert report.error["stackTrace"][-1].endswith('in _boom\n    raise ValueError("bad thing")\n')
    cause = report.xray_cause()
    assert list(cause) == ["working_directory", "exceptions", "paths"]
    assert cause["working_directory"] == os.getcwd()
    assert cause["exceptions"][0]["type"] == "ValueError"
    assert cause["exceptions"][0]["stack"][-1] == {"label": "_boom", "path": __file__, "line": 8}
    assert cause["paths"] == [__file__]


def test_fault_xray_is_validation_error():
    report = report_exception(FaultException("Runtime.MarshalError", "nope"), "r1")
    assert report.xray_cause()["exceptions"] == [{"message": "nope", "type": "LambdaValidationError", "stack": []}]


def test_error_log_lines_nbsp():
    lines = error_log_lines(make_error("m", "T", ['  File "a.py", line 1, in f\n    x()\n'], "r"))
    assert lines == [
        "[ERROR] T: m",
        "Traceback (most recent call last):",
        '\u00a0\u00a0File "a.py", line 1, in f',
        "\u00a0\u00a0\u00a0\u00a0x()",
    ]
    assert error_log_lines(make_error("", "T", [], "r")) == ["[ERROR] T", "Traceback (most recent call last):"]


def test_safe_str_survives_hostile_str():
    class Hostile(Exception):
        def __str__(self):
            raise RuntimeError("no")

    assert safe_str(Hostile()) == "<exception str() failed: RuntimeError>"
