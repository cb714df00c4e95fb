#!/usr/bin/env bash
# Fuzz the response-head parser with libFuzzer for SECONDS (default 60), ASan and UBSan on.
# usage: native/fuzz.sh [SECONDS]; needs clang (Debian: apt-get install clang).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-60}
out=${LAMBDARIC_FUZZ_DIR:-/tmp/lambdaric-fuzz}
mkdir -p "$out/corpus"
cp -n "$here"/fuzz_corpus/* "$out/corpus/" 2>/dev/null || true
clang -g -O1 -std=c99 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I"$here" "$here/lr_http.c" "$here/fuzz_lr_http.c" -o "$out/fuzz_lr_http"
"$out/fuzz_lr_http" -max_total_time="$seconds" -max_len=70000 -print_final_stats=1 "$out/corpus" 2>&1 | tail -15
