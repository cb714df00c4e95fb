#!/usr/bin/env bash
# Portability check of the native sources: lr_http.c and lr_conn.c compile warning-free as
# C99 with musl (musl-gcc, Debian: apt-get install musl-tools), gcc and clang, and the
# connection harness (fuzz_lr_conn.c built as a plain program, -DLR_FUZZ_MAIN) linked against
# each libc replays the seed corpus (native/fuzz_corpus_conn/) with its invariant checks.
# lr_json.c (the JSON codec, a Python extension) is compiled the same way against the headers of
# $PYTHON (default python3; skipped, saying so, when it has none).
#
# usage: native/check_musl.sh [COMPILER...]     default: musl-gcc gcc clang
# A compiler that is not installed is skipped, saying so (LAMBDARIC_REQUIRE_MUSL=1 makes a
# missing musl-gcc an error). Exit 1 when any compile, link or replay fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d /tmp/lambdaric-check-native.XXXXXX)
trap 'rm -rf "$out"' EXIT
[ "$#" -gt 0 ] || set -- musl-gcc gcc clang

now() { date +%s%N; }
ms() { echo $(( ($(now) - $1) / 1000000 )); }

py=${PYTHON:-python3}
pyinc=$("$py" -c 'import sysconfig, os; p = sysconfig.get_paths()["include"]; print(p if os.path.isfile(os.path.join(p, "Python.h")) else "")' 2>/dev/null || true)
[ -n "$pyinc" ] || echo "check_musl.sh: no Python.h for $py: lr_json.c (the codec) is not compiled here"

failed=0
for cc in "$@"; do
  if ! command -v "$cc" >/dev/null 2>&1; then
    hint=""
    [ "$cc" != musl-gcc ] || hint="; Debian: apt-get install musl-tools"
    if [ "$cc" = musl-gcc ] && [ "${LAMBDARIC_REQUIRE_MUSL:-}" = 1 ]; then
      echo "check_musl.sh: musl-gcc is not installed$hint, and LAMBDARIC_REQUIRE_MUSL=1"
      failed=1
    else
      echo "check_musl.sh: $cc: skipped (not installed$hint)"
    fi
    continue
  fi
  flags=(-std=c99 -O2 -DNDEBUG -Wall -Wextra -Werror)
  [ "$cc" = musl-gcc ] || flags+=(-pedantic)
  t0=$(now)
  ok=1
  for src in lr_http.c lr_conn.c; do
    if ! "$cc" "${flags[@]}" -c "$here/$src" -o "$out/$cc-${src%.c}.o"; then
      echo "check_musl.sh: $cc: $src FAILED to compile with ${flags[*]}"
      ok=0
    fi
  done
  codec=""
  if [ -n "$pyinc" ]; then
    if "$cc" "${flags[@]}" -I"$pyinc" -c "$here/lr_json.c" -o "$out/$cc-lr_json.o"; then
      codec=" + lr_json.c"
    else
      echo "check_musl.sh: $cc: lr_json.c FAILED to compile with ${flags[*]} (Python headers: $pyinc)"
      ok=0
    fi
  fi
  compile_ms=$(ms "$t0")
  replay=""
  if [ "$ok" = 1 ]; then
    t1=$(now)
    # (lr_conn.c again with the harness's virtual clock, so the seeds with an answer bound stall
    # as they do under fuzz.sh)
    if ! "$cc" -std=c99 -O1 -Wall -Wextra -Werror -DLR_FUZZ_MAIN -DLR_FUZZ_CLOCK -I"$here" "$out/$cc-lr_http.o" \
        "$here/lr_conn.c" "$here/fuzz_lr_conn.c" -o "$out/replay-$cc"; then
      echo "check_musl.sh: $cc: linking the replay harness FAILED"
      ok=0
    elif ! replay=$("$out/replay-$cc" "$here"/fuzz_corpus_conn/* 2>&1); then
      echo "check_musl.sh: $cc: replaying the seed corpus FAILED: $replay"
      ok=0
    else
      replay="; seed corpus replayed ($replay) in $(ms "$t1") ms"
    fi
  fi
  if [ "$ok" = 1 ]; then
    echo "check_musl.sh: $cc ($("$cc" -dumpversion 2>/dev/null || echo '?')): lr_http.c + lr_conn.c$codec compiled with ${flags[*]} -c in ${compile_ms} ms$replay"
  else
    failed=1
  fi
done
exit "$failed"
