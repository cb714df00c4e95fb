#!/usr/bin/env bash
# Build lambdaric._native and lambdaric._codec (the JSON codec) with AddressSanitizer +
# UndefinedBehaviorSanitizer and run the protocol and codec tests on the native transport with them
# (every runtime process they start loads those builds).
#
# usage: native/sanitize.sh [pytest arguments]
#        default: tests/test_runtime_wire.py tests/test_logs_wire.py tests/test_differential_wire.py
#                 tests/test_codec_differential.py tests/test_codec_hostile.py
# env:   CC      compiler: clang by default when installed (its UBSan reports go to the report
#                files as ASan's do), else gcc (whose UBSan reports only reach stderr: a report
#                still stops the process and fails its test, and the pytest log is scanned)
#        PYTHON  interpreter (default python3) with cffi and the test requirements installed
#        LAMBDARIC_SANITIZE_DIR  work directory (default: a fresh mktemp -d, removed on success)
#
# How: the working tree is copied to a scratch directory and the module is built there with
# build_native.build (LAMBDARIC_NATIVE_CFLAGS/LDFLAGS: -fsanitize=address,undefined
# -fno-sanitize-recover=all -g; warnings as errors) as the copy's lambdaric/_native.abi3.so,
# its only _native, and the codec with build_native.build_codec as lambdaric/_codec.abi3.so; pytest runs in the copy with LAMBDARIC_TRANSPORT=native, so the tests and
# the runtime processes they start (PYTHONPATH = the copy) import that build. Your checkout
# and its normal build are never touched.
# The ASan runtime must be LD_PRELOADed (an instrumented extension in an uninstrumented
# python), and the tests start their runtimes with a clean environment (PATH, HOME and
# PYTHONPATH only), so the settings live in the interpreter: a scratch venv whose bin/python is
# a script that exports LD_PRELOAD, ASAN_OPTIONS and UBSAN_OPTIONS and execs the real python
# under its own name; sys.executable stays that script, so pytest and every python process
# the tests start ([sys.executable, "-m", ...]) run with them. The venv sees the current
# interpreter's site-packages (pytest, hypothesis, cffi...) through a .pth file.
# Sanitizer reports go to files (log_path), one per process, so none can hide in a child's
# stderr that no test looks at.
#
# Exit: 0 when the tests pass with no report; 1 when pytest fails, any process wrote a
# sanitizer report (even under a passing test), or the tests skipped the native transport;
# 2 when the sanitized module cannot be built or loaded.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
py=${PYTHON:-python3}
if [ -n "${CC:-}" ]; then cc=$CC; elif command -v clang >/dev/null 2>&1; then cc=clang; else cc=gcc; fi
start=$(date +%s%N)
elapsed() { local ms=$(( ($(date +%s%N) - start) / 1000000 )); printf '%d.%d s' $((ms / 1000)) $((ms % 1000 / 100)); }

if [ -n "${LAMBDARIC_SANITIZE_DIR:-}" ]; then
  work=$LAMBDARIC_SANITIZE_DIR
  rm -rf "$work"
  mkdir -p "$work"
else
  work=$(mktemp -d /tmp/lambdaric-sanitize.XXXXXX)
fi
repo="$work/repo"
logs="$work/reports"
mkdir -p "$repo" "$logs" "$work/build"

# 1. a copy of the working tree (tracked and new files; not ignored ones such as built modules)
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
  git -C "$root" ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do if [ -f "$root/$f" ]; then printf '%s\0' "$f"; fi; done |
    tar -C "$root" --null -T - -cf - | tar -C "$repo" -xf -
else
  cp -a "$root/." "$repo/"
fi
find "$repo" \( -name '_native*.so' -o -name '_codec*.so' -o -name '__pycache__' -o -name '*.egg-info' \) -prune -exec rm -rf {} +

# 2. the sanitized build, as the copy's lambdaric/_native.abi3.so
san="-fsanitize=address,undefined -fno-sanitize-recover=all"
# -fno-wrapv: python's CFLAGS carry -fwrapv, which would make signed overflow defined and unchecked
cflags="$san -g -fno-omit-frame-pointer -fno-wrapv"
ldflags="$san"
cc_version=$("$cc" --version 2>/dev/null || true)  # (no "| head": SIGPIPE under pipefail, see fuzz.sh)
case "${cc_version%%$'\n'*}" in
  *clang*) cflags="$cflags -shared-libasan"; ldflags="$ldflags -shared-libasan" ;;
esac
echo "sanitize.sh: building lambdaric._native with $cc $cflags"
if ! built=$(cd "$repo" && CC="$cc" LAMBDARIC_NATIVE_WERROR=1 LAMBDARIC_NATIVE_CFLAGS="$cflags" \
    LAMBDARIC_NATIVE_LDFLAGS="$ldflags" "$py" -c '
import sys
sys.path.insert(0, "native")
import build_native
print(build_native.build(sys.argv[1], "lambdaric._native"))
' "$work/build" 2>"$work/build.log" | tail -n 1) || [ ! -f "$built" ]; then
  echo "sanitize.sh: the sanitized build failed:" >&2
  tail -n 40 "$work/build.log" >&2
  exit 2
fi
cp "$built" "$repo/lambdaric/_native.abi3.so"
if ! codec=$(cd "$repo" && CC="$cc" LAMBDARIC_NATIVE_WERROR=1 LAMBDARIC_NATIVE_CFLAGS="$cflags" \
    LAMBDARIC_NATIVE_LDFLAGS="$ldflags" "$py" -c '
import sys
sys.path.insert(0, "native")
import build_native
print(build_native.build_codec(sys.argv[1]))
' "$work/build" 2>"$work/build_codec.log" | tail -n 1) || [ ! -f "$codec" ]; then
  echo "sanitize.sh: the sanitized codec build failed:" >&2
  tail -n 40 "$work/build_codec.log" >&2
  exit 2
fi
cp "$codec" "$repo/lambdaric/_codec.abi3.so"

# 3. the ASan runtime to preload: the one the module links (gcc), or clang's shared one
asan=$(ldd "$built" 2>/dev/null | awk '/libasan\.so/ { print $3; exit }')
if [ -z "$asan" ]; then
  asan=$("$cc" -print-file-name="libclang_rt.asan-$(uname -m).so" 2>/dev/null || true)
fi
if [ -z "$asan" ] || [ ! -f "$asan" ]; then
  echo "sanitize.sh: cannot find the ASan runtime of $cc to preload" >&2
  exit 2
fi

# 4. the wrapper python (see the top)
real=$("$py" -c 'import os, sys; print(os.path.realpath(sys.executable))')
"$py" -m venv --without-pip "$work/venv"
venv_site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$py" -c 'import sys; print("\n".join(p for p in sys.path if p.endswith(("site-packages", "dist-packages"))))' \
  >"$venv_site/lambdaric_sanitize_parent.pth"
# detect_leaks=0: CPython keeps its objects at exit.
asan_options="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=99:handle_abort=1:log_path=$logs/asan"
ubsan_options="halt_on_error=1:print_stacktrace=1:exitcode=98:log_path=$logs/ubsan"
rm -f "$work/venv/bin/python"
{
  echo '#!/bin/bash'
  echo "# python with $asan preloaded (native/sanitize.sh)"
  printf 'export LD_PRELOAD=%q"${LD_PRELOAD:+ $LD_PRELOAD}"\n' "$asan"
  printf 'export ASAN_OPTIONS=%q\n' "$asan_options"
  printf 'export UBSAN_OPTIONS=%q\n' "$ubsan_options"
  printf 'exec -a "$0" %q "$@"\n' "$real"
} >"$work/venv/bin/python"
chmod +x "$work/venv/bin/python"
py="$work/venv/bin/python"
export PYTHONPATH="$repo"
export LAMBDARIC_TRANSPORT=native
export PYTHONDONTWRITEBYTECODE=1

# 5. the module that loads is the sanitized one, the ASan runtime is in, the transport takes it
if ! (cd "$repo" && "$py" -c '
import os, sys
import lambdaric._native as m
import lambdaric._codec as c
from lambdaric.transport import create
assert m.__file__ == sys.argv[1], (m.__file__, sys.argv[1])
assert c.__file__ == sys.argv[1].replace("_native", "_codec"), c.__file__
assert c.decode(c.encode({"a": [1.5, "x"]})) == {"a": [1.5, "x"]}
assert sys.executable == sys.argv[2], sys.executable
assert any("asan" in line for line in open("/proc/self/maps")), "no ASan runtime in the process"
assert create("127.0.0.1:9", "sanitize.sh", "native").name == "native"
print("sanitize.sh: loaded %s and %s with %s" % (m.__file__, c.__file__, os.environ["LD_PRELOAD"]))
' "$repo/lambdaric/_native.abi3.so" "$py"); then
  echo "sanitize.sh: the sanitized module does not load as lambdaric._native (preloading $asan)" >&2
  find "$logs" -type f -exec head -n 30 {} + >&2 2>/dev/null || true
  exit 2
fi

# 6. the protocol and codec tests on the native transport
if [ "$#" -eq 0 ]; then
  set -- tests/test_runtime_wire.py tests/test_logs_wire.py tests/test_differential_wire.py \
    tests/test_codec_differential.py tests/test_codec_hostile.py
fi
status=0
(cd "$repo" && "$py" -m pytest -q -p no:warnings -p no:cacheprovider -ra "$@") 2>&1 | tee "$work/pytest.log" ||
  status=$?

failed=0
if [ "$status" -ne 0 ]; then
  echo "sanitize.sh: pytest failed (exit $status)"
  failed=1
fi
if grep -q -E "^[^ ]*: runtime error: |(Address|UndefinedBehavior)Sanitizer" "$work/pytest.log"; then
  echo "sanitize.sh: a sanitizer report in the test output"
  failed=1
fi
if grep -q "the native module is not built here" "$work/pytest.log"; then
  echo "sanitize.sh: tests skipped the native transport (the module did not load in the test process)"
  failed=1
fi
reports=$(find "$logs" -type f | sort)
if [ -n "$reports" ]; then
  echo "sanitize.sh: sanitizer reports from $(echo "$reports" | wc -l) process(es):"
  for f in $reports; do
    echo "--- $f"
    head -n 60 "$f"
  done
  failed=1
fi
if [ "$failed" -ne 0 ]; then
  echo "sanitize.sh: FAILED after $(elapsed) (work directory kept: $work)"
  exit 1
fi
echo "sanitize.sh: no sanitizer report; the tests passed on the ASan+UBSan build ($(elapsed))"
[ -n "${LAMBDARIC_SANITIZE_DIR:-}" ] || rm -rf "$work"
