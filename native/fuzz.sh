#!/usr/bin/env bash
# Fuzz the native module with libFuzzer, ASan and UBSan on, for about SECONDS (default 60) in all:
#   fuzz_lr_http  the response-head parser (lr_http.c)
#   fuzz_lr_conn  the connection's receive path over a socketpair, driven as native.py drives it
#                 (lr_conn.c; input format and invariants at the top of fuzz_lr_conn.c), some
#                 inputs with a tiny answer bound on a virtual clock (-DLR_FUZZ_CLOCK: LR_STALLED)
#   fuzz_lr_json  the JSON codec (lr_json.c) in an embedded CPython, checked against simplejson
#                 (invariants at the top of fuzz_lr_json.c); needs $PYTHON (default python3) to
#                 have a shared libpython and simplejson, else it is skipped, saying so (an error
#                 with LAMBDARIC_FUZZ_ONLY=lr_json)
# With two or more CPUs all run at once for SECONDS each, otherwise one after the other for
# an equal share each. Corpora start from native/fuzz_corpus*/ and grow in the work directory.
#
# usage: native/fuzz.sh [SECONDS]        needs clang (Debian: apt-get install clang)
# env:   LAMBDARIC_FUZZ_DIR   work directory (default /tmp/lambdaric-fuzz): binaries, corpora, logs,
#                             and crash-*/timeout-* inputs (replay: $dir/fuzz_lr_conn $dir/crash-...)
#        LAMBDARIC_FUZZ_ONLY  lr_http, lr_conn or lr_json: run that harness only
#        LAMBDARIC_FUZZ_CFLAGS more compiler flags (e.g. -DLR_FUZZ_STRICT_UNREAD, see fuzz_lr_conn.c)
# Exit status: 0 when no harness failed; 1 on a crash, sanitizer report, broken invariant or
# hang (its log's end is printed); 2 when clang cannot build the harnesses.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-60}
out=${LAMBDARIC_FUZZ_DIR:-/tmp/lambdaric-fuzz}
only=${LAMBDARIC_FUZZ_ONLY:-}
mkdir -p "$out"

if ! command -v clang >/dev/null 2>&1; then
  echo "fuzz.sh: clang is not installed (apt-get install clang): cannot build the libFuzzer harnesses" >&2
  exit 2
fi

names=(lr_http lr_conn lr_json)
[ -n "$only" ] && names=("$only")
declare -A sources=([lr_http]="lr_http.c" [lr_conn]="lr_http.c lr_conn.c" [lr_json]="lr_json.c")
declare -A corpus=([lr_http]=fuzz_corpus [lr_conn]=fuzz_corpus_conn [lr_json]=fuzz_corpus_json)
declare -A max_len=([lr_http]=70000 [lr_conn]=200000 [lr_json]=20000)
declare -A extra=([lr_http]="" [lr_conn]="" [lr_json]="")

# the JSON harness embeds the interpreter: its headers, its shared libpython, its site-packages
py=${PYTHON:-python3}
json_env=()
if [[ " ${names[*]} " == *" lr_json "* ]]; then
  if embed=$("$py" - <<'EOF' 2>&1
import sys, sysconfig
v = sysconfig.get_config_var
if not v("Py_ENABLE_SHARED"):
    sys.exit("%s has no shared libpython to embed" % sys.executable)
try:
    import simplejson  # noqa: F401
except ImportError:
    sys.exit("simplejson is not installed for %s" % sys.executable)
lib = "python" + v("LDVERSION")
print("-I%s -L%s -Wl,-rpath,%s -l%s" % (sysconfig.get_paths()["include"], v("LIBDIR"), v("LIBDIR"), lib))
print(":".join(p for p in sys.path if p.endswith(("site-packages", "dist-packages"))))
EOF
  ); then
    # (no "echo | head" here: head leaving first can kill echo with SIGPIPE, and pipefail and -e
    # then end the script with status 141 and no word: seen once in CI under load)
    extra[lr_json]=${embed%%$'\n'*}
    json_env=(PYTHONPATH="${embed#*$'\n'}" PYTHONNOUSERSITE=1)
  elif [ "$only" = lr_json ]; then
    echo "fuzz.sh: cannot build fuzz_lr_json: $embed" >&2
    exit 2
  else
    echo "fuzz.sh: fuzz_lr_json skipped: $embed"
    names=(lr_http lr_conn)
  fi
fi

start=$(date +%s%N)
elapsed() { local ms=$(( ($(date +%s%N) - start) / 1000000 )); printf '%d.%d s' $((ms / 1000)) $((ms % 1000 / 100)); }
for name in "${names[@]}"; do
  srcs=()
  for s in ${sources[$name]} "fuzz_$name.c"; do srcs+=("$here/$s"); done
  # shellcheck disable=SC2086
  if ! clang -g -O1 -std=c99 -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
      -DLR_FUZZ_CLOCK ${LAMBDARIC_FUZZ_CFLAGS:-} -I"$here" "${srcs[@]}" ${extra[$name]} -o "$out/fuzz_$name"; then
    echo "fuzz.sh: building fuzz_$name failed" >&2
    exit 2
  fi
  mkdir -p "$out/corpus_$name"
  cp -n "$here/${corpus[$name]}"/* "$out/corpus_$name/" 2>/dev/null || true
done
echo "fuzz.sh: built ${names[*]} in $(elapsed)"

run() { # name seconds: one harness; its whole output goes to $out/$name.log
  local env=()
  # (CPython keeps objects alive at exit: no leak detection for the embedded interpreter)
  [ "$1" != lr_json ] || env=("${json_env[@]}" ASAN_OPTIONS="detect_leaks=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}")
  env "${env[@]}" "$out/fuzz_$1" -max_total_time="$2" -max_len="${max_len[$1]}" -timeout=20 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$out/" "$out/corpus_$1" >"$out/$1.log" 2>&1
}

declare -A status
if [ "${#names[@]}" -gt 1 ] && [ "$(nproc 2>/dev/null || echo 1)" -ge 2 ]; then
  declare -A pids
  for name in "${names[@]}"; do
    run "$name" "$seconds" &
    pids[$name]=$!
  done
  for name in "${names[@]}"; do
    if wait "${pids[$name]}"; then status[$name]=0; else status[$name]=$?; fi
  done
else
  each=$(( seconds / ${#names[@]} ))
  [ "$each" -ge 1 ] || each=1
  for name in "${names[@]}"; do
    if run "$name" "$each"; then status[$name]=0; else status[$name]=$?; fi
  done
fi

failed=0
for name in "${names[@]}"; do
  log="$out/$name.log"
  if [ "${status[$name]}" -ne 0 ]; then
    failed=1
    echo "=== fuzz_$name FAILED (exit ${status[$name]}); the end of $log:"
    tail -n 60 "$log"
    ls "$out"/crash-* "$out"/timeout-* "$out"/oom-* "$out"/leak-* 2>/dev/null || true
  else
    echo "=== fuzz_$name: $(grep -E '^Done ' "$log" | tail -n 1)"
    grep -E '^stat::' "$log" | sed 's/^/    /'
    echo "    corpus: $(ls "$out/corpus_$name" | wc -l) inputs in $out/corpus_$name"
  fi
done
echo "fuzz.sh: $([ "$failed" = 0 ] && echo "no crash" || echo "CRASHED") ($(elapsed) in all)"
exit "$failed"
