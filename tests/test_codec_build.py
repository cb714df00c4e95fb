"""Building the JSON codec (native/lr_json.c -> lambdaric._codec): warning-free with -Werror, on the
limited API (one build loads in every CPython from 3.9), and never required."""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE = os.path.join(ROOT, "native")
CHECK = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    import _codec
    doc = {"a": [1, -2.5, "caf\\u00e9\\n", None, True, (2**70,)], "b": {}}
    body = _codec.encode(doc)
    assert body == b'{"a": [1, -2.5, "caf\\xc3\\xa9\\\\n", null, true, [1180591620717411303424]], "b": {}}', body
    assert _codec.decode(body) == {"a": [1, -2.5, "caf\\u00e9\\n", None, True, [2**70]], "b": {}}
    assert _codec.encode_ascii("\\u00e9") == '"\\\\u00e9"' and _codec.decode(b"[1,]") is _codec.NOT_MINE
    print("ok", sys.version_info[0], sys.version_info[1])
    """
)


def _build(tmp_path):
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(cc) is None:
        pytest.skip("no C compiler here (%s is not installed): lambdaric uses simplejson" % cc)
    code = "import sys; sys.path.insert(0, sys.argv[1]); import build_native; print(build_native.build_codec(sys.argv[2]))"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDARIC_NATIVE")}
    env["LAMBDARIC_NATIVE_WERROR"] = "1"
    out = subprocess.run([sys.executable, "-c", code, NATIVE, str(tmp_path)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    path = out.stdout.strip().splitlines()[-1]
    assert os.path.basename(path) == "_codec.abi3.so" and os.path.isfile(path)
    return path


def test_builds_warning_free_and_works(tmp_path):
    _build(tmp_path)
    out = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("ok"), out.stdout + out.stderr


def test_one_build_loads_in_every_python_from_3_9(tmp_path):
    """Py_LIMITED_API 3.9: the module built here loads and works in pyenv's 3.9 to 3.13 (where installed)."""
    _build(tmp_path)
    root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    pythons = {}
    for path in sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python3"))):
        version = os.path.basename(os.path.dirname(os.path.dirname(path)))
        minor = tuple(int(p) for p in version.split(".")[:2])
        if minor >= (3, 9):
            pythons[minor] = path
    if not pythons:
        pytest.skip("no pyenv interpreters here")
    for minor, python in sorted(pythons.items()):
        out = subprocess.run([python, "-c", CHECK, str(tmp_path)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and out.stdout.split() == ["ok", str(minor[0]), str(minor[1])], (python, out.stdout + out.stderr)
