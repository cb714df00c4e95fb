"""Building the native module (native/): warning-free with -Werror, portable C99 (musl, gcc,
clang), and optional: an install without a C compiler still works, on the pure-Python transport."""
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import pytest

from runtime_api import Event, run_runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE = os.path.join(ROOT, "native")
#: Build and install settings of the caller's environment that would change what is tested here.
_NATIVE_ENV = ("LAMBDARIC_NATIVE_WERROR", "LAMBDARIC_NATIVE_REQUIRED", "LAMBDARIC_NATIVE_CFLAGS",
               "LAMBDARIC_NATIVE_LDFLAGS", "LAMBDARIC_NO_NATIVE", "LAMBDARIC_TRANSPORT", "PYTHONPATH")


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in _NATIVE_ENV}
    env.update(extra)
    return env


def _compiler():
    """The C compiler setuptools would use, and whether it is installed."""
    cc = (os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc").split()[0]
    return cc, shutil.which(cc) is not None


def test_builds_warning_free_with_werror(tmp_path):
    """The cffi build of lambdaric._native with LAMBDARIC_NATIVE_WERROR=1 (as CI installs it)."""
    pytest.importorskip("cffi", reason="cffi is not installed")
    cc, installed = _compiler()
    if not installed:
        pytest.skip("no C compiler here (%s is not installed): lambdaric runs on its pure-Python transport" % cc)
    code = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        import build_native
        print(build_native.build(sys.argv[2], "_lr_native_werror"))
        """
    )
    out = subprocess.run([sys.executable, "-c", code, NATIVE, str(tmp_path)], capture_output=True, text=True,
                         env=_clean_env(LAMBDARIC_NATIVE_WERROR="1"), timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    path = out.stdout.strip().splitlines()[-1]
    assert os.path.isfile(path)
    # the module loads and works: one head parsed, the connection struct is the header's
    check = textwrap.dedent(
        """
        import sys
        sys.path.insert(0, sys.argv[1])
        from _lr_native_werror import ffi, lib
        head = ffi.new("lr_head *")
        data = b"HTTP/1.1 200 OK\\r\\nLambda-Runtime-Aws-Request-Id: r1\\r\\nContent-Length: 2\\r\\n\\r\\n{}"
        assert lib.lr_parse_head(data, len(data), head) == len(data) - 2 and head.status == 200
        assert ffi.sizeof("lr_conn") > lib.LR_VALUES_SIZE
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", check, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr


def test_portable_c99_with_musl_gcc_and_clang():
    """native/check_musl.sh: -std=c99 -Wall -Wextra -Werror with each compiler installed (musl-gcc
    from Debian's musl-tools; gcc and clang with -pedantic), and the connection harness replays
    the seed corpus linked against each libc. Compilers that are missing are skipped by the script."""
    found = [cc for cc in ("musl-gcc", "gcc", "clang") if shutil.which(cc)]
    if not found:
        pytest.skip("none of musl-gcc, gcc, clang is installed")
    out = subprocess.run(["bash", os.path.join(NATIVE, "check_musl.sh")] + found, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    for cc in found:
        assert "check_musl.sh: %s (" % cc in out.stdout and "seed corpus replayed" in out.stdout, out.stdout


def _can_build_without_isolation():
    """pip install --no-build-isolation needs setuptools (with bdist_wheel: >= 70.1, or wheel) and cffi here."""
    if importlib.util.find_spec("cffi") is None or importlib.util.find_spec("setuptools") is None:
        return "cffi or setuptools is not installed"
    if importlib.util.find_spec("wheel") is None:
        import setuptools

        if tuple(int(p) for p in setuptools.__version__.split(".")[:2] if p.isdigit()) < (70, 1):
            return "setuptools %s without the wheel package cannot build a wheel (pip install wheel)" % (
                setuptools.__version__)
    return None


def test_install_without_a_compiler_falls_back_to_python(tmp_path):
    """pip install of lambdaric where the C compiler fails (CC=/bin/false) succeeds, with a warning;
    the installed runtime serves an invoke on the pure-Python transport and says why at DEBUG level;
    LAMBDARIC_TRANSPORT=native there exits 2 with a clear message."""
    problem = _can_build_without_isolation()
    if problem:
        pytest.skip(problem)
    # the sources, without any built module (pip builds in the source tree)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md", "MANIFEST.in"):
        if os.path.exists(os.path.join(ROOT, name)):
            shutil.copy(os.path.join(ROOT, name), src / name)
    ignore = shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info", "build", "fuzz_corpus*")
    for name in ("lambdaric", "native"):
        shutil.copytree(os.path.join(ROOT, name), src / name, ignore=ignore)
    # a venv that sees this interpreter's packages (cffi, setuptools, simplejson...) but no lambdaric
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    python = str(venv / "bin" / "python")
    purelib = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    parents = [p for p in sys.path if p.endswith(("site-packages", "dist-packages")) and os.path.isdir(p)]
    with open(os.path.join(purelib, "lambdaric_test_parent.pth"), "w") as f:
        f.write("\n".join(parents) + "\n")

    install = subprocess.run(
        [python, "-m", "pip", "install", "-v", "--no-deps", "--no-build-isolation", "--no-index", str(src)],
        capture_output=True, text=True, cwd=str(tmp_path), timeout=180,
        env=_clean_env(CC="/bin/false", PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1"),
    )
    log = install.stdout + install.stderr
    assert install.returncode == 0, log[-4000:]
    assert "lambdaric's native module was not built" in log and "will use its pure-Python transport" in log, log[-4000:]
    assert "lambdaric's native JSON codec was not built" in log and "lambdaric will use simplejson" in log, log[-4000:]

    env = _clean_env()
    where = subprocess.run(
        [python, "-c", "import importlib.util, lambdaric; print(lambdaric.__file__); "
                       "print(importlib.util.find_spec('lambdaric._native')); "
                       "print(importlib.util.find_spec('lambdaric._codec'))"],
        capture_output=True, text=True, cwd=str(tmp_path), env=env, timeout=30)
    assert where.returncode == 0, where.stderr
    assert where.stdout.splitlines() == [os.path.join(purelib, "lambdaric", "__init__.py"), "None", "None"], where.stdout

    version = subprocess.run([python, "-m", "lambdaric", "--version"], capture_output=True, text=True,
                             cwd=str(tmp_path), env=env, timeout=30)
    assert version.returncode == 0 and version.stdout.startswith("lambdaric "), version.stdout + version.stderr
    assert ", codec: simplejson (native codec unavailable: ModuleNotFoundError: " in version.stdout, version.stdout

    cmd = [python, "-m", "lambdaric"]
    files = {"app.py": "def handler(event, context):\n    return {'echo': event}\n"}
    result = run_runtime(files, "app.handler", [Event(body=b'{"n": 1}', request_id="req-nc")], cmd=cmd,
                         env={"LAMBDARIC_TRANSPORT": "auto", "AWS_LAMBDA_LOG_LEVEL": "DEBUG", "PYTHONPATH": None})
    post = result.post("response")
    assert post.path == "/2018-06-01/runtime/invocation/req-nc/response" and post.body == b'{"echo": {"n": 1}}', result
    output = result.stdout + result.stderr
    assert b"[DEBUG] transport: python (native module unavailable: ModuleNotFoundError: " in output, result

    result = run_runtime(files, "app.handler", [Event()], cmd=cmd, expect_posts=99, timeout=20,
                         env={"LAMBDARIC_TRANSPORT": "native", "PYTHONPATH": None})
    assert result.exited and result.returncode == 2, result
    assert b"LAMBDARIC_TRANSPORT=native, but the native module cannot be loaded" in result.stderr, result
    assert not result.posts, result


def test_installed_modules_name_no_folder_of_the_build_machine():
    """setup.py takes the build machine's ``-Wl,-rpath`` out of the link (pyenv's Python puts
    its lib folder in LDSHARED): the modules it builds carry no RUNPATH and need only libc."""
    readelf = shutil.which("readelf")
    if readelf is None:
        pytest.skip("readelf is not installed (binutils)")
    found = [os.path.join(ROOT, "lambdaric", name) for name in os.listdir(os.path.join(ROOT, "lambdaric"))
             if name.startswith(("_native", "_codec")) and name.endswith(".so")]
    if not found:
        pytest.skip("the native modules are not built in this checkout")
    for path in found:
        dynamic = subprocess.run([readelf, "-d", path], capture_output=True, text=True, check=True).stdout
        assert "RPATH" not in dynamic and "RUNPATH" not in dynamic, (path, dynamic)
        needed = [line.split("[", 1)[1].rstrip("]") for line in dynamic.splitlines() if "(NEEDED)" in line]
        assert all(lib.startswith("libc.") for lib in needed), (path, needed)
